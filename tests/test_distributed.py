"""Data-parallel gradients and training on Dask (``loopbp.distributed``), on a local cluster.

One module-scoped cluster of 2 single-threaded worker processes serves every test; its
workers load the kernels that the rest of the suite compiled into Numba's cache.
"""

import os
import signal
import sys
import time

import numpy as np
import pytest
from problems import make_problem

import loopbp
from loopbp import distributed as chunked
from loopbp.agreement import TOLERANCE, gradient_difference
from loopbp.problems import seeded_problem

da = pytest.importorskip("dask.array", reason='the distributed extra: pip install "loopbp[distributed]"')
distributed = pytest.importorskip("distributed")

SIZES, M = (13, 37, 29, 7), 999
ACTS = ["tanh", "sigmoid", "identity"]


def _cluster(workers, numba_threads, threads_per_worker=1):
    cluster = distributed.LocalCluster(
        n_workers=workers,
        threads_per_worker=threads_per_worker,
        processes=True,
        dashboard_address=":0",
        env={"NUMBA_NUM_THREADS": str(numba_threads)},
    )
    return cluster, distributed.Client(cluster, set_as_default=False)


@pytest.fixture(scope="module")
def client():
    cluster, client = _cluster(2, 1)
    yield client
    client.close()
    cluster.close()


def _chunked(X, Y, columns):
    return da.from_array(X, chunks=(X.shape[0], columns)), da.from_array(Y, chunks=(Y.shape[0], columns))


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("columns", [333, (400, 100, 499), 1], ids=["even", "uneven", "m=1"])
def test_chunked_gradient_agrees_with_one_process(client, dtype, columns):
    m = 40 if columns == 1 else M  # one task per sample: keep them few
    W, b, X, Y, acts = make_problem(SIZES, m, ACTS, dtype)
    Xd, Yd = _chunked(X, Y, columns)
    result = loopbp.gradient(W, b, Xd, Yd, acts, scheduler=client)
    reference = loopbp.gradient(W, b, X, Y, acts)
    # float64: within 1e-12 relative per array; float32 within its own tolerance.
    assert gradient_difference(result, reference) <= TOLERANCE[np.dtype(dtype)]
    assert all(a.dtype == np.dtype(dtype) for a in result[1] + result[2])


def test_chunked_gradient_is_bitwise_the_same_whatever_the_workers_and_threads(client):
    W, b, X, Y, acts = make_problem(SIZES, M, ACTS)
    Xd, Yd = _chunked(X, Y, 250)  # chunks large enough for Numba's threads to run
    E, dW, db = loopbp.gradient(W, b, Xd, Yd, acts, scheduler=client)  # 2 workers of 1 thread
    # One worker with two Numba threads; one worker with two threads of its own.
    for workers, numba_threads, threads_per_worker in ((1, 2, 1), (1, 2, 2)):
        cluster, other = _cluster(workers, numba_threads, threads_per_worker)
        try:
            E_o, dW_o, db_o = loopbp.gradient(W, b, Xd, Yd, acts, scheduler=other)
        finally:
            other.close()
            cluster.close()
        assert E_o == E
        assert all(np.array_equal(x, y) for x, y in zip(dW_o + db_o, dW + db))


def test_network_gradient_and_fit_on_chunked_data(client):
    net, X, Y = seeded_problem(SIZES, M)
    Xd, Yd = _chunked(X, Y, 300)
    assert gradient_difference(net.gradient(Xd, Yd, scheduler=client), net.gradient(X, Y)) <= 1e-12
    # Full batch: the same steps as in one process, to rounding.
    a = loopbp.Network.from_parameters(net.W, net.b, net.activations)
    b = loopbp.Network.from_parameters(net.W, net.b, net.activations)
    ha = a.fit(X, Y, learning_rate=0.1, epochs=4, progress=False)
    hb = b.fit(Xd, Yd, learning_rate=0.1, epochs=4, progress=False, scheduler=client)
    np.testing.assert_allclose(hb, ha, rtol=1e-12)
    np.testing.assert_allclose(b.theta, a.theta, rtol=1e-10, atol=1e-14)
    # Mini-batches of whole chunks: reproducible from the network's seed.
    runs = []
    for _ in range(2):
        c = loopbp.Network(SIZES, ["sigmoid", "sigmoid", "identity"], seed=5)
        runs.append(
            (c.fit(Xd, Yd, learning_rate=0.1, epochs=2, batch_size=500, progress=False, scheduler=client), c)
        )
    (h1, c1), (h2, c2) = runs
    assert np.array_equal(h1, h2) and np.array_equal(c1.theta, c2.theta)


def test_divergence_on_chunked_data(client):
    net, X, Y = seeded_problem((3, 4, 2), 60)
    Xd, Yd = _chunked(X, Y, 30)
    with pytest.raises(loopbp.TrainingDiverged, match="diverged in epoch"):
        net.fit(Xd, Yd, learning_rate=1e8, epochs=200, progress=False, scheduler=client)
    assert np.all(np.isfinite(net.theta))


def test_zarr_store_is_read_chunk_by_chunk(client, tmp_path):
    zarr = pytest.importorskip("zarr")
    W, b, X, Y, acts = make_problem(SIZES, M, ACTS)
    for name, a in (("X", X), ("Y", Y)):
        store = zarr.open_array(
            str(tmp_path / f"{name}.zarr"), mode="w", shape=a.shape, chunks=(a.shape[0], 200), dtype=a.dtype
        )
        store[...] = a
    Xd, Yd = da.from_zarr(str(tmp_path / "X.zarr")), da.from_zarr(str(tmp_path / "Y.zarr"))
    assert Xd.chunks[1] == (200, 200, 200, 200, 199)
    result = loopbp.gradient(W, b, Xd, Yd, acts, scheduler=client)
    assert gradient_difference(result, loopbp.gradient(W, b, X, Y, acts)) <= 1e-12


def _bad(X, Y):
    # (X, Y, error, part of the message)
    d = da.from_array
    return [
        (
            d(X, chunks=(5, 300)),
            d(Y, chunks=(7, 300)),
            ValueError,
            "X must be chunked along the samples only",
        ),
        (
            d(X, chunks=(13, 300)),
            d(Y, chunks=(7, 200)),
            ValueError,
            "Y must be chunked along the samples as X",
        ),
        (d(X.astype(complex), chunks=(13, 300)), d(Y, chunks=(7, 300)), TypeError, "X must have dtype"),
        (
            d(X.astype(np.float32), chunks=(13, 300)),
            d(Y, chunks=(7, 300)),
            TypeError,
            "X must have the param",
        ),
        (d(X, chunks=(13, 300)), Y, TypeError, "X and Y must both be dask arrays"),
        (
            d(X, chunks=(13, 300)),
            d(Y[:3], chunks=(3, 300)),
            ValueError,
            r"Y must have shape \(n\^L, m\) = \(7, 999\)",
        ),
        (d(X[:5], chunks=(5, 300)), d(Y, chunks=(7, 300)), ValueError, r"X must have n\^0 = 13 rows"),
    ]


def test_bad_chunked_input_gets_clear_errors(client):
    W, b, X, Y, acts = make_problem(SIZES, M, ACTS)
    for Xd, Yd, error, message in _bad(X, Y):
        with pytest.raises(error, match=message):
            loopbp.gradient(W, b, Xd, Yd, acts, scheduler=client)
    poisoned = X.copy()
    poisoned[2, 650] = np.nan  # in the third chunk of 300
    # The message of one process, and the chunk.
    with pytest.raises(ValueError, match=r"X must be finite, got nan at index \(2, 650\) \(in chunk 2\)"):
        loopbp.gradient(
            W,
            b,
            da.from_array(poisoned, chunks=(13, 300)),
            da.from_array(Y, chunks=(7, 300)),
            acts,
            scheduler=client,
        )
    with pytest.raises(ValueError, match="backend must be 'loops' for dask arrays"):
        loopbp.gradient(W, b, *_chunked(X, Y, 300), acts, backend="einsum", scheduler=client)
    # Integer data is converted, as in one process.
    Xi, Yi = (X > 0).astype(np.int64), (Y > 0).astype(np.int64)
    result = loopbp.gradient(W, b, *_chunked(Xi, Yi, 300), acts, scheduler=client)
    assert gradient_difference(result, loopbp.gradient(W, b, Xi, Yi, acts)) <= 1e-12


def test_without_dask_the_error_says_what_to_install(monkeypatch):
    for name in [n for n in sys.modules if n == "dask" or n.startswith(("dask.", "distributed"))]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "dask", None)
    with pytest.raises(ImportError, match=r'pip install "loopbp\[distributed\]"'):
        chunked.require_dask()


def test_a_worker_killed_mid_fit_changes_nothing(client):
    net, X, Y = seeded_problem(SIZES, M)
    Xd, Yd = _chunked(X, Y, 250)
    calm = loopbp.Network.from_parameters(net.W, net.b, net.activations)
    h_calm = calm.fit(Xd, Yd, learning_rate=0.1, epochs=4, progress=False, scheduler=client)
    victim = sorted(client.scheduler_info()["workers"])[0]
    pid = client.run(os.getpid, workers=[victim])[victim]

    def kill_after_epoch_1(epoch, E):
        if epoch == 1:
            os.kill(pid, signal.SIGKILL)  # its nanny starts a new worker; Dask reruns its chunks

    hit = loopbp.Network.from_parameters(net.W, net.b, net.activations)
    h_hit = hit.fit(
        Xd, Yd, learning_rate=0.1, epochs=4, progress=False, scheduler=client, callback=kill_after_epoch_1
    )
    assert victim not in client.scheduler_info()["workers"] or client.run(os.getpid)[victim] != pid
    assert np.array_equal(h_hit, h_calm) and np.array_equal(hit.theta, calm.theta)


def test_no_worker_left_is_a_clear_error_and_the_network_keeps_its_step(monkeypatch):
    monkeypatch.setattr(chunked, "WORKER_CHECK_SECONDS", 0.2)
    cluster, alone = _cluster(1, 1)
    try:
        net, X, Y = seeded_problem((3, 4, 2), 40)
        Xd, Yd = _chunked(X, Y, 20)
        net.fit(Xd, Yd, learning_rate=0.1, epochs=1, progress=False, scheduler=alone)
        before = net.theta.copy()
        cluster.scale(0)
        deadline = time.monotonic() + 30
        while alone.scheduler_info()["workers"] and time.monotonic() < deadline:
            time.sleep(0.1)
        with pytest.raises(RuntimeError, match="no Dask worker is left"):
            net.fit(Xd, Yd, learning_rate=0.1, epochs=3, progress=False, scheduler=alone)
        assert np.array_equal(net.theta, before)
    finally:
        alone.close()
        cluster.close()


def test_the_client_is_found_as_dask_users_expect(client):
    assert chunked.client_for(client) is client
    address = client.scheduler.address
    by_address = chunked.client_for(address)
    try:
        assert chunked.client_for(address) is by_address  # one connection per address
        assert by_address.scheduler.address == address
    finally:
        by_address.close()
    assert chunked.client_for(address) is not by_address  # closed: connected again
    chunked.client_for(address).close()
    with client.as_current():
        assert chunked.client_for(None) is client
    with pytest.raises(TypeError, match="scheduler must be None, 'local', a scheduler address"):
        chunked.client_for(8786)


def test_a_scheduler_with_numpy_data_is_an_error():
    W, b, X, Y, acts = make_problem((3, 4, 2), 10, ["tanh", "identity"])
    with pytest.raises(ValueError, match="scheduler applies to dask arrays X and Y"):
        loopbp.gradient(W, b, X, Y, acts, scheduler="local")
    with pytest.raises(ValueError, match="scheduler applies to dask arrays X and Y"):
        loopbp.Network([3, 4, 2], acts, seed=0).fit(X, Y, learning_rate=0.1, epochs=1, scheduler="local")


def test_the_zarr_example_and_the_command_line_on_a_cluster(client, tmp_path, capsys):
    pytest.importorskip("zarr")
    from loopbp import cli, examples

    X_path, Y_path = examples.write_regression_zarr(
        str(tmp_path), m=3000, n_inputs=6, chunk=1000, scheduler=client
    )
    X = da.from_zarr(X_path)
    assert X.shape == (6, 3000) and X.chunks[1] == (1000, 1000, 1000) and X.dtype == np.float32
    result = examples.train_from_zarr(str(tmp_path), epochs=3, scheduler=client)
    assert result.network.dtype == np.float32 and result.history[-1] < result.history[0]
    status = cli.main(
        ["train", "sine", "--epochs", "3", "--no-progress", "--scheduler", client.scheduler.address]
    )
    out = capsys.readouterr().out
    assert status == 0 and f"on the Dask scheduler {client.scheduler.address}" in out and "final E" in out


def test_the_local_cluster_starts_once_and_says_so(monkeypatch, caplog):
    # A one-worker cluster stands in for the one worker per core that loopbp starts.
    real = distributed.LocalCluster

    def small(**settings):
        return real(**{**settings, "n_workers": 1, "dashboard_address": ":0"})

    monkeypatch.setattr(distributed, "LocalCluster", small)
    chunked.close_local_cluster()
    try:
        with caplog.at_level("INFO", logger="loopbp"):
            first = chunked.client_for("local")
            assert chunked.client_for("local") is first
        started = [r for r in caplog.records if "started a local Dask cluster" in r.getMessage()]
        assert len(started) == 1
        net, X, Y = seeded_problem((3, 4, 2), 50)
        assert (
            gradient_difference(net.gradient(*_chunked(X, Y, 25), scheduler="local"), net.gradient(X, Y))
            <= 1e-12
        )
    finally:
        chunked.close_local_cluster()
