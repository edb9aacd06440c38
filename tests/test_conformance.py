"""Conformance with PyTorch: layers, losses and SGD checked against stored reference values.

The references are float64 PyTorch results in tests/fixtures/*.npz, written by
tests/fixtures/make_fixtures.py (the only file that needs torch; its docstring lists the keys).
Every test runs in float64, where minigrad must agree to ~1e-10, and in float32 (see TOL).
"""
import functools
import os

import numpy as np
import pytest

import minigrad.functional as F
from minigrad import Tensor, nn, optim

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")

# |actual - expected| <= rtol * |expected| + rtol * max|expected|  (the second term scales the
# absolute slack with the array, so entries that cancel to ~0 are judged against their array).
# The fixtures' inputs are float32-representable, so a float32 error is minigrad's arithmetic
# alone. Measured float32 errors, relative to the array's largest entry: below 4e-7 for single
# layers and the SGD runs, 4e-6 after the 5-step CNN run (elementwise up to 1.4e-4 on its smallest
# entries, hence the array-scaled term). float64 errors are below 1e-14 of the array's largest.
TOL = {np.float64: 1e-10, np.float32: 1e-4}


@functools.lru_cache(maxsize=None)
def _fixture(name):
    with np.load(os.path.join(FIXTURES, f"{name}.npz")) as z:
        return {k: z[k] for k in z.files}


def _group(name, prefix):
    """The arrays of one fixture file whose keys start with prefix, with the prefix removed."""
    return {k[len(prefix):]: v for k, v in _fixture(name).items() if k.startswith(prefix)}


def _check(actual, expected, dtype, what, scale_floor=0.0):
    """Compare a minigrad result with a float64 PyTorch reference; actual must have `dtype`.

    |actual - expected| <= tol * |expected| + tol * max(max|expected|, scale_floor).
    """
    actual = actual.data if isinstance(actual, Tensor) else actual
    assert actual is not None, f"{what}: no value (a gradient that was never computed?)"
    assert actual.dtype == dtype, f"{what}: dtype {actual.dtype}, expected {np.dtype(dtype)}"
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} vs {expected.shape}"
    rtol = TOL[dtype]
    np.testing.assert_allclose(actual.astype(np.float64), expected, rtol=rtol,
                               atol=rtol * max(np.abs(expected).max(), scale_floor),
                               err_msg=f"[{np.dtype(dtype).name}] {what}")


def _load_init(module, fx, dtype):
    """Convert module to dtype, then load the fixture's `init/...` state dict strictly."""
    init = {k[len("init/"):]: v for k, v in fx.items() if k.startswith("init/")}
    assert list(module.state_dict()) == list(init), "state_dict keys or their order differ"
    module.to(dtype)
    module.load_state_dict(init, strict=True)


@pytest.fixture(params=[np.float64, np.float32], ids=["float64", "float32"])
def dtype(request):
    return request.param


# ---- BatchNorm --------------------------------------------------------------------------------
BN_LAYOUTS = {"bn1d_nc": nn.BatchNorm1d, "bn1d_ncl": nn.BatchNorm1d, "bn2d": nn.BatchNorm2d}
BN_CONFIGS = ["mom0.1", "cumulative", "noaffine", "nostats", "eps1e-3_mom0.3"]


@pytest.mark.parametrize("config", BN_CONFIGS)
@pytest.mark.parametrize("layout", BN_LAYOUTS)
def test_batchnorm_three_training_steps_then_eval(layout, config, dtype):
    fx = _group("batchnorm", f"{layout}/{config}/")
    momentum = None if np.isnan(fx["momentum"]) else float(fx["momentum"])
    affine, tracked = bool(fx["affine"]), bool(fx["track_running_stats"])
    bn = BN_LAYOUTS[layout](fx["step1/x"].shape[1], eps=float(fx["eps"]), momentum=momentum,
                            affine=affine, track_running_stats=tracked)
    _load_init(bn, fx, dtype)
    for step in ("step1", "step2", "step3", "eval"):
        what = f"batchnorm {layout}/{config} {step}"
        bn.train(step != "eval")
        bn.zero_grad()
        x = Tensor(fx[f"{step}/x"], requires_grad=True, dtype=dtype)
        out = bn(x)
        out.backward(fx[f"{step}/dout"].astype(dtype))
        _check(out, fx[f"{step}/out"], dtype, f"{what} out")
        _check(x.grad, fx[f"{step}/dx"], dtype, f"{what} dx")
        if affine:
            _check(bn.weight.grad, fx[f"{step}/dweight"], dtype, f"{what} dweight")
            _check(bn.bias.grad, fx[f"{step}/dbias"], dtype, f"{what} dbias")
        state = bn.state_dict()
        if not tracked:
            assert set(state) == ({"weight", "bias"} if affine else set())
            continue
        stats_step = "step3" if step == "eval" else step     # eval must leave them unchanged
        _check(state["running_mean"], fx[f"{stats_step}/running_mean"], dtype,
               f"{what} running_mean")
        _check(state["running_var"], fx[f"{stats_step}/running_var"], dtype,
               f"{what} running_var")
        count = state["num_batches_tracked"].data
        assert count.dtype == np.int64 and count.shape == ()
        assert count == fx[f"{stats_step}/num_batches_tracked"], f"{what} num_batches_tracked"


# ---- Conv2d -----------------------------------------------------------------------------------
@pytest.mark.parametrize("config", ["s1p0", "s2p1", "k32_s21_p10", "nobias"])
def test_conv2d_forward_and_backward(config, dtype):
    fx = _group("conv2d", f"{config}/")
    has_bias = bool(fx["has_bias"])
    conv = nn.Conv2d(3, 4, tuple(fx["kernel_size"]), stride=tuple(fx["stride"]),
                     padding=tuple(fx["padding"]), bias=has_bias)
    conv.to(dtype)
    state = {"weight": fx["weight"], "bias": fx["bias"]} if has_bias else {"weight": fx["weight"]}
    conv.load_state_dict(state, strict=True)
    x = Tensor(fx["x"], requires_grad=True, dtype=dtype)
    out = conv(x)
    out.backward(fx["dout"].astype(dtype))
    _check(out, fx["out"], dtype, f"conv2d {config} out")
    _check(x.grad, fx["dx"], dtype, f"conv2d {config} dx")
    _check(conv.weight.grad, fx["dweight"], dtype, f"conv2d {config} dweight")
    if has_bias:
        _check(conv.bias.grad, fx["dbias"], dtype, f"conv2d {config} dbias")
    else:
        assert conv.bias is None and list(conv.state_dict()) == ["weight"]


# ---- Linear, cross-entropy, log_softmax -------------------------------------------------------
def test_linear_forward_and_backward(dtype):
    fx = _group("linear_ce", "linear/")
    lin = nn.Linear(5, 3).to(dtype)
    lin.load_state_dict({"weight": fx["weight"], "bias": fx["bias"]}, strict=True)
    x = Tensor(fx["x"], requires_grad=True, dtype=dtype)
    out = lin(x)
    out.backward(fx["dout"].astype(dtype))
    _check(out, fx["out"], dtype, "linear out")
    _check(x.grad, fx["dx"], dtype, "linear dx")
    _check(lin.weight.grad, fx["dweight"], dtype, "linear dweight")
    _check(lin.bias.grad, fx["dbias"], dtype, "linear dbias")


@pytest.mark.parametrize("case", ["normal", "large"])
def test_cross_entropy_forward_and_backward(case, dtype):
    fx = _group("linear_ce", f"ce/{case}/")
    logits = Tensor(fx["logits"], requires_grad=True, dtype=dtype)
    loss = F.cross_entropy(logits, fx["target"])
    loss.backward(fx["dloss"].astype(dtype))
    assert loss.shape == ()
    _check(loss, fx["loss"], dtype, f"cross_entropy {case} loss")
    _check(logits.grad, fx["dlogits"], dtype, f"cross_entropy {case} dlogits")


@pytest.mark.parametrize("case", ["normal", "large"])
def test_log_softmax_forward_and_backward(case, dtype):
    fx = _group("linear_ce", f"log_softmax/{case}/")
    x = Tensor(fx["x"], requires_grad=True, dtype=dtype)
    out = F.log_softmax(x, 1)
    out.backward(fx["dout"].astype(dtype))
    _check(out, fx["out"], dtype, f"log_softmax {case} out")
    _check(x.grad, fx["dx"], dtype, f"log_softmax {case} dx")


# ---- SGD --------------------------------------------------------------------------------------
SGD_CONFIGS = ["plain", "momentum", "dampening", "nesterov", "weight_decay"]


def _sgd_setup(config, dtype):
    fx = _fixture("sgd")
    lin = nn.Linear(4, 3).to(dtype)
    lin.load_state_dict({"weight": fx["init/weight"], "bias": fx["init/bias"]}, strict=True)
    cfg = _group("sgd", f"{config}/")
    opt = optim.SGD(lin.parameters(), lr=float(cfg["lr"]), momentum=float(cfg["momentum"]),
                    dampening=float(cfg["dampening"]), weight_decay=float(cfg["weight_decay"]),
                    nesterov=bool(cfg["nesterov"]))
    return lin, opt, cfg


@pytest.mark.parametrize("config", SGD_CONFIGS)
def test_sgd_update_rule_on_pytorchs_gradients(config, dtype):
    """The optimiser alone: feed it the gradients PyTorch saw, compare the parameters."""
    lin, opt, fx = _sgd_setup(config, dtype)
    for k in range(1, 6):
        lin.weight.grad = fx[f"step{k}/grad_weight"].astype(dtype)
        lin.bias.grad = fx[f"step{k}/grad_bias"].astype(dtype)
        opt.step()
        _check(lin.weight, fx[f"step{k}/weight"], dtype, f"sgd-rule {config} step{k} weight")
        _check(lin.bias, fx[f"step{k}/bias"], dtype, f"sgd-rule {config} step{k} bias")


@pytest.mark.parametrize("config", SGD_CONFIGS)
def test_sgd_training_loop(config, dtype):
    """Autograd and optimiser together on loss = sum((x W^T + b - y)^2)."""
    lin, opt, fx = _sgd_setup(config, dtype)
    x = Tensor(_fixture("sgd")["x"], dtype=dtype)
    y = Tensor(_fixture("sgd")["y"], dtype=dtype)
    for k in range(1, 6):
        what = f"sgd-loop {config} step{k}"
        opt.zero_grad()
        diff = lin(x) - y
        loss = (diff * diff).sum()
        loss.backward()
        _check(loss, fx[f"step{k}/loss"], dtype, f"{what} loss")
        _check(lin.weight.grad, fx[f"step{k}/grad_weight"], dtype, f"{what} grad_weight")
        _check(lin.bias.grad, fx[f"step{k}/grad_bias"], dtype, f"{what} grad_bias")
        opt.step()
        _check(lin.weight, fx[f"step{k}/weight"], dtype, f"{what} weight")
        _check(lin.bias, fx[f"step{k}/bias"], dtype, f"{what} bias")


# ---- a small CNN with BatchNorm, trained 5 steps ------------------------------------------------
def test_cnn_with_batchnorm_five_sgd_steps(dtype):
    fx = _fixture("cnn")
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
        nn.Conv2d(4, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Flatten(), nn.Linear(8 * 4 * 4, 10))
    assert list(model.state_dict()) == list(fx["state_keys"])
    _load_init(model, fx, dtype)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model.train()
    for k in range(1, 6):
        opt.zero_grad()
        loss = F.cross_entropy(model(Tensor(fx[f"batch{k}/x"], dtype=dtype)), fx[f"batch{k}/y"])
        loss.backward()
        opt.step()
        _check(loss, fx[f"step{k}/loss"], dtype, f"cnn step{k} loss")
        for name, value in model.state_dict().items():
            expected = fx[f"step{k}/{name}"]
            if name.endswith("num_batches_tracked"):
                assert value.dtype == np.int64 and value.data == expected, f"step{k} {name}"
            else:
                _check(value, expected, dtype, f"cnn step{k} {name}")
    model.eval()
    _check(model(Tensor(fx["eval/x"], dtype=dtype)), fx["eval/logits"], dtype, "cnn eval logits")
