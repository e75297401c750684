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


def gradient_difference(result, reference, *, per_array=True):
    """The worst relative difference between two gradients (E, dW, db).

    With `per_array` (the default) each of E, dW^l and db^l is judged on its own scale:
    the worst `relative_difference` over them. Otherwise every dW^l and db^l is judged on
    the scale of the whole gradient (its largest entry), and E on its own.

    The per-array measure is the strict one, but it cannot hold in float32 for an array
    whose entries are sums that cancel: if a sum of terms of size 1 comes to 1e-3, its
    float32 rounding error is about 1e-3 of the result itself, whatever order it is
    summed in. ``tests/test_properties.py`` met such a network (recorded there), where the
    float32 einsum and loops gradients of the first layer were 5e-6 and 1e-5 away from
    the exact one; it judges float32 on the scale of the whole gradient.
    """
    E, dW, db = result
    E_ref, dW_ref, db_ref = reference
    arrays = list(zip(dW, dW_ref)) + list(zip(db, db_ref))
    if per_array:
        return max(relative_difference(x, y) for x, y in [(E, E_ref)] + arrays)
    scale = max(float(np.max(np.abs(np.asarray(y, dtype=np.float64)))) for _, y in arrays)
    diff = max(
        float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64)))) for x, y in arrays
    )
    return max(relative_difference(E, E_ref), diff / scale if scale > 0 else diff)
