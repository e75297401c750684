"""The documentation site builds without a warning, documents every public name, shows the
derivation's eight equations with their loop nests from the source, and renders its math in
a browser with the network blocked.

The site is built once per test run (``sphinx-build -W --keep-going``), shared by the
pytest-xdist workers through a lock file. The browser tests need Debian's ``chromium``
(or Chrome) on the PATH and skip without it; the build needs the ``docs`` extra.
"""

import contextlib
import html
import inspect
import pathlib
import re
import shutil
import socket
import subprocess
import sys
import threading

import pytest

from loopbp.cpu import activation_rows, kernels, serial_driver

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def _build(out):
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(DOCS), str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0 and result.stderr.strip() == "", result.stderr
    (out / "built").write_text("ok")


@pytest.fixture(scope="session")
def site(tmp_path_factory):
    """The built site's folder: built by the first worker to get here, reused by the others."""
    pytest.importorskip("sphinx", reason='the docs extra: pip install ".[docs]"')
    pytest.importorskip("pydata_sphinx_theme", reason='the docs extra: pip install ".[docs]"')
    shared = tmp_path_factory.getbasetemp().parent  # one folder for every xdist worker
    out = shared / "docs-html"
    try:
        import fcntl
    except ImportError:  # not POSIX: each worker builds its own
        fcntl = None
        out = tmp_path_factory.mktemp("docs-html")
    with open(shared / "docs-html.lock", "w") as lock:
        if fcntl is not None:
            fcntl.flock(lock, fcntl.LOCK_EX)
        if not (out / "built").exists():
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir()
            _build(out)
    return out


def _text(page):
    return html.unescape(re.sub(r"<[^>]+>", "", page))


def _code_blocks(page):
    """The text of each highlighted code block of a built page."""
    return [_text(b) for b in re.findall(r'<div class="highlight"><pre>(.*?)</pre>', page, re.S)]


def _public_functions(module):
    names = getattr(module, "__all__", None) or [
        n for n, f in vars(module).items() if inspect.isfunction(f) and f.__module__ == module.__name__
    ]
    return [n for n in names if not n.startswith("_")]


def test_every_public_name_has_an_api_entry(site):
    pytest.importorskip("sklearn", minversion="1.6")
    import loopbp.distributed
    import loopbp.examples
    import loopbp.sklearn

    api = (site / "api.html").read_text()
    anchors = set(re.findall(r'<dt class="sig[^"]*" id="([^"]+)"', api))
    expected = {f"loopbp.{name}" for name in loopbp.__all__}
    for module in (loopbp.sklearn, loopbp.distributed, loopbp.examples):
        expected |= {f"{module.__name__}.{name}" for name in _public_functions(module)}
    assert expected - anchors == set()
    # Every method of Network that is not private, too.
    methods = {n for n, f in vars(loopbp.Network).items() if callable(f) and not n.startswith("_")}
    assert {f"loopbp.Network.{n}" for n in methods} - anchors == set()


def test_the_derivation_page_shows_eight_equations_each_with_its_loop_nest(site):
    page = (site / "derivation.html").read_text()
    assert re.findall(r'<span class="eqno">\((\d)\)', page) == [str(k) for k in range(1, 9)]
    blocks = _code_blocks(page)
    # The loop nests are included from the source, not copied: each kernel's whole source.
    for function in (
        kernels.forward_layer,
        activation_rows.activate_row,
        kernels.output_delta,
        kernels._output_delta_row,
        kernels.delta_to_z,
        activation_rows.multiply_by_derivative_row,
        kernels.hidden_delta,
        kernels.weight_gradient,
        kernels.bias_gradient,
        kernels._row_sum,
        serial_driver.gradient_pass,
    ):
        source = inspect.getsource(getattr(function, "py_func", function)).rstrip().splitlines()
        while source[-1].strip().startswith("#"):
            source.pop()  # :pyobject: ends at the last line of code
        assert "\n".join(source) in [b.rstrip() for b in blocks], function.__name__
    # Each equation's line of the einsum reference, in order.
    reference_lines = [b for b in blocks if re.fullmatch(r".*# equation \(\d\)\n?", b)]
    assert [re.search(r"\((\d)\)", b).group(1) for b in reference_lines] == [str(k) for k in range(1, 9)]
    text = _text(page)
    assert "typo" in text and "n^{l-1}" in text  # the seed's range of dE/dA^L
    assert "{g}'(0) = 0" in text  # ReLU's derivative at 0, as the post takes it


def test_no_page_loads_anything_from_elsewhere(site):
    # Statically: every script, stylesheet, font, icon and image is one of the site's own.
    for page in site.rglob("*.html"):
        for tag in re.findall(r"<(?:script|link|img|source|iframe)\b[^>]*>", page.read_text()):
            if tag.startswith("<link") and not re.search(r'rel="(stylesheet|preload|icon)', tag):
                continue  # a link to another page, not something the page loads
            for url in re.findall(r'\b(?:src|href)="([^"]*)"', tag):
                assert not re.match(r"(?i)(https?:)?//", url), f"{page.name}: {tag}"
    for css in site.rglob("*.css"):
        assert not re.search(r"(?i)url\(\s*['\"]?(https?:)?//", css.read_text()), css.name
        assert not re.search(r"(?i)@import\s+(url\()?\s*['\"]?(https?:)?//", css.read_text()), css.name


# --- in a browser, with the network blocked ----------------------------------------------

#: Hosts that Chromium itself calls (its clock, sign-in and update services) whatever the
#: page: they are not requests of the page, so they are left out of what is checked.
BROWSER_OWN_HOSTS = re.compile(r"^([a-z0-9-]+\.)*(google\.com|gvt1\.com)$")


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        if path := shutil.which(name):
            return path
    pytest.skip("no Chromium on the PATH (Debian: apt-get install chromium)")


@contextlib.contextmanager
def _refusing_proxy():
    """An HTTP proxy on localhost that answers nothing and records each request's host."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    hosts = []

    def serve():
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            with client:
                client.settimeout(2)
                with contextlib.suppress(OSError):
                    line = client.recv(4096).split(b"\r\n", 1)[0].decode("latin-1")
                    # "CONNECT host:443 HTTP/1.1" or "GET http://host/path HTTP/1.1"
                    match = re.match(r"\S+ (?:\w+://)?([^/:\s]+)", line)
                    if match:
                        hosts.append(match.group(1))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1], hosts
    finally:
        server.close()


def _rendered_dom(url, port, tmp_path):
    """The page's DOM after its scripts ran, in headless Chromium whose every request goes to the proxy."""
    result = subprocess.run(
        [
            _chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--proxy-server=http://127.0.0.1:{port}",
            "--proxy-bypass-list=<-loopback>",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            "--virtual-time-budget=15000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_the_proxy_sees_a_page_that_loads_from_elsewhere(tmp_path):
    # The check below could not fail if the blocked browser's requests went unseen.
    page = tmp_path / "page.html"
    page.write_text('<html><body><script src="https://cdn.example.org/x.js"></script>hi</body></html>')
    with _refusing_proxy() as (port, hosts):
        _rendered_dom(page.as_uri(), port, tmp_path)
    assert "cdn.example.org" in hosts


@pytest.mark.parametrize("name", ["derivation", "getting-started", "api"])
def test_math_renders_offline_and_no_request_leaves_the_page(site, tmp_path, name):
    page = site / f"{name}.html"
    with _refusing_proxy() as (port, hosts):
        dom = _rendered_dom(page.as_uri(), port, tmp_path)
    assert [h for h in hosts if not BROWSER_OWN_HOSTS.match(h)] == []
    # MathJax typesets every math element of the page into an <mjx-container>.
    math = len(re.findall(r'class="math[ "]', page.read_text()))
    assert dom.count("<mjx-container") >= math > 0
    assert "<mjx-merror" not in dom  # how a TeX error shows


def test_the_screenshots_in_the_readme_exist():
    readme = (ROOT / "README.md").read_text()
    shots = re.findall(r"\((docs/_static/screenshots/[\w.-]+\.png)\)", readme)
    assert len(shots) >= 3 and all((ROOT / s).is_file() for s in shots)
