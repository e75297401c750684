"""The ``loopbp`` command line (also ``python -m loopbp``).

``loopbp compare`` builds one seeded network and data set, runs every backend on it,
each in a process of its own (``loopbp.compare``), and prints, per backend, the
first-call time (for the loops, Numba's compile or cache load), the median time per
gradient, GFLOP/s, the speed-up against einsum and the largest relative difference from
the einsum gradient. It exits with status 1 if the loops and einsum disagree beyond the
dtype's tolerance (``loopbp.agreement``). ``--sweep m`` or ``--sweep width`` times a
range of sizes, ``--plot FILE.png`` draws that sweep, ``--json`` prints JSON.

``loopbp train sine`` and ``loopbp train digits`` run the series' examples
(``loopbp.examples``).
"""

import argparse
import json
import math
import sys
import time

import numpy as np

from . import __version__, numba_cache
from . import compare as comparison
from .activations import ACTIVATIONS
from .agreement import TOLERANCE

DEFAULT_SIZES = (64, 128, 128, 10)
DEFAULT_M = 1000
gradient_gflop = comparison.gradient_gflop


def _sizes(text):
    try:
        sizes = tuple(int(s) for s in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers such as 784,256,10, got {text!r}"
        ) from None
    if len(sizes) < 2 or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"expected at least two widths, each >= 1, got {text!r}")
    return sizes


def _integer_at_least(minimum, what):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    return parse


_positive = _integer_at_least(1, "a positive integer")
_seed = _integer_at_least(0, "a non-negative integer")


def _activations(text):
    names = tuple(text.split(","))
    for name in names:
        if name not in ACTIVATIONS:
            raise argparse.ArgumentTypeError(f"unknown activation {name!r}; known: {', '.join(ACTIVATIONS)}")
    return names


def _backends(text):
    names = tuple(text.split(","))
    for name in names:
        if name not in comparison.BACKENDS:
            raise argparse.ArgumentTypeError(
                f"unknown backend {name!r}; known: {', '.join(comparison.BACKENDS)}"
            )
        if not comparison.installed(name):
            raise argparse.ArgumentTypeError(
                f"backend {name!r} needs {comparison.OPTIONAL[name]}, which is not installed"
            )
    if "einsum" not in names:
        raise argparse.ArgumentTypeError(
            f"--backends must include einsum, the reference every row is compared with, got {text!r}"
        )
    return names


def _parser():
    parser = argparse.ArgumentParser(prog="loopbp", description=__doc__.splitlines()[0])
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
        help=f"comma-separated, from {','.join(comparison.BACKENDS)} (default: every one installed)",
    )
    compare.add_argument("--seed", type=_seed, default=0, help="seeds the network and the data (default: 0)")
    compare.add_argument(
        "--sweep",
        choices=("m", "width"),
        default=None,
        help="time m = 10, 30, 100, ... up to --m, or every hidden width 4, 8, 16, ... up to the "
        "widest in --sizes",
    )
    compare.add_argument("--plot", metavar="FILE.png", default=None, help="draw the sweep (needs matplotlib)")
    compare.add_argument(
        "--json", action="store_true", help="print the results as JSON (times in seconds, keys *_s)"
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
        example.add_argument("--backend", choices=("loops", "einsum"), default="loops")
        example.add_argument("--seed", type=_seed, default=0, help="default: 0")
        example.add_argument("--no-progress", action="store_true", help="no progress bar")

    cache = commands.add_parser(
        "cache", help="where Numba keeps loopbp's compiled kernels; --clear deletes them"
    )
    cache.add_argument("--clear", action="store_true", help="delete this copy of loopbp's cached kernels")
    # Each (sub)command's parser records itself, the innermost last, so that main can
    # report an unknown flag with the usage of the command it was given to.
    for sub in (compare, train, sine, digits, cache):
        sub.set_defaults(subparser=sub)
    return parser


def _learning_rate(text):
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _error(message):
    print(f"loopbp: error: {message}", file=sys.stderr)
    return 2


def _sweep_points(args):
    """(label, sizes, m) for each size that the sweep (or the single run) times."""
    if args.sweep is None:
        return [(args.m, args.sizes, args.m)]
    if args.sweep == "m":
        values = [v for v in (10 * 10 ** (k / 2) for k in range(20)) if round(v) < args.m]
        values = [int(round(v)) for v in values] + [args.m]
        return [(m, args.sizes, m) for m in values]
    widest = max(args.sizes[1:-1])
    widths = [w for w in (2**k for k in range(2, 20)) if w < widest] + [widest]
    points = []
    for w in widths:
        sizes = (args.sizes[0],) + (w,) * (len(args.sizes) - 2) + (args.sizes[-1],)
        points.append((w, sizes, args.m))
    return points


def _crossovers(labels, loops, other):
    """Sizes, interpolated on log axes, where the loops and `other` times cross."""
    found = []
    for k in range(len(labels) - 1):
        d0 = math.log(loops[k] / other[k])
        d1 = math.log(loops[k + 1] / other[k + 1])
        if d0 == 0 or d0 * d1 < 0:
            t = d0 / (d0 - d1)
            found.append(math.exp(math.log(labels[k]) + t * (math.log(labels[k + 1]) - math.log(labels[k]))))
    return found


def _plot(path, args, labels, results, backends, crossovers):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for backend in backends:
        ax.plot(labels, [r[backend]["median_s"] * 1e3 for r in results], marker="o", label=backend)
    ax.set_xscale("log")
    ax.set_yscale("log")
    for x in crossovers:
        ax.axvline(x, color="gray", linestyle="--", linewidth=1)
        ax.annotate(
            f"crossover\n{args.sweep} = {x:.3g}",
            (x, 0.02),
            xycoords=("data", "axes fraction"),
            xytext=(3, 0),
            textcoords="offset points",
            fontsize=8,
            color="dimgray",
        )
    what = "m (samples)" if args.sweep == "m" else "hidden width"
    ax.set_xlabel(what)
    ax.set_ylabel("median ms per gradient")
    fixed = f"sizes {','.join(map(str, args.sizes))}" if args.sweep == "m" else f"m = {args.m}"
    title = f"loopbp compare --sweep {args.sweep}: {fixed}, {args.dtype}"
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


def _say(message, command="compare"):
    # Notes on progress go to standard error, so that standard output is the table alone
    # (or valid JSON), and appear at once even when standard error is a pipe.
    print(f"loopbp {command}: {message}", file=sys.stderr, flush=True)


#: The cold compile of the loops backend for one dtype, rounded up: the first
#: Network.gradient in a clean clone's CI run on the project's 2-core machine took 23.5 s.
COMPILE_SECONDS = 25


def _note_compile(dtype, command, driver="passes.checked_gradient"):
    """Say, before the loop kernels compile for `dtype`, that they will and for how long."""
    if not numba_cache.is_warm(dtype, driver):
        _say(
            f"compiling the loop kernels for {dtype} (once after installing or changing loopbp: "
            f"about {COMPILE_SECONDS} s on 2 cores); later runs load them from the cache "
            f"(`loopbp cache` says where)",
            command,
        )


def _run_order(backends):
    # einsum first: it is the reference of every row's speed-up, so each row can be
    # printed as soon as its own backend is done.
    return ["einsum"] + [b for b in backends if b != "einsum"]


def compare(args):
    """Run ``loopbp compare`` for parsed `args`; return the exit status."""
    L = len(args.sizes) - 1
    activations = args.activations or comparison.default_activations(L)
    if len(activations) != L:
        return _error(
            f"--activations needs {L} names for --sizes {','.join(map(str, args.sizes))}, "
            f"got {len(activations)}"
        )
    if args.sweep == "width" and L < 2:
        return _error("--sweep width varies the hidden layers; --sizes has none")
    if args.plot is not None:
        if args.sweep is None:
            return _error("--plot draws a sweep; add --sweep m or --sweep width")
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            return _error('--plot needs matplotlib: pip install "loopbp[examples]"')
    backends = args.backends or comparison.default_backends()
    points = _sweep_points(args)
    results = [{} for _ in points]
    table = not args.json and args.sweep is None
    if not args.json:
        print(_header(args, activations), flush=True)
    if "loops" in backends:
        _note_compile(args.dtype, "compare")
    if table:
        _print_table_head()
    printed = 0
    for backend in _run_order(backends):
        start = time.perf_counter()
        try:
            timed = comparison.run(
                backend,
                [(sizes, m) for _, sizes, m in points],
                activations,
                args.dtype,
                seed=args.seed,
                repeat=args.repeat,
                threads=args.threads,
            )
        except RuntimeError as err:
            print(f"loopbp compare: {err}", file=sys.stderr)
            return 1
        for (_, sizes, m), row, result in zip(points, results, timed):
            result["gflop_per_s"] = gradient_gflop(sizes, m) / result["median_s"]
            row[backend] = result  # einsum, run first, is there for every later backend
            result["speedup_vs_einsum"] = row["einsum"]["median_s"] / result["median_s"]
        if table:
            # Rows in table order, each as soon as it and those above it are done.
            while printed < len(backends) and backends[printed] in results[0]:
                _print_table_row(backends[printed], results[0])
                printed += 1
        elif args.sweep is not None:
            _say(f"{backend} done: {len(points)} sizes in {time.perf_counter() - start:.1f} s")
    tolerance = TOLERANCE[np.dtype(args.dtype)]
    worst = max(row["loops"]["difference"] for row in results) if "loops" in backends else 0.0
    agree = worst <= tolerance
    labels = [label for label, _, _ in points]
    crossovers = []
    others = [b for b in backends if b != "loops"]
    if args.sweep is not None and "loops" in backends and others:
        # Where the loops stop (or start) being the fastest: against the fastest of the
        # other backends at each size.
        crossovers = _crossovers(
            labels,
            [r["loops"]["median_s"] for r in results],
            [min(r[b]["median_s"] for b in others) for r in results],
        )
    if args.plot is not None:
        _plot(args.plot, args, labels, results, backends, crossovers)

    if args.json:
        print(
            json.dumps(
                {
                    "loopbp_version": __version__,
                    "sizes": list(args.sizes),
                    "m": args.m,
                    "activations": list(activations),
                    "dtype": args.dtype,
                    "threads": args.threads,
                    "repeat": args.repeat,
                    "sweep": args.sweep,
                    "points": [
                        {"sizes": list(sizes), "m": m, "gflop": gradient_gflop(sizes, m), "results": row}
                        for (_, sizes, m), row in zip(points, results)
                    ],
                    "crossovers": crossovers,
                    "tolerance": tolerance,
                    "agree": agree,
                    "plot": args.plot,
                },
                indent=1,
            )
        )
    elif args.sweep is not None:
        _print_sweep(args, backends, labels, results, crossovers)
    if args.plot is not None:
        # Named on stdout, except under --json, where the path is the "plot" key.
        print(f"plot written to {args.plot}", file=sys.stderr if args.json else sys.stdout)
    if not agree:
        print(
            f"loopbp compare: FAIL: loops and einsum differ by {worst:.2e}, more than the "
            f"{args.dtype} tolerance {tolerance:.0e}",
            file=sys.stderr,
        )
        return 1
    return 0


def _header(args, activations):
    threads = "default threads" if args.threads is None else f"{args.threads} threads"
    header = (
        f"loopbp compare: sizes {','.join(map(str, args.sizes))}, m = {args.m}, {args.dtype}, "
        f"activations {','.join(activations)}, {threads}, median of {args.repeat} samples, "
        f"each backend in its own process"
    )
    if args.sweep is None:
        header += f", {gradient_gflop(args.sizes, args.m):.4g} GFLOP per gradient"
    return header


def _print_table_head():
    print(
        f"{'backend':<8} {'first call':>12} {'median':>12} {'GFLOP/s':>9} {'vs einsum':>10} "
        f"{'max rel diff':>13}",
        flush=True,
    )


def _print_table_row(backend, row):
    r = row[backend]
    print(
        f"{backend:<8} {r['first_s'] * 1e3:>10.3f}ms {r['median_s'] * 1e3:>10.3f}ms {r['gflop_per_s']:>9.2f} "
        f"{r['speedup_vs_einsum']:>9.2f}x {r['difference']:>13.2e}",
        flush=True,
    )


def _print_sweep(args, backends, labels, results, crossovers):
    print("median ms per gradient; the last column is loops' speed-up against einsum")
    name = "m" if args.sweep == "m" else "width"
    columns = f"{name:>7} " + " ".join(f"{b:>10}" for b in backends)
    print(columns + (f" {'loops/einsum':>13}" if "loops" in backends else ""))
    for label, row in zip(labels, results):
        line = f"{label:>7} " + " ".join(f"{row[b]['median_s'] * 1e3:>10.4g}" for b in backends)
        if "loops" in backends:
            line += f" {row['loops']['speedup_vs_einsum']:>12.2f}x"
        print(line)
    if "loops" in backends:
        where = ", ".join(f"{x:.3g}" for x in crossovers) if crossovers else "none in this range"
        print(f"loops and the fastest other backend cross at {name} = {where}")


def train(args):
    """Run ``loopbp train sine|digits`` for parsed `args`; return the exit status."""
    from . import examples

    progress = not args.no_progress
    # The header first: training takes seconds to minutes.
    if args.example == "sine":
        print(
            f"loopbp train sine: 1-20-1 sigmoid/identity, learning rate {args.learning_rate}, "
            f"{args.epochs} epochs, seed {args.seed}, {args.backend} backend",
            flush=True,
        )
        if args.backend == "loops":
            _note_compile("float64", "train", driver="training.train_epochs")
        result = examples.train_sine(
            epochs=args.epochs,
            learning_rate=args.learning_rate,
            seed=args.seed,
            backend=args.backend,
            progress=progress,
        )
        print(f"final E {result.history[-1]:.6g} (first {result.history[0]:.6g})")
    else:
        print(
            f"loopbp train digits: 64-{args.hidden}-10 sigmoid/identity, one-hot targets, learning rate "
            f"{args.learning_rate}, {args.epochs} full-batch epochs, seed {args.seed}, "
            f"{args.backend} backend",
            flush=True,
        )
        if args.backend == "loops":
            _note_compile("float64", "train", driver="training.train_epochs")
        try:
            result = examples.train_digits(
                hidden=args.hidden,
                epochs=args.epochs,
                learning_rate=args.learning_rate,
                seed=args.seed,
                backend=args.backend,
                progress=progress,
            )
        except ImportError as err:
            return _error(str(err))
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


def cache(args):
    """Run ``loopbp cache [--clear]``: where the compiled kernels are, or delete them."""
    folder = numba_cache.cache_dir()
    if args.clear:
        try:
            removed = numba_cache.clear()
        except OSError as err:
            return _error(f"could not remove {folder}: {err}")
        print(f"removed {removed}" if removed else f"nothing to remove: {folder} holds no kernels")
        return 0
    files, size = numba_cache.cache_size(folder)
    if files:
        print(f"{folder}\n{files} files, {size / 2**20:.1f} MiB")
    else:
        print(f"{folder}\n(empty: the kernels compile at their first call)")
    return 0


def _plot_sine(path, result):
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


def main(argv=None):
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
    if args.command == "cache":
        return cache(args)
    return train(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
