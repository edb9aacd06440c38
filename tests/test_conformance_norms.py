"""Conformance with PyTorch for LayerNorm and GroupNorm: outputs and gradients of x, weight, bias.

The references are float64 PyTorch results in tests/fixtures/norms.npz, written by make_norms() in
tests/fixtures/make_fixtures.py (its docstring lists the keys). As in test_conformance.py, every
case runs in float64 (agreement to ~1e-10) and in float32 (1e-4; the inputs are float32 values).
"""
import os

import numpy as np
import pytest

from minigrad import Tensor, nn
from test_conformance import _check as check_against_torch

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")

with np.load(os.path.join(FIXTURES, "norms.npz")) as _z:
    NORMS = {k: _z[k] for k in _z.files}

LN_CASES = ["ln_nd", "ln_nd_eps1e-3", "ln_nd_noaffine", "ln_nchw", "ln_nchw_noaffine"]
GN_CASES = [f"gn_g{g}_{layout}" for g in (1, 2, 4) for layout in ("nchw", "nc")] + \
    ["gn_g2_nchw_noaffine"]


def _case(name):
    prefix = f"{name}/"
    fx = {k[len(prefix):]: v for k, v in NORMS.items() if k.startswith(prefix)}
    assert fx, f"norms.npz has no case {name!r}"
    return fx


def _check(actual, expected, dtype, what):
    """test_conformance.py's rule, with the array scale floored at 1 (the scale of normalised
    values): GroupNorm with one value per group has dx = 0, which PyTorch returns as rounding
    noise of ~1e-13, and that noise is not a scale to judge minigrad's exact zeros against.
    """
    check_against_torch(actual, expected, dtype, what, scale_floor=1.0)


def _run(module, fx, dtype, what):
    affine = bool(fx["affine"])
    module.to(dtype)
    if affine:
        assert list(module.state_dict()) == ["weight", "bias"]
        module.load_state_dict({"weight": fx["weight"], "bias": fx["bias"]}, strict=True)
    else:
        assert module.weight is None and module.bias is None and module.state_dict() == {}
    x = Tensor(fx["x"], requires_grad=True, dtype=dtype)
    out = module(x)
    out.backward(fx["dout"].astype(dtype))
    _check(out, fx["out"], dtype, f"{what} out")
    _check(x.grad, fx["dx"], dtype, f"{what} dx")
    if affine:
        _check(module.weight.grad, fx["dweight"], dtype, f"{what} dweight")
        _check(module.bias.grad, fx["dbias"], dtype, f"{what} dbias")


@pytest.fixture(params=[np.float64, np.float32], ids=["float64", "float32"])
def dtype(request):
    return request.param


@pytest.mark.parametrize("name", LN_CASES)
def test_layernorm_forward_and_backward(name, dtype):
    fx = _case(name)
    ln = nn.LayerNorm(tuple(int(n) for n in fx["normalized_shape"]), eps=float(fx["eps"]),
                      elementwise_affine=bool(fx["affine"]))
    _run(ln, fx, dtype, f"layernorm {name}")


@pytest.mark.parametrize("name", GN_CASES)
def test_groupnorm_forward_and_backward(name, dtype):
    fx = _case(name)
    gn = nn.GroupNorm(int(fx["num_groups"]), int(fx["num_channels"]), eps=float(fx["eps"]),
                      affine=bool(fx["affine"]))
    _run(gn, fx, dtype, f"groupnorm {name}")


def test_layernorm_is_the_same_in_training_and_eval():
    fx = _case("ln_nchw")
    ln = nn.LayerNorm((3, 4, 5)).to(np.float64)
    ln.load_state_dict({"weight": fx["weight"], "bias": fx["bias"]})
    x = Tensor(fx["x"], dtype=np.float64)
    out_train = ln.train()(x).data
    out_eval = ln.eval()(x).data
    np.testing.assert_array_equal(out_train, out_eval)
    _check(out_eval, fx["out"], np.float64, "layernorm eval out")


def test_groupnorm_with_one_value_per_group_outputs_the_bias():
    """G = C on (N, C): every group is a single value, so xhat = 0 and y = beta (as PyTorch)."""
    fx = _case("gn_g4_nc")
    np.testing.assert_allclose(fx["out"], np.broadcast_to(fx["bias"], fx["out"].shape),
                               rtol=0, atol=1e-12)
    np.testing.assert_allclose(fx["dx"], 0.0, rtol=0, atol=1e-12)
    gn = nn.GroupNorm(4, 4).to(np.float64)
    gn.load_state_dict({"weight": fx["weight"], "bias": fx["bias"]})
    x = Tensor(fx["x"], dtype=np.float64, requires_grad=True)
    out = gn(x)
    out.backward(fx["dout"])
    np.testing.assert_array_equal(out.data, np.broadcast_to(fx["bias"], out.shape))
    np.testing.assert_array_equal(x.grad, 0.0)
    np.testing.assert_array_equal(gn.weight.grad, 0.0)


def test_norm_shape_errors():
    with pytest.raises(ValueError, match=r"last 2 axes must be \(4, 5\)"):
        nn.LayerNorm((4, 5))(Tensor(np.ones((2, 5, 4))))
    with pytest.raises(ValueError, match=r"GroupNorm expects \(N, 4, \.\.\.\) input"):
        nn.GroupNorm(2, 4)(Tensor(np.ones((2, 3, 5))))
    with pytest.raises(ValueError, match="must be divisible by num_groups"):
        nn.GroupNorm(3, 4)
