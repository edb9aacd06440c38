"""minigrad.diagnostics.bn_report: right numbers, right verdicts, and the model left untouched.

Three models trained on the digits for the verdicts: a healthy BN MLP (batch 32), the same with
its running statistics corrupted, and one trained with batches of 2. Smaller cases check the
population statistics against NumPy and the state restoration bit by bit.
"""
import json

import numpy as np
import pytest

import minigrad as mg
import minigrad.functional as F
from minigrad import Tensor, nn, no_grad, optim
from minigrad.data import DataLoader, load_digits
from minigrad.diagnostics import BNReport, bn_report


@pytest.fixture(scope="module")
def digits():
    return load_digits("train"), load_digits("test")


def bn_mlp():
    return nn.Sequential(
        nn.Flatten(), nn.Linear(64, 64, bias=False), nn.BatchNorm1d(64), nn.ReLU(),
        nn.Linear(64, 32, bias=False), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 10))


def trained(digits, batch_size, steps):
    (x, y), _ = digits
    mg.manual_seed(0)
    model = bn_mlp()
    opt = optim.SGD(model.parameters(), lr=0.05 * batch_size / 32, momentum=0.9)
    done = 0
    while done < steps:
        for xb, yb in DataLoader((x, y), batch_size=batch_size, shuffle=True, drop_last=True,
                                 seed=done):
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            done += 1
            if done == steps:
                break
    return model.eval()


def loader_of(digits):
    return DataLoader(digits[1], batch_size=64)


def snapshot(model):
    return ({k: v.numpy().copy() for k, v in model.state_dict().items()},
            [m.training for m in model.modules()],
            [getattr(m, "momentum", None) for m in model.modules()])


def assert_untouched(model, before):
    state, modes, momenta = snapshot(model)
    for k, v in before[0].items():
        assert np.array_equal(state[k], v) and state[k].dtype == v.dtype, f"bn_report changed {k}"
    assert modes == before[1], "bn_report changed a module's train/eval mode"
    assert momenta == before[2], "bn_report changed a momentum"
    assert not any(m.__dict__.get("_forward_hooks") for m in model.modules()), "a hook was left"


def test_healthy_model_passes(digits):
    model = trained(digits, 32, 150)
    before = snapshot(model)
    report = bn_report(model, loader_of(digits))
    assert isinstance(report, BNReport) and report.healthy and report.findings == []
    assert [layer.name for layer in report.layers] == ["2", "5"]
    assert not any(layer.off for layer in report.layers)
    assert report.examples == 359 and report.batches == 6
    assert report.accuracy_eval > 0.9 and report.agreement >= 0.95
    assert "Healthy" in str(report)
    assert_untouched(model, before)


def test_corrupted_running_statistics_are_found_and_recalibration_fixes_them(digits):
    model = trained(digits, 32, 150)
    bn = model[2]
    bn.running_mean.data[...] += 1.5 * np.sqrt(bn.running_var.data)
    bn.running_var.data[...] *= 0.2
    before = snapshot(model)
    report = bn_report(model, loader_of(digits))
    assert report.findings == ["stale_stats"]
    first = report.layers[0]
    assert first.off and first.max_mean_shift > 1.0 and first.worst_var_ratio < 0.5
    assert report.agreement < 0.95 and report.accuracy_eval < 0.8
    assert report.recalibrated["layers_off"] == []
    assert report.recalibrated["accuracy_eval"] > 0.9
    text = str(report)
    assert "Layer '2' (BatchNorm1d) is the first" in text and "update_bn" in text
    assert_untouched(model, before)


def test_training_at_batch_2_is_flagged_as_batch_dependence(digits):
    model = trained(digits, 2, 700)
    before = snapshot(model)
    report = bn_report(model, loader_of(digits))
    assert "batch_dependence" in report.findings and not report.healthy
    assert report.recalibrated["agreement"] < 0.95
    assert all(layer.values_per_example == 1 for layer in report.layers)
    text = str(report)
    assert "larger batches" in text and "GroupNorm" in text and "'2'" in text
    assert_untouched(model, before)


def test_population_statistics_are_those_of_the_layer_input_over_the_whole_loader():
    rng = np.random.default_rng(0)
    X = rng.normal([2.0, -1.0, 0.5], [3.0, 0.2, 1.0], size=(50, 3)).astype(np.float32)
    lin = nn.Linear(3, 4, bias=True)
    model = nn.Sequential(lin, nn.BatchNorm1d(4), nn.Tanh(), nn.BatchNorm1d(4, eps=1e-3))
    with no_grad():
        for _ in range(3):
            model(Tensor(rng.normal(0, 1, (16, 3)).astype(np.float32)))
    model.eval()
    loader = DataLoader((X,), batch_size=16)            # 16, 16, 16 and a last batch of 2
    report = bn_report(model, loader, recalibrate=False)
    with no_grad():
        z1 = lin(Tensor(X)).numpy().astype(np.float64)          # input of BN 1
        z2 = np.tanh(model[1](Tensor(z1.astype(np.float32))).numpy()).astype(np.float64)
    for layer, z, bn in ((report.layers[0], z1, model[1]), (report.layers[1], z2, model[3])):
        var = z.var(axis=0, ddof=1)
        shift = np.abs(bn.running_mean.numpy() - z.mean(0)) / np.sqrt(var + bn.eps)
        ratio = (bn.running_var.numpy() + bn.eps) / (var + bn.eps)
        assert layer.count == 50 and layer.values_per_example == 1
        assert np.allclose(layer.mean_shift, shift, rtol=1e-5, atol=1e-6), layer.name
        assert np.allclose(layer.var_ratio, ratio, rtol=1e-5), layer.name


def test_spatial_layers_count_every_pixel():
    rng = np.random.default_rng(1)
    model = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.BatchNorm2d(3)).eval()
    X = rng.normal(0, 1, (10, 1, 5, 5)).astype(np.float32)
    report = bn_report(model, [Tensor(X[:6]), Tensor(X[6:])], recalibrate=False)
    layer = report.layers[0]
    assert layer.count == 10 * 25 and layer.values_per_example == 25
    with no_grad():
        z = model[0](Tensor(X)).numpy().astype(np.float64)
    var = z.var(axis=(0, 2, 3), ddof=1)
    assert np.allclose(layer.var_ratio, (1 + 1e-5) / (var + 1e-5), rtol=1e-5)
    assert report.agreement is None and report.accuracy_eval is None   # not a classifier


def test_dead_channel_is_reported_as_vanishing_variance(digits):
    model = trained(digits, 32, 150)
    model[4].weight.data[7] = 0.0                       # unit 7 of the second Linear is dead
    report = bn_report(model, loader_of(digits), recalibrate=False)
    assert "vanishing_variance" in report.findings
    assert report.layers[1].vanishing_channels == [7] and report.layers[0].vanishing_channels == []
    assert "'5' channels [7]" in str(report)


def test_state_modes_and_momentum_survive_mixed_modes_and_odd_layers(digits):
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 8, bias=False),
                          nn.BatchNorm1d(8, momentum=None), nn.ReLU(),
                          nn.Linear(8, 8), nn.BatchNorm1d(8, track_running_stats=False),
                          nn.Linear(8, 10))
    with no_grad():
        model(Tensor(digits[0][0][:20]))
    model.train()
    model[2].eval()                                     # a frozen BN inside a training model
    before = snapshot(model)
    x, y = digits[1]
    loader = [(Tensor(x[:32]), Tensor(y[:32])), (Tensor(x[32:33]), Tensor(y[32:33]))]
    report = bn_report(model, loader)
    assert report.skipped_batches == 1                  # a batch of one has no batch statistics
    assert report.layers[1].tracked is False and report.layers[1].mean_shift == []
    assert_untouched(model, before)


def test_result_is_json_serialisable(digits):
    report = bn_report(trained(digits, 32, 60), loader_of(digits))
    data = json.loads(json.dumps(report.to_dict()))
    assert set(data) >= {"layers", "output_gap", "agreement", "recalibrated", "findings",
                         "advice"}
    assert data["layers"][0]["name"] == "2" and len(data["layers"][0]["mean_shift"]) == 64


def test_model_without_batchnorm_and_bad_loaders():
    model = nn.Sequential(nn.Linear(3, 2))
    report = bn_report(model, [Tensor(np.ones((4, 3), np.float32))])
    assert report.layers == [] and report.healthy and report.recalibrated is None
    with pytest.raises(TypeError, match="iterate several times"):
        bn_report(nn.Sequential(nn.BatchNorm1d(3)),
                  (Tensor(np.ones((4, 3), np.float32)) for _ in range(2)))
    one_shot = bn_report(nn.Sequential(nn.BatchNorm1d(3)).eval(),
                         (Tensor(np.ones((4, 3), np.float32)) for _ in range(2)),
                         recalibrate=False)
    assert one_shot.batches == 2 and one_shot.layers[0].count == 8


def test_a_shuffled_loader_is_compared_batch_by_batch(digits):
    model = trained(digits, 32, 150)
    shuffled = DataLoader(digits[1], batch_size=64, shuffle=True, seed=3)
    report = bn_report(model, shuffled)
    assert report.healthy and report.agreement >= 0.95


def test_runs_on_the_device(device):
    mg.manual_seed(0)
    rng = np.random.default_rng(2)
    model = nn.Sequential(nn.Linear(5, 6, bias=False), nn.BatchNorm1d(6), nn.ReLU(),
                          nn.Linear(6, 3)).to(device)
    X = rng.normal(0, 1, (256, 5)).astype(np.float32)
    with no_grad():
        for i in range(0, 256, 32):
            model(Tensor(X[i:i + 32], device=device))
    model[1].running_var.data[...] *= 10.0
    model.eval()
    before = snapshot(model)
    report = bn_report(model, DataLoader((X, np.zeros(256, np.int64)), batch_size=64,
                                         device=device))
    assert report.layers[0].off and report.layers[0].worst_var_ratio > 5
    assert report.findings == ["stale_stats"] and report.recalibrated["layers_off"] == []
    assert_untouched(model, before)
