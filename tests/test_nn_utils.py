"""minigrad.nn_utils: BatchNorm folding and update_bn, against PyTorch and the unfused model.

PyTorch's results are in tests/fixtures/nn_utils.npz, written by
tests/fixtures/make_nn_utils_fixtures.py (its docstring lists the keys). Each fixture case runs in
float64 (agreement to rounding) and float32 (the inputs are float32 values).
"""
import os

import numpy as np
import pytest

from minigrad import Tensor, nn, no_grad
from minigrad.data import DataLoader
from minigrad.nn_utils import (fuse_conv_bn_eval, fuse_conv_bn_weights, fuse_linear_bn_eval,
                               fuse_linear_bn_weights, update_bn)

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
with np.load(os.path.join(FIXTURES, "nn_utils.npz")) as _z:
    FX = {k: _z[k] for k in _z.files}

TOL = {np.float64: 1e-10, np.float32: 2e-5}


def case(prefix):
    found = {k[len(prefix) + 1:]: v for k, v in FX.items() if k.startswith(prefix + "/")}
    assert found, f"nn_utils.npz has no case {prefix!r}"
    return found


def host(t):
    return t.numpy()


def close(actual, expected, dtype, what):
    scale = max(1.0, float(np.abs(expected).max()))
    err = float(np.abs(np.asarray(actual, np.float64) - expected).max())
    assert err <= TOL[dtype] * scale, f"{what}: max |minigrad - PyTorch| = {err:.2e}"


def load_bn(bn, fx, dtype, device):
    bn.to(dtype).to(device)
    bn.running_mean.data[...] = Tensor(fx["bn/running_mean"], dtype=dtype, device=device).data
    bn.running_var.data[...] = Tensor(fx["bn/running_var"], dtype=dtype, device=device).data
    if bn.weight is not None:
        bn.weight.data[...] = Tensor(fx["bn/weight"], dtype=dtype, device=device).data
        bn.bias.data[...] = Tensor(fx["bn/bias"], dtype=dtype, device=device).data
    return bn.eval()


def set_param(p, value, dtype, device):
    p.data[...] = Tensor(value, dtype=dtype, device=device).data


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", ["bias", "nobias", "noaffine", "s2p1"])
def test_fuse_conv_bn_eval_matches_pytorch(name, dtype, device):
    fx = case(f"fuse_conv/{name}")
    has_bias = bool(fx["has_bias"])
    conv = nn.Conv2d(3, 4, 3, stride=int(fx["stride"]), padding=int(fx["padding"]),
                     bias=has_bias).to(dtype).to(device)
    set_param(conv.weight, fx["conv/weight"], dtype, device)
    if has_bias:
        set_param(conv.bias, fx["conv/bias"], dtype, device)
    bn = load_bn(nn.BatchNorm2d(4, eps=float(fx["eps"]), affine=bool(fx["affine"])), fx, dtype,
                 device)
    conv.eval()
    fused = fuse_conv_bn_eval(conv, bn)
    assert isinstance(fused, nn.Conv2d) and fused is not conv
    assert fused.weight.dtype == dtype and fused.bias.dtype == dtype
    assert fused.weight.device == device
    close(host(fused.weight), fx["fused/weight"], dtype, f"{name}: fused weight")
    close(host(fused.bias), fx["fused/bias"], dtype, f"{name}: fused bias")
    assert fused.bias.requires_grad == bool(fx["fused/bias_requires_grad"])
    assert fused.weight.requires_grad
    with no_grad():
        out = fused(Tensor(fx["x"], dtype=dtype, device=device)).numpy()
    close(out, fx["out"], dtype, f"{name}: fused(x)")
    assert [k for k, _ in fused.named_parameters()] == ["weight", "bias"]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", ["bias", "nobias", "onefeature"])
def test_fuse_linear_bn_eval_matches_pytorch(name, dtype, device):
    fx = case(f"fuse_linear/{name}")
    has_bias = bool(fx["has_bias"])
    linear = nn.Linear(5, 4, bias=has_bias).to(dtype).to(device)
    set_param(linear.weight, fx["linear/weight"], dtype, device)
    if has_bias:
        set_param(linear.bias, fx["linear/bias"], dtype, device)
    features = len(fx["bn/running_mean"])
    bn = load_bn(nn.BatchNorm1d(features, eps=float(fx["eps"])), fx, dtype, device)
    fused = fuse_linear_bn_eval(linear.eval(), bn)
    close(host(fused.weight), fx["fused/weight"], dtype, f"{name}: fused weight")
    close(host(fused.bias), fx["fused/bias"], dtype, f"{name}: fused bias")
    assert fused.bias.requires_grad == bool(fx["fused/bias_requires_grad"])
    with no_grad():
        out = fused(Tensor(fx["x"], dtype=dtype, device=device)).numpy()
    close(out, fx["out"], dtype, f"{name}: fused(x)")


def trained_cnn(device, rng):
    """A BN CNN with non-trivial running statistics and affine parameters, in eval mode."""
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
        nn.Conv2d(4, 6, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(6, affine=False),
        nn.ReLU(), nn.Flatten(), nn.Linear(6 * 4 * 4, 5, bias=False), nn.BatchNorm1d(5),
        nn.ReLU(), nn.Linear(5, 3)).to(device)
    with no_grad():
        for _ in range(4):                       # training-mode passes move the running stats
            model(Tensor(rng.normal(0.5, 2.0, (16, 1, 8, 8)).astype(np.float32), device=device))
    for bn in (model[1], model[8]):
        bn.weight.data[...] = Tensor(rng.normal(1, 0.4, bn.num_features), device=device).data
        bn.bias.data[...] = Tensor(rng.normal(0, 0.4, bn.num_features), device=device).data
    return model.eval()


def test_folded_network_equals_unfused_in_eval_mode(device):
    rng = np.random.default_rng(0)
    model = trained_cnn(device, rng)
    before = {k: v.numpy() for k, v in model.state_dict().items()}
    folded = nn.Sequential(fuse_conv_bn_eval(model[0], model[1]), nn.ReLU(),
                           fuse_conv_bn_eval(model[3], model[4]), nn.ReLU(), nn.Flatten(),
                           fuse_linear_bn_eval(model[7], model[8]), nn.ReLU(), model[10]).eval()
    x = Tensor(rng.normal(0.5, 2.0, (32, 1, 8, 8)).astype(np.float32), device=device)
    with no_grad():
        want, got = model(x).numpy(), folded(x).numpy()
    assert np.abs(got - want).max() < 1e-5 * max(1.0, np.abs(want).max())
    assert (got.argmax(1) == want.argmax(1)).all()
    # the originals are untouched
    for k, v in model.state_dict().items():
        assert np.array_equal(v.numpy(), before[k]), f"fusion changed the original's {k}"
    # and the folded network is NOT the model in training mode (batch statistics)
    model.train()
    with no_grad():
        train_mode = model(x).numpy()
    assert np.abs(train_mode - got).max() > 1e-2


def test_fused_module_is_independent_and_trainable():
    rng = np.random.default_rng(1)
    linear, bn = nn.Linear(3, 2).eval(), nn.BatchNorm1d(2).eval()
    fused = fuse_linear_bn_eval(linear, bn)
    w0 = linear.weight.numpy().copy()
    fused.weight.data[...] += 1.0
    assert np.array_equal(linear.weight.numpy(), w0), "the fused layer shares the original's weight"
    fused.train()
    x = Tensor(rng.standard_normal((4, 3)).astype(np.float32))
    fused(x).sum().backward()
    assert fused.weight.grad is not None and fused.bias.grad is not None


def test_bn_without_affine_or_with_weight_only_folds(device):
    rng = np.random.default_rng(2)
    for bn in (nn.BatchNorm1d(4, affine=False), nn.BatchNorm1d(4, bias=False)):
        linear = nn.Linear(6, 4, bias=False).to(device)
        bn.to(device)
        with no_grad():
            for _ in range(3):
                bn(linear(Tensor(rng.normal(1, 2, (10, 6)).astype(np.float32), device=device)))
        if bn.weight is not None:
            bn.weight.data[...] = Tensor(rng.normal(1, 0.5, 4), device=device).data
        linear.eval(), bn.eval()
        x = Tensor(rng.normal(0, 1, (5, 6)).astype(np.float32), device=device)
        with no_grad():
            want = bn(linear(x)).numpy()
            got = fuse_linear_bn_eval(linear, bn)(x).numpy()
        assert np.abs(got - want).max() < 1e-5 * max(1.0, np.abs(want).max()), bn.extra_repr()


def test_weights_functions_take_arrays():
    w = np.arange(6.0).reshape(2, 3)
    rm, rv = np.array([1.0, -1.0]), np.array([3.0, 0.0])
    fw, fb = fuse_linear_bn_weights(w, None, rm, rv, 1.0, None, None)
    s = 1 / np.sqrt(rv + 1.0)
    assert np.allclose(fw.numpy(), w * s[:, None]) and np.allclose(fb.numpy(), -rm * s)
    assert fw.dtype == np.float64 and not fb.requires_grad
    cw = np.ones((2, 1, 2, 2))
    fw, fb = fuse_conv_bn_weights(cw, np.array([0.5, 0.5]), rm, rv, 1.0, np.array([2.0, 1.0]),
                                  np.array([0.0, 3.0]))
    assert np.allclose(fw.numpy()[:, 0, 0, 0], [2 * s[0], s[1]])
    assert np.allclose(fb.numpy(), (0.5 - rm) * s * [2.0, 1.0] + [0.0, 3.0]) and fb.requires_grad


def test_fusion_refuses_training_mode_and_bad_pairs():
    conv, bn = nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)
    with pytest.raises(AssertionError, match="Fusion only for eval!"):
        fuse_conv_bn_eval(conv, bn.eval())
    with pytest.raises(AssertionError, match=r"bn.training=True"):
        fuse_conv_bn_eval(conv.eval(), bn.train())
    with pytest.raises(AssertionError, match="track_running_stats"):
        fuse_conv_bn_eval(conv.eval(), nn.BatchNorm2d(2, track_running_stats=False).eval())
    with pytest.raises(ValueError, match=r"num_features \(3\) must equal conv.out_channels \(2\)"):
        fuse_conv_bn_eval(conv.eval(), nn.BatchNorm2d(3).eval())
    with pytest.raises(TypeError, match="got GroupNorm"):
        fuse_conv_bn_eval(conv.eval(), nn.GroupNorm(1, 2).eval())
    with pytest.raises(ValueError, match="ConvTranspose"):
        fuse_conv_bn_eval(conv.eval(), bn.eval(), transpose=True)
    with pytest.raises(AssertionError, match="linear.out_features=3 and bn.num_features=2"):
        fuse_linear_bn_eval(nn.Linear(2, 3).eval(), nn.BatchNorm1d(2).eval())


# ---- update_bn ----------------------------------------------------------------------------------
def fixture_model(dtype, device):
    model = nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1, bias=False), nn.BatchNorm2d(3, momentum=0.3), nn.ReLU(),
        nn.Flatten(), nn.Linear(48, 6, bias=False), nn.BatchNorm1d(6, momentum=None), nn.ReLU(),
        nn.Linear(6, 2)).to(dtype).to(device)
    keys = [str(k) for k in FX["update_bn/state_keys"]]
    assert keys == list(model.state_dict()), "the fixture model and ours have different state keys"
    model.load_state_dict({k: FX[f"update_bn/init/{k}"] for k in keys})
    return model.eval(), keys


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_update_bn_matches_pytorch(dtype, device):
    model, keys = fixture_model(dtype, device)
    batches = [(Tensor(FX[f"update_bn/batch{k}/x"], dtype=dtype, device=device),
                Tensor(np.zeros(len(FX[f"update_bn/batch{k}/x"]), np.int64), device=device))
               for k in (1, 2, 3)]
    update_bn(batches, model)
    after = model.state_dict()
    for k in keys:
        close(after[k].numpy(), FX[f"update_bn/after/{k}"], dtype, f"update_bn: {k}")
    assert int(after["1.num_batches_tracked"].item()) == 3
    assert model[1].momentum == 0.3 and model[5].momentum is None
    assert not any(m.training for m in model.modules()), "update_bn must restore eval mode"


def test_update_bn_is_the_plain_average_of_batch_statistics():
    rng = np.random.default_rng(3)
    X = rng.normal([1.0, -2.0, 5.0], [1.0, 0.5, 3.0], size=(40, 3)).astype(np.float32)
    model = nn.Sequential(nn.BatchNorm1d(3, momentum=0.5))
    model[0].running_mean.data[...] = 9.0               # stale values that must be forgotten
    model.train()
    update_bn(DataLoader((X, np.zeros(40, np.int64)), batch_size=8), model)
    chunks = np.split(X.astype(np.float64), 5)
    assert np.allclose(model[0].running_mean.numpy(), np.mean([c.mean(0) for c in chunks], 0),
                       atol=1e-5)
    assert np.allclose(model[0].running_var.numpy(),
                       np.mean([c.var(0, ddof=1) for c in chunks], 0), rtol=1e-5)
    assert model.training and model[0].momentum == 0.5


def test_update_bn_keeps_each_modules_own_mode():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.BatchNorm1d(4))
    model.train()
    model[3].eval()                                     # a BN frozen inside a training model
    update_bn([Tensor(np.random.default_rng(4).standard_normal((6, 3)).astype(np.float32))], model)
    assert [m.training for m in model] == [True, True, True, False]
    assert int(model[3].num_batches_tracked.item()) == 1, "the frozen BN is recalibrated too"


def test_update_bn_without_batchnorm_does_nothing():
    def loader():
        raise AssertionError("update_bn iterated the loader of a model without BatchNorm")
        yield

    model = nn.Sequential(nn.Linear(2, 2)).eval()
    update_bn(loader(), model)
    assert not model.training


def test_update_bn_restores_momentum_and_mode_when_a_batch_fails():
    model = nn.Sequential(nn.BatchNorm1d(2, momentum=0.2),
                          nn.BatchNorm1d(2, track_running_stats=False))
    model.eval()
    batches = [Tensor(np.ones((4, 2), np.float32)), Tensor(np.ones((1, 2), np.float32))]
    with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
        update_bn(batches, model)
    assert model[0].momentum == 0.2 and model[1].momentum == 0.1
    assert not any(m.training for m in model.modules())
    assert model[1].running_mean is None


def test_update_bn_moves_batches_to_the_device(device):
    model = nn.Sequential(nn.BatchNorm1d(2)).to(device)
    X = np.arange(8, dtype=np.float32).reshape(4, 2)
    update_bn([(Tensor(X), None)], model, device=device)
    assert np.allclose(model[0].running_mean.numpy(), X.mean(0))
