"""Time one gradient against m: one process, and a local Dask cluster of 1 and of 2 workers.

Usage::

    python benchmarks/distributed_scaling.py                  # 784-256-128-10, float32, m = 1e4, 1e5, 1e6
    python benchmarks/distributed_scaling.py --ms 10000,100000 --repeat 5

This is a tool, not an asv benchmark (it defines none). Each system runs in a process of
its own: the single process is a subprocess timing ``Network.gradient`` on NumPy arrays
with Numba's threads on every core; the clusters are ``LocalCluster``s whose workers
hold the data (drawn where they run, one chunk of samples per worker, kept there with
``persist``), timed from this process, which computes nothing itself. 1 worker runs
Numba on every core; 2 workers run one thread each. Every time is the median of
`--repeat` calls after one untimed call (which compiles the kernels or loads them). The
difference between the cluster and the single process at small m is the per-step cost
of the reduction (building the graph, scheduling the tasks, sending theta and the sums).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

# Time the fast kernels, compiled (or loaded) at the first call, in this process and in the
# processes it starts: never the serial loops that run while they compile (loopbp.cpu.warming).
os.environ["LOOPBP_COMPILE"] = "foreground"

_SINGLE = """
import json, statistics, sys, time
import numpy as np
from loopbp.problems import seeded_problem
sizes, m, dtype, repeat = json.loads(sys.argv[1])
net, X, Y = seeded_problem(sizes, m, dtype=dtype)
net.gradient(X, Y)
samples = []
for _ in range(repeat):
    start = time.perf_counter()
    net.gradient(X, Y)
    samples.append(time.perf_counter() - start)
print(json.dumps(statistics.median(samples)))
"""


def single_process(sizes, m, dtype, repeat):
    """Median seconds of Network.gradient in a fresh process, NumPy arrays, Numba on every core."""
    out = subprocess.run(
        [sys.executable, "-c", _SINGLE, json.dumps([list(sizes), m, dtype, repeat])],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def cluster(sizes, m, dtype, repeat, workers):
    """Median seconds of Network.gradient on a local cluster of `workers` workers holding the data."""
    import dask.array as da
    import distributed

    import loopbp

    cores = os.cpu_count() or 1
    numba_threads = max(1, cores // workers)
    with (
        distributed.LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            env={"NUMBA_NUM_THREADS": str(numba_threads)},
        ) as local,
        distributed.Client(local) as client,
    ):
        rng = da.random.default_rng(1)
        columns = -(-m // workers)
        X = rng.standard_normal((sizes[0], m), chunks=(sizes[0], columns), dtype=dtype)
        Y = rng.standard_normal((sizes[-1], m), chunks=(sizes[-1], columns), dtype=dtype)
        X, Y = client.persist([X, Y])
        distributed.wait([X, Y])
        net = loopbp.Network(sizes, ("sigmoid",) * (len(sizes) - 2) + ("identity",), dtype=dtype, seed=0)
        net.gradient(X, Y, scheduler=client)
        samples = []
        for _ in range(repeat):
            start = time.perf_counter()
            net.gradient(X, Y, scheduler=client)
            samples.append(time.perf_counter() - start)
        return statistics.median(samples)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="784,256,128,10")
    parser.add_argument("--ms", default="10000,100000,1000000")
    parser.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    sizes = tuple(int(n) for n in args.sizes.split(","))
    ms = [int(float(m)) for m in args.ms.split(",")]
    import numba

    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    import loopbp

    print(
        f"loopbp {loopbp.__version__} gradient of {'-'.join(map(str, sizes))} in {args.dtype}, median of "
        f"{args.repeat}; {os.cpu_count()} cores ({cpu}), Numba {numba.__version__}, "
        f"vector path {loopbp.cpu.simd.PATH}"
    )
    print(f"{'m':>9} {'1 process':>11} {'1 worker':>11} {'2 workers':>11} {'2 workers vs 1 process':>24}")
    for m in ms:
        one = single_process(sizes, m, args.dtype, args.repeat)
        w1 = cluster(sizes, m, args.dtype, args.repeat, 1)
        w2 = cluster(sizes, m, args.dtype, args.repeat, 2)
        print(f"{m:>9} {one:>10.3f}s {w1:>10.3f}s {w2:>10.3f}s {one / w2:>23.2f}x", flush=True)


if __name__ == "__main__":
    sys.exit(main())
