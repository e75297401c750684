"""The README is a front page: short, every command in it is one that CI runs, and it and the
docs' pages speak to users (no issue numbers, no histories of earlier versions: the CHANGELOG
holds those). Its Python example runs in tests/test_docs.py."""

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
CI = ROOT / ".ci" / "run"

#: Pages for users: the README and every page of the docs but the changelog.
USER_PAGES = [README, *sorted(p for p in (ROOT / "docs").rglob("*.md") if p.name != "changelog.md")]


def _shell_commands(text):
    """Each command of the ```sh blocks, with its continuation lines joined and comments cut."""
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        for command in block.replace("\\\n", " ").splitlines():
            command = re.sub(r"\s+#.*$", "", command).strip()
            if command and not command.startswith("#"):
                commands.append(re.sub(r"\s+", " ", command))
    return commands


def test_the_readme_is_at_most_12000_characters():
    assert len(README.read_text()) <= 12_000


def test_every_command_in_the_readme_is_run_by_ci():
    commands = _shell_commands(README.read_text())
    assert len(commands) >= 5  # the two set-up lines, the three uses and the docs
    # Each as a `timed '<command>'` line of its own, which runs it (eval) and prints its time.
    run = CI.read_text().splitlines()
    missing = [c for c in commands if f"timed '{c}'" not in run]
    assert missing == []


def test_the_readme_finds_its_commands():
    # The check above could not fail if no command were found.
    text = "```sh\npip install . \\\n    && loopbp compare   # a comment\n```\n"
    assert _shell_commands(text) == ["pip install . && loopbp compare"]


@pytest.mark.parametrize("page", USER_PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_pages_for_users_name_no_issue_and_tell_no_history(page):
    text = page.read_text()
    assert not re.search(r"(?i)\bissues? #?\d+|(?<![\w&/])#\d+\b", text)
    history = re.findall(
        r"(?i)\b(used to be|no longer|previously|earlier versions?|than before|was changed|"
        r"before (?:this|the) (?:change|release|version)|(?:0\.[0-2]\.\d) (?:and|or) earlier)\b",
        text,
    )
    assert history == []
