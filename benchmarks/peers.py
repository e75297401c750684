"""Time one full gradient with loopbp's loops and einsum, NumPy ``@``, PyTorch and JAX.

Usage::

    python benchmarks/peers.py                       # every case and dtype, every system installed
    python benchmarks/peers.py --cases toy,small --dtypes float64 --repeat 7

"loops" calls ``loopbp.gradient`` with lists W and b; "network" runs the same loops
through ``Network.gradient``, which keeps its parameters flat and its buffers from call to
call. Each (system, case, dtype) runs in a process of its own, because Numba's OpenMP threads
keep spinning after a parallel region and slow BLAS in the same process. In each
process the first call (compilation, tracing, caches) is timed on its own and left out
of the samples; each sample times a batch of calls long enough to be measured well, and
the table gives the median per call. Every system's gradient is also compared with the
einsum reference, so the table shows that they computed the same thing.

PyTorch (CPU autograd) and JAX (CPU, jit of value_and_grad) are optional: a system that
is not installed is left out of the table.
"""

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import common  # noqa: E402  (benchmarks/common.py: the seeded reference cases)

SYSTEMS = ["loops", "network", "einsum", "numpy", "torch", "jax"]
PEERS = ["numpy", "einsum", "torch", "jax"]


def _gradient_function(system, W, b, X, Y, acts, dtype):
    """A zero-argument function that returns (E, dW, db) as NumPy values."""
    import loopbp
    from loopbp import compare

    if system == "loops":
        return lambda: loopbp.gradient(W, b, X, Y, acts)
    # The others are those of `loopbp compare`: "network" is its loops backend (the same
    # kernels through Network.gradient), "numpy" the einsum reference's formulas with @.
    net = loopbp.Network.from_parameters(W, b, acts)
    return compare.gradient_function("loops" if system == "network" else system, net, X, Y)


def worker(system, case, dtype, repeat):
    """Time `system` on `case` in this process and print one JSON line."""
    sizes, m = common.CASES[case]
    W, b, X, Y, acts = common.problem(sizes, m, dtype)
    import loopbp
    from loopbp.agreement import gradient_difference
    from loopbp.compare import time_calls

    # Enough calls per sample that each sample lasts about 0.2 s (at least one call).
    timed = time_calls(_gradient_function(system, W, b, X, Y, acts, dtype), repeat, sample_seconds=0.2)
    first, result, number = timed["first_s"], timed["result"], timed["number"]

    reference = loopbp.gradient(W, b, X, Y, acts, backend="einsum")
    difference = gradient_difference(result, reference)
    print(json.dumps({"median": timed["median_s"], "first": first, "number": number, "diff": difference}))


def _installed(system):
    if system in ("torch", "jax"):
        import importlib.util

        return importlib.util.find_spec(system) is not None
    return True


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(common.CASES), help="comma-separated (default: all four)")
    parser.add_argument("--dtypes", default="float64,float32")
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--repeat", type=int, default=7, help="samples per system (default: 7)")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run every system this many times, in turn, and take the median of the rounds (default: 1)",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--worker", nargs=3, metavar=("SYSTEM", "CASE", "DTYPE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(*args.worker, args.repeat)
        return 0

    systems = [s for s in args.systems.split(",") if _installed(s)]
    rows = []
    for case in args.cases.split(","):
        for dtype in args.dtypes.split(","):
            # Rounds take the systems in turn, so that a slow spell of this shared machine
            # falls on all of them rather than on one.
            runs = {}
            for _ in range(args.rounds):
                for system in systems:
                    out = subprocess.run(
                        [
                            sys.executable,
                            __file__,
                            "--worker",
                            system,
                            case,
                            dtype,
                            "--repeat",
                            str(args.repeat),
                        ],
                        capture_output=True,
                        text=True,
                        check=False,
                    )
                    if out.returncode != 0:
                        print(f"{system} {case} {dtype} failed:\n{out.stderr}", file=sys.stderr)
                        continue
                    runs.setdefault(system, []).append(json.loads(out.stdout.strip().splitlines()[-1]))
            times = {system: _median_run(results) for system, results in runs.items()}
            rows.append((case, dtype, times))

    if args.json:
        print(json.dumps([{"case": c, "dtype": d, "results": t} for c, d, t in rows], indent=1))
        return 0
    rounds = f", median of {args.rounds} rounds" if args.rounds > 1 else ""
    print(
        f"loopbp peers, {datetime.date.today()}, {platform.machine()} {os.cpu_count()} cores, "
        f"{_vector_path()}, median of {args.repeat} samples per system{rounds}, "
        "each system in its own process"
    )
    header = f"{'case':<6} {'dtype':<8} " + " ".join(f"{s:>10}" for s in systems)
    print(header + f" {'GFLOP/s':>8} {'loops, network vs fastest peer':>30}")
    for case, dtype, times in rows:
        sizes, m = common.CASES[case]
        cells = " ".join(f"{_ms(times[s]['median']) if s in times else 'n/a':>10}" for s in systems)
        peers = {s: t["median"] for s, t in times.items() if s in PEERS}
        line = f"{case:<6} {dtype:<8} {cells}"
        if "loops" in times and peers:
            fastest = min(peers, key=peers.get)
            loops = times["loops"]["median"]
            line += f" {common.gflop(sizes, m) / loops:>8.1f} {peers[fastest] / loops:>8.2f}x"
            if "network" in times:
                line += f" {peers[fastest] / times['network']['median']:>6.2f}x"
            line += f" ({fastest})"
        print(line)
    print("\nfirst call (compile, trace or cache load), and the largest relative difference from einsum:")
    for case, dtype, times in rows:
        print(
            f"{case:<6} {dtype:<8} "
            + "  ".join(f"{s} {_ms(t['first'])} {t['diff']:.0e}" for s, t in times.items())
        )
    return 0


def _median_run(results):
    # The round whose median time is the median of the rounds' (the lower middle one
    # for an even count), with its first-call time and difference.
    ordered = sorted(results, key=lambda r: r["median"])
    return ordered[(len(ordered) - 1) // 2]


def _vector_path():
    try:
        from loopbp import simd
    except ImportError:
        return "loopbp without packed kernels"
    return f"loopbp path {simd.PATH}"


def _ms(seconds):
    return f"{seconds * 1e3:.3f}ms" if seconds < 0.1 else f"{seconds * 1e3:.0f}ms"


if __name__ == "__main__":
    sys.exit(main())
