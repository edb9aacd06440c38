"""The core habits of issue 13 against stored PyTorch results (float64 and float32, every
device): Conv2d with dilation, groups, string padding and padding modes (nn.Conv2d called as
PyTorch is, positionally too); F.pad with PyTorch's flat tuple; F.unfold; max/min(dim) as
(values, indices) with the gradient on the returned index; max()/amax ties; var/std with
PyTorch's positional (dim, unbiased, keepdim) and correction=; argmax/argmin; shapes; the
gradients of |x| and x ** p at 0; type promotion; factories' dtypes; gradient dtypes; Module
helpers; BatchNorm on an empty batch; F.batch_norm's argument checks.

References: tests/fixtures/core_habits.npz, written by make_fixtures_core_habits.py (torch 2.x).
"""
import json
import warnings

import numpy as np
import pytest

import minigrad as mg
from minigrad import Tensor, backend, nn
from minigrad import functional as F
from minigrad.tensor import Function
from pytorch_fixtures import REF, check, load



def _fixture():
    return load("core_habits")


def _cases(family):
    return sorted({k.split("/")[1] for k in _fixture() if k.startswith(family + "/")})


def _case(family, case):
    prefix = f"{family}/{case}/"
    return {k[len(prefix):]: v for k, v in _fixture().items() if k.startswith(prefix)}


def _json(key):
    return json.loads(str(_fixture()[key]))


def tuples(v):
    """The fixtures' JSON lists stand for tuples (a size, a dim tuple, a pad)."""
    if isinstance(v, list):
        return tuple(tuples(x) for x in v)
    if isinstance(v, dict):
        return {k: tuples(x) for k, x in v.items()}
    return v


def leaf(array, dtype, device):
    return Tensor(array, dtype=dtype, device=device, requires_grad=True)


def test_fixture_has_every_family():
    for family in ("conv", "pad", "unfold", "call"):
        assert _cases(family), f"core_habits.npz has no {family}/ cases"
    assert str(_fixture()["torch_version"]).startswith("2.")


# ---- Conv2d -------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", _cases("conv"))
def test_conv2d_matches_pytorch(case, dtype, device):
    """nn.Conv2d built with PyTorch's arguments (positional as written), PyTorch's weights
    loaded: output and every gradient. Conv2d(3, 6, 3, 1, 2, 2) is dilation 2 with a bias."""
    fx, ref = _case("conv", case), REF[dtype]
    args, kwargs = tuples(json.loads(str(fx["args"]))), tuples(json.loads(str(fx["kwargs"])))
    layer = nn.Conv2d(*args, **kwargs).to(dtype).to(device)
    assert (layer.bias is not None) == ("bias" in fx), f"{case}: bias presence differs"
    state = {"weight": fx["weight"]}
    if "bias" in fx:
        state["bias"] = fx["bias"]
    layer.load_state_dict(state)
    x = leaf(fx["x"], dtype, device)
    y = layer(x)
    check(y, fx[f"{ref}/out"], dtype, f"{case} out")
    y.backward(Tensor(fx["dout"], dtype=dtype, device=device))
    check(x.grad, fx[f"{ref}/dx"], dtype, f"{case} dx")
    check(layer.weight.grad, fx[f"{ref}/dweight"], dtype, f"{case} dweight")
    if "bias" in fx:
        check(layer.bias.grad, fx[f"{ref}/dbias"], dtype, f"{case} dbias")


def test_conv2d_takes_all_nine_arguments_positionally():
    """(in, out, kernel_size, stride, padding, dilation, groups, bias, padding_mode)."""
    layer = nn.Conv2d(3, 6, 3, 2, 1, 1, 3, False, "reflect")
    assert (layer.stride, layer.groups, layer.bias, layer.padding_mode) == \
        ((2, 2), 3, None, "reflect")
    assert layer.weight.shape == (6, 1, 3, 3)


# ---- F.pad and F.unfold -------------------------------------------------------------------------
@pytest.mark.parametrize("group, case", [(g, c) for g in ("pad", "unfold") for c in _cases(g)])
def test_pad_and_unfold_match_pytorch(group, case, dtype, device):
    fx, ref = _case(group, case), REF[dtype]
    kwargs = tuples(json.loads(str(fx["kwargs"])))
    x = leaf(fx["x"], dtype, device)
    y = getattr(F, group)(x, **kwargs)          # F.pad or F.unfold
    check(y, fx[f"{ref}/out"], dtype, f"{case} out")
    y.backward(Tensor(fx["dout"], dtype=dtype, device=device))
    check(x.grad, fx[f"{ref}/dx"], dtype, f"{case} dx")


def test_pad_takes_pytorch_positional_order():
    x = Tensor(np.arange(6.0).reshape(1, 2, 3))
    y = F.pad(x, (1, 2), "constant", 9.0)
    np.testing.assert_array_equal(y.data[0, 0], [9, 0, 1, 2, 9, 9])
    y = F.pad(x, (2, 1), "reflect")
    np.testing.assert_array_equal(y.data[0, 1], [5, 4, 3, 4, 5, 4])


def test_unfold_takes_pytorch_positional_order():
    """F.unfold(input, kernel_size, dilation=1, padding=0, stride=1): dilation comes first."""
    x = Tensor(np.arange(2 * 7 * 7, dtype=np.float64).reshape(1, 2, 7, 7), dtype=np.float64)
    by_position = F.unfold(x, 3, 2, 1, 2)
    by_name = F.unfold(x, kernel_size=3, dilation=2, padding=1, stride=2)
    np.testing.assert_array_equal(by_position.data, by_name.data)
    assert by_position.shape == (1, 18, 9)


# ---- method calls: reductions, shapes, kinks ----------------------------------------------------
@pytest.mark.parametrize("case", _cases("call"))
def test_method_call_matches_pytorch(case, dtype, device):
    """x.method(*args, **kwargs) as PyTorch reads the arguments: values (and indices for a
    (values, indices) pair) and the gradient, PyTorch's (the returned index gets it)."""
    fx, ref = _case("call", case), REF[dtype]
    call = json.loads(str(fx["call"]))
    x = leaf(fx["x"], dtype, device)
    y = getattr(x, call["method"])(*tuples(call["args"]), **tuples(call["kwargs"]))
    what = f"x.{call['method']}(*{call['args']}, **{call['kwargs']})"
    if f"{ref}/out0" in fx:
        assert isinstance(y, tuple) and len(y) == 2, \
            f"{what} must return (values, indices) as PyTorch does, got {type(y).__name__}"
        values, indices = y
        assert y.values is values and y.indices is indices, f"{what}: .values / .indices"
        check(values, fx[f"{ref}/out0"], dtype, f"{what} values")
        check(indices, fx[f"{ref}/out1"], np.int64, f"{what} indices")
        first = values
    else:
        expected = fx[f"{ref}/out"]
        check(y, expected, dtype if expected.dtype.kind == "f" else expected.dtype.type, what)
        first = y
    if "dout" in fx:
        first.backward(Tensor(fx["dout"], dtype=dtype, device=device))
        check(x.grad, fx[f"{ref}/dx"], dtype, f"{what} dx")


@pytest.mark.parametrize("case", _cases("functional"))
def test_functional_call_matches_pytorch(case, dtype, device):
    """F.softmax / F.log_softmax without dim take PyTorch's implicit dim (and warn, as
    PyTorch does); with dim, that dim."""
    fx, ref = _case("functional", case), REF[dtype]
    call = json.loads(str(fx["call"]))
    x = leaf(fx["x"], dtype, device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")         # PyTorch's implicit-dim deprecation warning
        y = getattr(F, call["fn"])(x, *tuples(call["args"]), **tuples(call["kwargs"]))
    what = f"F.{call['fn']}(x{x.shape}, *{call['args']}, **{call['kwargs']})"
    check(y, fx[f"{ref}/out"], dtype, what)
    y.backward(Tensor(fx["dout"], dtype=dtype, device=device))
    check(x.grad, fx[f"{ref}/dx"], dtype, f"{what} dx")


def test_max_dim_unpacks_into_values_and_indices():
    """The silent case of the issue: on two rows, unpacking plain values also 'works'."""
    x = Tensor([[1.0, 5.0, 2.0], [7.0, 0.0, 7.0]])
    values, indices = x.max(1)
    np.testing.assert_array_equal(values.data, [5.0, 7.0])
    np.testing.assert_array_equal(indices.data, [1, 0])
    values, indices = mg.min(x, 1)
    np.testing.assert_array_equal(indices.data, [0, 1])


# ---- type promotion -----------------------------------------------------------------------------
def _operand(spec):
    if isinstance(spec, dict):
        return mg.tensor(spec["data"], dtype=np.dtype(spec["dtype"]))
    return spec


OPS = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
       "truediv": lambda a, b: a / b, "rsub": lambda a, b: a - b, "rtruediv": lambda a, b: a / b}


@pytest.mark.parametrize("case", sorted(_json("promotion")))
def test_type_promotion_matches_pytorch(case):
    spec = _json("promotion")[case]
    y = OPS[spec["op"]](_operand(spec["a"]), _operand(spec["b"]))
    assert isinstance(y, Tensor)
    assert y.dtype == np.dtype(spec["dtype"]), \
        f"{spec['a']} {spec['op']} {spec['b']}: dtype {y.dtype}, PyTorch gives {spec['dtype']}"
    np.testing.assert_allclose(y.numpy().astype(np.float64),
                               np.asarray(spec["values"], dtype=np.float64), rtol=1e-6)


# ---- factories ----------------------------------------------------------------------------------
@pytest.mark.parametrize("case", sorted(_json("factories")))
def test_factory_matches_pytorch(case):
    spec = _json("factories")[case]
    args = [_operand(a) if isinstance(a, dict) else tuples(a) for a in spec["args"]]
    kwargs = {k: np.dtype(v) if k == "dtype" else v for k, v in spec["kwargs"].items()}
    y = getattr(mg, spec["fn"])(*args, **kwargs)
    what = f"mg.{spec['fn']}(*{spec['args']}, **{spec['kwargs']})"
    assert y.dtype == np.dtype(spec["dtype"]), f"{what}: dtype {y.dtype}, PyTorch {spec['dtype']}"
    assert y.shape == tuple(spec["shape"]), f"{what}: shape {y.shape}"
    np.testing.assert_allclose(y.numpy().astype(np.float64),
                               np.asarray(spec["values"], dtype=np.float64), rtol=1e-6,
                               err_msg=what)


# ---- gradient dtypes ----------------------------------------------------------------------------
def test_gradient_takes_the_dtype_of_its_input(device):
    """a32 * b64 is float64, but a.grad is float32 and b.grad float64, as in PyTorch."""
    spec = _json("modules")["grad_dtype"]
    a = Tensor(spec["a"], dtype=np.float32, device=device, requires_grad=True)
    b = Tensor(spec["b"], dtype=np.float64, device=device, requires_grad=True)
    product = a * b
    assert product.dtype == np.dtype(spec["product"])
    product.sum().backward()
    for t, (name, values) in ((a, spec["a_grad"]), (b, spec["b_grad"])):
        assert t.grad.dtype == np.dtype(name), f"grad dtype {t.grad.dtype}, PyTorch {name}"
        np.testing.assert_allclose(backend.to_numpy(t.grad), values)


class _Float64Gradient(Function):
    """y = 2 x, with a backward that (carelessly) returns float64."""

    @staticmethod
    def forward(ctx, x):
        return 2 * x

    @staticmethod
    def backward(ctx, dout):
        return (2 * dout).astype(np.float64)


def test_custom_function_gradient_is_cast_to_the_parameter_dtype():
    p = nn.Parameter(np.array([1.0, -2.0], dtype=np.float32))
    _Float64Gradient.apply(p).sum().backward()
    assert p.grad.dtype == np.float32
    np.testing.assert_array_equal(p.grad, [2.0, 2.0])


# ---- Module helpers -----------------------------------------------------------------------------
def test_module_apply_visits_children_first_like_pytorch():
    model = nn.Sequential(nn.Linear(2, 3), nn.Sequential(nn.ReLU(), nn.Linear(3, 1)), nn.Tanh())
    order = []
    assert model.apply(lambda m: order.append(type(m).__name__)) is model
    assert order == _json("modules")["apply_order"]


def test_shared_module_is_visited_once_like_pytorch():
    """A layer held twice (tied weights): PyTorch's apply, modules, named_modules, children
    list it once per level / once overall; its parameters once, its state-dict keys under
    every name."""
    spec = _json("modules")["shared"]
    lin = nn.Linear(2, 2)
    shared = nn.Sequential(lin, nn.ReLU(), nn.Sequential(lin, nn.Tanh()), lin)
    order = []
    shared.apply(lambda m: order.append(type(m).__name__))
    assert order == spec["apply"]
    assert [type(m).__name__ for m in shared.modules()] == spec["modules"]
    assert [n for n, _ in shared.named_modules()] == spec["named_modules"]
    assert [type(m).__name__ for m in shared.children()] == spec["children"]
    assert [n for n, _ in shared.named_children()] == spec["named_children"]
    assert len(shared.parameters()) == spec["parameters"]
    assert list(shared.state_dict()) == spec["state_dict"]


def test_module_zero_grad_set_to_none_false_zeroes_like_pytorch():
    spec = _json("modules")
    lin = nn.Linear(2, 2)
    lin.weight.grad = np.array(spec["zero_grad_keep"]["before"], dtype=np.float32)
    lin.zero_grad(set_to_none=False)
    assert spec["zero_grad_keep"]["bias"] is None and lin.bias.grad is None
    assert lin.weight.grad is not None and lin.weight.grad.dtype == np.float32
    np.testing.assert_array_equal(lin.weight.grad, spec["zero_grad_keep"]["weight"])
    lin.zero_grad()
    assert spec["zero_grad_default"] == {"weight": None, "bias": None}
    assert lin.weight.grad is None and lin.bias.grad is None


def test_module_requires_grad_freezes_and_unfreezes():
    model = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    assert model.requires_grad_(False) is model
    assert [p.requires_grad for p in model.parameters()] == [False] * 4
    model.requires_grad_()
    assert [p.requires_grad for p in model.parameters()] == [True] * 4
    out = model(Tensor(np.ones((4, 2))))
    assert out.requires_grad


def test_reset_running_stats_leaves_the_affine_parameters():
    bn = nn.BatchNorm2d(2)
    bn(Tensor(np.arange(16.0).reshape(2, 2, 2, 2)))
    bn.weight.data[...] = 3.0
    assert bn.num_batches_tracked.item() == 1
    bn.reset_running_stats()
    np.testing.assert_array_equal(bn.running_mean.data, [0, 0])
    np.testing.assert_array_equal(bn.running_var.data, [1, 1])
    assert bn.num_batches_tracked.item() == 0 and bn.num_batches_tracked.dtype == np.int64
    np.testing.assert_array_equal(bn.weight.data, [3.0, 3.0])


@pytest.mark.parametrize("case", ["empty_bn1d", "empty_bn1d_3d", "empty_bn2d"])
def test_batchnorm_on_an_empty_batch_matches_pytorch(case):
    """PyTorch: an empty output, running statistics untouched, num_batches_tracked + 1, zero
    gradients for weight and bias."""
    spec = _json("modules")[case]
    layer = nn.BatchNorm2d(3) if len(spec["shape"]) == 4 else nn.BatchNorm1d(3)
    layer.running_mean.data[...] = [0.5, -1.0, 2.0]
    layer.running_var.data[...] = [2.0, 0.5, 1.5]
    x = Tensor(np.zeros(spec["shape"]), requires_grad=True)
    y = layer(x)
    assert y.shape == tuple(spec["out_shape"])
    np.testing.assert_array_equal(layer.running_mean.data, spec["running_mean"])
    np.testing.assert_array_equal(layer.running_var.data, spec["running_var"])
    assert layer.num_batches_tracked.item() == spec["num_batches_tracked"]
    y.sum().backward()
    np.testing.assert_array_equal(layer.weight.grad, spec["dweight"])
    np.testing.assert_array_equal(layer.bias.grad, spec["dbias"])


def test_batch_norm_function_on_an_empty_batch_leaves_running_stats():
    rm, rv = mg.zeros(3), mg.ones(3)
    out = F.batch_norm(mg.zeros(0, 3), rm, rv, training=True)
    assert out.shape == (0, 3)
    np.testing.assert_array_equal(rm.data, [0, 0, 0])
    np.testing.assert_array_equal(rv.data, [1, 1, 1])


# ---- F.batch_norm's argument checks -------------------------------------------------------------
ERRORS = {"RuntimeError": RuntimeError, "ValueError": ValueError}


@pytest.mark.parametrize("case", sorted(_json("batch_norm_errors")))
def test_batch_norm_refuses_what_pytorch_refuses(case):
    """Every call PyTorch refuses is refused with PyTorch's exception class, naming the
    arguments PyTorch's message names, and nothing (no running statistic) is changed first.

    A wrong-size argument may also be a ValueError (minigrad's message names the shapes and
    the channel axis); eval mode without running statistics gives PyTorch's own sentence."""
    spec = _json("batch_norm_errors")[case]
    kwargs = {k: (mg.ones(*v) if isinstance(v, list) else v) for k, v in spec["kwargs"].items()}
    rm, rv = kwargs.pop("running_mean"), kwargs.pop("running_var")
    x = Tensor(np.arange(12.0).reshape(4, 3))
    wrong_size = "elements" in spec["message"]
    expected = (ERRORS[spec["error"]], ValueError) if wrong_size else ERRORS[spec["error"]]
    with pytest.raises(expected) as info:
        F.batch_norm(x, rm, rv, **kwargs)
    message = str(info.value)
    names = [n for n in ("weight", "bias", "running_mean", "running_var")
             if n in spec["message"].replace(",", " ").split()]
    assert names and all(n in message for n in names), \
        f"{case}: {message!r} must name {names}, as PyTorch's {spec['message']!r} does"
    if case == "eval_without_running_stats":
        assert spec["message"] in message, f"{message!r}, PyTorch: {spec['message']!r}"
    if wrong_size:
        assert "3" in message, f"{case}: {message!r} must say how many elements are expected"
    for t in (rm, rv):                     # validated before anything changed
        if t is not None:
            np.testing.assert_array_equal(t.data, np.ones(t.shape))


def test_batchnorm_module_without_running_stats_uses_batch_stats_in_eval():
    """F.batch_norm refuses eval mode without running statistics, but the module with
    track_running_stats=False normalises with the batch statistics in eval, as PyTorch's."""
    x = Tensor(np.array([[1.0, 2.0], [3.0, 6.0], [5.0, 10.0]]), dtype=np.float64)
    bn = nn.BatchNorm1d(2, affine=False, track_running_stats=False).eval()
    out = bn(x).numpy()
    expected = (x.numpy() - x.numpy().mean(0)) / np.sqrt(x.numpy().var(0) + 1e-5)
    np.testing.assert_allclose(out, expected, rtol=1e-12)


def test_a_leaf_switched_off_after_forward_gets_no_gradient():
    # PyTorch 2.x: a = ones(2, requires_grad=True); c = (a * b).sum(); a.requires_grad_(False);
    # c.backward() leaves a.grad None and still gives b its gradient
    a = Tensor(np.ones(2), requires_grad=True)
    b = Tensor(np.array([2.0, 3.0]), requires_grad=True)
    c = (a * b).sum()
    a.requires_grad_(False)
    c.backward()
    assert a.grad is None
    np.testing.assert_array_equal(b.grad, [1.0, 1.0])
