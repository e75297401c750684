"""Two tiny networks whose forward pass, E and gradient were worked out by hand.

The numbers are small integers and halves, so every step is exact in binary floating
point and both backends must reproduce them exactly. The working is in the comments.
"""

import numpy as np
import pytest
from problems import CPU_BACKENDS

import loopbp


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_relu_identity_network_by_hand(backend):
    # n = (2, 2, 1), m = 2, ReLU hidden layer, identity output.
    W1 = np.array([[1.0, -1.0], [2.0, 1.0]])
    b1 = np.array([0.0, -2.0])
    W2 = np.array([[3.0, -2.0]])
    b2 = np.array([1.0])
    X = np.array([[1.0, 2.0], [0.0, 1.0]])  # samples x_1 = (1, 0), x_2 = (2, 1)
    Y = np.array([[2.0, 0.0]])
    acts = ["relu", "identity"]

    # Z^1 = W^1 X + b^1 = [[1, 1], [0, 3]]: unit 2 of sample 1 sits exactly at ReLU's kink.
    # A^1 = [[1, 1], [0, 3]].  Z^2 = W^2 A^1 + b^2 = [[3 - 0 + 1, 3 - 6 + 1]] = [[4, -2]] = A^2.
    # E = 1/(2*2) ((4 - 2)^2 + (-2 - 0)^2) = 8/4 = 2.
    # dA^2 = (A^2 - Y)/m = [[1, -1]] = dZ^2 (identity).
    # dW^2 = dZ^2 (A^1)^T = [[1*1 - 1*1, 1*0 - 1*3]] = [[0, -3]],  db^2 = [1 - 1] = [0].
    # dA^1 = (W^2)^T dZ^2 = [[3, -3], [-2, 2]].
    # relu'(Z^1) = [[1, 1], [0, 1]], with relu'(0) = 0 as the post takes it,
    # so dZ^1 = [[3, -3], [0, 2]].
    # dW^1 = dZ^1 X^T = [[3*1 - 3*2, 3*0 - 3*1], [0*1 + 2*2, 0*0 + 2*1]] = [[-3, -3], [4, 2]],
    # db^1 = [3 - 3, 0 + 2] = [0, 2].
    # (Had relu'(0) been 1, dZ^1_21 would be -2 and dW^1 row 2 would read [2, 2].)
    E, dW, db = loopbp.gradient([W1, W2], [b1, b2], X, Y, acts, backend=backend)
    assert E == 2.0
    np.testing.assert_array_equal(dW[0], [[-3.0, -3.0], [4.0, 2.0]])
    np.testing.assert_array_equal(db[0], [0.0, 2.0])
    np.testing.assert_array_equal(dW[1], [[0.0, -3.0]])
    np.testing.assert_array_equal(db[1], [0.0])
    np.testing.assert_array_equal(loopbp.forward([W1, W2], [b1, b2], X, acts, backend=backend), [[4.0, -2.0]])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_sigmoid_unit_by_hand(backend, dtype):
    # n = (1, 1, 1), m = 1, sigmoid hidden unit, identity output, x = 0, y = 0.
    # Z^1 = 3*0 + 0 = 0, A^1 = sigmoid(0) = 1/2, sigmoid'(0) = 1/2 * 1/2 = 1/4.
    # Z^2 = A^2 = 2 * 1/2 + 0 = 1.  E = 1/2 (1 - 0)^2 = 1/2.
    # dA^2 = dZ^2 = 1.  dW^2 = 1 * 1/2 = 1/2,  db^2 = 1.
    # dA^1 = 2 * 1 = 2,  dZ^1 = 2 * 1/4 = 1/2.  dW^1 = 1/2 * 0 = 0,  db^1 = 1/2.
    W = [np.array([[3.0]], dtype), np.array([[2.0]], dtype)]
    b = [np.array([0.0], dtype), np.array([0.0], dtype)]
    X = np.zeros((1, 1), dtype)
    E, dW, db = loopbp.gradient(W, b, X, np.zeros((1, 1), dtype), ["sigmoid", "identity"], backend=backend)
    assert E == 0.5
    assert [float(g[0, 0]) for g in dW] == [0.0, 0.5]
    assert [float(g[0]) for g in db] == [0.5, 1.0]
