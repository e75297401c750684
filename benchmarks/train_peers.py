"""Train the series' two examples with loopbp's ``Network.fit``, NumPy ``@``, PyTorch and JAX.

Usage::

    python benchmarks/train_peers.py                           # both examples, float64, every system
    python benchmarks/train_peers.py --examples sine --steps 2000 --dtypes float64,float32
    python benchmarks/train_peers.py --steps-scale 0.1 --rounds 3

Every system trains the same network from the same start with the same full-batch
gradient-descent steps, theta <- theta - alpha grad E, with
E = 1/(2m) sum_c sum_i (A^L_ic - Y_ic)^2. The data, the network, its activations, the
learning rate, the number of steps and the initial parameters are those of
``loopbp.examples.train_sine`` (1-20-1, sigmoid/identity, 100 points, rate 0.1, 20,000
steps) and ``train_digits`` (64-64-10, sigmoid/identity, one-hot targets, 1,347 training
digits, rate 0.1, 10,000 steps): every system starts from a copy of the W and b of the
examples' seeded ``Network``.

- "numpy": a plain Python loop of NumPy ``@``: forward pass, backward pass, and the
  update of every W and b, in the run's dtype.
- "torch": CPU autograd, ``E.backward()`` and ``torch.optim.SGD(lr=alpha)`` on the same
  parameters (torch's default thread count).
- "jax": the whole loop in one ``jax.jit``: ``jax.lax.fori_loop`` over the steps, each a
  ``jax.value_and_grad`` of E and the update (``jax_enable_x64`` for float64 runs).
- "loopbp": ``Network.fit(X, Y, learning_rate=alpha, epochs=steps, progress=False)``,
  which also records E per epoch and checks that it stays finite.

Each (system, example, dtype) runs in a process of its own, because Numba's OpenMP
threads keep spinning after a parallel region and slow BLAS in the same process. In each
process a short warm-up run (a few steps from a copy of the start: compilation, Numba's
cache load, JAX's trace and XLA compile, torch's first calls) is timed on its own as
"first" and left out; then the full run is timed once. For JAX the number of steps is a
traced argument, so the warm-up compiles the very program that the full run executes.

Every system's final parameters are converted to float64 and its final E and (digits)
test accuracy computed the same way, with loopbp's einsum reference in float64. The
table gives their relative differences from the NumPy system's, which show that the
systems trained the same thing; the last line of each table is loopbp's speed against
the fastest of NumPy, PyTorch and JAX (above 1: loopbp is faster).

PyTorch and JAX are optional: a system that is not installed is left out of the table.
"""

import argparse
import datetime
import inspect
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from peers import _vector_path  # noqa: E402  (benchmarks/peers.py: the header's vector path)

SYSTEMS = ["numpy", "torch", "jax", "loopbp"]
PEERS = ["numpy", "torch", "jax"]
EXAMPLES = ["sine", "digits"]
#: Steps of the untimed-in-the-table warm-up run ("first").
WARMUP_STEPS = 10


# --- the examples, as loopbp.examples builds them ---------------------------------------


def _defaults(function):
    """The keyword defaults of one of loopbp.examples' training functions."""
    return {
        name: p.default
        for name, p in inspect.signature(function).parameters.items()
        if p.default is not inspect.Parameter.empty
    }


def example(name):
    """The example's data, sizes, activations, learning rate, steps and seed.

    Returns a dict: X, Y (float64, one sample per column), X_test and labels_test (digits
    only, else None), sizes, activations, learning_rate, steps and seed, each as
    ``loopbp.examples.train_<name>`` takes it.
    """
    from loopbp import examples

    # Both examples' bodies use sigmoid hidden layers and an identity output.
    activations = ("sigmoid", "identity")
    if name == "sine":
        defaults = _defaults(examples.train_sine)
        X, Y = examples.sine_data()
        X_test = labels_test = None
        sizes = tuple(examples.SINE_SIZES)
    elif name == "digits":
        defaults = _defaults(examples.train_digits)
        X, Y, X_test, labels_test = examples.digits_data(defaults["seed"])
        sizes = (64, defaults["hidden"], 10)
    else:
        raise ValueError(f"example must be one of {', '.join(EXAMPLES)}, got {name!r}")
    return {
        "X": X,
        "Y": Y,
        "X_test": X_test,
        "labels_test": labels_test,
        "sizes": sizes,
        "activations": activations,
        "learning_rate": defaults["learning_rate"],
        "steps": defaults["epochs"],
        "seed": defaults["seed"],
    }


def start(case, dtype):
    """Copies of the W and b of the example's seeded Network, in `dtype`."""
    import loopbp

    net = loopbp.Network(case["sizes"], case["activations"], dtype=np.dtype(dtype), seed=case["seed"])
    return [w.copy() for w in net.W], [v.copy() for v in net.b]


# --- the systems: each a function train(W, b, steps) -> final (W, b) as NumPy ---------------


def _numpy_trainer(X, Y, acts, alpha):
    m = X.shape[1]

    def train(W, b, steps):
        W = [w.copy() for w in W]
        b = [v.copy() for v in b]
        L = len(W)
        for _ in range(steps):
            A = [X]
            for w, v, g in zip(W, b, acts):
                Z = w @ A[-1] + v[:, None]
                if g == "sigmoid":
                    # exp(-Z) overflows to inf for very negative Z, and 1 / inf is the right 0.
                    with np.errstate(over="ignore"):
                        Z = 1 / (1 + np.exp(-Z))
                elif g != "identity":
                    raise ValueError(f"the NumPy loop knows sigmoid and identity only, got {g!r}")
                A.append(Z)
            dA = (A[L] - Y) / m
            for l in range(L, 0, -1):
                dZ = dA * (A[l] * (1 - A[l])) if acts[l - 1] == "sigmoid" else dA
                if l > 1:
                    dA = W[l - 1].T @ dZ
                W[l - 1] -= alpha * (dZ @ A[l - 1].T)
                b[l - 1] -= alpha * dZ.sum(axis=1)
        return W, b

    return train


def _torch_trainer(X, Y, acts, alpha):
    import torch

    functions = {"identity": lambda z: z, "sigmoid": torch.sigmoid, "relu": torch.relu, "tanh": torch.tanh}
    Xt, Yt = torch.from_numpy(X), torch.from_numpy(Y)
    m = X.shape[1]

    def train(W, b, steps):
        Wt = [torch.from_numpy(w.copy()).requires_grad_() for w in W]
        bt = [torch.from_numpy(v.copy()).requires_grad_() for v in b]
        optimizer = torch.optim.SGD(Wt + bt, lr=alpha)
        for _ in range(steps):
            optimizer.zero_grad()
            A = Xt
            for w, v, g in zip(Wt, bt, acts):
                A = functions[g](w @ A + v[:, None])
            # E = 1/(2m) sum (A - Y)^2: MSELoss would divide by m n^L and drop the 1/2.
            E = ((A - Yt) ** 2).sum() / (2 * m)
            E.backward()
            optimizer.step()
        return [w.detach().numpy().copy() for w in Wt], [v.detach().numpy().copy() for v in bt]

    return train


def _jax_trainer(X, Y, acts, alpha):
    import jax

    # Before any array is made: float64 arrays need x64 mode.
    jax.config.update("jax_enable_x64", X.dtype == np.float64)
    import jax.numpy as jnp

    functions = {"identity": lambda z: z, "sigmoid": jax.nn.sigmoid, "relu": jax.nn.relu, "tanh": jnp.tanh}
    Xj, Yj = jnp.asarray(X), jnp.asarray(Y)
    m = X.shape[1]

    def error(params, X, Y):
        A = X
        for (w, v), g in zip(params, acts):
            A = functions[g](w @ A + v[:, None])
        return jnp.sum((A - Y) ** 2) / (2 * m)

    value_and_grad = jax.value_and_grad(error)

    @jax.jit
    def run(params, X, Y, steps):
        def step(_, params):
            _E, grads = value_and_grad(params, X, Y)
            return jax.tree_util.tree_map(lambda p, d: p - alpha * d, params, grads)

        return jax.lax.fori_loop(0, steps, step, params)

    def train(W, b, steps):
        params = [(jnp.asarray(w), jnp.asarray(v)) for w, v in zip(W, b)]
        # steps is traced, not static: the warm-up compiles the full run's program.
        params = jax.block_until_ready(run(params, Xj, Yj, jnp.asarray(steps, jnp.int32)))
        return [np.asarray(w) for w, _ in params], [np.asarray(v) for _, v in params]

    return train


def _loopbp_trainer(X, Y, acts, alpha):
    import loopbp

    def train(W, b, steps):
        net = loopbp.Network.from_parameters(W, b, acts)
        net.fit(X, Y, learning_rate=alpha, epochs=steps, progress=False)
        return [w.copy() for w in net.W], [v.copy() for v in net.b]

    return train


TRAINERS = {"numpy": _numpy_trainer, "torch": _torch_trainer, "jax": _jax_trainer, "loopbp": _loopbp_trainer}


# --- one process: one system, one example, one dtype -----------------------------------------


def flat(W, b):
    """W^1, b^1, ..., W^L, b^L as one float64 vector (the layout of Network.theta)."""
    return np.concatenate([np.asarray(a, np.float64).ravel() for w, v in zip(W, b) for a in (w, v)])


def worker(system, name, dtype, steps, theta_path):
    """Train `name` with `system` in this process, save the final theta, print one JSON line."""
    import loopbp

    case = example(name)
    acts = case["activations"]
    X, Y = case["X"].astype(dtype), case["Y"].astype(dtype)
    W0, b0 = start(case, dtype)
    train = TRAINERS[system](X, Y, acts, case["learning_rate"])

    warmup = min(WARMUP_STEPS, steps)
    begin = time.perf_counter()
    train(W0, b0, warmup)
    first = time.perf_counter() - begin

    begin = time.perf_counter()
    W, b = train(W0, b0, steps)
    seconds = time.perf_counter() - begin

    # The same evaluation for every system: float64 parameters, float64 data, einsum.
    W64 = [np.asarray(w, np.float64) for w in W]
    b64 = [np.asarray(v, np.float64) for v in b]
    E = loopbp.error(W64, b64, case["X"], case["Y"], acts, backend="einsum")
    accuracy = None
    if case["X_test"] is not None:
        output = loopbp.forward(W64, b64, case["X_test"], acts, backend="einsum")
        accuracy = float(np.mean(output.argmax(axis=0) == case["labels_test"]))
    np.save(theta_path, flat(W, b))
    print(
        json.dumps(
            {
                "seconds": seconds,
                "steps_per_second": steps / seconds,
                "first": first,
                "warmup_steps": warmup,
                "E": E,
                "accuracy": accuracy,
            }
        )
    )


# --- the parent: every system in turn, the tables ---------------------------------------------


def _installed(system):
    if system in ("torch", "jax"):
        import importlib.util

        return importlib.util.find_spec(system) is not None
    return True


def _steps(default, args):
    if args.steps is not None:
        return args.steps
    return max(1, round(default * args.steps_scale))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--examples", default=",".join(EXAMPLES), help="comma-separated (default: sine,digits)"
    )
    parser.add_argument("--dtypes", default="float64", help="comma-separated (default: float64)")
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument(
        "--steps", type=int, help="gradient steps for every example (default: each example's own)"
    )
    parser.add_argument(
        "--steps-scale",
        type=float,
        default=1.0,
        help="multiply each example's own steps by this, for quick checks (default: 1)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run every system this many times, in turn, and take the median of the rounds (default: 1)",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument(
        "--worker", nargs=5, metavar=("SYSTEM", "EXAMPLE", "DTYPE", "STEPS", "THETA"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.worker:
        system, name, dtype, steps, theta_path = args.worker
        worker(system, name, dtype, int(steps), theta_path)
        return 0
    if args.steps is not None and args.steps < 1:
        parser.error("--steps must be at least 1")
    if args.steps_scale <= 0:
        parser.error("--steps-scale must be positive")
    for name in args.examples.split(","):
        if name not in EXAMPLES:
            parser.error(f"--examples: unknown example {name!r}, known: {', '.join(EXAMPLES)}")
    for system in args.systems.split(","):
        if system not in SYSTEMS:
            parser.error(f"--systems: unknown system {system!r}, known: {', '.join(SYSTEMS)}")

    systems = [s for s in args.systems.split(",") if _installed(s)]
    tables = []
    with tempfile.TemporaryDirectory(prefix="train_peers-") as scratch:
        for name in args.examples.split(","):
            case = example(name)
            steps = _steps(case["steps"], args)
            for dtype in args.dtypes.split(","):
                # Rounds take the systems in turn, so that a slow spell of this shared
                # machine falls on all of them rather than on one.
                runs = {}
                for round_ in range(args.rounds):
                    for system in systems:
                        theta_path = os.path.join(scratch, f"{name}-{dtype}-{system}-{round_}.npy")
                        command = [sys.executable, __file__, "--worker", system, name, dtype, str(steps)]
                        out = subprocess.run(
                            command + [theta_path], capture_output=True, text=True, check=False
                        )
                        if out.returncode != 0:
                            print(f"{system} {name} {dtype} failed:\n{out.stderr}", file=sys.stderr)
                            continue
                        result = json.loads(out.stdout.strip().splitlines()[-1])
                        result["theta"] = np.load(theta_path)
                        runs.setdefault(system, []).append(result)
                results = {system: _median_run(rounds) for system, rounds in runs.items()}
                _compare(results)
                tables.append(
                    {"example": name, "dtype": dtype, "steps": steps, "case": case, "results": results}
                )

    if args.json:
        for table in tables:
            del table["case"]
            for result in table["results"].values():
                del result["theta"]
        print(json.dumps(tables, indent=1))
        return 0
    rounds = f", median of {args.rounds} rounds" if args.rounds > 1 else ""
    print(
        f"loopbp training peers, {datetime.date.today()}, {platform.machine()} {os.cpu_count()} cores, "
        f"{_vector_path()}, one timed run per system after a {WARMUP_STEPS}-step warm-up{rounds}, "
        "each system in its own process"
    )
    for table in tables:
        _print_table(table)
    return 0


def _median_run(results):
    # The round whose time is the median of the rounds' (the lower middle one for an
    # even count), with its first-call time, E and parameters.
    ordered = sorted(results, key=lambda r: r["seconds"])
    return ordered[(len(ordered) - 1) // 2]


def _compare(results):
    """Add each system's relative differences from the NumPy system's E and theta."""
    reference = results.get("numpy")
    for result in results.values():
        if reference is None:
            result["E_diff"] = result["theta_diff"] = None
            continue
        theta = reference["theta"]
        result["E_diff"] = abs(result["E"] - reference["E"]) / reference["E"]
        result["theta_diff"] = float(np.max(np.abs(result["theta"] - theta)) / np.max(np.abs(theta)))


def _print_table(table):
    case, results, steps = table["case"], table["results"], table["steps"]
    sizes = "-".join(str(n) for n in case["sizes"])
    own = "" if steps == case["steps"] else f" (shortened from {case['steps']})"
    print(
        f"\n{table['example']} {table['dtype']}: {sizes} {'/'.join(case['activations'])}, "
        f"m = {case['X'].shape[1]}, learning rate {case['learning_rate']}, {steps} steps{own}"
    )
    digits = case["X_test"] is not None
    header = f"{'system':<8} {'wall':>9} {'steps/s':>9} {'final E':>12}"
    if digits:
        header += f" {'test acc':>8}"
    header += f" {'E vs numpy':>10} {'theta vs numpy':>14} {'first':>9}"
    print(header)
    for system, r in results.items():
        line = f"{system:<8} {_seconds(r['seconds']):>9} {r['steps_per_second']:>9.0f} {r['E']:>12.6g}"
        if digits:
            line += f" {r['accuracy']:>8.2%}"
        line += (
            f" {_difference(r['E_diff']):>10} {_difference(r['theta_diff']):>14} {_seconds(r['first']):>9}"
        )
        print(line)
    peers = {s: r["seconds"] for s, r in results.items() if s in PEERS}
    if "loopbp" in results and peers:
        fastest = min(peers, key=peers.get)
        ratio = peers[fastest] / results["loopbp"]["seconds"]
        print(f"loopbp vs fastest peer ({fastest}): {ratio:.2f}x")


def _difference(value):
    return "n/a" if value is None else f"{value:.1e}"


def _seconds(seconds):
    return f"{seconds * 1e3:.1f}ms" if seconds < 1 else f"{seconds:.2f}s"


if __name__ == "__main__":
    sys.exit(main())
