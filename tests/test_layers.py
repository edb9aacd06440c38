"""minigrad.layers and minigrad.containers: pooling, activations, Softmax, Embedding and
Dropout against stored PyTorch results (float64 and float32, every device), float64
gradchecks of every op, Dropout's statistics and train/eval switch, argument errors, and
ModuleList / ModuleDict naming as PyTorch's.

References: tests/fixtures/habits_layers.npz, written by make_fixtures_pytorch_habits.py.
"""
import json
import math
import warnings

import numpy as np
import pytest

import minigrad
from minigrad import Tensor, backend, layers
from minigrad.containers import ModuleDict, ModuleList
from minigrad.nn import Linear, Module, ReLU
from minigrad.tensor import Function
from minigrad.testing import gradcheck
from pytorch_fixtures import REF, check, load as _fixture



def _cases(name):
    return sorted({k.split("/")[0] for k in _fixture(name) if "/" in k})


def _case(name, case):
    prefix = case + "/"
    return {k[len(prefix):]: v for k, v in _fixture(name).items() if k.startswith(prefix)}


def _kwargs(fx):
    return {k: tuple(v) if isinstance(v, list) else v for k, v in json.loads(str(fx["kwargs"]))
            .items()}


MODULES = {"max_pool2d": layers.MaxPool2d, "avg_pool2d": layers.AvgPool2d,
           "adaptive_avg_pool2d": layers.AdaptiveAvgPool2d, "leaky_relu": layers.LeakyReLU,
           "gelu": layers.GELU, "softmax": layers.Softmax}


# ---- PyTorch conformance ----------------------------------------------------------------------
@pytest.mark.parametrize("case", _cases("habits_layers"))
def test_layer_matches_pytorch(case, dtype, device):
    fx, ref = _case("habits_layers", case), REF[dtype]
    fn, kwargs = str(fx["fn"]), _kwargs(fx)
    if fn == "embedding":
        weight = Tensor(fx["weight"], requires_grad=True, dtype=dtype, device=device)
        out = layers.embedding(Tensor(fx["x"], device=device), weight, **kwargs)
        grad_of = weight
    else:
        x = Tensor(fx["x"], requires_grad=True, dtype=dtype, device=device)
        if fn == "softmax":
            out = x.softmax(kwargs["dim"])
        else:
            out = getattr(layers, fn)(x, **kwargs)
        grad_of = x
    out.backward(fx["dout"].astype(dtype))
    check(out, fx[f"{ref}/out"], dtype, f"{case} out")
    check(grad_of.grad, fx[f"{ref}/dx"], dtype, f"{case} gradient")


@pytest.mark.parametrize("case", [c for c in _cases("habits_layers")
                                  if str(_case("habits_layers", c)["fn"]) in MODULES])
def test_module_form_matches_pytorch(case, device):
    """The Module with the same options computes the same as the functional form."""
    fx = _case("habits_layers", case)
    module = MODULES[str(fx["fn"])](**_kwargs(fx))
    x = Tensor(fx["x"], requires_grad=True, dtype=np.float64, device=device)
    out = module(x)
    out.backward(fx["dout"])
    check(out, fx["f64/out"], np.float64, f"{case} module out")
    check(x.grad, fx["f64/dx"], np.float64, f"{case} module dx")


def test_embedding_module_matches_pytorch(device):
    fx = _case("habits_layers", "embedding_padding")
    emb = layers.Embedding(7, 5, padding_idx=2)
    emb.to(np.float64).to(device)
    emb.load_state_dict({"weight": fx["weight"]})
    out = emb(Tensor(fx["x"], device=device))
    out.backward(fx["dout"])
    check(out, fx["f64/out"], np.float64, "Embedding out")
    check(emb.weight.grad, fx["f64/dx"], np.float64, "Embedding dweight")
    assert np.all(backend.to_numpy(emb.weight.grad)[2] == 0)        # the padding row


# ---- gradchecks (float64) ---------------------------------------------------------------------
rng = np.random.default_rng(7)
GRADCHECKS = {
    "max_pool2d": (lambda x: layers.max_pool2d(x, 3, 2, 1, ceil_mode=True), (2, 2, 6, 5)),
    "max_pool2d_dilation": (lambda x: layers.max_pool2d(x, 2, 1, 1, dilation=2), (1, 2, 5, 5)),
    "avg_pool2d": (lambda x: layers.avg_pool2d(x, 3, 2, 1, ceil_mode=True), (2, 2, 6, 5)),
    "avg_pool2d_nopad": (lambda x: layers.avg_pool2d(x, (2, 3), 1, (1, 1),
                                                     count_include_pad=False), (1, 2, 4, 5)),
    "adaptive_avg_pool2d": (lambda x: layers.adaptive_avg_pool2d(x, (3, 2)), (2, 2, 5, 7)),
    "leaky_relu": (lambda x: layers.leaky_relu(x, 0.1), (3, 4)),
    "gelu": (lambda x: layers.gelu(x), (3, 4)),
    "gelu_tanh": (lambda x: layers.gelu(x, approximate="tanh"), (3, 4)),
    "softmax_module": (lambda x: layers.Softmax(dim=1)(x), (3, 4)),
    "identity": (lambda x: layers.Identity(3, bias=True)(x), (3, 4)),
}


@pytest.mark.parametrize("name", GRADCHECKS)
def test_gradcheck(name, device):
    fn, shape = GRADCHECKS[name]
    # distinct values well away from 0: max pooling has no ties, LeakyReLU no kink to straddle
    x = rng.permutation(np.linspace(0.2, 2.0, int(np.prod(shape)))).reshape(shape)
    x *= rng.choice([-1.0, 1.0], size=shape)
    assert gradcheck(fn, [Tensor(x, dtype=np.float64, device=device)])


def _functions_of(module):
    return {o.__name__ for o in vars(module).values() if isinstance(o, type)
            and issubclass(o, Function) and o is not Function and o.__module__ == module.__name__}


def test_every_layer_op_is_gradchecked():
    covered = {fn(Tensor(rng.standard_normal(shape), dtype=np.float64, requires_grad=True))
               .grad_fn for fn, shape in GRADCHECKS.values()}
    covered |= {"EmbeddingFn", "DropoutFn"}          # gradchecked in the two tests below
    assert _functions_of(layers) - covered == set()


def test_gradcheck_embedding(device):
    idx = Tensor(np.array([[0, 3, 3], [1, 0, 4]]), device=device)
    w = Tensor(rng.standard_normal((5, 3)), dtype=np.float64, device=device)
    assert gradcheck(lambda w: layers.embedding(idx, w), [w])
    # the padding row gets no gradient by design (PyTorch's rule), so gradcheck a padding_idx
    # that is not looked up; the conformance test covers the one that is
    assert gradcheck(lambda w: layers.embedding(idx, w, padding_idx=2), [w])


def test_gradcheck_dropout_with_a_fixed_mask_and_with_a_reseed(device):
    """gradcheck calls fn many times: hold the mask fixed, or reseed inside fn."""
    x = Tensor(rng.standard_normal((4, 5)), dtype=np.float64, device=device)
    mask = backend.to_device((rng.random((4, 5)) > 0.3) / 0.7, device)
    assert gradcheck(lambda x: layers.DropoutFn.apply(x, mask=mask), [x])

    def reseeded(x):
        minigrad.manual_seed(3)
        return layers.dropout(x, 0.3)
    assert gradcheck(reseeded, [x])


def test_erf_is_accurate_to_float64_precision():
    x = np.concatenate([np.linspace(-7, 7, 20001), [0.0, 0.46875, -0.46875, 4.0, -4.0, 30.0]])
    expected = np.array([math.erf(v) for v in x])
    assert np.abs(layers.erf(np, x) - expected).max() <= 4e-16
    assert layers.erf(np, np.array([np.inf, -np.inf])).tolist() == [1.0, -1.0]
    assert np.isnan(layers.erf(np, np.array([np.nan]))).all()
    assert layers.erf(np, x.astype(np.float32)).dtype == np.float32


# ---- Dropout ----------------------------------------------------------------------------------
@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_zeroes_a_fraction_p_and_scales_the_rest(p, device):
    minigrad.manual_seed(0)
    x = Tensor(rng.uniform(1, 2, (400, 500)), requires_grad=True, device=device)
    out = layers.dropout(x, p)
    y, xd = backend.to_numpy(out.data), backend.to_numpy(x.data)
    kept = y != 0
    n = y.size
    # the dropped fraction is Binomial(n, p) / n: within 5 standard deviations
    assert abs((1 - kept.mean()) - p) < 5 * math.sqrt(p * (1 - p) / n)
    np.testing.assert_allclose(y[kept], xd[kept] / np.float32(1 - p), rtol=1e-6)
    assert out.dtype == np.float32
    out.backward(np.ones(y.shape, dtype=np.float32))
    g = backend.to_numpy(x.grad)
    np.testing.assert_allclose(g[kept], 1 / (1 - p), rtol=1e-6)    # the same mask
    assert np.all(g[~kept] == 0)


def test_dropout_is_reproducible_under_manual_seed_and_fresh_per_call():
    x = Tensor(np.ones((50, 40)))
    minigrad.manual_seed(11)
    a, b = layers.dropout(x).numpy(), layers.dropout(x).numpy()
    minigrad.manual_seed(11)
    np.testing.assert_array_equal(layers.dropout(x).numpy(), a)
    assert not np.array_equal(a, b)


def test_dropout_module_train_eval_switch(device):
    minigrad.manual_seed(1)
    drop = layers.Dropout(0.5)
    x = Tensor(np.ones((64, 64)), device=device)
    assert drop.training
    assert (backend.to_numpy(drop(x).data) == 0).mean() > 0.4
    drop.eval()
    assert drop(x) is x                                   # the identity, as in PyTorch
    net = minigrad.nn.Sequential(Linear(4, 4), layers.Dropout(0.9))
    net.eval()
    assert not net[1].training and net[1](x) is x
    net.train()
    assert (backend.to_numpy(net[1](x).data) == 0).mean() > 0.8


def test_dropout_edge_probabilities():
    x = Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    assert layers.dropout(x, 0.0) is x and layers.dropout(x, 0.5, training=False) is x
    zero = layers.dropout(x, 1.0)
    assert np.all(zero.numpy() == 0)
    zero.sum().backward()
    assert np.all(x.grad == 0)


@pytest.mark.parametrize("call, message", [
    (lambda: layers.Dropout(1.5), "dropout probability has to be between 0 and 1, but got 1.5"),
    (lambda: layers.dropout(Tensor(np.ones(3)), -0.1), "between 0 and 1, but got -0.1"),
    (lambda: layers.Dropout(0.5, inplace=True), "inplace=True is not supported"),
    (lambda: layers.dropout(Tensor(np.ones(3, dtype=np.int64)), 0.5), "floating-point"),
])
def test_dropout_errors(call, message):
    with pytest.raises((ValueError, TypeError), match=message.replace(".", r"\.")):
        call()


# ---- pooling and activation errors ------------------------------------------------------------
@pytest.mark.parametrize("call, error, message", [
    (lambda x: layers.max_pool2d(x, 3, padding=2), ValueError,
     "pad should be at most half of effective kernel size, but got pad=2, kernel_size=3"),
    (lambda x: layers.avg_pool2d(x, 2, padding=2), ValueError, "pad should be at most half"),
    (lambda x: layers.max_pool2d(x[:, :, :2, :2], 3), ValueError, r"too small for kernel \(3, 3\)"),
    (lambda x: layers.max_pool2d(x[0, 0], 2), ValueError, r"3D \(C, H, W\) or 4D"),
    (lambda x: layers.max_pool2d(x, 2, return_indices=True), ValueError,
     "return_indices=True is not supported"),
    (lambda x: layers.MaxPool2d(2, return_indices=True), ValueError, "return_indices"),
    (lambda x: layers.max_pool2d(x, 0), ValueError, "must be positive"),
    (lambda x: layers.max_pool2d(x, (2, 2, 2)), ValueError, "kernel_size must be an int or a pair"),
    (lambda x: layers.avg_pool2d(x, 2, divisor_override=0), ValueError, "divisor_override"),
    (lambda x: layers.adaptive_avg_pool2d(x, (1, 2, 3)), ValueError, "output_size must be"),
    (lambda x: layers.gelu(x, approximate="fast"), ValueError,
     "approximate argument must be either none or tanh"),
    (lambda x: layers.GELU("erf"), ValueError, "approximate argument"),
    (lambda x: layers.leaky_relu(x, inplace=True), ValueError, "inplace=True"),
    (lambda x: layers.LeakyReLU(0.1, True), ValueError, "inplace=True"),
    (lambda x: layers.max_pool2d(Tensor(np.ones((1, 1, 4, 4), dtype=np.int64)), 2), TypeError,
     "floating-point input, got dtype int64"),
])
def test_layer_argument_errors(call, error, message):
    with pytest.raises(error, match=message):
        call(Tensor(np.ones((1, 2, 5, 5))))


def test_pool_modules_default_stride_is_kernel_size_and_repr():
    pool = layers.MaxPool2d(3)
    assert pool.stride == 3 and layers.AvgPool2d(2, stride=1).stride == 1
    assert repr(pool) == ("MaxPool2d(kernel_size=3, stride=3, padding=0, dilation=1, "
                          "ceil_mode=False)")
    assert layers.max_pool2d(Tensor(np.ones((1, 1, 6, 6))), 3).shape == (1, 1, 2, 2)
    assert repr(layers.GELU("tanh")) == "GELU(approximate='tanh')"
    assert repr(layers.Embedding(4, 2, padding_idx=-1)) == "Embedding(4, 2, padding_idx=3)"


def test_softmax_without_dim_uses_pytorch_implicit_dim_and_warns():
    x = Tensor(rng.standard_normal((2, 3, 4)))
    with pytest.warns(UserWarning, match="Implicit dimension choice for softmax"):
        out = layers.Softmax()(x)
    np.testing.assert_allclose(out.numpy().sum(axis=0), 1, rtol=1e-6)   # 3-D: dim 0
    x2 = Tensor(rng.standard_normal((2, 3)))
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("ignore")
        np.testing.assert_allclose(layers.Softmax()(x2).numpy().sum(axis=1), 1, rtol=1e-6)


def test_identity_ignores_its_arguments():
    x = Tensor(np.ones(3))
    assert layers.Identity(54, unused_argument1=0.1)(x) is x
    assert list(layers.Identity().state_dict()) == []


# ---- Embedding --------------------------------------------------------------------------------
def test_embedding_init_padding_and_frozen_pretrained():
    minigrad.manual_seed(0)
    emb = layers.Embedding(1000, 16, padding_idx=0)
    w = emb.weight.numpy()
    assert w.dtype == np.float32 and np.all(w[0] == 0)
    assert abs(w[1:].mean()) < 0.02 and abs(w[1:].std() - 1) < 0.02        # N(0, 1)
    out = emb(np.array([[0, 5], [5, 999]]))
    assert out.shape == (2, 2, 16)
    pre = layers.Embedding.from_pretrained(Tensor(np.eye(3)))
    assert not pre.weight.requires_grad and pre.weight.shape == (3, 3)
    assert layers.Embedding.from_pretrained(np.eye(3), freeze=False).weight.requires_grad


@pytest.mark.parametrize("call, error, message", [
    (lambda e: e(np.array([0, 10])), IndexError, r"indices span 0\.\.10, but there are 10"),
    (lambda e: e(np.array([-1])), IndexError, "out of range"),
    (lambda e: e(np.array([0.0, 1.0])), TypeError, "indices must be integers, got dtype float64"),
    (lambda e: layers.Embedding(10, 3, padding_idx=10), ValueError, "padding_idx 10 must be"),
    (lambda e: layers.Embedding(10, 3, max_norm=1.0), ValueError, "max_norm=1.0 is not"),
    (lambda e: layers.Embedding(10, 3, sparse=True), ValueError, "sparse=True"),
    (lambda e: layers.Embedding(10, 3, _weight=np.ones((3, 3))), ValueError, r"\(10, 3\)"),
])
def test_embedding_errors(call, error, message):
    with pytest.raises(error, match=message):
        call(layers.Embedding(10, 3))


# ---- ModuleList / ModuleDict ------------------------------------------------------------------
class Net(Module):
    def __init__(self):
        self.layers = ModuleList([Linear(2, 3), ReLU(), Linear(3, 1)])
        self.heads = ModuleDict({"cls": Linear(1, 2), "box": Linear(1, 4)})


def test_containers_name_their_entries_as_pytorch():
    net = Net()
    assert list(net.state_dict()) == ["layers.0.weight", "layers.0.bias", "layers.2.weight",
                                      "layers.2.bias", "heads.cls.weight", "heads.cls.bias",
                                      "heads.box.weight", "heads.box.bias"]
    assert len(net.parameters()) == 8
    x = Tensor(np.ones((5, 2)))
    for layer in net.layers:
        x = layer(x)
    assert x.shape == (5, 1) and net.heads["box"](x).shape == (5, 4)
    with pytest.raises(NotImplementedError):
        net.layers(x)                                   # no forward, as in PyTorch


def test_module_list_operations_renumber_like_pytorch():
    a, b, c, d = (Linear(1, 1) for _ in range(4))
    ml = ModuleList([a, b])
    ml.append(c)
    ml.insert(0, d)
    assert list(ml) == [d, a, b, c] and ml[-1] is c and len(ml) == 4
    del ml[1]
    assert list(ml) == [d, b, c]
    assert [k.split(".")[0] for k in ml.state_dict()][::2] == ["0", "1", "2"]
    ml[0] = a
    assert ml[0] is a and isinstance(ml[1:], ModuleList) and list(ml[1:]) == [b, c]
    ml += [d]
    assert len(ml) == 4 and len(ml + ModuleList([a])) == 5
    with pytest.raises(IndexError, match="index 4 is out of range for a ModuleList of 4"):
        ml[4]
    with pytest.raises(TypeError, match="ModuleList holds Modules, got int"):
        ml.append(3)


def test_module_dict_operations_and_key_rules():
    md = ModuleDict()
    md["a"], md["b"] = Linear(1, 1), ReLU()
    md.update([("c", ReLU())])
    assert md.keys() == ["a", "b", "c"] and "b" in md and len(md) == 3
    assert [k for k, _ in md.items()] == list(md) and len(md.values()) == 3
    assert isinstance(md.pop("b"), ReLU) and md.keys() == ["a", "c"]
    del md["c"]
    assert list(md.state_dict()) == ["a.weight", "a.bias"]
    with pytest.raises(KeyError, match="has no key 'zzz'"):
        md["zzz"]
    for key in ("forward", "training", "parameters"):
        with pytest.raises(KeyError, match=f"attribute '{key}' already exists"):
            md[key] = ReLU()
    for key in ("a.b", "", "_private"):
        with pytest.raises(KeyError, match="non-empty strings without"):
            md[key] = ReLU()
    md.clear()
    assert len(md) == 0 and md.state_dict() == {}
