"""Time one full gradient with loopbp's loops and einsum, NumPy ``@``, PyTorch and JAX.

Usage::

    python benchmarks/peers.py                       # every case and dtype, every system installed
    python benchmarks/peers.py --cases toy,small --dtypes float64 --repeat 7
    python benchmarks/peers.py --sweep               # common.GRID and the reference cases

``--sweep`` runs the grid of ``common.GRID`` (mini-batches, mid widths, bottlenecks, deep
stacks, narrow outputs) and the reference cases, with loops, NumPy, PyTorch and JAX by
default, prints one line per point and, last, the worst ratio of ``loopbp.gradient`` to
the fastest peer and the geometric mean of the ratios.

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

On a GPU::

    python benchmarks/peers.py --device cuda         # 784-256-128-10 at m = 10^4, 10^5, 10^6

times loopbp's cuda backend against PyTorch (CUDA, TF32 off) and JAX on the same GPU, X
and Y already on the device for all three (each call sends theta and brings E and the
gradient back), and one full-batch step of gradient descent, X and Y on the device:
"cuda-fit" is ``Network.fit``'s step with the cuda backend (``cuda_engine.CudaTrainer``,
10 steps per call from Python), "torch-fit" the same step in PyTorch (10 steps, then E
to the host). Each system still runs in a process of its own. The "gpu-tiny" case
checks the whole path without a GPU, on the CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``;
PyTorch and JAX then report no GPU).
"""

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import common  # noqa: E402  (benchmarks/common.py: the seeded reference cases)

SYSTEMS = ["loops", "network", "einsum", "numpy", "torch", "jax"]
#: --sweep's systems by default: the loops and the peers they are measured against (NumPy @,
#: PyTorch, JAX).
SWEEP_SYSTEMS = ["loops", "numpy", "torch", "jax"]
PEERS = ["numpy", "einsum", "torch", "jax"]

#: --device cuda: an MNIST-shaped network (784-256-128-10) at three m, and a tiny one for the
#: simulator.
GPU_CASES = {
    "gpu-1e4": ((784, 256, 128, 10), 10_000),
    "gpu-1e5": ((784, 256, 128, 10), 100_000),
    "gpu-1e6": ((784, 256, 128, 10), 1_000_000),
    "gpu-tiny": ((5, 7, 3), 20),
}
GPU_SYSTEMS = ["cuda", "torch", "jax", "cuda-fit", "torch-fit"]
GPU_PEERS = ["torch", "jax"]
#: Steps of gradient descent per timed call of the fit systems.
FIT_STEPS = 10


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


def _fit_step_function(system, W, b, X, Y, acts):
    """A zero-argument function that runs FIT_STEPS full-batch steps on the GPU and returns E."""
    import loopbp

    net = loopbp.Network.from_parameters(W, b, acts)
    rate = 1e-3
    if system == "cuda-fit":
        from loopbp.cuda.engine import CudaTrainer

        trainer = CudaTrainer(net, X, Y, rate, X.shape[1])
        history = np.empty(FIT_STEPS)

        def run():
            trainer.run(0, FIT_STEPS, history)
            return history[-1]

        return run
    import torch

    if not torch.cuda.is_available():
        raise SystemExit("PyTorch sees no CUDA GPU")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    from loopbp.compare import torch_activations

    functions = torch_activations()
    params = [torch.tensor(p, device="cuda", requires_grad=True) for p in [*net.W, *net.b]]
    L = len(net.W)
    Xt, Yt, m = torch.tensor(X, device="cuda"), torch.tensor(Y, device="cuda"), X.shape[1]

    def run():
        for _ in range(FIT_STEPS):
            A = Xt
            for w, v, g in zip(params[:L], params[L:], net.activations):
                A = functions[g](w @ A + v[:, None])
            E = ((A - Yt) ** 2).sum() / (2 * m)
            grads = torch.autograd.grad(E, params)
            with torch.no_grad():
                for p, g in zip(params, grads):
                    p -= rate * g
        return E.item()

    return run


def worker(system, case, dtype, repeat, device="cpu"):
    """Time `system` on `case` in this process and print one JSON line."""
    sizes, m = (GPU_CASES if device == "cuda" else common.sweep_cases())[case]
    W, b, X, Y, acts = common.problem(sizes, m, dtype)
    import loopbp
    from loopbp import compare
    from loopbp.agreement import gradient_difference
    from loopbp.compare import time_calls

    if system.endswith("-fit"):
        timed = time_calls(_fit_step_function(system, W, b, X, Y, acts), repeat, sample_seconds=0.2)
        steps = {
            "median": timed["median_s"] / FIT_STEPS,
            "first": timed["first_s"],
            "number": timed["number"],
        }
        print(json.dumps({**steps, "diff": None}))
        return
    if device == "cuda":
        function = compare.gradient_function(system, loopbp.Network.from_parameters(W, b, acts), X, Y, device)
    else:
        function = _gradient_function(system, W, b, X, Y, acts, dtype)
    # Enough calls per sample that each sample lasts about 0.2 s (at least one call).
    timed = time_calls(function, repeat, sample_seconds=0.2)
    first, result, number = timed["first_s"], timed["result"], timed["number"]

    reference = loopbp.gradient(W, b, X, Y, acts, backend="einsum")
    difference = gradient_difference(result, reference)
    print(json.dumps({"median": timed["median_s"], "first": first, "number": number, "diff": difference}))


def _installed(system):
    if system in ("torch", "jax", "torch-fit"):
        system = system.split("-")[0]
        import importlib.util

        return importlib.util.find_spec(system) is not None
    return True


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", help="comma-separated (default: every CPU case, or the three GPU ones)")
    parser.add_argument("--dtypes", default="float64,float32")
    parser.add_argument("--systems", help="comma-separated (default: every system of the device)")
    parser.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        default="cpu",
        help="cuda: loopbp's cuda backend, PyTorch and JAX on one GPU (default: cpu)",
    )
    parser.add_argument("--repeat", type=int, default=7, help="samples per system (default: 7)")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run every system this many times, in turn, and take the median of the rounds (default: 1)",
    )
    parser.add_argument(
        "--sweep",
        action="store_true",
        help="the grid of common.GRID and the reference cases, one line per point, then the "
        "worst ratio and the geometric mean against the fastest peer",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument(
        "--output",
        metavar="FILE",
        help="also write the results, with the date, CPU and vector path, to FILE as JSON "
        "(docs/performance_tables.py makes the docs' tables from it)",
    )
    parser.add_argument("--worker", nargs=3, metavar=("SYSTEM", "CASE", "DTYPE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    gpu = args.device == "cuda"
    if args.worker:
        worker(*args.worker, args.repeat, args.device)
        return 0
    if args.sweep and gpu:
        parser.error("--sweep is a CPU comparison; leave out --device cuda")
    cases = GPU_CASES if gpu else common.sweep_cases() if args.sweep else common.CASES
    args.cases = args.cases or ",".join(c for c in cases if c != "gpu-tiny")
    unknown = [c for c in args.cases.split(",") if c not in (GPU_CASES if gpu else common.sweep_cases())]
    if unknown:
        parser.error(f"unknown case(s) {', '.join(unknown)}; known: {', '.join(cases)}")
    default_systems = GPU_SYSTEMS if gpu else SWEEP_SYSTEMS if args.sweep else SYSTEMS
    args.systems = args.systems or ",".join(default_systems)
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
                            "--device",
                            args.device,
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

    if args.output:
        _write_results(args.output, rows, systems, args)
    if args.json:
        print(json.dumps([{"case": c, "dtype": d, "results": t} for c, d, t in rows], indent=1))
        return 0
    rounds = f", median of {args.rounds} rounds" if args.rounds > 1 else ""
    if gpu:
        _print_gpu_table(rows, systems, args.repeat, rounds)
        return 0
    if args.sweep:
        _print_sweep(rows, systems, args.repeat, rounds)
        return 0
    print(_header(args.repeat, rounds))
    header = f"{'case':<6} {'dtype':<8} " + " ".join(f"{s:>10}" for s in systems)
    print(header + f" {'GFLOP/s':>8} {'loops, network vs fastest peer':>30}")
    for case, dtype, times in rows:
        sizes, m = common.sweep_cases()[case]
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


def _write_results(path, rows, systems, args):
    """The run as JSON: where and when it ran, then one entry per (case, dtype)."""
    cases = common.sweep_cases()
    run = {
        "date": str(datetime.date.today()),
        "cpu": _cpu_name(),
        "cores": os.cpu_count(),
        "vector_path": _vector_path(),
        "device": args.device,
        "repeat": args.repeat,
        "rounds": args.rounds,
        "sweep": args.sweep,
        "systems": systems,
        "peers": [s for s in systems if s in PEERS],
        "points": [
            {
                "case": case,
                "sizes": list(cases[case][0]) if case in cases else None,
                "m": cases[case][1] if case in cases else None,
                "dtype": dtype,
                "results": times,
            }
            for case, dtype, times in rows
        ],
    }
    with open(path, "w") as f:
        json.dump(run, f, indent=1)
        f.write("\n")


def _header(repeat, rounds):
    return (
        f"loopbp peers, {datetime.date.today()}, {_cpu_name()}, {os.cpu_count()} cores, "
        f"{_vector_path()}, median of {repeat} samples per system{rounds}, "
        "each system in its own process"
    )


def _print_sweep(rows, systems, repeat, rounds):
    """One line per point, then the worst ratio and the geometric mean of loops vs the fastest peer."""
    print(_header(repeat, rounds))
    print(
        f"{'point':<22} {'sizes':<22} {'m':>6} {'dtype':<8} "
        + " ".join(f"{s:>9}" for s in systems)
        + f" {'loops vs fastest peer':>22}"
    )
    ratios = []
    for case, dtype, times in rows:
        sizes, m = common.sweep_cases()[case]
        cells = " ".join(f"{_ms(times[s]['median']) if s in times else 'n/a':>9}" for s in systems)
        line = f"{case:<22} {'-'.join(map(str, sizes)):<22} {m:>6} {dtype:<8} {cells}"
        peers = {s: t["median"] for s, t in times.items() if s in PEERS}
        if "loops" in times and peers:
            fastest = min(peers, key=peers.get)
            ratio = peers[fastest] / times["loops"]["median"]
            ratios.append((ratio, case, dtype))
            line += f" {ratio:>13.2f}x ({fastest})"
        print(line)
    if ratios:
        worst = min(ratios)
        geomean = float(np.exp(np.mean(np.log([r for r, _, _ in ratios]))))
        print(
            f"\n{len(ratios)} points: worst {worst[0]:.2f}x ({worst[1]}, {worst[2]}), "
            f"geometric mean {geomean:.2f}x, {sum(r >= 1 for r, _, _ in ratios)} at 1.0x or better"
        )


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _print_gpu_table(rows, systems, repeat, rounds):
    print(
        f"loopbp peers on the GPU ({_gpu_name()}), {datetime.date.today()}, median of {repeat} samples "
        f"per system{rounds}, each system in its own process; X and Y on the device"
    )
    header = f"{'case':<9} {'dtype':<8} " + " ".join(f"{s:>10}" for s in systems)
    print(header + f" {'cuda vs fastest peer':>21} {'fit step vs torch':>18}")
    for case, dtype, times in rows:
        cells = " ".join(f"{_ms(times[s]['median']) if s in times else 'n/a':>10}" for s in systems)
        line = f"{case:<9} {dtype:<8} {cells}"
        peers = {s: t["median"] for s, t in times.items() if s in GPU_PEERS}
        if "cuda" in times and peers:
            fastest = min(peers, key=peers.get)
            line += f" {peers[fastest] / times['cuda']['median']:>12.2f}x ({fastest})"
        if "cuda-fit" in times and "torch-fit" in times:
            line += f" {times['torch-fit']['median'] / times['cuda-fit']['median']:>17.2f}x"
        print(line)
    print("\nfirst call (compile, trace or cache load), and the largest relative difference from einsum:")
    for case, dtype, times in rows:
        print(f"{case:<9} {dtype:<8} " + "  ".join(_first_and_difference(s, t) for s, t in times.items()))


def _first_and_difference(system, t):
    # The fit systems' steps are not compared with einsum: no difference to show.
    difference = "" if t["diff"] is None else f" {t['diff']:.0e}"
    return f"{system} {_ms(t['first'])}{difference}"


def _gpu_name():
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return "GPU name unknown: PyTorch sees no CUDA GPU"


def _median_run(results):
    # The round whose median time is the median of the rounds' (the lower middle one
    # for an even count), with its first-call time and difference.
    ordered = sorted(results, key=lambda r: r["median"])
    return ordered[(len(ordered) - 1) // 2]


def _vector_path():
    try:
        from loopbp.cpu import simd
    except ImportError:
        return "loopbp without packed kernels"
    return f"loopbp path {simd.PATH}"


def _ms(seconds):
    return f"{seconds * 1e3:.3f}ms" if seconds < 0.1 else f"{seconds * 1e3:.0f}ms"


if __name__ == "__main__":
    sys.exit(main())
