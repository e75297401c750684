"""Activations: stable sigmoid, ReLU'(0) = 0, the Numba rows against the NumPy versions,
and float32 kernels that never compute in float64."""

import math
import re
import warnings

import numba
import numpy as np
import pytest
from problems import CPU_BACKENDS, needs_jit

import loopbp
from loopbp import activations
from loopbp.cpu import activation_rows, kernels, layer_loop, packed_kernels, simd, tiled_kernels

DTYPES = [np.float64, np.float32]


def _numba_value(name, z):
    row = z.copy()
    activation_rows.activate_row(activations.activation_code(name), row)
    return row


def _numba_derivative(name, a):
    d = np.ones_like(a)
    activation_rows.multiply_by_derivative_row(activations.activation_code(name), a, d)
    return d


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", loopbp.ACTIVATIONS)
def test_numba_and_numpy_activations_agree(name, dtype):
    z = np.concatenate([np.linspace(-30, 30, 601), [0.0, -0.0, 1e-30, -1e-30, 1e4, -1e4]]).astype(dtype)
    a = activations.value(name, z)
    assert a.dtype == np.dtype(dtype)
    # The same formulas, but Numba's exp and tanh are LLVM's, not NumPy's: a few ulp.
    ulp = np.finfo(dtype).eps
    np.testing.assert_allclose(_numba_value(name, z), a, rtol=4 * ulp, atol=np.finfo(dtype).tiny)
    np.testing.assert_allclose(
        _numba_derivative(name, a), activations.derivative_from_value(name, a), rtol=4 * ulp
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_is_stable_for_large_arguments(dtype):
    z = np.array([-1e4, -800.0, -100.0, 0.0, 100.0, 800.0, 1e4], dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for a in (activations.value("sigmoid", z), _numba_value("sigmoid", z)):
            assert np.all(np.isfinite(a)) and a.dtype == np.dtype(dtype)
            assert a[0] == 0.0 and a[3] == 0.5 and a[-1] == 1.0
            assert np.all(np.diff(a) >= 0)
            d = activations.derivative_from_value("sigmoid", a)
            assert np.all(np.isfinite(d)) and d[0] == 0.0 and d[3] == 0.25 and d[-1] == 0.0


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("name", ["sigmoid", "tanh"])
def test_saturated_network_gives_no_warning_and_no_nan(name, backend):
    # Z^1 reaches +-1e4: the units saturate, g' underflows to 0, and nothing is NaN.
    W = [np.array([[1e4], [-1e4]]), np.array([[1.0, 1.0]])]
    b = [np.zeros(2), np.zeros(1)]
    X = np.array([[1.0, -1.0, 0.5]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        E, dW, db = loopbp.gradient(W, b, X, np.zeros((1, 3)), [name, "identity"], backend=backend)
    assert np.isfinite(E) and all(np.all(np.isfinite(g)) for g in dW + db)
    assert np.all(dW[0] == 0.0)


def test_relu_derivative_at_zero_is_zero():
    z = np.array([-1.0, -0.0, 0.0, 1e-300, 1.0])
    a = activations.value("relu", z)
    expected = [0.0, 0.0, 0.0, 1.0, 1.0]
    np.testing.assert_array_equal(activations.derivative_from_value("relu", a), expected)
    np.testing.assert_array_equal(_numba_derivative("relu", _numba_value("relu", z)), expected)


def test_unknown_activation_code_lookup():
    assert [activations.activation_code(n) for n in loopbp.ACTIVATIONS] == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="unknown activation 'Sigmoid'"):
        activations.activation_code("Sigmoid")


KERNELS = [
    kernels.forward_layer,
    kernels.delta_to_z,
    kernels.weight_gradient,
    kernels.bias_gradient,
    kernels.hidden_delta,
    activation_rows.activate_row,
    activation_rows.multiply_by_derivative_row,
    tiled_kernels.forward_layer,
    tiled_kernels.hidden_delta_to_z,
    tiled_kernels.weight_gradient_chunk,
    tiled_kernels.dot_rows,
    packed_kernels.columns_block,
    packed_kernels.pack_panels,
]


@needs_jit
def test_float32_kernels_do_no_float64_arithmetic():
    # Compile fresh, uncached copies of the kernels for float32 and read their LLVM IR:
    # a float64 literal or a float64 temporary would show as fpext or double arithmetic.
    # output_delta is left out on purpose: it accumulates E in float64 (see its docstring).
    f32 = np.float32
    W, A_prev, A, b = np.ones((3, 2), f32), np.ones((2, 4), f32), np.ones((3, 4), f32), np.ones(3, f32)
    scratch = np.ones(tiled_kernels.scratch_length(3, numba.config.NUMBA_NUM_THREADS), f32)
    arguments = {
        "forward_layer": (W, b, 1, A_prev, A),
        "delta_to_z": (1, A, A.copy()),
        "weight_gradient": (A, A_prev, np.ones((3, 2), f32)),
        "bias_gradient": (A, b),
        "hidden_delta": (W, A, A_prev),
        "activate_row": (1, b),
        "multiply_by_derivative_row": (1, b, b.copy()),
        "tiled_kernels.forward_layer": (W, b, 1, A_prev, A, scratch),
        "hidden_delta_to_z": (W.T.copy(), A, 1, A_prev, A_prev.copy(), scratch),
        "weight_gradient_chunk": (A, A_prev, np.ones((3, 2), f32), 0, 4, True),
        "dot_rows": (A, A_prev, np.ones((3, 2), f32), 0, 4, True),
        "columns_block": (
            simd.tile(f32, "avx512"),
            np.ones(-(-3 // simd.tile(f32, "avx512").shape[0]) * simd.tile(f32, "avx512").shape[0] * 2, f32),
            (np.int64(0), np.int64(3)),  # the rows p0, p1
            # (start, k step, p step): packed; the in-place branch is compiled all the same.
            (np.int64(0), np.int64(0), np.int64(0)),
            A_prev,
            A,
            packed_kernels.BIAS_AND_G,  # the epilogue, g(C + b): its branch and TIMES_G_PRIME's
            b,
            1,
            A,
            0,
            32,
            np.ones(packed_kernels.scratch_length(simd.tile(f32, "avx512"), 1, [(2, 4)]), f32),
            0,
        ),
        "pack_panels": (A_prev, 16, np.ones(64, f32)),
    }
    for kernel in KERNELS:
        name = kernel.__name__
        if kernel.py_func.__module__ == tiled_kernels.__name__ and name == "forward_layer":
            name = "tiled_kernels.forward_layer"
        options = {k: v for k, v in kernel.targetoptions.items() if k not in ("cache", "nopython")}
        fresh = numba.njit(**options)(kernel.py_func)
        fresh(*arguments[name])
        (ir,) = fresh.inspect_llvm().values()
        assert "float" in ir, kernel.__name__
        assert not re.search(r"fpext float .* to double", ir), kernel.__name__
        assert not re.search(r"\b(fadd|fsub|fmul|fdiv)( \w+)* double\b", ir), kernel.__name__


@needs_jit
def test_a_new_combination_of_activations_compiles_nothing_new():
    # Activations reach the kernels as integer codes (data), so the compiled versions
    # depend on the dtype alone.
    rng = np.random.default_rng(0)
    W = [rng.standard_normal((3, 2)), rng.standard_normal((2, 3))]
    b = [np.zeros(3), np.zeros(2)]
    X, Y = rng.standard_normal((2, 5)), rng.standard_normal((2, 5))
    loopbp.gradient(W, b, X, Y, ["sigmoid", "identity"])
    dispatchers = [
        layer_loop.gradient_pass,
        tiled_kernels.forward_layer,
        tiled_kernels.hidden_delta_to_z,
        packed_kernels.forward_layer,
        packed_kernels.hidden_delta_to_z,
        packed_kernels.weight_gradient,
    ]
    before = [len(d.signatures) for d in dispatchers]
    for combination in (["tanh", "relu"], ["relu", "sigmoid"], ["identity", "tanh"]):
        loopbp.gradient(W, b, X, Y, combination)
    assert [len(d.signatures) for d in dispatchers] == before


# As activate_row compiles it: with fused multiply-adds.
@numba.njit(fastmath={"contract"})
def _exp_nonpositive_all(x):
    out = np.empty_like(x)
    for k in range(x.shape[0]):
        out[k] = activation_rows.exp_nonpositive(x[k])
    return out


@pytest.mark.parametrize("dtype,low", [(np.float64, -760.0), (np.float32, -110.0)])
def test_exp_nonpositive_is_within_2_ulp_of_numpy(dtype, low):
    # Every range sigmoid meets: the reduction's edges (multiples of ln 2 / 2), the
    # subnormal results below about -708 (float64) or -87 (float32), and the underflow
    # to 0 beyond -745 or -103.
    rng = np.random.default_rng(0)
    x = np.concatenate(
        [
            np.linspace(low, 0.0, 200_001),
            -rng.exponential(5.0, 100_000),
            -np.arange(0, 1100) * np.log(2) / 2,
            [0.0, -0.0, -1e-300, -np.finfo(dtype).tiny],
        ]
    ).astype(dtype)
    x = x[x >= low]
    ours, theirs = _exp_nonpositive_all(x), np.exp(x)
    assert ours.dtype == dtype
    # For non-negative floats the distance between the bit patterns, as integers, counts
    # the representable numbers between them: the error in ulp (subnormals included).
    bits = np.int64 if dtype == np.float64 else np.int32
    ulps = np.abs(ours.view(bits).astype(np.int64) - theirs.view(bits).astype(np.int64))
    assert ulps.max() <= 2, x[ulps.argmax()]
    assert np.all((ours == 0) == (theirs == 0))
    assert ours[x == 0].tolist() == [1.0] * int(np.sum(x == 0))


@needs_jit
def test_sigmoid_calls_no_libm_exp():
    # The point of exp_nonpositive: no call into libm's exp, one element at a time, so
    # that LLVM can vectorise the sigmoid loop. The control shows the pattern finds such
    # a call when there is one.
    # LLVM loads the address of libm's exp (expf for float32) and calls through a register.
    calls_exp = re.compile(r"\$expf?\b|call\w*\s+expf?\b")

    @numba.njit
    def control(z):
        for c in range(z.shape[0]):
            z[c] = math.exp(z[c])

    control(np.zeros(4))
    assert calls_exp.search(next(iter(control.inspect_asm().values())))
    # A fresh, uncached copy: Numba cannot show the code of a kernel loaded from its cache.
    fresh = numba.njit(activation_rows.activate_row.py_func)
    for dtype in (np.float64, np.float32):
        fresh(activations.SIGMOID, np.zeros(4, dtype))
    for asm in fresh.inspect_asm().values():
        assert not calls_exp.search(asm)
