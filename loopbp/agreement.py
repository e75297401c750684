"""How close two results must be to count as the same: one place for every comparison.

The tests, ``check_gradient``'s users and ``loopbp compare`` all judge loops against
einsum with `relative_difference` and `TOLERANCE`.
"""

import numpy as np

#: The largest `relative_difference` between two backends that counts as agreement,
#: per dtype. The two backends sum in different orders, so they differ by rounding:
#: a few hundred units in the last place at most on the networks loopbp is tested on
#: (float64 epsilon is 2.2e-16, float32 epsilon 1.2e-7).
TOLERANCE = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 1e-5}

#: How close a float32 gradient comes to the exact one: the `relative_difference`
#: between a float32 computation and a float64 computation from the same (float32)
#: inputs. float32 rounds each operation to 6e-8 relative; sums of up to a thousand
#: terms through up to six layers accumulate that to about 1e-6 on the shapes of
#: ``tests/problems.py`` (worst measured 1.1e-6), so a float32 gradient is good to about
#: five significant digits, and 1e-5 is the bound the tests hold it to.
FLOAT32_ACCURACY = 1e-5


def relative_difference(a, b):
    """max |a - b| / max |b| over the entries of two arrays (or scalars).

    Measured against the largest entry of `b` rather than entry by entry, so that an
    entry that is zero up to rounding does not turn rounding into a large ratio. If
    `b` is all zeros the absolute difference is returned.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {a.shape} and {b.shape}")
    if a.size == 0:
        return 0.0
    diff = float(np.max(np.abs(a - b)))
    scale = float(np.max(np.abs(b)))
    return diff / scale if scale > 0 else diff


def gradient_difference(result, reference):
    """The worst `relative_difference` over E and every dW^l and db^l of two gradients."""
    E, dW, db = result
    E_ref, dW_ref, db_ref = reference
    pairs = [(E, E_ref)] + list(zip(dW, dW_ref)) + list(zip(db, db_ref))
    return max(relative_difference(x, y) for x, y in pairs)
