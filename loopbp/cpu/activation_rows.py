"""The activations g and g' of ``loopbp.activations`` as Numba row kernels, for the loop kernels.

`activate_row` applies g to a row of Z^l in place, `multiply_by_derivative_row` multiplies
a row of dE/dA^l by g'(z), written with a = g(z). Both take the activation's integer code,
so that one compiled kernel serves every combination of activations, and both are
written so that LLVM vectorises them along the row (`exp_nonpositive`).
"""

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic, overload

from ..activations import RELU, SIGMOID, TANH
from .simd import full_width


@intrinsic
def _float_from_bits(typingctx, bits):
    # The float whose IEEE bits are `bits` (int64 -> float64, int32 -> float32): how
    # 2^k is made from k without a call, so that a loop using it still vectorises.
    if bits == types.int64:
        signature, target = types.float64(types.int64), ir.DoubleType()
    elif bits == types.int32:
        signature, target = types.float32(types.int32), ir.FloatType()
    else:
        return None

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], target)

    return signature, codegen


def exp_nonpositive(x):
    """exp(x) for x <= 0 in the dtype of x, in straight-line code that vectorises.

    ``math.exp`` is a call into libm, one element at a time; sigmoid spends most of its
    time there. This is the textbook reduction instead: x = k ln 2 + r with k an integer
    and |r| <= ln(2)/2 (ln 2 split in two parts, so k ln 2 is exact), exp(r) from its
    Taylor polynomial (degree 13 in float64, 7 in float32, each within a fraction of an
    ulp on that interval), and 2^k built from its exponent bits. 2^k is applied as two
    factors 2^(k//2) and 2^(k - k//2), so that results down in the subnormal range are
    rounded once, like libm's. It agrees with ``np.exp`` to 2 ulp
    (``tests/test_activations.py``). Only meant for x <= 0: larger x would overflow the
    exponent.
    """
    return math.exp(x)


@overload(exp_nonpositive)
def _exp_nonpositive_overload(x):
    if x == types.float64:

        def exp64(x):
            # Below -746, exp(x) rounds to 0; the clamp keeps both factors of 2^k normal.
            x = max(x, -746.0)
            k = np.int32(math.floor(x * 1.4426950408889634 + 0.5))
            kf = np.float64(k)
            r = (x - kf * 6.93147180369123816490e-01) - kf * 1.90821492927058770002e-10
            p = 1.0 / 6227020800.0
            p = p * r + 1.0 / 479001600.0
            p = p * r + 1.0 / 39916800.0
            p = p * r + 1.0 / 3628800.0
            p = p * r + 1.0 / 362880.0
            p = p * r + 1.0 / 40320.0
            p = p * r + 1.0 / 5040.0
            p = p * r + 1.0 / 720.0
            p = p * r + 1.0 / 120.0
            p = p * r + 1.0 / 24.0
            p = p * r + 1.0 / 6.0
            p = p * r + 0.5
            # 1 + (r + r^2 q(r)): the two leading terms are added last, so the rounding
            # errors of the polynomial's tail are scaled down by r^2.
            p = 1.0 + (r + r * r * p)
            k1 = k >> 1
            k2 = k - k1
            scale1 = _float_from_bits((np.int64(k1) + 1023) << 52)
            scale2 = _float_from_bits((np.int64(k2) + 1023) << 52)
            return p * scale1 * scale2

        return exp64
    if x == types.float32:

        def exp32(x):
            # Constants as float32: one float64 literal would turn the sum into float64.
            x = max(x, np.float32(-104.0))
            k = np.int32(math.floor(x * np.float32(1.44269504) + np.float32(0.5)))
            kf = np.float32(k)
            r = (x - kf * np.float32(0.693145752)) - kf * np.float32(1.42860677e-06)
            p = np.float32(1.0 / 5040.0)
            p = p * r + np.float32(1.0 / 720.0)
            p = p * r + np.float32(1.0 / 120.0)
            p = p * r + np.float32(1.0 / 24.0)
            p = p * r + np.float32(1.0 / 6.0)
            p = p * r + np.float32(0.5)
            p = np.float32(1.0) + (r + r * r * p)
            k1 = k >> 1
            k2 = k - k1
            # Numba widens int32 arithmetic to int64; the exponent bits fit in 31 bits.
            scale1 = _float_from_bits(np.int32((k1 + 127) << 23))
            scale2 = _float_from_bits(np.int32((k2 + 127) << 23))
            return p * scale1 * scale2

        return exp32
    return None


# error_model="numpy": under the default ("python"), every division checks for a zero
# divisor so that it can raise ZeroDivisionError, and that branch stops LLVM from
# vectorising the loop. Here no divisor can be zero (1 + e >= 1).
# fastmath "contract" lets each p * r + c of exp's polynomial be one fused multiply-add:
# half the latency of its chain, which took sigmoid from 4.2 to 1.9 ns an element on the
# development machines (2026),
# and one rounding instead of two (the 2-ulp test checks the fused form).
@njit(cache=True, error_model="numpy", fastmath={"contract"})
def activate_row(code, z):
    """Overwrite the row `z` (Z^l_{i,:}) with g(z) (A^l_{i,:}), for activation `code`.

    Equation (2) of the docs' page "The derivation in code" (docs/derivation.md).

    The branch on `code` sits outside the loop over c so that each loop stays a
    straight, vectorisable sweep.
    """
    full_width()
    # Constants in the row's own dtype: a float64 literal would promote float32 work.
    one = z.dtype.type(1)
    zero = z.dtype.type(0)
    m = z.shape[0]
    if code == SIGMOID:
        for c in range(m):
            # exp(-|z|) <= 1 cannot overflow; for z < 0 the equal form e^z / (1 + e^z)
            # avoids 1 + e^{-z} = inf. Both sides are computed and one is selected,
            # which avoids a mispredicted branch on the sign of z.
            e = exp_nonpositive(-abs(z[c]))
            s = one / (one + e)
            z[c] = s if z[c] >= zero else e * s
    elif code == RELU:
        for c in range(m):
            if z[c] < zero:
                z[c] = zero
    elif code == TANH:
        for c in range(m):
            z[c] = math.tanh(z[c])
    # IDENTITY leaves z as it is.


# No "contract" here: fused, 1 - a^2 near a = 1 would round differently from NumPy's
# two roundings, by far more than an ulp of the (cancelled) result.
@njit(cache=True)
def multiply_by_derivative_row(code, a, d):
    """Multiply the row `d` in place by g'(z), written with a = g(z), for activation `code`.

    This is dE/dZ^l_ic = dE/dA^l_ic g^l'(Z^l_ic) for one row i: equation (5) of the docs'
    page "The derivation in code" (docs/derivation.md).
    """
    full_width()
    one = d.dtype.type(1)
    zero = d.dtype.type(0)
    m = d.shape[0]
    if code == SIGMOID:
        for c in range(m):
            d[c] *= a[c] * (one - a[c])
    elif code == RELU:
        for c in range(m):
            if not a[c] > zero:
                d[c] = zero
    elif code == TANH:
        for c in range(m):
            d[c] *= one - a[c] * a[c]
