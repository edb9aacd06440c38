"""Graph mechanics and the Tensor API: reuse, depth, no_grad, broadcasting, accumulation,
dtype rules, reflected operators, conversions, error messages and gradient ownership."""
import numpy as np
import pytest

import minigrad
from minigrad import Tensor, backend, no_grad
from minigrad.backend import to_numpy as host
from minigrad.tensor import Function


def t64(data, device="cpu", requires_grad=True):
    return Tensor(data, dtype=np.float64, device=device, requires_grad=requires_grad)


# ---- graph mechanics ------------------------------------------------------------------------
def test_reused_node_accumulates(device):
    a = t64([1.0, 2.0, 3.0], device)
    b = a + a                      # a reaches b along two edges
    c = b * b                      # b reaches c along two edges
    b.retain_grad()
    c.sum().backward()
    # c = (2a)^2 = 4a^2, so dc/da = 8a; dc/db = 2b
    np.testing.assert_allclose(host(a.grad), [8.0, 16.0, 24.0])
    np.testing.assert_allclose(host(b.grad), [4.0, 8.0, 12.0])


def test_diamond_graph():
    x = t64([2.0])
    u, v = x * 3.0, x.exp()
    (u * v).sum().backward()       # d/dx 3x e^x = 3 e^x (1 + x)
    np.testing.assert_allclose(x.grad, 3 * np.exp(2.0) * 3.0)


def test_ten_thousand_deep_chain_does_not_recurse():
    x = t64([1.0, 2.0])
    h = x
    for _ in range(10_000):
        h = h * 1.0001
    h.sum().backward()
    np.testing.assert_allclose(x.grad, [1.0001 ** 10_000] * 2, rtol=1e-10)
    del h                           # freeing the chain must not recurse either


def test_no_grad_context_manager_records_nothing():
    x = t64([1.0, 2.0])
    assert minigrad.is_grad_enabled()
    with no_grad():
        assert not minigrad.is_grad_enabled()
        y = (x * 2).exp().sum()
    assert minigrad.is_grad_enabled()
    assert y.requires_grad is False and y.grad_fn is None and y.is_leaf
    np.testing.assert_allclose(y.item(), np.exp(2.0) + np.exp(4.0))
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.backward()


def test_no_grad_as_decorator_and_restores_after_exception():
    x = t64([3.0])

    @no_grad()
    def double(t):
        return t * 2

    y = double(x)
    assert y.requires_grad is False and y.grad_fn is None
    assert double.__name__ == "double"
    assert minigrad.is_grad_enabled()
    with pytest.raises(ZeroDivisionError):
        with no_grad():
            1 / 0
    assert minigrad.is_grad_enabled()
    assert (x * 2).grad_fn == "Mul"


def test_nested_no_grad():
    with no_grad():
        with no_grad():
            pass
        assert not minigrad.is_grad_enabled()
    assert minigrad.is_grad_enabled()


# ---- broadcasting: gradients come back in each input's shape -------------------------------
rng = np.random.default_rng(0)
A31, B214 = rng.standard_normal((3, 1)), rng.uniform(0.5, 2.0, (2, 1, 4))
G234 = rng.standard_normal((2, 3, 4))
M2134, M542, G2532 = (rng.standard_normal((2, 1, 3, 4)), rng.standard_normal((5, 4, 2)),
                      rng.standard_normal((2, 5, 3, 2)))

BROADCAST_CASES = {
    # name: (a, b, op, dout, expected da, expected db); a (3, 1) with b (2, 1, 4) -> (2, 3, 4)
    "add": (A31, B214, lambda a, b: a + b, G234,
            G234.sum(axis=(0, 2))[:, None], G234.sum(axis=1, keepdims=True)),
    "sub": (A31, B214, lambda a, b: a - b, G234,
            G234.sum(axis=(0, 2))[:, None], -G234.sum(axis=1, keepdims=True)),
    "mul": (A31, B214, lambda a, b: a * b, G234,
            (G234 * B214).sum(axis=(0, 2))[:, None], (G234 * A31).sum(axis=1, keepdims=True)),
    "div": (A31, B214, lambda a, b: a / b, G234,
            (G234 / B214).sum(axis=(0, 2))[:, None],
            (-G234 * A31 / B214 ** 2).sum(axis=1, keepdims=True)),
    # (2, 1, 3, 4) @ (5, 4, 2) -> (2, 5, 3, 2): batch axes broadcast both ways
    "matmul": (M2134, M542, lambda a, b: a @ b, G2532,
               (G2532 @ M542.swapaxes(-1, -2)).sum(axis=1, keepdims=True),
               (M2134.swapaxes(-1, -2) @ G2532).sum(axis=0)),
}


@pytest.mark.parametrize("name", BROADCAST_CASES)
def test_broadcast_gradients_have_input_shape(name, device):
    a_np, b_np, op, dout, da, db = BROADCAST_CASES[name]
    a, b = t64(a_np, device), t64(b_np, device)
    out = op(a, b)
    assert out.shape == dout.shape
    out.backward(dout)
    assert a.grad.shape == a.shape and b.grad.shape == b.shape
    np.testing.assert_allclose(host(a.grad), da, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(host(b.grad), db, rtol=1e-12, atol=1e-12)


def test_broadcast_zero_dim_tensor():
    a, s = t64([1.0, 2.0, 3.0]), t64(2.0)
    (a * s).sum().backward()
    assert s.grad.shape == ()
    assert s.grad == 6.0
    np.testing.assert_array_equal(a.grad, [2.0, 2.0, 2.0])


# ---- accumulation across backward calls ----------------------------------------------------
def test_retain_graph_accumulates_on_same_graph(device):
    x = t64([1.0, -2.0], device)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    np.testing.assert_allclose(host(x.grad), [2.0, -4.0])
    y.backward()
    np.testing.assert_allclose(host(x.grad), [4.0, -8.0])


def test_two_graphs_sharing_a_leaf_accumulate(device):
    x = t64([1.0, -2.0], device)
    (x * 3.0).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_allclose(host(x.grad), [3.0 + 2.0, 3.0 - 4.0])
    x.zero_grad()
    assert x.grad is None


def test_second_backward_without_retain_graph_raises():
    x = t64([1.0, 2.0])
    y = (x.exp() * 2).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        y.backward()


# ---- dtype rules ---------------------------------------------------------------------------
@pytest.mark.parametrize("data", [1.5, [1.0, 2.0], np.array([1.0, 2.0]),
                                  np.array([1.0], dtype=np.float16)],
                         ids=["python-float", "list", "float64-array", "float16-array"])
def test_floats_default_to_float32(data):
    assert Tensor(data).dtype == np.float32


def test_explicit_float64_is_kept():
    t = Tensor([1.0, 2.0], dtype=np.float64)
    assert t.dtype == np.float64
    assert minigrad.tensor(np.arange(3), dtype=np.float64).dtype == np.float64


def test_integers_and_bools_stay():
    assert Tensor(np.array([1, 2], dtype=np.int32)).dtype == np.int32
    assert Tensor([3, 0, 7]).dtype.kind == "i"
    assert Tensor(np.array([True, False])).dtype == np.bool_


@pytest.mark.parametrize("data", [np.array(["a", "b"]), np.array([1, None], dtype=object),
                                  "text"], ids=["str-array", "object-array", "str"])
def test_non_numeric_data_raises_type_error(data):
    with pytest.raises(TypeError, match="dtype"):
        Tensor(data)


def test_requires_grad_on_integers_raises():
    with pytest.raises(TypeError, match="floating-point"):
        Tensor([1, 2, 3], requires_grad=True)
    with pytest.raises(TypeError, match="floating-point"):
        Tensor([1, 2, 3]).requires_grad_()


def test_op_results_keep_float32():
    x = Tensor([1.0, 2.0], requires_grad=True)
    y = (x * 2.5 + np.array([1.0, 1.0]) - 1).exp().mean()
    assert y.dtype == np.float32
    y.backward()
    assert x.grad.dtype == np.float32


# ---- reflected operators with Python numbers and NumPy arrays ------------------------------
def test_reflected_ops_return_tensors_with_correct_grads():
    x_np = np.array([0.5, 1.0, 2.0])
    cases = [
        (lambda t: np.ones(3) * t, np.ones(3)),
        (lambda t: np.array([1.0, 2.0, 3.0]) + t, np.ones(3)),
        (lambda t: t - np.array([1.0, 2.0, 3.0]), np.ones(3)),
        (lambda t: 2 - t, -np.ones(3)),
        (lambda t: 3.0 * t, 3.0 * np.ones(3)),
        (lambda t: 1 / t, -1 / x_np ** 2),
        (lambda t: 2 ** t, 2 ** x_np * np.log(2)),
        (lambda t: t ** 2, 2 * x_np),
        (lambda t: np.array([[1.0, 2.0, 3.0]]) @ t, np.array([1.0, 2.0, 3.0])),
    ]
    for fn, expected_grad in cases:
        t = t64(x_np)
        out = fn(t)
        assert isinstance(out, Tensor)
        out.sum().backward()
        np.testing.assert_allclose(t.grad, expected_grad, rtol=1e-12)
    np.testing.assert_allclose((2 ** t64(x_np)).numpy(), 2 ** x_np, rtol=1e-12)
    np.testing.assert_allclose((2 - t64(x_np)).numpy(), 2 - x_np)


def test_tensor_exponent_is_rejected():
    with pytest.raises(TypeError, match="Python number exponent"):
        Tensor([1.0]) ** Tensor([2.0])


def test_comparisons_return_bool_tensors_without_grad():
    x = t64([-1.0, 0.0, 2.0])
    for out, expected in [(x > 0, [False, False, True]), (x >= 0, [False, True, True]),
                          (x < 0, [True, False, False]), (x <= 0, [True, True, False]),
                          (x == t64([-1.0, 1.0, 2.0]), [True, False, True]),
                          (x != 0.0, [True, False, True])]:
        assert isinstance(out, Tensor)
        assert out.dtype == np.bool_
        assert out.requires_grad is False and out.grad_fn is None
        np.testing.assert_array_equal(out.numpy(), expected)


# ---- conversions and inspection ------------------------------------------------------------
def test_numpy_item_detach_to():
    x = Tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    arr = x.numpy()
    assert type(arr) is np.ndarray
    np.testing.assert_array_equal(arr, [[1, 2], [3, 4]])
    assert x.sum().item() == 10.0 and isinstance(x.sum().item(), float)
    with pytest.raises(ValueError, match=r"\(2, 2\)"):
        x.item()

    y = x * 2
    d = y.detach()
    assert d.requires_grad is False and d.grad_fn is None and d.is_leaf
    assert np.shares_memory(d.data, y.data)          # same values, no copy, no graph
    assert x.to("cpu") is x and x.cpu() is x


def test_repr_shows_shape_dtype_device_and_op():
    x = Tensor([1.0, 2.0], requires_grad=True)
    r = repr(x * 3)
    for part in ["shape=(2,)", "dtype=float32", "device=cpu", "grad_fn=Mul", "3.", "6."]:
        assert part in r, (part, r)
    assert "requires_grad=True" in repr(x)
    assert "grad_fn" not in repr(Tensor([1, 2]))


def test_grad_is_raw_array_of_input_shape(device):
    x = Tensor(np.ones((2, 3)), device=device, requires_grad=True)
    (x * 2).sum().backward()
    assert not isinstance(x.grad, Tensor)
    assert type(x.grad) is backend.xp_for(device).ndarray     # numpy's, cupy's or strict's
    assert x.grad.shape == (2, 3) and x.grad.dtype == np.float32
    np.testing.assert_array_equal(host(x.grad), np.full((2, 3), 2.0))


def test_backward_non_scalar_without_grad_names_shape():
    y = Tensor(np.ones((2, 3)), requires_grad=True) * 2
    with pytest.raises(RuntimeError, match=r"\(2, 3\)"):
        y.backward()


def test_backward_grad_of_wrong_shape_raises():
    y = Tensor(np.ones((2, 3)), requires_grad=True) * 2
    with pytest.raises(ValueError, match=r"\(2, 3\)"):
        y.backward(np.ones(3))


class _WrongShapeGrad(Function):
    """A deliberately buggy op: its backward returns a gradient of the wrong shape."""

    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, dout):
        return dout.reshape(-1)     # (2, 2) -> (4,): same size, wrong shape


def test_backward_of_op_returning_wrong_grad_shape_names_op_and_shapes():
    # Before the check, (4,) was silently reshaped back to (2, 2): a wrong number, no error.
    x = t64(np.ones((2, 2)))
    with pytest.raises(RuntimeError, match=r"_WrongShapeGrad.*\(4,\).*\(2, 2\)"):
        _WrongShapeGrad.apply(x).sum().backward()
    assert x.grad is None


def test_backward_of_op_returning_too_few_grads_raises():
    class OneGradForTwo(Function):
        forward = staticmethod(lambda ctx, a, b: a + b)
        backward = staticmethod(lambda ctx, dout: dout)

    a, b = t64([1.0]), t64([2.0])
    with pytest.raises(RuntimeError, match="returned 1 gradients for 2 inputs; return None for an input without one"):
        OneGradForTwo.apply(a, b).backward()


def test_broadcast_input_gets_summed_gradient_of_its_own_shape():
    a = t64(np.ones((3, 1)))
    b = t64(np.arange(4.0))                 # (4,) broadcasts to (3, 4)
    (a * b).backward(np.ones((3, 4)))
    np.testing.assert_array_equal(host(a.grad), np.full((3, 1), 6.0))   # sum of b
    np.testing.assert_array_equal(host(b.grad), np.full(4, 3.0))        # three rows of a


def test_backward_on_tensor_not_requiring_grad_raises():
    with pytest.raises(RuntimeError, match="does not require grad"):
        (Tensor([1.0, 2.0]) * 2).sum().backward()


def test_bool_of_multi_element_tensor_raises():
    with pytest.raises(ValueError, match="ambiguous"):
        bool(Tensor([1.0, 2.0]))
    assert bool(Tensor([3.0]))


# ---- gradient ownership: no aliasing --------------------------------------------------------
def test_leaf_grads_never_alias_each_other_or_user_grad():
    a, b = t64([1.0, 2.0]), t64([3.0, 4.0])
    g = np.array([10.0, 20.0])
    (a + b).backward(g)             # Add hands the same dout to both inputs
    assert a.grad is not b.grad and not np.shares_memory(a.grad, b.grad)
    assert not np.shares_memory(a.grad, g) and not np.shares_memory(b.grad, g)
    a.grad[0] = -1.0
    g[1] = -2.0
    np.testing.assert_array_equal(b.grad, [10.0, 20.0])
    np.testing.assert_array_equal(a.grad, [-1.0, 20.0])


def test_leaf_backward_does_not_keep_user_grad():
    x = t64([1.0, 2.0])
    g = np.array([5.0, 6.0])
    x.backward(g)
    g[:] = 0.0
    np.testing.assert_array_equal(x.grad, [5.0, 6.0])


@pytest.mark.parametrize("reduce", [lambda x: x.sum(), lambda x: x.mean(),
                                    lambda x: x.reshape(4).sum(), lambda x: x[0].sum()],
                         ids=["sum", "mean", "reshape", "getitem"])
def test_leaf_grads_are_owned_writable_arrays(reduce):
    # broadcast_to and reshape views (read-only, or sharing memory) must not end up in .grad
    x = t64(np.ones((2, 2)))
    reduce(x).backward()
    assert x.grad.flags.writeable and x.grad.flags.owndata
    before = x.grad.copy()
    x.grad *= 2                     # in-place update, as an optimizer might do
    np.testing.assert_array_equal(x.grad, 2 * before)


def test_retain_grad_on_intermediate():
    a = t64([1.0, 2.0])
    b = a * 3
    h = b + 1
    assert b.retain_grad() is b
    (h * h).sum().backward()
    np.testing.assert_allclose(b.grad, 2 * (3 * np.array([1.0, 2.0]) + 1))
    assert h.grad is None           # not retained: intermediates keep no .grad by default
    np.testing.assert_allclose(a.grad, 3 * b.grad)
    assert not np.shares_memory(a.grad, b.grad)


# ---- factories ------------------------------------------------------------------------------
def test_factories_shapes_and_dtypes():
    assert minigrad.zeros(2, 3).shape == (2, 3) and minigrad.zeros(2, 3).dtype == np.float32
    np.testing.assert_array_equal(minigrad.ones((2,), dtype=np.float64).numpy(), [1.0, 1.0])
    assert minigrad.ones(2, dtype=np.float64).dtype == np.float64
    assert minigrad.randn(3, 4, requires_grad=True).requires_grad
    u = minigrad.rand(1000).numpy()
    assert u.min() >= 0.0 and u.max() < 1.0
