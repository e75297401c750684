"""Train loopbp's examples with loopbp's ``Network.fit``, NumPy ``@``, PyTorch and JAX.

Usage::

    python benchmarks/train_peers.py                           # every example, float64, every system
    python benchmarks/train_peers.py --examples sine --steps 2000 --dtypes float64,float32
    python benchmarks/train_peers.py --examples digits30,mnist-batch32 --steps-scale 0.1 --rounds 3

Every system trains the same network from the same start with the same gradient-descent
steps, theta <- theta - alpha grad E, with E = 1/(2m) sum_c sum_i (A^L_ic - Y_ic)^2 over
the step's m samples. The examples, all sigmoid hidden layers and an identity output,
every system starting from a copy of the W and b of the example's seeded ``Network``:

- "sine": ``loopbp.examples.train_sine`` (1-20-1, 100 points, rate 0.1, 20,000 full-batch
  steps).
- "digits": ``train_digits`` (64-64-10, one-hot targets, 1,347 training digits, rate 0.1,
  10,000 full-batch steps).
- "digits30": the same with ``train_digits(hidden=30)``: 64-30-10.
- "mnist-batch32": an MNIST-shaped 784-128-10 network trained by mini-batch SGD, batches of
  32, on the digits upscaled to MNIST's 28 x 28 (each pixel a 3 x 3 block, the 24 x 24
  image padded by 2 on each side, as MNIST's digits sit in a 20 x 20 box of its 28 x 28),
  the digits example's split, one-hot targets and seed; rate 0.02, 100 epochs. 1,347 = 42
  x 32 + 3, so each epoch takes 43 steps, the last on 3 samples.

Mini-batches are those of ``Network.fit(..., batch_size=32)``: the samples are shuffled
at the start of each epoch and the epoch steps once per run of 32 samples in that order,
the last run smaller, each step's gradient the mean over its own samples. The peers visit
the samples in exactly loopbp's order: before the timed run (and outside it), the
harness draws every epoch's order with loopbp's own generator
(``shuffling.shuffle_state(seed)``, then ``shuffling.shuffle`` of one
``arange(m)`` epoch after epoch, a copy kept of each), as ``Network.fit`` does for a
network of that seed. Each peer gathers each batch inside its timed loop (part of any
mini-batch trainer), from a copy of X and Y made beforehand with one sample per row, so
that a batch is 32 contiguous rows (gathering 32 columns of the 784 x m X is slower); the
gathered (32, n) rows are used transposed, without a copy.

- "numpy": a plain Python loop of NumPy ``@``: forward pass, backward pass, and the
  update of every W and b, in the run's dtype; mini-batches gathered with fancy indexing.
- "torch": CPU autograd, ``E.backward()`` and ``torch.optim.SGD(lr=alpha)`` on the same
  parameters, one ``optimizer.step()`` per batch (torch's default thread count).
- "jax": the whole run in one ``jax.jit``: ``jax.lax.fori_loop`` over the steps, each a
  ``jax.grad`` of E and the update (``jax_enable_x64`` for float64 runs); for
  mini-batches ``fori_loop`` over the epochs, each a ``jax.lax.scan`` over its full
  batches (gathered inside the program from the epoch's row of the orders, which go in
  as an argument) and then one step on the smaller last batch.
- "loopbp": ``Network.fit(X, Y, learning_rate=alpha, epochs=epochs, batch_size=...,
  progress=False)`` on a ``Network`` of the example's seed holding the start, which also
  records E per epoch and checks that it stays finite.

Each (system, example, dtype) runs in a process of its own, because Numba's OpenMP
threads keep spinning after a parallel region and slow BLAS in the same process. In each
process a short warm-up run (10 full-batch steps or 1 epoch of mini-batches, from a copy
of the start: compilation, Numba's cache load, JAX's trace and XLA compile, torch's first
calls) is timed on its own as "first" and left out; then the full run is timed once. For
JAX the number of steps (epochs) is a traced argument, and the warm-up is given the full
run's orders, so the warm-up compiles the very program that the full run executes.

Every system's final parameters are converted to float64 and its final E (over the whole
training set) and test accuracy (the digits examples) computed the same way, with loopbp's
einsum reference in float64. The table gives their relative differences from the NumPy
system's, which show that the systems trained the same thing, in the same order (a float64
table then says whether every final E is within 1e-8 of NumPy's, relative); the last
line of each table is loopbp's speed against the fastest of NumPy, PyTorch and JAX (above
1: loopbp is faster).

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
EXAMPLES = ["sine", "digits", "digits30", "mnist-batch32"]
#: Steps of the untimed-in-the-table warm-up run ("first"), full batch.
WARMUP_STEPS = 10
#: Epochs of the warm-up run with mini-batches (each epoch is many steps).
WARMUP_EPOCHS = 1
#: float64 runs: how close (relative) every system's final E should be to NumPy's.
E_AGREEMENT = 1e-8
#: "mnist-batch32": the network, the mini-batch size, the learning rate and the epochs.
MNIST_SIZES = (784, 128, 10)
MNIST_BATCH = 32
MNIST_LEARNING_RATE = 0.02
MNIST_EPOCHS = 100


# --- the examples, as loopbp.examples builds them ---------------------------------------


def _defaults(function):
    """The keyword defaults of one of loopbp.examples' training functions."""
    return {
        name: p.default
        for name, p in inspect.signature(function).parameters.items()
        if p.default is not inspect.Parameter.empty
    }


def upscale(X):
    """8 x 8 digits (64 x m, one per column) as MNIST-sized 28 x 28 images (784 x m).

    Each pixel becomes a 3 x 3 block (24 x 24), padded with 2 zero pixels on each side.
    """
    images = X.T.reshape(-1, 8, 8)
    images = np.kron(images, np.ones((1, 3, 3)))
    images = np.pad(images, ((0, 0), (2, 2), (2, 2)))
    return np.ascontiguousarray(images.reshape(len(images), 28 * 28).T)


def example(name):
    """The example's data, sizes, activations, learning rate, epochs, batch size and seed.

    Returns a dict: X, Y (float64, one sample per column), X_test and labels_test (digits
    examples only, else None), sizes, activations, learning_rate, steps (epochs: for a full
    batch, one step each), batch_size (None: full batch) and seed, each as
    ``loopbp.examples.train_<name>`` takes it.
    """
    from loopbp import examples

    # Every example's body uses sigmoid hidden layers and an identity output.
    activations = ("sigmoid", "identity")
    batch_size = None
    if name == "sine":
        defaults = _defaults(examples.train_sine)
        X, Y = examples.sine_data()
        X_test = labels_test = None
        sizes = tuple(examples.SINE_SIZES)
    elif name in ("digits", "digits30"):
        defaults = _defaults(examples.train_digits)
        if name == "digits30":
            defaults["hidden"] = 30
        X, Y, X_test, labels_test = examples.digits_data(defaults["seed"])
        sizes = (64, defaults["hidden"], 10)
    elif name == "mnist-batch32":
        defaults = _defaults(examples.train_digits)
        defaults.update(learning_rate=MNIST_LEARNING_RATE, epochs=MNIST_EPOCHS)
        X, Y, X_test, labels_test = examples.digits_data(defaults["seed"])
        X, X_test = upscale(X), upscale(X_test)
        sizes = MNIST_SIZES
        batch_size = MNIST_BATCH
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
        "batch_size": batch_size,
        "seed": defaults["seed"],
    }


def start(case, dtype):
    """Copies of the W and b of the example's seeded Network, in `dtype`."""
    import loopbp

    net = loopbp.Network(case["sizes"], case["activations"], dtype=np.dtype(dtype), seed=case["seed"])
    return [w.copy() for w in net.W], [v.copy() for v in net.b]


def batch_orders(seed, m, epochs):
    """The (epochs, m) sample orders of ``Network.fit``'s mini-batch epochs, for a network of `seed`.

    loopbp's own generator, as ``training.Trainer`` drives it: seeded once per fit from
    the network's seed, then one Fisher-Yates shuffle of the same order array per epoch.
    """
    from loopbp import shuffling

    state = shuffling.shuffle_state(seed)
    order = np.arange(m, dtype=np.int64)
    orders = np.empty((epochs, m), np.int64)
    for epoch in range(epochs):
        shuffling.shuffle(order, state)
        orders[epoch] = order
    return orders


def _batches(m, batch_size):
    """The (start, stop) of each batch of an epoch: runs of batch_size, the last smaller."""
    return [(start, min(start + batch_size, m)) for start in range(0, m, batch_size)]


# --- the systems: each a function train(W, b, steps, orders) -> final (W, b) as NumPy ---------
#
# `steps` is the number of epochs (full batch: one step each); `orders` is None for a full
# batch, else batch_orders(...) of at least `steps` rows, row k the order of epoch k.


def _numpy_trainer(X, Y, acts, alpha, batch_size, seed):
    m = X.shape[1]
    L = len(acts)
    for g in acts:
        if g not in ("sigmoid", "identity"):
            raise ValueError(f"the NumPy loop knows sigmoid and identity only, got {g!r}")
    # One sample per row, so that a batch is a gather of contiguous rows.
    Xs, Ys = np.ascontiguousarray(X.T), np.ascontiguousarray(Y.T)

    def step(W, b, X, Y):
        n = X.shape[1]
        A = [X]
        for w, v, g in zip(W, b, acts):
            Z = w @ A[-1] + v[:, None]
            if g == "sigmoid":
                # exp(-Z) overflows to inf for very negative Z, and 1 / inf is the right 0.
                with np.errstate(over="ignore"):
                    Z = 1 / (1 + np.exp(-Z))
            A.append(Z)
        dA = (A[L] - Y) / n
        for l in range(L, 0, -1):
            dZ = dA * (A[l] * (1 - A[l])) if acts[l - 1] == "sigmoid" else dA
            if l > 1:
                dA = W[l - 1].T @ dZ
            W[l - 1] -= alpha * (dZ @ A[l - 1].T)
            b[l - 1] -= alpha * dZ.sum(axis=1)

    def train(W, b, steps, orders):
        W = [w.copy() for w in W]
        b = [v.copy() for v in b]
        if orders is None:
            for _ in range(steps):
                step(W, b, X, Y)
            return W, b
        batches = _batches(m, batch_size)
        for epoch in range(steps):
            order = orders[epoch]
            for start, stop in batches:
                rows = order[start:stop]
                step(W, b, Xs[rows].T, Ys[rows].T)
        return W, b

    return train


def _torch_trainer(X, Y, acts, alpha, batch_size, seed):
    import torch

    from loopbp.compare import torch_activations

    functions = torch_activations()
    Xt, Yt = torch.from_numpy(X), torch.from_numpy(Y)
    # One sample per row, so that a batch is a gather of contiguous rows.
    Xs, Ys = torch.from_numpy(np.ascontiguousarray(X.T)), torch.from_numpy(np.ascontiguousarray(Y.T))
    m = X.shape[1]

    def error(Wt, bt, X, Y):
        A = X
        for w, v, g in zip(Wt, bt, acts):
            A = functions[g](w @ A + v[:, None])
        # E = 1/(2m) sum (A - Y)^2: MSELoss would divide by m n^L and drop the 1/2.
        return ((A - Y) ** 2).sum() / (2 * X.shape[1])

    def train(W, b, steps, orders):
        Wt = [torch.from_numpy(w.copy()).requires_grad_() for w in W]
        bt = [torch.from_numpy(v.copy()).requires_grad_() for v in b]
        optimizer = torch.optim.SGD(Wt + bt, lr=alpha)
        if orders is None:
            for _ in range(steps):
                optimizer.zero_grad()
                error(Wt, bt, Xt, Yt).backward()
                optimizer.step()
        else:
            orders = torch.from_numpy(orders)  # no copy
            batches = _batches(m, batch_size)
            for epoch in range(steps):
                order = orders[epoch]
                for start, stop in batches:
                    rows = order[start:stop]
                    optimizer.zero_grad()
                    error(Wt, bt, Xs[rows].T, Ys[rows].T).backward()
                    optimizer.step()
        return [w.detach().numpy().copy() for w in Wt], [v.detach().numpy().copy() for v in bt]

    return train


def _jax_trainer(X, Y, acts, alpha, batch_size, seed):
    import jax

    # Before any array is made: float64 arrays need x64 mode.
    jax.config.update("jax_enable_x64", X.dtype == np.float64)
    import jax.numpy as jnp

    from loopbp.compare import jax_activations

    functions = jax_activations()
    Xj, Yj = jnp.asarray(X), jnp.asarray(Y)
    # One sample per row, so that a batch is a gather of contiguous rows.
    Xs, Ys = jnp.asarray(np.ascontiguousarray(X.T)), jnp.asarray(np.ascontiguousarray(Y.T))
    m = X.shape[1]

    def error(params, X, Y):
        A = X
        for (w, v), g in zip(params, acts):
            A = functions[g](w @ A + v[:, None])
        # The batch's own m: a static shape.
        return jnp.sum((A - Y) ** 2) / (2 * X.shape[1])

    grad = jax.grad(error)

    def update(params, X, Y):
        return jax.tree_util.tree_map(lambda p, d: p - alpha * d, params, grad(params, X, Y))

    @jax.jit
    def run(params, X, Y, steps):
        return jax.lax.fori_loop(0, steps, lambda _, params: update(params, X, Y), params)

    # Mini-batches: the epoch's full batches, then the smaller last one (if any).
    full = m // batch_size * batch_size if batch_size else m

    def batch_step(params, rows):
        return update(params, Xs[rows].T, Ys[rows].T), None

    def epoch_step(epoch, params, orders):
        order = orders[epoch]
        params, _ = jax.lax.scan(batch_step, params, order[:full].reshape(-1, batch_size))
        if full < m:
            params, _ = batch_step(params, order[full:])
        return params

    @jax.jit
    def run_batches(params, orders, steps):
        return jax.lax.fori_loop(0, steps, lambda epoch, params: epoch_step(epoch, params, orders), params)

    def train(W, b, steps, orders):
        params = [(jnp.asarray(w), jnp.asarray(v)) for w, v in zip(W, b)]
        # steps is traced, not static, and the orders are the full run's: the warm-up
        # compiles the full run's program.
        steps = jnp.asarray(steps, jnp.int32)
        if orders is None:
            params = run(params, Xj, Yj, steps)
        else:
            params = run_batches(params, jnp.asarray(orders), steps)
        params = jax.block_until_ready(params)
        return [np.asarray(w) for w, _ in params], [np.asarray(v) for _, v in params]

    return train


def _loopbp_trainer(X, Y, acts, alpha, batch_size, seed):
    import loopbp

    def train(W, b, steps, orders):
        # A network of the example's seed, which seeds fit's shuffles (batch_orders draws
        # the same orders for the peers), holding the start.
        sizes = [W[0].shape[1]] + [w.shape[0] for w in W]
        net = loopbp.Network(sizes, acts, dtype=X.dtype, seed=seed)
        for target, source in zip(net.W + net.b, W + b):
            target[...] = source
        net.fit(X, Y, learning_rate=alpha, epochs=steps, batch_size=batch_size, progress=False)
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
    acts, batch_size = case["activations"], case["batch_size"]
    X, Y = case["X"].astype(dtype), case["Y"].astype(dtype)
    m = X.shape[1]
    W0, b0 = start(case, dtype)
    train = TRAINERS[system](X, Y, acts, case["learning_rate"], batch_size, case["seed"])
    # Every epoch's sample order, drawn before (and not in) the timed runs: the warm-up
    # takes the first epochs' orders, the full run all of them, as each fit restarts
    # loopbp's generator from the network's seed.
    orders = batch_orders(case["seed"], m, steps) if batch_size else None

    warmup = min(WARMUP_EPOCHS if batch_size else WARMUP_STEPS, steps)
    begin = time.perf_counter()
    train(W0, b0, warmup, orders)
    first = time.perf_counter() - begin

    begin = time.perf_counter()
    W, b = train(W0, b0, steps, orders)
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
    steps_per_epoch = len(_batches(m, batch_size)) if batch_size else 1
    print(
        json.dumps(
            {
                "seconds": seconds,
                "epochs_per_second": steps / seconds,
                "steps_per_second": steps * steps_per_epoch / seconds,
                "first": first,
                "warmup_epochs": warmup,
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
        "--examples",
        default=",".join(EXAMPLES),
        help=f"comma-separated (default: {','.join(EXAMPLES)})",
    )
    parser.add_argument("--dtypes", default="float64", help="comma-separated (default: float64)")
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument(
        "--steps",
        type=int,
        help="epochs (full batch: gradient steps) for every example (default: each example's own)",
    )
    parser.add_argument(
        "--steps-scale",
        type=float,
        default=1.0,
        help="multiply each example's own epochs by this, for quick checks (default: 1)",
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
                    {
                        "example": name,
                        "dtype": dtype,
                        "steps": steps,
                        "batch_size": case["batch_size"],
                        "case": case,
                        "results": results,
                    }
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
        f"{_vector_path()}, one timed run per system after a {WARMUP_STEPS}-step warm-up "
        f"({WARMUP_EPOCHS}-epoch with mini-batches){rounds}, "
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
    own = "" if steps == case["steps"] else f" (changed from {case['steps']})"
    m, batch_size = case["X"].shape[1], case["batch_size"]
    if batch_size:
        batches = len(_batches(m, batch_size))
        last = m - (batches - 1) * batch_size
        run = f"{steps} epochs{own} of {batches} mini-batches of {batch_size} (the last of {last})"
    else:
        run = f"{steps} full-batch steps{own}"
    print(
        f"\n{table['example']} {table['dtype']}: {sizes} {'/'.join(case['activations'])}, "
        f"m = {m}, learning rate {case['learning_rate']}, {run}"
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
    if table["dtype"] == "float64" and "numpy" in results:
        apart = {s: r["E_diff"] for s, r in results.items() if not r["E_diff"] <= E_AGREEMENT}
        verdict = (
            "every system" if not apart else "not " + ", ".join(f"{s} ({d:.1e})" for s, d in apart.items())
        )
        print(f"final E within {E_AGREEMENT:.0e} (relative) of numpy's: {verdict}")


def _difference(value):
    return "n/a" if value is None else f"{value:.1e}"


def _seconds(seconds):
    return f"{seconds * 1e3:.1f}ms" if seconds < 1 else f"{seconds:.2f}s"


if __name__ == "__main__":
    sys.exit(main())
