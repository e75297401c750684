"""The ``loopbp`` command line (also ``python -m loopbp``).

``loopbp compare`` builds one seeded network and data set, runs every backend on it,
each in a process of its own (``loopbp.compare``), and prints, per backend, the
first-call time (for the loops, Numba's compile or cache load), the median time per
gradient, GFLOP/s, the speed-up against einsum and the largest relative difference from
the einsum gradient. It exits with status 1 if the loops and einsum disagree beyond the
dtype's tolerance (``loopbp.agreement``). ``--sweep m`` or ``--sweep width`` times a
range of sizes, ``--sweep width,m`` a grid of both (a map of the loops' speed-up against
the fastest other backend), ``--plot FILE.png`` draws that sweep or map, ``--json``
prints JSON. What is printed comes from a ``loopbp.comparison.Comparison``; this module
parses the flags, prints, plots and dumps it.

``loopbp train sine`` and ``loopbp train digits`` run the series' examples
(``loopbp.examples``). ``loopbp plan SIZES --m M`` prints which kernel and how many
threads each contraction of a gradient uses, and why (``loopbp.cpu.plan``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from . import __version__, distributed, numba_cache
from .activations import ACTIVATIONS, activation_code
from .compare import COMPARED_BACKENDS, OPTIONAL, default_backends, installed, missing_peers
from .comparison import MAP, Comparison, gradient_gflop, sweep_points
from .cpu import simd
from .errors import NoGPU
from .problems import default_activations
from .validation import BACKENDS, check_activations, check_choice, check_positive, check_seed, check_sizes

DEFAULT_SIZES = (64, 128, 128, 10)
DEFAULT_M = 1000


# The argparse types: each parses the text, then leaves the check to loopbp.validation (one
# function per concept, as for the API), and turns its TypeError or ValueError into a usage
# error worded for the command line: the text as typed, not the parsed value.


def _checked(check: Callable[[str], Any], text: str, expected: str) -> Any:
    """`check(text)`, or a usage error saying "expected `expected`, got `text`"."""
    try:
        return check(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None


_INTEGERS = "comma-separated integers such as 784,256,10"


def _sizes(text: str) -> tuple[int, ...]:
    widths = _checked(lambda t: [int(s) for s in t.split(",")], text, _INTEGERS)
    return _checked(lambda t: check_sizes(widths), text, "at least two widths, each >= 1")


def _positive_list(text: str) -> tuple[int, ...]:
    return _checked(
        lambda t: tuple(check_positive(int(s), "value", integer=True) for s in t.split(",")),
        text,
        "comma-separated positive integers such as 16,64,256",
    )


def _positive(text: str) -> int:
    return _checked(lambda t: check_positive(int(t), "value", integer=True), text, "a positive integer")


def _seed(text: str) -> int:
    return _checked(lambda t: check_seed(int(t)), text, "a non-negative integer")


def _learning_rate(text: str) -> float:
    return _checked(
        lambda t: check_positive(float(t), "learning rate", integer=False), text, "a positive number"
    )


def _activations(text: str) -> tuple[str, ...]:
    names = tuple(text.split(","))
    for name in names:
        try:
            activation_code(name)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"unknown activation {name!r}; known: {', '.join(ACTIVATIONS)}"
            ) from None
    return names


def _backends(text: str) -> tuple[str, ...]:
    names = tuple(text.split(","))
    for name in names:
        try:
            check_choice(name, "backend", COMPARED_BACKENDS)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"unknown backend {name!r}; known: {', '.join(COMPARED_BACKENDS)}"
            ) from None
        if not installed(name):
            raise argparse.ArgumentTypeError(
                f"backend {name!r} needs {OPTIONAL[name]}, which is not installed"
            )
    # einsum is the reference every row is compared with: it always runs, first.
    return names if "einsum" in names else ("einsum", *names)


def _choices(text: str, known: tuple[str, ...], what: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(text.split(",")))  # in order, once each
    for name in names:
        if name not in known:
            raise argparse.ArgumentTypeError(f"unknown {what} {name!r}; known: {', '.join(known)}")
    return names


def _dtypes(text: str) -> tuple[str, ...]:
    return _choices(text, ("float64", "float32"), "dtype")


def _kernel_sets(text: str) -> tuple[str, ...]:
    return _choices(text, ("narrow", "wide"), "kernel set")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="loopbp",
        description="loopbp's command line (also python -m loopbp): compare the loop kernels with the "
        "other backends, train the series' examples, print a gradient's plan, and manage the cache "
        "of compiled kernels.",
    )
    parser.add_argument("--version", action="version", version=f"loopbp {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    compare = commands.add_parser(
        "compare", help="time the backends on one network and check that they agree"
    )
    compare.add_argument(
        "--sizes",
        type=_sizes,
        default=DEFAULT_SIZES,
        help="layer widths n^0,...,n^L (default: 64,128,128,10)",
    )
    compare.add_argument(
        "--m", type=_positive, default=DEFAULT_M, help=f"number of samples (default: {DEFAULT_M})"
    )
    compare.add_argument(
        "--activations",
        type=_activations,
        default=None,
        help="one name per layer, comma-separated (default: sigmoid hidden layers, identity output)",
    )
    compare.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    compare.add_argument(
        "--threads",
        type=_positive,
        default=None,
        help="threads for Numba, BLAS and PyTorch in each backend's process (default: theirs)",
    )
    compare.add_argument(
        "--repeat", type=_positive, default=20, help="timed samples per backend (default: 20)"
    )
    compare.add_argument(
        "--backends",
        type=_backends,
        default=None,
        help=f"comma-separated, from {','.join(COMPARED_BACKENDS)}; einsum, the reference, always runs "
        f"(default: every one installed but cuda; with cuda, torch and jax run on the GPU)",
    )
    compare.add_argument("--seed", type=_seed, default=0, help="seeds the network and the data (default: 0)")
    compare.add_argument(
        "--sweep",
        # m,width is accepted too: the map is the same, its rows the widths.
        choices=("m", "width", MAP, "m,width"),
        metavar="m|width|width,m",
        default=None,
        help="time m = 10, 32, 100, ... up to --m, or every hidden width 4, 8, 16, ... up to the "
        "widest in --sizes, or (width,m) every pair of the two: a map of the loops' speed-up "
        "against the fastest other backend",
    )
    compare.add_argument(
        "--widths",
        type=_positive_list,
        default=None,
        help="the hidden widths of --sweep width or width,m instead of 4, 8, 16, ... (e.g. 16,64,256)",
    )
    compare.add_argument(
        "--ms",
        type=_positive_list,
        default=None,
        help="the m of --sweep m or width,m instead of 10, 32, 100, ... (e.g. 32,1000)",
    )
    compare.add_argument(
        "--plot", metavar="FILE.png", default=None, help="draw the sweep or the map (needs matplotlib)"
    )
    compare.add_argument(
        "--json",
        action="store_true",
        help="print the results as JSON (times in seconds, in the keys ending in _s)",
    )

    train = commands.add_parser("train", help="run one of the series' training examples")
    examples = train.add_subparsers(dest="example", required=True)
    sine = examples.add_parser("sine", help="fit sin(x) with the series' 1-20-1 network")
    sine.add_argument("--epochs", type=_positive, default=20_000, help="default: 20000, the series'")
    sine.add_argument("--learning-rate", type=_learning_rate, default=0.1, help="default: 0.1, the series'")
    sine.add_argument("--plot", metavar="FILE.png", default=None, help="draw the fit (needs matplotlib)")
    digits = examples.add_parser("digits", help="the series' MNIST recipe on scikit-learn's 8x8 digits")
    digits.add_argument("--epochs", type=_positive, default=10_000, help="default: 10000")
    digits.add_argument("--learning-rate", type=_learning_rate, default=0.1, help="default: 0.1")
    digits.add_argument("--hidden", type=_positive, default=64, help="hidden units (default: 64)")
    for example in (sine, digits):
        example.add_argument("--backend", choices=BACKENDS, default="loops")
        example.add_argument("--seed", type=_seed, default=0, help="default: 0")
        example.add_argument("--no-progress", action="store_true", help="no progress bar")
        example.add_argument(
            "--scheduler",
            metavar="local|ADDRESS",
            default=None,
            help="train on Dask workers, one chunk of samples each: 'local' starts a local cluster, "
            "an address (tcp://host:8786) joins a running one (needs loopbp[distributed])",
        )

    plan = commands.add_parser(
        "plan", help="which kernel and how many threads each contraction of a gradient uses, and why"
    )
    plan.add_argument(
        "sizes", type=_sizes, metavar="SIZES", help="the layer widths n^0,...,n^L, as 784,128,10"
    )
    plan.add_argument(
        "--m", type=_positive, default=32, help="samples per gradient: the batch size (default 32)"
    )
    plan.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    cache = commands.add_parser(
        "cache", help="where Numba keeps loopbp's compiled kernels; --clear deletes them"
    )
    cache.add_argument("--clear", action="store_true", help="delete this copy of loopbp's cached kernels")
    cache.add_argument(
        "--all", action="store_true", help="with --clear: those of every copy of loopbp (every environment)"
    )
    warm = commands.add_parser(
        "warm",
        help="compile the loop kernels now (they are cached), e.g. in a Docker image or a CI cache step",
    )
    warm.add_argument(
        "--dtype",
        type=_dtypes,
        default=("float64", "float32"),
        help="float64, float32, or both (the default), comma-separated",
    )
    warm.add_argument(
        "--kernels",
        type=_kernel_sets,
        default=("narrow", "wide"),
        help="narrow (networks whose layers are all at most 40 wide), wide (every other network), "
        "or both (the default), comma-separated",
    )
    # Each (sub)command's parser records itself, the innermost last, so that main can
    # report an unknown flag with the usage of the command it was given to.
    for sub in (compare, train, sine, digits, plan, cache, warm):
        sub.set_defaults(subparser=sub)
    return parser


def _error(message: str) -> int:
    print(f"loopbp: error: {message}", file=sys.stderr)
    return 2


def _plot(path: str, result: Comparison) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    labels = result.labels
    for backend in result.backends:
        medians = [result.median(backend, k) * 1e3 for k in range(len(labels))]
        ax.plot(labels, medians, marker="o", label=backend)
    ax.set_xscale("log")
    ax.set_yscale("log")
    crossovers = result.crossovers
    for x in crossovers:
        ax.axvline(x, color="gray", linestyle="--", linewidth=1)
        ax.annotate(
            f"crossover\n{result.sweep} = {x:.3g}",
            (x, 0.02),
            xycoords=("data", "axes fraction"),
            xytext=(3, 0),
            textcoords="offset points",
            fontsize=8,
            color="dimgray",
        )
    what = "m (samples)" if result.sweep == "m" else "hidden width"
    ax.set_xlabel(what)
    ax.set_ylabel("median ms per gradient")
    fixed = f"sizes {','.join(map(str, result.sizes))}" if result.sweep == "m" else f"m = {result.m}"
    title = f"loopbp compare --sweep {result.sweep}: {fixed}, {result.dtype}"
    if not crossovers:
        title += "\n(loops and the fastest other backend do not cross in this range)"
    if crossovers:
        title += "\n(dashed: where loops and the fastest other backend swap places)"
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, else what `platform` knows, else "unknown CPU"."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and ":" in line:
                    return line.split(":", 1)[1].strip()
    except OSError:  # not Linux
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def map_title(result: Comparison) -> str:
    """The map's title: what was timed, when, and on which CPU and vector path."""
    others = ", ".join(b for b in result.backends if b != "loops")
    return (
        f"loopbp compare --sweep {MAP}: sizes {_pattern(result.sizes)}, {result.dtype}, "
        f"{datetime.date.today().isoformat()}\n"
        f"{cpu_model()}, loops' vector path {simd.PATH}\n"
        f"cells: fastest of {others} / loops (> 1: loops faster); black line: 1"
    )


def _plot_map(path: str, result: Comparison) -> None:
    """Draw a map's `Comparison.ratio_map` as a heat map, its cells annotated, to `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import TwoSlopeNorm

    widths, ms = result.widths, result.ms
    ratio = np.array(result.ratio_map())
    fastest = result.fastest_map()
    # Colours on log2(ratio), symmetric about 0: twice as fast and twice as slow are equally
    # strong, and a map within 25% of 1 everywhere is not painted as a landslide.
    log = np.log2(ratio)
    limit = max(float(np.abs(log).max()), np.log2(1.25))
    fig, ax = plt.subplots(figsize=(1.15 * len(ms) + 2.8, 0.55 * len(widths) + 2.3))
    image = ax.imshow(log, cmap="RdBu", norm=TwoSlopeNorm(0.0, -limit, limit), origin="lower", aspect="auto")
    for i in range(len(widths)):
        for j in range(len(ms)):
            dark = abs(log[i, j]) > 0.6 * limit
            ax.text(
                j,
                i,
                f"{ratio[i, j]:.2f}\n{fastest[i][j]}",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if dark else "black",
            )
    # The crossover: where the ratio passes 1 between cell centres (needs two rows and
    # two columns; a single row or column shows it by the colours' change alone).
    if len(widths) > 1 and len(ms) > 1 and log.min() < 0 < log.max():
        ax.contour(
            np.arange(len(ms)), np.arange(len(widths)), log, levels=[0.0], colors="black", linewidths=1.5
        )
    ax.set_xticks(range(len(ms)), [str(v) for v in ms])
    ax.set_yticks(range(len(widths)), [str(w) for w in widths])
    ax.set_xlabel("m (samples)")
    ax.set_ylabel("hidden width")
    ax.set_title(map_title(result), fontsize=8)
    # Powers of 2 where the map spans more than 2x either way; finer steps near 1 otherwise.
    steps = [2.0**k for k in range(-6, 7)] if limit > 1 else [2 / 3, 0.8, 1, 1.25, 1.5]
    ticks = [t for t in steps if abs(np.log2(t)) <= limit]
    bar = fig.colorbar(image, ax=ax)
    bar.set_ticks([np.log2(t) for t in ticks], labels=[f"{t:.3g}" for t in ticks])
    bar.set_label("loops' speed-up against the fastest other backend", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _say(message: str, command: str = "compare") -> None:
    # Notes on progress go to standard error, so that standard output is the table alone
    # (or valid JSON), and appear at once even when standard error is a pipe.
    print(f"loopbp {command}: {message}", file=sys.stderr, flush=True)


def _note_compile(dtype: str, command: str, *networks, background: bool = False) -> None:
    """Say, before the loop kernels compile for `dtype`, that they will and for how long.

    `networks` are the sizes of the networks the command runs; each kernel set they need
    that the cache does not hold gets its note. `background`: the command runs the plain
    loops while a background process compiles the fast kernels (``loopbp.cpu.warming``).
    """
    from .cpu import warming

    for kernels in dict.fromkeys(warming.kernel_set(sizes) for sizes in networks):
        if not warming.is_warm(dtype, narrow=kernels == "narrow"):
            seconds = warming.COMPILE_SECONDS[kernels]
            if background:
                what = (
                    f"compiling the fast loop kernels for {dtype} ({kernels} set) in a background process "
                    f"(once after installing or changing loopbp: about {seconds} s on 2 cores); until they "
                    f"are ready, the plain loops run in one thread"
                )
            else:
                what = (
                    f"compiling the loop kernels for {dtype} ({kernels} set; once after installing or "
                    f"changing loopbp: about {seconds} s on 2 cores)"
                )
            _say(
                f"{what}; later runs load them from the cache (`loopbp cache` says where; `loopbp warm` "
                f"compiles ahead of time)",
                command,
            )


def compare(args: argparse.Namespace) -> int:
    """Run ``loopbp compare`` for parsed `args`; return the exit status."""
    L = len(args.sizes) - 1
    # Checks that involve two flags, which their argparse types cannot see together.
    try:
        activations = (
            default_activations(L)
            if args.activations is None
            else check_activations(args.activations, L, f"for --sizes {','.join(map(str, args.sizes))}")
        )
    except ValueError:
        return _error(
            f"--activations needs {L} names for --sizes {','.join(map(str, args.sizes))}, "
            f"got {len(args.activations)}"
        )
    sweep = MAP if args.sweep == "m,width" else args.sweep
    sizes_text = ",".join(map(str, args.sizes))
    if sweep in ("width", MAP) and L < 2:
        return _error(f"--sweep {args.sweep} varies the hidden layers; --sizes {sizes_text} has none")
    given = "no --sweep" if sweep is None else f"--sweep {args.sweep}"
    if args.widths is not None and sweep not in ("width", MAP):
        return _error(f"--widths sets the hidden widths of --sweep width or --sweep {MAP}; got {given}")
    if args.ms is not None and sweep not in ("m", MAP):
        return _error(f"--ms sets the m of --sweep m or --sweep {MAP}; got {given}")
    backends = args.backends or default_backends()
    if sweep == MAP and "loops" not in backends:
        return _error(
            f"--sweep {args.sweep} maps the loops against the other backends; "
            f"--backends {','.join(backends)} has no loops"
        )
    if args.plot is not None:
        if sweep is None:
            return _error(f"--plot draws a sweep; add --sweep m, --sweep width or --sweep {MAP}")
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            return _error('--plot needs matplotlib: pip install "loopbp[examples]"')
    points = sweep_points(args.sizes, args.m, sweep, widths=args.widths, ms=args.ms)
    table = not args.json and sweep is None
    if not args.json:
        print(_header(args, activations, sweep, points), flush=True)
    if args.backends is None:
        _note_missing_peers()
    if "loops" in backends:
        _note_compile(args.dtype, "compare", *(point.sizes for point in points))
    if table:
        _print_table_head()
    printed = []

    def backend_done(backend: str, done: Comparison, seconds: float) -> None:
        if table and "einsum" in done.backends:
            # Each row as soon as it is done (its speed-up and difference need einsum's).
            for name in done.backends:
                if name not in printed:
                    _print_table_row(name, done)
                    printed.append(name)
        elif sweep is not None:
            _say(f"{backend} done: {len(done.points)} sizes in {seconds:.1f} s")

    try:
        result = Comparison.run(
            args.sizes,
            args.m,
            activations,
            args.dtype,
            backends=backends,
            sweep=sweep,
            widths=args.widths,
            ms=args.ms,
            seed=args.seed,
            repeat=args.repeat,
            threads=args.threads,
            callback=backend_done,
        )
    except RuntimeError as err:
        print(f"loopbp compare: {err}", file=sys.stderr)
        return 1
    if args.plot is not None:
        (_plot_map if sweep == MAP else _plot)(args.plot, result)
    if args.json:
        print(json.dumps(result.to_dict(plot=args.plot), indent=1))
    elif sweep == MAP:
        _print_map(result)
    elif sweep is not None:
        _print_sweep(result)
    if args.plot is not None:
        # Named on stdout, except under --json, where the path is the "plot" key.
        print(f"plot written to {args.plot}", file=sys.stderr if args.json else sys.stdout)
    if not result.agree:
        print(
            f"loopbp compare: FAIL: loopbp's kernels and einsum differ by {result.worst_difference:.2e}, "
            f"more than the "
            f"{result.dtype} tolerance {result.tolerance:.0e}",
            file=sys.stderr,
        )
        return 1
    return 0


def _note_missing_peers() -> None:
    """Name the peers that the default backends leave out because they are not installed,
    so that a table without them is not read as one with every peer."""
    skipped = missing_peers()
    if skipped:
        names = " and ".join(skipped)
        verb, them = ("is", "it") if len(skipped) == 1 else ("are", "them")
        packages = " ".join(OPTIONAL[b] for b in skipped)
        _say(f"{names} {verb} not installed, so not compared (pip install {packages} to compare {them})")


def _pattern(sizes: Sequence[int]) -> str:
    """`sizes` with every hidden width written W: what a width sweep or a map keeps."""
    return ",".join([str(sizes[0])] + ["W"] * (len(sizes) - 2) + [str(sizes[-1])])


def _header(
    args: argparse.Namespace, activations: Sequence[str], sweep: str | None, points: Sequence[Any]
) -> str:
    threads = "default threads" if args.threads is None else f"{args.threads} threads"
    # A sweep's values are listed where they are not those that --sizes and --m imply: a
    # map's always, since its rows and columns are both swept.
    sizes = ",".join(map(str, args.sizes))
    if sweep == MAP or args.widths is not None:
        widths = sorted({p.sizes[1] for p in points})
        sizes = f"{_pattern(args.sizes)} for W = {','.join(map(str, widths))}"
    m = str(args.m)
    if sweep == MAP or args.ms is not None:
        m = ",".join(map(str, sorted({p.m for p in points})))
    header = (
        f"loopbp compare: sizes {sizes}, m = {m}, {args.dtype}, "
        f"activations {','.join(activations)}, {threads}, median of {args.repeat} samples, "
        f"each backend in its own process"
    )
    if sweep is None:
        header += f", {gradient_gflop(args.sizes, args.m):.4g} GFLOP per gradient"
    return header


def _print_table_head() -> None:
    print(
        f"{'backend':<8} {'first call':>12} {'median':>12} {'GFLOP/s':>9} {'vs einsum':>10} "
        f"{'max rel diff':>13}",
        flush=True,
    )


def _print_table_row(backend: str, result: Comparison) -> None:
    r = result.measured[0][backend]
    print(
        f"{backend:<8} {r['first_s'] * 1e3:>10.3f}ms {r['median_s'] * 1e3:>10.3f}ms "
        f"{result.gflop_per_s(backend):>9.2f} {result.speedup(backend):>9.2f}x {r['difference']:>13.2e}",
        flush=True,
    )


def _print_sweep(result: Comparison) -> None:
    backends = result.backends
    print("median ms per gradient; the last column is loops' speed-up against einsum")
    name = "m" if result.sweep == "m" else "width"
    columns = f"{name:>7} " + " ".join(f"{b:>10}" for b in backends)
    print(columns + (f" {'loops/einsum':>13}" if "loops" in backends else ""))
    for k, label in enumerate(result.labels):
        line = f"{label:>7} " + " ".join(f"{result.median(b, k) * 1e3:>10.4g}" for b in backends)
        if "loops" in backends:
            line += f" {result.speedup('loops', k):>12.2f}x"
        print(line)
    if "loops" in backends:
        crossovers = result.crossovers
        where = ", ".join(f"{x:.3g}" for x in crossovers) if crossovers else "none in this range"
        print(f"loops and the fastest other backend cross at {name} = {where}")


def _print_map(result: Comparison) -> None:
    widths, ms = result.widths, result.ms
    ratio, fastest = result.ratio_map(), result.fastest_map()
    print(
        "the loops' speed-up against the fastest other backend (its time over the loops'; above 1 the "
        "loops are the fastest), and which backend that is; rows: hidden width, columns: m"
    )
    corner = "width \\ m"
    # Each m above its cells' ratios.
    print((f"{corner:>10} " + " ".join(f"{v:>6}{'':7}" for v in ms)).rstrip())
    for i, w in enumerate(widths):
        cells = " ".join(f"{ratio[i][j]:>6.2f} {fastest[i][j]:<6}" for j in range(len(ms)))
        print(f"{w:>10} {cells}".rstrip())
    faster = sum(r > 1 for row in ratio for r in row)
    print(f"the loops are the fastest at {faster} of {len(widths) * len(ms)} points")
    crossovers = result.crossovers
    # Three significant digits, without the exponent that .3g gives 1000.
    where = ", ".join(f"({float(f'{w:.3g}'):g}, {float(f'{v:.3g}'):g})" for w, v in crossovers)
    where = where or "none on this grid"
    print(f"loops and the fastest other backend cross at (width, m) = {where}")


def train(args: argparse.Namespace) -> int:
    """Run ``loopbp train sine|digits`` for parsed `args`; return the exit status."""
    from . import examples

    progress = not args.no_progress
    # The header first: training takes seconds to minutes.
    where = "" if args.scheduler is None else f", on the Dask scheduler {args.scheduler}"
    if args.scheduler is not None:
        try:
            distributed.require_dask()
        except ImportError as err:
            return _error(str(err))
        if args.backend != "loops":
            return _error("--scheduler runs the loop kernels on the workers: it needs --backend loops")
    if args.example == "sine":
        print(
            f"loopbp train sine: 1-20-1 sigmoid/identity, learning rate {args.learning_rate}, "
            f"{args.epochs} epochs, seed {args.seed}, {args.backend} backend{where}",
            flush=True,
        )
        run, extra, sizes = examples.train_sine, {}, examples.SINE_SIZES
    else:
        print(
            f"loopbp train digits: 64-{args.hidden}-10 sigmoid/identity, one-hot targets, learning rate "
            f"{args.learning_rate}, {args.epochs} full-batch epochs, seed {args.seed}, "
            f"{args.backend} backend{where}",
            flush=True,
        )
        run, extra, sizes = examples.train_digits, {"hidden": args.hidden}, (64, args.hidden, 10)
    if args.backend == "loops":
        from .cpu import warming

        _note_compile("float64", "train", sizes, background=warming.compiles_in_background())
    try:
        result = run(
            epochs=args.epochs,
            learning_rate=args.learning_rate,
            seed=args.seed,
            backend=args.backend,
            progress=progress,
            scheduler=args.scheduler,
            **extra,
        )
    except (ImportError, NoGPU) as err:  # the digits' scikit-learn, or the cuda backend's package or GPU
        return _error(str(err))
    except OSError as err:  # includes TimeoutError: the scheduler cannot be reached
        return _error(f"cannot reach the Dask scheduler {args.scheduler}: {err}")
    if args.example == "sine":
        print(f"final E {result.history[-1]:.6g} (first {result.history[0]:.6g})")
    else:
        accuracy = result.test_accuracy
        print(f"final E {result.history[-1]:.6g}, test accuracy {accuracy:.2%} (450 held-out digits)")
    # Full batch: one step per epoch. The first epoch, run apart, compiled or loaded the kernels.
    print(
        f"wall time {result.seconds:.2f} s, {result.epochs_per_second:.0f} steps per second "
        f"(after {result.first_seconds:.2f} s to compile or load the kernels)"
    )
    if args.example == "sine" and args.plot is not None:
        try:
            _plot_sine(args.plot, result)
        except ImportError:
            return _error('--plot needs matplotlib: pip install "loopbp[examples]"')
        print(f"plot written to {args.plot}")
    return 0


def show_plan(args: argparse.Namespace) -> int:
    """Run ``loopbp plan SIZES --m M``: print the plan of one gradient (``loopbp.cpu.plan``)."""
    from .cpu import plan

    print(plan.describe(args.sizes, args.m, np.dtype(args.dtype)))
    return 0


def cache(args: argparse.Namespace) -> int:
    """Run ``loopbp cache [--clear [--all]]``: where the compiled kernels are, or delete them."""
    folder = numba_cache.cache_dir()
    if args.clear:
        targets = numba_cache.cache_folders() if args.all else [folder]
        removed = []
        for target in targets:
            try:
                if numba_cache.clear(target):
                    removed.append(target)
            except OSError as err:
                return _error(f"could not remove {target}: {err}")
        if removed:
            print("\n".join(f"removed {target}" for target in removed))
        else:
            where = "no folder" if args.all else folder
            print(f"nothing to remove: {where} holds no kernels")
        return 0
    files, size = numba_cache.cache_size(folder)
    if files:
        print(f"{folder}\n{files} files, {size / 2**20:.1f} MiB")
    else:
        print(f"{folder}\n(empty: the kernels compile at their first call)")
    others = [other for other in numba_cache.cache_folders() if other != folder]
    if others:
        print(f"\nother copies of loopbp (other environments or checkouts) keep {len(others)} more:")
        for other in others:
            files, size = numba_cache.cache_size(other)
            print(f"{other}\n{files} files, {size / 2**20:.1f} MiB")
        print("(loopbp cache --clear --all deletes them all)")
    return 0


def warm_kernels(args: argparse.Namespace) -> int:
    """Run ``loopbp warm``: compile (or load) the kernel sets for the dtypes, one line each."""
    from .cpu import warming
    from .precompile import warm

    for dtype in args.dtype:
        for kernels in args.kernels:
            _note_compile(dtype, "warm", warming.KERNEL_SETS[kernels])
            ((_, _, cached, seconds),) = warm((dtype,), (kernels,))
            how = "already in the cache, loaded" if cached else "compiled"
            print(f"{kernels} kernels, {dtype}: {how} in {seconds:.1f} s", flush=True)
    print(f"cache: {numba_cache.cache_dir()}")
    return 0


def _plot_sine(path: str, result: Any) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .examples import sine_data

    X, Y = sine_data()
    fine = np.linspace(X.min(), X.max(), 400)[None, :]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(X[0], Y[0], "o", markersize=3, label="sin(x), the training points")
    ax.plot(fine[0], result.network.forward(fine)[0], label="the 1-20-1 network")
    ax.set_xlabel("x")
    ax.set_title(
        f"loopbp train sine: E = {result.history[-1]:.3g} after {len(result.history)} epochs", fontsize=10
    )
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``loopbp`` console script."""
    parser = _parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        # argparse would report these with the top-level usage; the subcommand's helps
        # more, unless the flag came before the subcommand.
        before = argv.index(args.command) if args.command in argv else len(argv)
        own = all(argv.index(u) > before for u in unknown if u in argv)
        target = getattr(args, "subparser", parser) if own else parser
        target.error(f"unrecognized arguments: {' '.join(unknown)}")
    if args.command == "compare":
        return compare(args)
    if args.command == "cache" and args.all and not args.clear:
        return _error("--all goes with --clear: loopbp cache lists every folder already")
    if args.command == "cache":
        return cache(args)
    if args.command == "plan":
        return show_plan(args)
    if args.command == "warm":
        return warm_kernels(args)
    return train(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
