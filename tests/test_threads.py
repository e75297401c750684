"""Determinism: 1 thread and N threads, and run after run, give bitwise equal results."""

import os
import subprocess
import sys
import textwrap

import numba
import numpy as np
import pytest
from problems import activations_for, make_problem, needs_jit

import loopbp

N_THREADS = numba.config.NUMBA_NUM_THREADS

CASES = [
    ((64, 128, 128, 10), 300, "series"),
    ((13, 37, 29, 7), 999, "cycle"),
    ((5, 3, 7, 2, 9, 4, 3), 17, "relu"),
]
CASE_IDS = ["-".join(map(str, sizes)) for sizes, _, _ in CASES]


def _run(W, b, X, Y, acts, threads):
    previous = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        E, dW, db = loopbp.gradient(W, b, X, Y, acts)
        A = loopbp.forward(W, b, X, acts)
    finally:
        numba.set_num_threads(previous)
    return E, dW, db, A


def _assert_bitwise_equal(first, second):
    E1, dW1, db1, A1 = first
    E2, dW2, db2, A2 = second
    assert E1 == E2
    for x, y in zip(dW1 + db1 + [A1], dW2 + db2 + [A2]):
        assert x.tobytes() == y.tobytes()


@pytest.mark.skipif(N_THREADS < 2, reason="needs at least 2 Numba threads")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("sizes,m,pattern", CASES, ids=CASE_IDS)
def test_one_thread_equals_n_threads(sizes, m, pattern, dtype):
    W, b, X, Y, acts = make_problem(sizes, m, activations_for(pattern, len(sizes) - 1), dtype)
    _assert_bitwise_equal(_run(W, b, X, Y, acts, 1), _run(W, b, X, Y, acts, N_THREADS))


@pytest.mark.parametrize("sizes,m,pattern", CASES, ids=CASE_IDS)
def test_run_to_run_identical(sizes, m, pattern):
    W, b, X, Y, acts = make_problem(sizes, m, activations_for(pattern, len(sizes) - 1))
    _assert_bitwise_equal(_run(W, b, X, Y, acts, N_THREADS), _run(W, b, X, Y, acts, N_THREADS))


def test_both_paths_are_exercised_by_the_test_table():
    # Tiny networks run in the calling thread, larger ones in parallel regions; the
    # shapes of the agreement table cover both sides of threads.SERIAL_BELOW.
    from loopbp.cpu import threads

    assert not threads.worth_threads((2, 8, 8, 1), 100)
    assert threads.worth_threads((64, 128, 128, 10), 200)


@pytest.mark.parametrize("path", ["host", "portable"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_serial_and_parallel_kernels_are_bitwise_equal(dtype, path):
    from loopbp.cpu import kernels, packed_kernels, simd, tiled_kernels

    rng = np.random.default_rng(0)
    # m = 1100 is cut into 3 blocks for 1 thread and 4 for 2, and 61 x 1100 values of
    # dE/dZ are enough for packing with threads: both choices that threads may change.
    n_in, n, n_next, m = 37, 61, 13, 1100
    W = rng.standard_normal((n, n_in)).astype(dtype)
    b = rng.standard_normal(n).astype(dtype)
    A_prev = rng.standard_normal((n_in, m)).astype(dtype)
    W_next_T = rng.standard_normal((n, n_next)).astype(dtype)
    dZ_next = rng.standard_normal((n_next, m)).astype(dtype)
    Y = rng.standard_normal((n, m)).astype(dtype)

    threads = numba.config.NUMBA_NUM_THREADS
    tile = simd.tile(dtype) if path == "host" else None
    scratch = np.empty(tiled_kernels.scratch_length(max(n_in, n_next), threads), dtype)
    if tile is not None:
        contractions = [(n_in, m), (n_next, m), (m, n_in)]
        scratch = np.empty(packed_kernels.scratch_length(tile, threads, contractions), dtype)
        mr = tile.shape[0]
        panels = np.empty((n + mr - 1) // mr * mr * max(n_in, n_next, m), dtype)

    def run(parallel):
        A = np.empty((n, m), dtype)
        dZ = np.empty((n, m), dtype)
        dW = np.empty((n, n_in), dtype)
        db = np.empty(n, dtype)
        if tile is None:
            tiled_kernels.forward_layer(W, b, 1, A_prev, A, scratch, parallel)
            tiled_kernels.hidden_delta_to_z(W_next_T, dZ_next, 3, A, dZ, scratch, parallel)
            tiled_kernels.weight_gradient(dZ, A_prev, dW, parallel)
            kernels.bias_gradient(dZ, db, parallel)
        else:
            threads = numba.get_num_threads() if parallel else 1
            packed_kernels.forward_layer(tile, W, b, 1, A_prev, A, panels, scratch, threads)
            W_next = np.ascontiguousarray(W_next_T.T)
            packed_kernels.hidden_delta_to_z(tile, W_next, dZ_next, 3, A, dZ, panels, scratch, threads)
            packed_kernels.weight_gradient(tile, dZ, A_prev, dW, db, panels, scratch, threads)
        delta, squares = np.empty((n, m), dtype), np.empty(n)
        kernels.output_delta(A, Y, delta, squares, parallel)
        kernels.delta_to_z(2, A, delta, parallel)
        return [A, dZ, dW, delta, squares, db]

    for x, y in zip(run(True), run(False)):
        assert x.tobytes() == y.tobytes()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_plain_contractions_give_the_same_bits_with_and_without_parallel_regions(dtype):
    # The plain loop nests of the three contractions run in one thread in the first calls
    # (loopbp.cpu.serial_driver compiles them without parallel regions), and the tests
    # hold the fast kernels to that; here the same nests in parallel regions (prange over
    # i, on every Numba thread) must give the same bits.
    from loopbp.cpu import kernels

    rng = np.random.default_rng(1)
    n_in, n, m = 37, 61, 203
    W = rng.standard_normal((n, n_in)).astype(dtype)
    b = rng.standard_normal(n).astype(dtype)
    A_prev = rng.standard_normal((n_in, m)).astype(dtype)
    dZ = rng.standard_normal((n, m)).astype(dtype)
    cases = [
        (kernels.forward_layer, (W, b, 3, A_prev), np.empty((n, m), dtype)),
        (kernels.weight_gradient, (dZ, A_prev), np.empty((n, n_in), dtype)),
        (kernels.hidden_delta, (W, dZ), np.empty((n_in, m), dtype)),
    ]
    for kernel, inputs, out in cases:
        options = {
            k: v for k, v in kernel.targetoptions.items() if k not in ("cache", "nopython", "parallel")
        }
        serial = numba.njit(**options)(kernel.py_func)
        results = []
        for run in (kernel, serial):
            out[...] = np.nan
            run(*inputs, out)
            results.append(out.tobytes())
        assert results[0] == results[1], kernel.__name__


@pytest.mark.skipif(N_THREADS < 2, reason="needs at least 2 Numba threads")
@pytest.mark.parametrize("batch_size", [None, 64])
def test_fit_one_thread_equals_n_threads(batch_size):
    W, b, X, Y, acts = make_problem((64, 128, 128, 10), 300, activations_for("cycle", 3))
    results = []
    for threads in (1, N_THREADS):
        net = loopbp.Network.from_parameters(W, b, acts)
        previous = numba.get_num_threads()
        numba.set_num_threads(threads)
        try:
            history = net.fit(X, Y, learning_rate=0.05, epochs=5, batch_size=batch_size, progress=False)
        finally:
            numba.set_num_threads(previous)
        results.append((history.tobytes(), net.theta.tobytes()))
    assert results[0] == results[1]


# Several Python threads at once, each checking its results bit for bit against a
# single-threaded reference: the big network runs parallel regions, the tiny one runs
# in the calling thread, and fit updates each thread's own network.
_CONCURRENT = textwrap.dedent(
    """
    import threading, numpy as np, loopbp
    big = loopbp.Network([64, 128, 128, 10], ["sigmoid", "tanh", "identity"], seed=0)
    tiny = loopbp.Network([2, 8, 8, 1], ["sigmoid", "relu", "identity"], seed=0)
    rng = np.random.default_rng(0)
    data = {net: (rng.standard_normal((net.sizes[0], 300)), rng.standard_normal((net.sizes[-1], 300)))
            for net in (big, tiny)}
    reference = {net: net.gradient(*data[net]) for net in data}
    trained = loopbp.Network([64, 128, 128, 10], ["sigmoid", "tanh", "identity"], seed=0)
    fit_reference = trained.fit(*data[big], learning_rate=0.01, epochs=3, progress=False)
    failures = []

    def same(a, b):
        return a[0] == b[0] and all(np.array_equal(x, y) for x, y in zip(a[1] + a[2], b[1] + b[2]))

    def work(k):
        for _ in range(15):
            net = (big, tiny)[k % 2]
            X, Y = data[net]
            if not same(net.gradient(X, Y), reference[net]):
                failures.append(("method", k))
            if not same(loopbp.gradient(list(net.W), list(net.b), X, Y, net.activations), reference[net]):
                failures.append(("function", k))
        own = loopbp.Network([64, 128, 128, 10], ["sigmoid", "tanh", "identity"], seed=0)
        history = own.fit(*data[big], learning_rate=0.01, epochs=3, progress=False)
        if not np.array_equal(history, fit_reference):
            failures.append(("fit", k))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(failures)
    """
)


@needs_jit
@pytest.mark.parametrize("layer", [None, "workqueue"])
def test_concurrent_python_threads(layer):
    # Numba's workqueue layer aborts the whole process when two threads start parallel
    # regions at once; loopbp's lock (loopbp.cpu.threads) must prevent that.
    env = dict(os.environ)
    if layer is not None:
        env["NUMBA_THREADING_LAYER"] = layer
    out = subprocess.run(
        [sys.executable, "-c", _CONCURRENT], capture_output=True, text=True, env=env, timeout=300, check=False
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"


@needs_jit
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_can_compute():
    # GNU OpenMP cannot start threads in a child forked after it started (Numba kills
    # such a child); loopbp runs the child's calls in the calling thread instead.
    script = textwrap.dedent(
        """
        import os, numpy as np, loopbp
        net = loopbp.Network([64, 128, 128, 10], ["sigmoid", "sigmoid", "identity"], seed=0)
        X = np.random.default_rng(0).standard_normal((64, 500))
        Y = np.zeros((10, 500))
        E, dW, db = net.gradient(X, Y)
        pid = os.fork()
        if pid == 0:
            E2, dW2, db2 = net.gradient(X, Y)
            history = net.fit(X, Y, learning_rate=0.01, epochs=2, progress=False)
            same = E2 == E and all(np.array_equal(a, b) for a, b in zip(dW + db, dW2 + db2))
            os._exit(0 if same and np.all(np.isfinite(history)) else 3)
        print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "0", out.stderr[-2000:]


def test_run_locks_only_parallel_calls(monkeypatch):
    from loopbp.cpu import threads

    events = []

    class RecordingLock:
        def __enter__(self):
            events.append("lock")

        def __exit__(self, *exc):
            events.append("unlock")

    monkeypatch.setattr(threads, "_lock", RecordingLock())
    assert threads.run(lambda x, threads: (x, threads), 1, parallel=False) == (1, 1)
    assert events == []
    assert threads.run(lambda x, threads: (x, threads), 2, parallel=True) == (
        2,
        numba.get_num_threads(),
    )
    assert events == ["lock", "unlock"]


@pytest.mark.parametrize("layer,serial", [("omp", True), ("tbb", False), ("workqueue", False), (None, False)])
def test_after_fork_only_openmp_turns_threads_off(monkeypatch, layer, serial):
    from loopbp.cpu import threads

    def threading_layer():
        if layer is None:
            raise ValueError("no parallel region has run yet")
        return layer

    monkeypatch.setattr(threads, "_serial_only", False)
    monkeypatch.setattr(threads, "_lock", threads._lock)
    monkeypatch.setattr(threads.numba, "threading_layer", threading_layer)
    threads.after_fork_in_child()
    assert threads.threads_allowed() is not serial
    assert threads.worth_threads((64, 128, 128, 10), 1000) is not serial


def test_too_short_scratch_is_an_error():
    from loopbp.cpu import packed_kernels, simd, tiled_kernels

    W, A_prev = np.ones((3, 5)), np.ones((5, 40))
    with pytest.raises(ValueError, match="scratch is too short"):
        tiled_kernels.forward_layer(W, np.zeros(3), 0, A_prev, np.empty((3, 40)), np.empty(10), False)
    # The packed kernels' buffer lookup itself: a whole packed kernel would compile for seconds.
    tile = simd.tile(np.float64, "avx2")
    scratch = np.empty(packed_kernels.scratch_length(tile, 2, [(5, 40)]))
    assert packed_kernels.thread_buffer(tile, scratch, 1, 5, 40).shape[0] == scratch.shape[0] // 2
    with pytest.raises(ValueError, match="scratch is too short"):
        packed_kernels.thread_buffer(tile, scratch, 2, 5, 40)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_loops_that_llvm_vectorises_use_the_full_width(dtype):
    # simd.full_width: sigmoid, and the narrow kernels, in 512-bit registers on AVX-512
    # CPUs, where LLVM's own tuning would keep them to 256 bits.
    from loopbp.activations import activation_code
    from loopbp.cpu import narrow_kernels, simd
    from loopbp.cpu.activation_rows import activate_row

    if simd.host_path() != "avx512":
        pytest.skip("this CPU has no AVX-512")

    def fresh(kernel):
        # The same source and options, compiled here: Numba cannot show cached code.
        options = {k: v for k, v in kernel.targetoptions.items() if k not in ("cache", "nopython")}
        return numba.njit(**options)(kernel.py_func)

    sigmoid, forward_block = fresh(activate_row), fresh(narrow_kernels.forward_block)
    sigmoid(activation_code("sigmoid"), np.zeros(100, dtype))
    W, A = np.ones((4, 8), dtype), np.ones((8, 100), dtype)
    forward_block(W, np.zeros(4, dtype), 0, A, np.empty((4, 100), dtype), 0, 100)
    for kernel in (sigmoid, forward_block):
        asm = "\n".join(kernel.inspect_asm().values())
        assert "%zmm" in asm, kernel.__name__


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("path", ["avx512", "avx2"])
def test_the_micro_kernel_is_pure_broadcast_and_fma(path, dtype):
    # What the register block must compile to, read off the machine code: per step of
    # k, MR x VECTORS vector FMAs of the path's width, and no shuffles, extracts,
    # gathers or stack spills in the loop. Only where the CPU has the path's vectors:
    # elsewhere LLVM splits them, which is correct (the agreement tests) but not this code.
    import re

    from loopbp.cpu import simd

    if simd.PATHS.index(simd.host_path()) > simd.PATHS.index(path):
        pytest.skip(f"this CPU has no {path}")
    tile = simd.tile(dtype, path)
    mr, nr = tile.shape

    @numba.njit
    def block(tile, P, Q, C):
        simd.register_block(tile, 100, P, 0, Q, 0, C, 0, 0, mr, nr, True)

    block(tile, np.ones(100 * mr, dtype), np.ones(100 * nr, dtype), np.zeros((mr, nr), dtype))
    asm = block.inspect_asm(block.signatures[0])
    # The loop over k: from the label before the first FMA to the branch back to it.
    label = re.findall(r"^(\.LBB\w+):", asm[: asm.index("vfmadd")], re.MULTILINE)[-1]
    start = asm.index(label + ":")
    body = asm[start : asm.index(label, start + len(label) + 1)]
    register = "zmm" if path == "avx512" else "ymm"
    assert len(re.findall(rf"vfmadd\w+\s+[^\n]*%{register}", body)) == mr * simd.VECTORS
    assert not re.search(r"vperm|vshuf|vextract|vinsert|gather|\(%rsp\)", body)


def test_the_vector_path_follows_the_cpu_and_can_be_narrowed(monkeypatch):
    from loopbp.cpu import simd

    assert simd.host_path({"avx512f": True, "avx2": True, "fma": True}) == "avx512"
    assert simd.host_path({"avx512f": False, "avx2": True, "fma": True}) == "avx2"
    assert simd.host_path({"avx2": True, "fma": False}) == "portable"
    assert simd.host_path({"neon": True}) == "portable"
    monkeypatch.setattr(simd, "host_path", lambda: "avx2")
    for asked, path in [("", "avx2"), ("AVX2", "avx2"), ("portable", "portable")]:
        monkeypatch.setenv("LOOPBP_SIMD", asked)
        assert simd.path_from_environment() == path
    monkeypatch.setenv("LOOPBP_SIMD", "avx512")
    with pytest.raises(ValueError, match="wider than this CPU supports"):
        simd.path_from_environment()
    monkeypatch.setenv("LOOPBP_SIMD", "sse")
    with pytest.raises(ValueError, match="LOOPBP_SIMD must be one of avx512, avx2, portable"):
        simd.path_from_environment()
    with pytest.raises(ValueError, match="path must be one of"):
        simd.tile(np.float64, "neon")
    assert simd.tile(np.float32, "avx512").shape == (14, 32)
    assert simd.tile(np.float64, "avx2").shape == (6, 8)
    assert simd.tile(np.float64, "portable") is None
