"""Time each kernel of one gradient, layer by layer: where a case's time goes.

Usage::

    python benchmarks/kernel_profile.py mnist [--dtype float32] [--threads 1] [--repeat 5]

This is a tool, not an asv benchmark (it defines none). It calls the same kernels, in
the same order and with the same buffers, as ``loopbp.passes.gradient_pass`` does, one
at a time from Python, and prints each one's median time and its GFLOP/s (for the three
contractions). The sum comes out a little above a whole gradient's time because of the
calls from Python.
"""

import argparse
import os
import statistics
import sys
import time

import numba
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402


def _median_time(call, repeat):
    call()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case", choices=list(common.CASES))
    parser.add_argument("--dtype", default="float64", choices=("float64", "float32"))
    parser.add_argument("--threads", type=int, default=numba.config.NUMBA_NUM_THREADS)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--parts",
        action="store_true",
        help="also split the packed forward pass and dE/dW of layer 1 into packing and micro-kernels",
    )
    args = parser.parse_args(argv)
    numba.set_num_threads(args.threads)
    # Imported here, not at the top: asv imports every module of benchmarks/ when it
    # runs older commits, which lack these modules.
    import loopbp
    from loopbp import kernels, packed_kernels, passes, tiled_kernels

    sizes, m = common.CASES[args.case]
    W, b, X, Y, acts = common.problem(sizes, m, args.dtype)
    net = loopbp.Network.from_parameters(W, b, acts)
    work = passes.Workspace(sizes, m, net.dtype, narrow=False)
    grad = np.empty_like(net.theta)
    parallel = passes.worth_threads(sizes, m)
    L = len(sizes) - 1
    S = net._sizes
    A = [X] + [
        passes._matrix(work.activations, passes._activation_offset(S, m, l), sizes[l], m)
        for l in range(1, L + 1)
    ]
    tile = work.tile
    threads = numba.get_num_threads() if parallel else 1
    shared = passes.shared_scratch_length(tile, S, m, True)
    panels, packing = work.scratch[:shared], work.scratch[shared:]
    packing_scratch = packing
    rows = []

    def add(name, call, flop=None):
        seconds = _median_time(call, args.repeat)
        rows.append((name, seconds, flop / seconds / 1e9 if flop else None))

    def forward(l):
        W, b, code = net.W[l - 1], net.b[l - 1], net._codes[l - 1]
        if tile is None:
            return lambda: tiled_kernels.forward_layer(W, b, code, A[l - 1], A[l], packing, parallel)
        return lambda: packed_kernels.forward_layer(
            tile, W, b, code, A[l - 1], A[l], panels, packing, threads
        )

    def weight_gradient(l, delta, dW, db):
        if tile is None:
            return lambda: (
                tiled_kernels.weight_gradient(delta, A[l - 1], dW, parallel),
                kernels.bias_gradient(delta, db, parallel),
            )
        return lambda: packed_kernels.weight_gradient(tile, delta, A[l - 1], dW, db, panels, packing, threads)

    def hidden_delta(l, delta, previous):
        W, code = net.W[l - 1], net._codes[l - 2]
        if tile is None:
            W_T = np.ascontiguousarray(W.T)
            return lambda: tiled_kernels.hidden_delta_to_z(
                W_T, delta, code, A[l - 1], previous, packing, parallel
            )
        return lambda: packed_kernels.hidden_delta_to_z(
            tile, W, delta, code, A[l - 1], previous, panels, packing, threads
        )

    for l in range(1, L + 1):
        add(f"forward l={l} ({sizes[l]}x{sizes[l - 1]})", forward(l), 2 * sizes[l] * sizes[l - 1] * m)
    deltas = [passes._matrix(work.deltas[k], 0, max(sizes[1:]), m) for k in range(2)]
    delta_L = deltas[0][: sizes[L]]
    add("dE/dA^L, E", lambda: kernels.output_delta(A[L], Y, delta_L, work.squares, parallel))
    add("dE/dZ^L = dE/dA^L g'", lambda: kernels.delta_to_z(net._codes[L - 1], A[L], delta_L, parallel))
    for l in range(L, 0, -1):
        delta = deltas[(L - l) % 2][: sizes[l]]
        dW, db = passes._weights(grad, S, l), passes._biases(grad, S, l)
        add(
            f"dE/dW^{l}, dE/db^{l} ({sizes[l]}x{sizes[l - 1]})",
            weight_gradient(l, delta, dW, db),
            2 * sizes[l] * sizes[l - 1] * m,
        )
        if l > 1:
            previous = deltas[(L - l + 1) % 2][: sizes[l - 1]]
            add(
                f"dE/dZ^{l - 1} ({sizes[l - 1]}x{sizes[l]})",
                hidden_delta(l, delta, previous),
                2 * sizes[l] * sizes[l - 1] * m,
            )
    whole = _median_time(lambda: net.gradient(X, Y), args.repeat)
    total = sum(seconds for _, seconds, _ in rows)
    try:
        peak = common.micro_kernel_peak(args.dtype, threads)
        ceiling = f"micro-kernel in L1: {peak:.1f} GFLOP/s on {threads} threads"
    except NotImplementedError as why:
        peak, ceiling = None, f"no share of peak: {why}"
    path = (
        "portable"
        if tile is None
        else f"{tile.lanes * tile.dtype.itemsize * 8}-bit vectors, tile {tile.shape}"
    )
    print(f"{args.case} {args.dtype}, {args.threads} threads, {path}, median of {args.repeat}; {ceiling}")
    for name, seconds, gflops in rows:
        rate = f"{gflops:7.1f} GFLOP/s" if gflops else ""
        if gflops and peak:
            rate += f" {100 * gflops / peak:4.0f}% of peak"
        print(f"{name:<34} {seconds * 1e3:9.3f} ms {100 * seconds / total:5.1f}%  {rate}")
    print(f"{'sum of the kernels':<34} {total * 1e3:9.3f} ms")
    rate = common.gflop(sizes, m) / whole
    share = f", {100 * rate / peak:.0f}% of peak" if peak else ""
    print(f"{'whole Network.gradient':<34} {whole * 1e3:9.3f} ms, {rate:.1f} GFLOP/s{share}")
    if args.parts and tile is not None:
        delta_1 = deltas[(L - 1) % 2][: sizes[1]]
        for name, P, Q, C in (
            ("forward l=1", net.W[0], X, A[1]),
            ("dE/dW^1", delta_1, X.T, passes._weights(grad, S, 1)),
        ):
            packing, kernels_alone = _parts(tile, P, Q, C, panels, packing_scratch, threads, args.repeat)
            flop = 2 * P.shape[0] * P.shape[1] * Q.shape[1]
            print(
                f"{name}: packing alone {packing * 1e3:.3f} ms, "
                f"micro-kernels alone {kernels_alone * 1e3:.3f} ms ({flop / kernels_alone / 1e9:.1f} GFLOP/s)"
            )


def _parts(tile, P, Q, C, panels, scratch, threads, repeat):
    """Median times of the packing alone and of the micro-kernels alone, for C = P Q.

    The same blocks, chunks and loops as ``packed_kernels._contraction``, each half
    without the other: the micro-kernels run on whatever the panels hold.
    """
    from numba import get_thread_id, njit, prange

    from loopbp import packed_kernels as pk
    from loopbp import simd

    @njit(parallel=True)
    def replay(tile, P, Q, C, panels, scratch, threads, pack, compute):
        # The loops of `_contraction`, doing the packing, the micro-kernels or both.
        mr, nr = simd.tile_shape(tile)
        n_p, K = P.shape
        if pack:
            pk.pack_rows(tile, P, panels, panels[:0], threads)
        n_blocks = pk._block_count(tile, Q.shape[1], threads)
        n_chunks = (K + pk.KC_BYTES // scratch.itemsize - 1) // (pk.KC_BYTES // scratch.itemsize)
        for block in prange(n_blocks):
            q_block = pk._thread_buffer(tile, scratch, get_thread_id(), K, Q.shape[1])
            q0, q1 = pk._block_columns(tile, Q.shape[1], np.int64(block), n_blocks)
            for chunk in range(n_chunks):
                k0, k1 = chunk * K // n_chunks, (chunk + 1) * K // n_chunks
                if pack:
                    pk._pack_panels(Q[k0:k1, q0:q1], nr, q_block)
                if compute:
                    for p0 in range(0, n_p, mr):
                        for u in range((q1 - q0 + nr - 1) // nr):
                            col = q0 + u * nr
                            simd.register_block(
                                tile,
                                k1 - k0,
                                panels,
                                p0 * K + k0 * mr,
                                q_block,
                                u * (k1 - k0) * nr,
                                C,
                                p0,
                                col,
                                min(mr, n_p - p0),
                                min(nr, q1 - col),
                                k0 > 0,
                            )

    packing = _median_time(lambda: replay(tile, P, Q, C, panels, scratch, threads, True, False), repeat)
    alone = _median_time(lambda: replay(tile, P, Q, C, panels, scratch, threads, False, True), repeat)
    return packing, alone


if __name__ == "__main__":
    sys.exit(main())
