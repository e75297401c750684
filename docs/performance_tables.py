"""Markdown tables of the benchmark runs in ``docs/data``, for the documentation's Performance page.

``benchmarks/peers.py --output FILE`` saves a run as JSON: where and when it ran (date, CPU,
cores, loopbp's vector path, samples per system) and, for each point (a network and a dtype),
every system's median time per call, its first call and its largest relative difference from
the einsum reference. `write` turns each run into one Markdown (MyST) file that the page
includes, so that no measured figure is ever typed by hand:

- ``peers-cpu.json`` (the reference cases, every system) becomes ``peers-cpu.md``: one row per
  (case, dtype) with each system's time and the ratios of the loops and of ``Network`` to the
  fastest peer, then the first calls and the agreement with einsum;
- ``sweep-cpu.json`` (``peers.py --sweep``) becomes ``sweep-cpu.md``: one row per point with the
  ratio of the loops to the fastest peer, then a summary (worst ratio, geometric mean, how many
  points at 1.0x or better, per dtype and overall).

A ratio is the fastest peer's time over the loops' time: above 1.0x the loops are faster.
Each expected output is always written, with a sentence saying that no run is recorded when
its JSON is missing, so that the page builds either way; any other ``*.json`` in the data
folder gets its table too. A file is rewritten only when its text changes, so that Sphinx
does not rebuild the page for nothing.

Sphinx calls `write` at every build (``docs/conf.py``); to regenerate by hand::

    python docs/performance_tables.py                  # docs/data -> docs/_generated
    python docs/performance_tables.py DATA_DIR OUT_DIR
"""

import argparse
import json
import math
import pathlib
import statistics

DOCS = pathlib.Path(__file__).resolve().parent

#: The runs the Performance page includes, by file stem: always written, even without data.
EXPECTED = ("peers-cpu", "sweep-cpu")

#: Vector width of each of loopbp's vector paths (``loopbp.cpu.simd.PATHS`` and ``BITS``).
VECTOR_WIDTH = {
    "avx512": "512-bit vectors",
    "avx2": "256-bit vectors",
    "portable": "no explicit vectors: the portable dot-product tiles",
}

#: How many points the sweep's summary names at each end of the ratios.
EXTREMES = 5


def write(data_dir, out_dir):
    """Write one Markdown table file per benchmark run of `data_dir` into `out_dir`.

    Parameters
    ----------
    data_dir : path-like
        The folder of the runs, ``<stem>.json`` as ``benchmarks/peers.py --output`` writes them.
    out_dir : path-like
        The folder of the tables, ``<stem>.md``; created if missing.

    Returns
    -------
    list of pathlib.Path
        The files written or already up to date: one per stem of `EXPECTED`, and one per
        other run found in `data_dir`.
    """
    data_dir, out_dir = pathlib.Path(data_dir), pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    found = sorted(p.stem for p in data_dir.glob("*.json")) if data_dir.is_dir() else []
    written = []
    for stem in dict.fromkeys([*EXPECTED, *found]):
        source = data_dir / f"{stem}.json"
        if source.is_file():
            with open(source) as f:
                try:
                    run = json.load(f)
                except json.JSONDecodeError as e:
                    raise ValueError(f"{source} is not a benchmark run: {e}") from e
            text = render(run)
        else:
            text = f"No run recorded: `docs/data/{stem}.json` is missing.\n"
        written.append(_write_if_changed(out_dir / f"{stem}.md", text))
    return written


def render(run):
    """The Markdown of one run: the sweep's table for a ``--sweep`` run, else the reference table."""
    return _sweep(run) if run.get("sweep") else _reference(run)


# --- the two kinds of run --------------------------------------------------------------


def _reference(run):
    """One row per (case, dtype), every system, the loops and Network against the fastest peer."""
    leads = [s for s in ("loops", "network") if s in run["systems"]]
    table, ratios = _points_table(run, "case", leads)
    parts = [_caption(run), table]
    if ratios:
        ahead = [f"{case} {dtype} ({_x(r)})" for r, case, dtype in ratios if r >= 1]
        behind = [f"{case} {dtype} ({_x(r)})" for r, case, dtype in ratios if r < 1]
        parts.append(
            f"The loops against the fastest peer, at 1.0x or better: {_join(ahead) or 'none'}; "
            f"below 1.0x: {_join(behind) or 'none'}."
        )
    parts.append(
        "First call in each system's process (compilation, tracing or a load from the cache), "
        "left out of the medians above:"
    )
    systems = run["systems"]
    first = [
        [point["case"], point["dtype"], *(_first(point["results"], s) for s in systems)]
        for point in run["points"]
    ]
    parts.append(_table(["case", "dtype", *systems], first, left=(0, 1)))
    parts.append(_agreement(run))
    return "\n\n".join(parts) + "\n"


def _sweep(run):
    """One row per point, the loops against the fastest peer, then the summary of the ratios."""
    table, ratios = _points_table(run, "point", ["loops"])
    parts = [_caption(run), table]
    if ratios:
        summary = [_summary(ratios, "All dtypes")]
        dtypes = list(dict.fromkeys(d for _, _, d in ratios))
        if len(dtypes) > 1:
            summary += [_summary([r for r in ratios if r[2] == d], d) for d in dtypes]
        parts.append("\n".join(f"- {line}" for line in summary))
        ordered = sorted(ratios)
        n = min(EXTREMES, len(ordered) // 2)
        if n:
            low = [f"{case} {dtype} ({_x(r)})" for r, case, dtype in ordered[:n]]
            high = [f"{case} {dtype} ({_x(r)})" for r, case, dtype in reversed(ordered[-n:])]
            parts.append(f"The {n} lowest ratios: {_join(low)}. The {n} highest: {_join(high)}.")
    parts.append(_agreement(run))
    return "\n\n".join(parts) + "\n"


def _points_table(run, label, leads):
    """The table of every point (each system's time, the fastest peer, each of `leads` against
    it) and the loops' ratios, as (ratio, case, dtype)."""
    systems, peers = run["systems"], run["peers"]
    head = [label, "sizes", "m", "dtype", *(f"{s} (ms)" for s in systems), "fastest peer"]
    head += [f"{s} vs fastest peer" for s in leads]
    rows, ratios = [], []
    for point in run["points"]:
        results = point["results"]
        fastest = _fastest_peer(results, peers)
        row = [point["case"], _sizes(point), _m(point), point["dtype"], *_times(results, systems)]
        row.append(fastest or "n/a")
        for s in leads:
            ratio = _ratio(results, s, fastest)
            row.append(_x(ratio))
            if s == "loops" and ratio is not None:
                ratios.append((ratio, point["case"], point["dtype"]))
        rows.append(row)
    return _table(head, rows, left=(0, 1, 3, 4 + len(systems))), ratios


def _summary(ratios, label):
    worst = min(ratios)
    mean = statistics.geometric_mean(r for r, _, _ in ratios)
    ahead = sum(r >= 1 for r, _, _ in ratios)
    return (
        f"{label}: {len(ratios)} points, geometric mean {_x(mean)}, worst {_x(worst[0])} "
        f"({worst[1]}, {worst[2]}), {ahead} at 1.0x or better"
    )


# --- pieces ----------------------------------------------------------------------------


def _caption(run):
    """The line that says where and how the run was measured."""
    path = run.get("vector_path", "")
    name = path.removeprefix("loopbp path ").strip()
    if name in VECTOR_WIDTH:
        vectors = f"loopbp's `{name}` path ({VECTOR_WIDTH[name]})"
    else:
        vectors = path or "loopbp's vector path not recorded"
    device = "" if run.get("device", "cpu") == "cpu" else f", device {run['device']}"
    rounds = f", median of {run['rounds']} rounds" if run.get("rounds", 1) > 1 else ""
    whose = "the loops (or of `network`)" if "network" in run["systems"] else "the loops"
    return (
        f"**Measured {run['date']} on {run['cpu']}, {run['cores']} cores, {vectors}{device}**: "
        f"repeat {run['repeat']} (the median of {run['repeat']} samples per system{rounds}), "
        "each system in its own process, median per call. "
        f"A ratio is the fastest peer's time over that of {whose}: above 1.0x, loopbp is faster; "
        f"the peers are {_join(run['peers'])}."
    )


def _agreement(run):
    """The largest relative difference from the einsum reference, per dtype, over every system."""
    worst = {}
    for point in run["points"]:
        for t in point["results"].values():
            if t.get("diff") is not None:
                worst[point["dtype"]] = max(worst.get(point["dtype"], 0.0), t["diff"])
    if not worst:
        return "No system's gradient was compared with the einsum reference in this run."
    each = _join(f"{diff:.0e} in {dtype}" for dtype, diff in worst.items())
    return (
        "Every system computed the same gradient as the einsum reference: the largest relative "
        f"difference, over all systems and points, is {each}."
    )


def _fastest_peer(results, peers):
    times = {s: results[s]["median"] for s in peers if s in results}
    return min(times, key=times.get) if times else None


def _ratio(results, system, fastest):
    if fastest is None or system not in results:
        return None
    return results[fastest]["median"] / results[system]["median"]


def _times(results, systems):
    """Each system's median in ms, the fastest of the row in bold."""
    present = {s: results[s]["median"] for s in systems if s in results}
    best = min(present.values()) if present else None
    cells = []
    for s in systems:
        if s not in present:
            cells.append("n/a")
        else:
            cell = _ms(present[s] * 1e3)
            cells.append(f"**{cell}**" if present[s] == best else cell)
    return cells


def _first(results, system):
    if system not in results or results[system].get("first") is None:
        return "n/a"
    seconds = results[system]["first"]
    return f"{_digits(seconds)} s" if seconds >= 1 else f"{_ms(seconds * 1e3)} ms"


def _ms(value):
    """A positive number with three significant digits, and no exponent or lost integer digits."""
    return f"{value:,.0f}" if value >= 100 else _digits(value)


def _digits(value, significant=3):
    if value <= 0 or not math.isfinite(value):
        return f"{value:g}"
    decimals = max(0, significant - 1 - math.floor(math.log10(value)))
    text = f"{value:.{decimals}f}"
    if len(text.replace(".", "").lstrip("0")) > significant:
        # Rounding carried into a new digit (0.09996 -> 0.1000): one decimal fewer.
        text = f"{float(text):.{max(0, decimals - 1)}f}"
    return text


def _x(ratio):
    return "n/a" if ratio is None else f"{ratio:.2f}x"


def _sizes(point):
    return "-".join(map(str, point["sizes"])) if point.get("sizes") else "n/a"


def _m(point):
    return f"{point['m']:,}" if point.get("m") is not None else "n/a"


def _join(items):
    items = list(items)
    return ", ".join(items[:-1]) + " and " + items[-1] if len(items) > 1 else "".join(items)


def _table(head, rows, left=()):
    """A Markdown pipe table: the columns of `left` (names) left-aligned, the others (numbers) right."""
    rule = ["---" if i in left else "---:" for i in range(len(head))]
    lines = [head, rule, *rows]
    return "\n".join("| " + " | ".join(str(cell) for cell in line) + " |" for line in lines)


def _write_if_changed(path, text):
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", nargs="?", default=DOCS / "data", help="the runs (default: docs/data)")
    parser.add_argument("out_dir", nargs="?", default=DOCS / "_generated", help="default: docs/_generated")
    args = parser.parse_args(argv)
    for path in write(args.data_dir, args.out_dir):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
