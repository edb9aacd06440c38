"""minigrad.testing.gradcheck: passes correct ops, catches a wrong VJP with a useful message,
leaves the caller's data alone, and insists on float64."""
import re

import numpy as np
import pytest

from minigrad import Tensor, functional as F, ops
from minigrad.tensor import Function
from minigrad.testing import gradcheck


class SquareMissingFactor(Function):
    """out = x^2 with a wrong VJP: dx = dout * x (the factor 2 is missing)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, dout):
        (x,) = ctx.saved
        return dout * x


class MulWithBadElement(ops.Mul):
    """out = a * b (ops.Mul's forward); the VJP for b is off by 1 at the single element b[1, 2]."""

    @staticmethod
    def backward(ctx, dout):
        a, b = ctx.saved
        db = dout * a
        db[1, 2] += 1.0
        return dout * b, db


def _values(message):
    found = re.search(r"analytic (\S+) vs numeric (\S+)", message)
    assert found, message
    return float(found.group(1)), float(found.group(2))


def test_gradcheck_passes_correct_ops(device):
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((3, 4)), dtype=np.float64, device=device)
    w = Tensor(rng.standard_normal((4, 2)), dtype=np.float64, device=device)
    assert gradcheck(lambda x: (x * x).sum(), [x]) is True
    assert gradcheck(lambda x, w: (x @ w).tanh(), [x, w]) is True
    # integer labels ride along unchecked
    labels = Tensor(np.array([0, 3, 1]), device=device)
    assert gradcheck(lambda x, t: F.cross_entropy(x, t), [x, labels]) is True


def test_gradcheck_catches_wrong_vjp_and_reports_worst_element():
    x = np.array([0.1, -0.3, 2.0])
    with pytest.raises(AssertionError) as info:
        gradcheck(lambda x: SquareMissingFactor.apply(x).sum(), [x])
    message = str(info.value)
    assert "input 0" in message and "index (2,)" in message   # |error| = |x| peaks at x = 2
    analytic, numeric = _values(message)     # scaled by gradcheck's random output weight
    assert abs(analytic) > 1e-3
    assert numeric == pytest.approx(2 * analytic, rel=1e-6)


def test_gradcheck_names_the_failing_input_and_index():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    with pytest.raises(AssertionError) as info:
        gradcheck(lambda a, b: MulWithBadElement.apply(a, b), [a, b])
    message = str(info.value)
    assert "input 1" in message and "(shape (2, 3))" in message and "index (1, 2)" in message
    analytic, numeric = _values(message)
    assert analytic - numeric == pytest.approx(1.0, rel=1e-6)


def test_gradcheck_checks_only_inputs_that_require_grad():
    rng = np.random.default_rng(2)
    a = Tensor(rng.standard_normal((2, 3)), dtype=np.float64, requires_grad=True)
    b = Tensor(rng.standard_normal((2, 3)), dtype=np.float64)   # its wrong VJP goes unchecked
    assert gradcheck(lambda a, b: MulWithBadElement.apply(a, b), [a, b]) is True
    b.requires_grad = True
    with pytest.raises(AssertionError, match="input 1"):
        gradcheck(lambda a, b: MulWithBadElement.apply(a, b), [a, b])


def test_gradcheck_does_not_touch_callers_data():
    rng = np.random.default_rng(3)
    arr = rng.standard_normal((2, 3))
    arr32 = rng.standard_normal(3).astype(np.float32)
    t = Tensor(rng.standard_normal((3,)), dtype=np.float64, requires_grad=True)
    saved = arr.copy(), arr32.copy(), t.data.copy()
    t_array = t.data
    untouched = []

    def fn(a, b, c):            # the caller's arrays must not move even while gradcheck runs
        untouched.append(np.array_equal(arr, saved[0]) and np.array_equal(t.data, saved[2]))
        return (a @ (b * c)).exp()

    assert gradcheck(fn, [arr, arr32, t])
    assert len(untouched) > 2 * (arr.size + arr32.size + t.numel()) and all(untouched)
    np.testing.assert_array_equal(arr, saved[0])          # bit for bit: no perturbation left
    np.testing.assert_array_equal(arr32, saved[1])
    assert arr32.dtype == np.float32
    assert t.data is t_array
    np.testing.assert_array_equal(t.data, saved[2])
    assert t.grad is None and t.requires_grad            # its gradient went to a copy


def test_gradcheck_refuses_float32_output():
    x = np.array([1.0, 2.0])
    with pytest.raises(TypeError, match="float64"):
        gradcheck(lambda x: x.float() * 2, [x])


def test_gradcheck_needs_a_tensor_result():
    with pytest.raises(TypeError, match="must return a Tensor"):
        gradcheck(lambda x: x.numpy(), [np.array([1.0])])
