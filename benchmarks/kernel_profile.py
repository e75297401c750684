"""Time each kernel of one gradient, layer by layer: where a case's time goes.

Usage::

    python benchmarks/kernel_profile.py mnist [--dtype float32] [--threads 1] [--repeat 5]

This is a tool, not an asv benchmark (it defines none). It asks the loops backend's engine
for the time of each step of one gradient (``loopbp.cpu.profiler.kernel_times``): the real driver,
stopped after each step in turn, so that nothing here replays the driver. It prints each
step's median time and its GFLOP/s (for the three contractions), as a share of the
register micro-kernel's peak where there is one. The narrow kernels run the whole network
as one step; ``--narrow`` times them so, and by default the packed or portable kernels run.
"""

import argparse
import os
import sys

import numba

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case", choices=list(common.sweep_cases()))
    parser.add_argument("--dtype", default="float64", choices=("float64", "float32"))
    parser.add_argument("--threads", type=int, default=numba.config.NUMBA_NUM_THREADS)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--narrow", action="store_true", help="time the narrow kernels where they suit")
    args = parser.parse_args(argv)
    numba.set_num_threads(args.threads)
    # Imported here, not at the top: asv imports every module of benchmarks/ when it
    # runs older commits, which lack these modules.
    import loopbp
    from loopbp.compare import time_calls
    from loopbp.cpu.profiler import kernel_times
    from loopbp.cpu.threads import worth_threads

    sizes, m = common.sweep_cases()[args.case]
    W, b, X, Y, acts = common.problem(sizes, m, args.dtype)
    net = loopbp.Network.from_parameters(W, b, acts)
    rows = kernel_times(net.engine, net.theta, X, Y, repeat=args.repeat, narrow=args.narrow)
    threads = numba.get_num_threads() if worth_threads(sizes, m) else 1
    whole = time_calls(lambda: net.gradient(X, Y), args.repeat)["median_s"]
    total = sum(seconds for _, seconds, _ in rows)
    try:
        peak = common.micro_kernel_peak(args.dtype, threads)
        ceiling = f"micro-kernel in L1: {peak:.1f} GFLOP/s on {threads} threads"
    except NotImplementedError as why:
        peak, ceiling = None, f"no share of peak: {why}"
    tile = loopbp.cpu.simd.tile(args.dtype)
    path = (
        "portable"
        if tile is None
        else f"{tile.lanes * tile.dtype.itemsize * 8}-bit vectors, tile {tile.shape}"
    )
    print(f"{args.case} {args.dtype}, {threads} threads, {path}, median of {args.repeat}; {ceiling}")
    for name, seconds, gflop in rows:
        rate = f"{gflop / seconds:7.1f} GFLOP/s" if gflop and seconds > 0 else ""
        if rate and peak:
            rate += f" {100 * gflop / seconds / peak:4.0f}% of peak"
        print(f"{name:<34} {seconds * 1e3:9.3f} ms {100 * seconds / total:5.1f}%  {rate}")
    print(f"{'sum of the steps':<34} {total * 1e3:9.3f} ms")
    rate = common.gflop(sizes, m) / whole
    share = f", {100 * rate / peak:.0f}% of peak" if peak else ""
    print(f"{'whole Network.gradient':<34} {whole * 1e3:9.3f} ms, {rate:.1f} GFLOP/s{share}")


if __name__ == "__main__":
    sys.exit(main())
