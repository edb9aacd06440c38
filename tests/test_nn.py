"""Modules: discovery and naming, state dicts, modes and dtypes, containers, printing, default
initialisation, float64 gradchecks of every layer (inputs and parameters), BatchNorm's edge
cases and errors, forward hooks, and the Recorder (which must not change training)."""
import math

import numpy as np
import pytest

import minigrad
from minigrad import Tensor, init, nn, optim
from minigrad import functional as F
from minigrad.backend import to_numpy as host
from minigrad.recorder import Recorder
from minigrad.testing import gradcheck


class Net(nn.Module):
    """Sub-modules in a Sequential, a list, a tuple and a dict, plus a Parameter of its own."""

    def __init__(self):
        self.features = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU())
        self.layers = [nn.Linear(8, 4), nn.Linear(4, 4)]
        self.pair = (nn.ReLU(), nn.Linear(4, 3))
        self.blocks = {"a": nn.Linear(3, 3), "b": nn.BatchNorm1d(3)}
        self.scale = nn.Parameter(np.full(3, 2.0))

    def forward(self, x):                                  # x: (N, 1, 4, 4)
        h = self.features(x).flatten(1)                    # (N, 2, 2, 2) -> (N, 8)
        for layer in self.layers:
            h = layer(h).relu()
        h = self.pair[1](self.pair[0](h))
        return self.blocks["b"](self.blocks["a"](h)) * self.scale


# The names PyTorch gives the same network (ModuleList / ModuleDict for the list, tuple, dict).
NET_PARAMETERS = [
    "scale", "features.0.weight", "features.0.bias", "features.1.weight", "features.1.bias",
    "layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias",
    "pair.1.weight", "pair.1.bias", "blocks.a.weight", "blocks.a.bias",
    "blocks.b.weight", "blocks.b.bias"]
NET_BUFFERS = [
    "features.1.running_mean", "features.1.running_var", "features.1.num_batches_tracked",
    "blocks.b.running_mean", "blocks.b.running_var", "blocks.b.num_batches_tracked"]
NET_STATE = [
    "scale", "features.0.weight", "features.0.bias", "features.1.weight", "features.1.bias",
    "features.1.running_mean", "features.1.running_var", "features.1.num_batches_tracked",
    "layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias",
    "pair.1.weight", "pair.1.bias", "blocks.a.weight", "blocks.a.bias",
    "blocks.b.weight", "blocks.b.bias", "blocks.b.running_mean", "blocks.b.running_var",
    "blocks.b.num_batches_tracked"]


def batch(seed=0, n=6):
    rng = np.random.default_rng(seed)
    return Tensor(rng.standard_normal((n, 1, 4, 4))), Tensor(rng.integers(0, 3, n))


def snapshot(module):
    """Host copies of every parameter and buffer, by name."""
    return {k: host(v.data).copy() for k, v in module.state_dict().items()}


def net_tensor(module, name):
    return dict(module.named_parameters() + module.named_buffers())[name]


def assert_same_state(a, b):
    assert list(a) == list(b)
    for k in a:
        assert a[k].dtype == b[k].dtype, k
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


# ---- discovery and names ----------------------------------------------------------------------
def test_parameters_are_found_in_lists_tuples_dicts_with_pytorch_names():
    net = Net()
    assert [n for n, _ in net.named_parameters()] == NET_PARAMETERS
    assert net.parameters()[0] is net.scale
    assert net.parameters()[5] is net.layers[0].weight
    assert dict(net.named_parameters())["blocks.a.bias"] is net.blocks["a"].bias
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in net.parameters())


def test_nested_containers_and_private_attributes():
    class Holder(nn.Module):
        def __init__(self):
            self.stages = {"enc": [nn.Linear(2, 2), (nn.Parameter(np.ones(3)),)]}
            self._cache = nn.Linear(2, 2)          # private: not part of the model
            self.size, self.names = 3, ["a", "b"]   # plain values are skipped

    h = Holder()
    # a module's own tensors come before its sub-modules', as in PyTorch
    assert [n for n, _ in h.named_parameters()] == [
        "stages.enc.1.0", "stages.enc.0.weight", "stages.enc.0.bias"]
    assert [n for n, _ in h.named_modules()] == ["", "stages.enc.0"]
    assert h.children() == [h.stages["enc"][0]]


def test_buffers_are_the_running_statistics_and_not_parameters():
    net = Net()
    assert [n for n, _ in net.named_buffers()] == NET_BUFFERS
    assert net.buffers()[0] is net.features[1].running_mean
    param_ids = {id(p) for p in net.parameters()}
    assert not any(id(b) in param_ids for b in net.buffers())
    assert all(not b.requires_grad for b in net.buffers())
    bn = nn.BatchNorm1d(3)
    assert bn.parameters() == [bn.weight, bn.bias]
    assert bn.buffers() == [bn.running_mean, bn.running_var, bn.num_batches_tracked]


def test_state_dict_holds_parameters_and_buffers_with_pytorch_keys():
    net = Net()
    state = net.state_dict()
    assert list(state) == NET_STATE
    np.testing.assert_array_equal(state["scale"].data, [2.0, 2.0, 2.0])
    np.testing.assert_array_equal(state["features.1.running_var"].data, [1.0, 1.0])
    assert state["blocks.b.num_batches_tracked"].dtype == np.int64
    assert state["blocks.b.num_batches_tracked"].shape == ()


def test_nested_sequential_names():
    model = nn.Sequential(nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3)), nn.ReLU(),
                          nn.Linear(3, 1))
    assert list(model.state_dict()) == [
        "0.0.weight", "0.0.bias", "0.1.weight", "0.1.bias", "0.1.running_mean",
        "0.1.running_var", "0.1.num_batches_tracked", "2.weight", "2.bias"]
    assert [n for n, _ in model.named_modules()] == ["", "0", "0.0", "0.1", "1", "2"]
    assert model.children() == [model[0], model[1], model[2]]


def test_private_attributes_are_not_discovered():
    class M(nn.Module):
        def __init__(self):
            self.fc = nn.Linear(2, 2)
            self._cache = nn.Linear(2, 2)        # private: not part of the state

    assert list(M().state_dict()) == ["fc.weight", "fc.bias"]


class Tied(nn.Module):
    """An autoencoder whose decoder reuses the encoder's weight (a tied parameter)."""

    def __init__(self):
        self.enc = nn.Linear(3, 3)
        self.dec = nn.Linear(3, 3)
        self.dec.weight = self.enc.weight


def test_tied_parameters_are_listed_once():
    m = Tied()
    assert [n for n, _ in m.named_parameters()] == ["enc.weight", "enc.bias", "dec.bias"]
    assert len(m.parameters()) == 3
    # an optimizer therefore updates the shared weight once per step, not twice
    x = Tensor(np.ones((2, 3)))
    m.dec(m.enc(x)).sum().backward()
    grad = m.enc.weight.grad.copy()
    before = m.enc.weight.data.copy()
    optim.SGD(m.parameters(), lr=0.1).step()
    np.testing.assert_allclose(m.enc.weight.data, before - 0.1 * grad, rtol=1e-6)


def test_shared_submodule_is_listed_once():
    shared = nn.Linear(2, 2)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    assert model.parameters() == [shared.weight, shared.bias]


def test_tied_parameter_appears_under_both_names_in_state_dict_like_pytorch():
    """PyTorch's state_dict (and load_state_dict) keep every name of a tied parameter:
    torch gives ['enc.weight', 'enc.bias', 'dec.weight', 'dec.bias'] here, so a PyTorch
    checkpoint of a tied model loads strictly only if minigrad uses the same keys."""
    m = Tied()
    assert list(m.state_dict()) == ["enc.weight", "enc.bias", "dec.weight", "dec.bias"]
    m.load_state_dict(m.state_dict(), strict=True)


# ---- state dicts --------------------------------------------------------------------------------
def test_state_dict_values_are_copies():
    minigrad.manual_seed(0)
    net = Net()
    state = net.state_dict()
    frozen = {k: v.data.copy() for k, v in state.items()}
    for k, v in state.items():
        assert not np.shares_memory(v.data, net_tensor(net, k).data), k
    opt = optim.SGD(net.parameters(), lr=0.5, momentum=0.9)
    for seed in range(3):
        x, y = batch(seed)
        opt.zero_grad()
        F.cross_entropy(net(x), y).backward()
        opt.step()
    after = snapshot(net)
    assert not np.array_equal(after["layers.0.weight"], frozen["layers.0.weight"])
    assert not np.array_equal(after["features.1.running_mean"], frozen["features.1.running_mean"])
    assert after["features.1.num_batches_tracked"] == 3
    for k, v in state.items():
        np.testing.assert_array_equal(v.data, frozen[k], err_msg=k)


def _model_and_shifted_state():
    """A small model, a snapshot of its state, and a state dict with every value + 1."""
    minigrad.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    return model, snapshot(model), {k: v.data + 1 for k, v in model.state_dict().items()}


def test_load_state_dict_strict_lists_every_problem_in_one_error_and_changes_nothing():
    model, before, state = _model_and_shifted_state()
    del state["2.bias"]                                                 # missing
    state["3.weight"] = np.zeros((2, 2))                                # unexpected
    state["0.weight"] = np.zeros((4, 5))                                # wrong shape
    with pytest.raises(KeyError) as info:
        model.load_state_dict(state)
    message = str(info.value)
    assert "missing keys: ['2.bias']" in message
    assert "unexpected keys: ['3.weight']" in message
    assert "0.weight: checkpoint (4, 5) vs model (4, 3)" in message
    assert "strict=False" in message
    assert_same_state(snapshot(model), before)      # not even the matching keys were loaded


def test_load_state_dict_non_strict_loads_the_matching_keys():
    model, before, state = _model_and_shifted_state()
    del state["2.bias"]
    state["extra"] = np.zeros(1)
    result = model.load_state_dict(state, strict=False)
    missing, unexpected = result
    assert missing == ["2.bias"] and result.missing_keys == ["2.bias"]
    assert unexpected == ["extra"] and result.unexpected_keys == ["extra"]
    after = snapshot(model)
    np.testing.assert_array_equal(after["2.bias"], before["2.bias"])
    for k in ("0.weight", "0.bias", "1.weight", "1.running_mean", "1.running_var", "2.weight"):
        np.testing.assert_array_equal(after[k], (before[k] + 1).astype(before[k].dtype))
    assert after["1.num_batches_tracked"] == 1 and after["1.num_batches_tracked"].dtype == np.int64


def test_load_state_dict_non_strict_still_refuses_a_wrong_shape_and_loads_nothing():
    # PyTorch raises "size mismatch" even with strict=False; half-loading a checkpoint made
    # for another architecture would leave a model that runs and gives wrong numbers.
    model, before, state = _model_and_shifted_state()
    del state["2.bias"]
    state["0.weight"] = np.zeros((4, 5))
    with pytest.raises(KeyError) as info:
        model.load_state_dict(state, strict=False)
    message = str(info.value)
    assert "0.weight: checkpoint (4, 5) vs model (4, 3)" in message
    assert "nothing was loaded" in message and "missing keys" not in message
    assert_same_state(snapshot(model), before)


def test_load_state_dict_keeps_parameter_identity_so_an_existing_optimizer_still_works():
    minigrad.manual_seed(0)
    model = nn.Linear(3, 2)
    params = model.parameters()
    opt = optim.SGD(model.parameters(), lr=0.1)
    new = {"weight": np.arange(6.0).reshape(2, 3), "bias": np.array([1.0, -1.0])}
    model.load_state_dict(new)
    assert model.parameters()[0] is params[0] and model.parameters()[1] is params[1]
    x = Tensor(np.ones((1, 3)))
    model(x).sum().backward()                         # dW = ones, db = ones
    opt.step()
    np.testing.assert_allclose(model.weight.data, np.arange(6.0).reshape(2, 3) - 0.1, rtol=1e-6)
    np.testing.assert_allclose(model.bias.data, [0.9, -1.1], rtol=1e-6)


def test_load_state_dict_casts_to_the_module_dtype():
    model = nn.BatchNorm1d(3)
    values = np.array([0.1, 0.2, 0.3])                 # float64
    model.load_state_dict({"weight": values, "bias": Tensor(values, dtype=np.float64),
                           "running_mean": values, "running_var": values,
                           "num_batches_tracked": np.array(7.0)}, strict=True)
    assert model.weight.dtype == np.float32 and model.bias.dtype == np.float32
    np.testing.assert_array_equal(model.weight.data, values.astype(np.float32))
    np.testing.assert_array_equal(model.running_mean.data, values.astype(np.float32))
    assert model.num_batches_tracked.dtype == np.int64 and model.num_batches_tracked.data == 7
    model.to(np.float64)
    model.load_state_dict({"weight": values.astype(np.float32)}, strict=False)
    assert model.weight.dtype == np.float64
    np.testing.assert_array_equal(model.weight.data, values.astype(np.float32).astype(np.float64))


def test_state_dict_round_trip_between_two_models(device):
    minigrad.manual_seed(0)
    a = Net()
    x, y = batch(1)
    F.cross_entropy(a(x), y).backward()                  # moves the running statistics
    minigrad.manual_seed(1)
    b = Net().to(device)
    b.load_state_dict(a.state_dict())
    assert_same_state(snapshot(b), snapshot(a))
    a.eval(), b.eval()
    np.testing.assert_allclose(host(b(x.to(device)).data), a(x).data, rtol=1e-5, atol=1e-6)


# ---- modes, gradients, dtypes and devices -------------------------------------------------------
def test_train_and_eval_set_training_recursively():
    net = Net()
    modules = net.modules()
    # Net; the Sequential and its 3 layers; 2 each in the list, the tuple and the dict
    assert len(modules) == 11
    assert all(m.training for m in modules)
    assert net.eval() is net
    assert not any(m.training for m in modules)
    assert not net.blocks["b"].training and not net.pair[1].training
    net.train()
    assert all(m.training for m in modules)
    net.train(False)
    assert not any(m.training for m in modules)


def test_zero_grad_sets_gradients_to_none():
    net = Net()
    x, y = batch()
    F.cross_entropy(net(x), y).backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_to_float64_converts_parameters_and_float_buffers_but_not_the_counter():
    net = Net()
    params = net.parameters()
    before = snapshot(net)
    assert net.to(np.float64) is net
    assert net.parameters() == params and all(a is b for a, b in zip(net.parameters(), params))
    for name, t in net.named_parameters() + net.named_buffers():
        expected = np.int64 if name.endswith("num_batches_tracked") else np.float64
        assert t.dtype == expected, name
        np.testing.assert_array_equal(t.data, before[name], err_msg=name)
    x, y = batch()
    out = net(Tensor(x.data, dtype=np.float64))
    assert out.dtype == np.float64
    net.float()
    assert all(p.dtype == np.float32 for p in net.parameters())
    assert net.blocks["b"].num_batches_tracked.dtype == np.int64
    with pytest.raises(TypeError, match="float dtype"):
        net.to(np.int32)


def test_to_device_moves_parameters_and_buffers(device):
    net = Net()
    params = net.parameters()
    net.to(device)
    assert all(a is b for a, b in zip(net.parameters(), params))
    assert {t.device for t in net.parameters() + net.buffers()} == {device}
    x, y = batch()
    loss = F.cross_entropy(net(x.to(device)), y.to(device))
    loss.backward()
    assert all(p.grad is not None for p in net.parameters())
    assert net.features[1].num_batches_tracked.dtype == np.int64
    assert int(net.features[1].num_batches_tracked.item()) == 1


# ---- Sequential -------------------------------------------------------------------------------
def test_sequential_indexing_len_iter_slicing_append():
    a, b, c = nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)
    seq = nn.Sequential(a, b, c)
    assert len(seq) == 3
    assert seq[0] is a and seq[1] is b and seq[-1] is c
    assert list(seq) == [a, b, c]
    tail = seq[1:]
    assert isinstance(tail, nn.Sequential) and len(tail) == 2
    assert tail[0] is b and tail[1] is c
    assert list(seq[::2]) == [a, c]
    x = Tensor(np.random.default_rng(0).standard_normal((4, 2)))
    np.testing.assert_array_equal(tail(a(x)).data, seq(x).data)
    d = nn.Sigmoid()
    assert seq.append(d) is seq
    assert len(seq) == 4 and seq[3] is d
    np.testing.assert_allclose(seq(x).data, 1 / (1 + np.exp(-c(b(a(x))).data)), rtol=1e-6)
    assert list(seq.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    seq.append(nn.Linear(1, 2))
    assert list(seq.state_dict())[-2:] == ["4.weight", "4.bias"]
    with pytest.raises(IndexError):
        seq[5]
    with pytest.raises(TypeError, match="Sequential takes Modules"):
        nn.Sequential(nn.ReLU(), lambda x: x)


def test_sequential_slice_keeps_pytorchs_names_and_append_never_overwrites():
    a, b, c = nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)
    seq = nn.Sequential(a, b, c)
    tail = seq[1:]
    # PyTorch: list(torch.nn.Sequential(l0, r, l2)[1:].state_dict()) == ['2.weight', '2.bias']
    assert list(tail.state_dict()) == ["2.weight", "2.bias"]
    np.testing.assert_array_equal(tail.state_dict()["2.weight"].data, c.weight.data)
    assert "(1): ReLU()" in repr(tail) and "(2): Linear" in repr(tail)
    d = nn.Sigmoid()
    tail.append(d)                  # PyTorch would name it str(len) == '2' and drop c
    assert list(tail) == [b, c, d] and tail[2] is d
    assert list(tail.state_dict()) == ["2.weight", "2.bias"]


def test_sequential_from_ordered_dict_uses_the_names():
    from collections import OrderedDict
    model = nn.Sequential(OrderedDict([("fc", nn.Linear(2, 3, bias=False)), ("act", nn.ReLU())]))
    assert list(model.state_dict()) == ["fc.weight"]
    assert model[0] is model.fc and len(model) == 2
    first = repr(model).splitlines()[1]
    assert first == "  (fc): Linear(in_features=2, out_features=3, bias=False)"
    with pytest.raises(ValueError, match="not a new name"):
        nn.Sequential(OrderedDict([("a.b", nn.ReLU())]))


def test_norm_layers_bias_false_keep_a_weight_only():
    # PyTorch 2.13: list(torch.nn.BatchNorm1d(3, bias=False).state_dict()) ==
    # ['weight', 'running_mean', 'running_var', 'num_batches_tracked'], and ['weight'] for
    # LayerNorm(3, bias=False) and GroupNorm(1, 3, bias=False)
    assert list(nn.BatchNorm1d(3, bias=False).state_dict()) == [
        "weight", "running_mean", "running_var", "num_batches_tracked"]
    assert list(nn.LayerNorm(3, bias=False).state_dict()) == ["weight"]
    assert list(nn.GroupNorm(1, 3, bias=False).state_dict()) == ["weight"]
    bn = nn.BatchNorm1d(3, bias=False)
    bn.weight.data[:] = 2.0
    x = Tensor(np.array([[1.0, 2.0, 3.0], [3.0, 6.0, 9.0]]), requires_grad=True)
    y = bn(x)                               # xhat = -1, +1 per channel; y = 2 * xhat, no shift
    np.testing.assert_allclose(y.data, [[-2.0] * 3, [2.0] * 3], rtol=1e-4)
    y.sum().backward()
    assert bn.weight.grad is not None and x.grad is not None
    for layer in (nn.LayerNorm(3, bias=False), nn.GroupNorm(1, 3, bias=False)):
        layer.weight.data[:] = 2.0
        z = layer(Tensor(np.array([[1.0, 2.0, 3.0]])))    # xhat = (-1.22, 0, 1.22)
        np.testing.assert_allclose(z.data, 2 * np.array([[-1.0, 0.0, 1.0]]) * np.sqrt(1.5),
                                   rtol=1e-4)


def test_flatten_start_and_end_dim_match_torch():
    x = Tensor(np.arange(120.0).reshape(2, 3, 4, 5), requires_grad=True)
    # torch: x.flatten(1, 2) -> (2, 12, 5); x.flatten(0, -2) -> (24, 5); x.flatten(2) -> (2, 3, 20)
    assert x.flatten(1, 2).shape == (2, 12, 5)
    assert x.flatten(0, -2).shape == (24, 5)
    assert x.flatten(2).shape == (2, 3, 20)
    assert nn.Flatten(1, 2)(x).shape == (2, 12, 5)
    assert Tensor(np.float32(3.0)).flatten().shape == (1,)
    np.testing.assert_array_equal(x.flatten(1, 2).data.ravel(), np.arange(120.0))
    x.flatten(1, 2).sum().backward()
    np.testing.assert_array_equal(x.grad, np.ones((2, 3, 4, 5)))
    with pytest.raises(IndexError, match=r"dimension 4 is out of range.*\(2, 3, 4, 5\)"):
        x.flatten(4)
    with pytest.raises(ValueError, match="start_dim"):
        x.flatten(2, 1)


def test_repr_looks_like_pytorch():
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(),
                          nn.Sequential(nn.Linear(3, 2, bias=False), nn.Tanh()), nn.Sigmoid())
    assert repr(model) == (
        "Sequential(\n"
        "  (0): Linear(in_features=4, out_features=3, bias=True)\n"
        "  (1): ReLU()\n"
        "  (2): Sequential(\n"
        "    (0): Linear(in_features=3, out_features=2, bias=False)\n"
        "    (1): Tanh()\n"
        "  )\n"
        "  (3): Sigmoid()\n"
        ")")
    # Each string below is repr() of the same torch.nn module (PyTorch 2.13).
    assert repr(nn.BatchNorm2d(4)) == (
        "BatchNorm2d(4, eps=1e-05, momentum=0.1, affine=True, bias=True, "
        "track_running_stats=True)")
    assert repr(nn.BatchNorm1d(3, momentum=None, affine=False)) == (
        "BatchNorm1d(3, eps=1e-05, momentum=None, affine=False, bias=False, "
        "track_running_stats=True)")
    assert repr(nn.Conv2d(1, 32, 3, padding=1, bias=False)) == (
        "Conv2d(1, 32, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), bias=False)")
    assert repr(nn.Conv2d(1, 32, 3)) == "Conv2d(1, 32, kernel_size=(3, 3), stride=(1, 1))"
    assert repr(nn.Conv2d(3, 8, (3, 5), stride=2)) == (
        "Conv2d(3, 8, kernel_size=(3, 5), stride=(2, 2))")
    assert repr(nn.Flatten()) == "Flatten(start_dim=1, end_dim=-1)"
    assert repr(nn.Flatten(0, 2)) == "Flatten(start_dim=0, end_dim=2)"
    assert repr(nn.LayerNorm(4)) == "LayerNorm((4,), eps=1e-05, elementwise_affine=True, bias=True)"
    assert repr(nn.LayerNorm(4, elementwise_affine=False)) == (
        "LayerNorm((4,), eps=1e-05, elementwise_affine=False, bias=False)")
    assert repr(nn.GroupNorm(2, 4)) == "GroupNorm(2, 4, eps=1e-05, affine=True, bias=True)"
    assert repr(nn.GroupNorm(2, 4, affine=False)) == (
        "GroupNorm(2, 4, eps=1e-05, affine=False, bias=False)")
    # a custom module lists its sub-modules by attribute name, list entries with their index
    assert "  (features): Sequential(\n    (0): Conv2d(1, 2" in repr(Net())
    assert "  (layers.1): Linear(in_features=4, out_features=4, bias=True)" in repr(Net())


# ---- default initialisation -------------------------------------------------------------------
@pytest.mark.parametrize("make, fan_in", [
    (lambda: nn.Linear(1000, 400), 1000),
    (lambda: nn.Conv2d(16, 64, (3, 5)), 16 * 3 * 5),
], ids=["linear", "conv2d"])
def test_default_init_is_pytorchs_uniform(make, fan_in):
    minigrad.manual_seed(0)
    layer = make()
    bound = 1 / math.sqrt(fan_in)
    w, b = layer.weight.data, layer.bias.data
    assert w.dtype == np.float32 and b.dtype == np.float32
    assert np.abs(w).max() <= bound
    assert np.abs(w).max() > 0.99 * bound               # the whole interval is used
    assert np.abs(b).max() <= bound
    assert abs(w.std() / (bound / math.sqrt(3)) - 1) < 0.02
    assert abs(w.mean()) < 0.02 * bound
    minigrad.manual_seed(0)
    np.testing.assert_array_equal(make().weight.data, w)    # seeded: reproducible
    assert not np.array_equal(make().weight.data, w)        # the generator moves on


def test_batchnorm_and_norm_layers_start_as_identity_affine():
    bn = nn.BatchNorm2d(5)
    np.testing.assert_array_equal(bn.weight.data, np.ones(5))
    np.testing.assert_array_equal(bn.bias.data, np.zeros(5))
    np.testing.assert_array_equal(bn.running_mean.data, np.zeros(5))
    np.testing.assert_array_equal(bn.running_var.data, np.ones(5))
    assert bn.weight.dtype == np.float32 and bn.num_batches_tracked.data == 0
    ln = nn.LayerNorm((2, 3))
    assert ln.weight.shape == (2, 3) and ln.bias.shape == (2, 3)


# ---- nn.init ------------------------------------------------------------------------------------
def rel_err(a, b):
    return abs(a / b - 1)


def test_kaiming_normal_std():
    minigrad.manual_seed(0)
    w = init.kaiming_normal((256, 128, 3, 3), nonlinearity="relu")      # fan_in = 1152
    assert w.dtype == np.float32 and w.shape == (256, 128, 3, 3)
    assert rel_err(w.std(), math.sqrt(2) / math.sqrt(128 * 9)) < 0.02
    assert abs(w.mean()) < 0.01 * w.std()
    w = init.kaiming_normal((300, 500), mode="fan_out", nonlinearity="tanh")
    assert rel_err(w.std(), (5 / 3) / math.sqrt(300)) < 0.02
    w = init.kaiming_normal((300, 500), a=0.2)          # leaky ReLU with slope 0.2
    assert rel_err(w.std(), math.sqrt(2 / (1 + 0.04)) / math.sqrt(500)) < 0.02


def test_kaiming_uniform_bound_and_std():
    minigrad.manual_seed(0)
    w = init.kaiming_uniform((400, 600), nonlinearity="relu")
    bound = math.sqrt(2) * math.sqrt(3 / 600)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.99 * bound
    assert rel_err(w.std(), bound / math.sqrt(3)) < 0.02


def test_xavier_uniform_bound_and_xavier_normal_std():
    minigrad.manual_seed(0)
    w = init.xavier_uniform((300, 500), gain=2.0)
    bound = 2.0 * math.sqrt(6 / 800)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.99 * bound
    assert rel_err(w.std(), bound / math.sqrt(3)) < 0.02
    w = init.xavier_normal((64, 32, 5, 5))              # fans 800 and 1600
    assert rel_err(w.std(), math.sqrt(2 / (800 + 1600))) < 0.02


def test_calculate_gain():
    assert init.calculate_gain("relu") == pytest.approx(math.sqrt(2))
    assert init.calculate_gain("tanh") == pytest.approx(5 / 3)
    assert init.calculate_gain("linear") == 1.0
    assert init.calculate_gain("leaky_relu") == pytest.approx(math.sqrt(2 / (1 + 0.01 ** 2)))
    assert init.calculate_gain("leaky_relu", 0.2) == pytest.approx(math.sqrt(2 / 1.04))
    with pytest.raises(ValueError, match="unknown nonlinearity"):
        init.calculate_gain("swish")
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        init.kaiming_normal((10,))


def test_in_place_initialisers_keep_the_parameter_and_its_dtype(device):
    minigrad.manual_seed(0)
    layer = nn.Linear(500, 300).to(np.float64).to(device)
    w = layer.weight
    assert init.kaiming_normal_(w, nonlinearity="relu") is w
    assert layer.weight is w and w.dtype == np.float64 and w.device == device
    assert rel_err(float(w.data.std()), math.sqrt(2 / 500)) < 0.02
    init.xavier_uniform_(w)
    assert float(abs(w.data).max()) <= math.sqrt(6 / 800)
    init.zeros_(layer.bias)
    assert not host(layer.bias.data).any()
    init.constant_(layer.bias, 0.5)
    np.testing.assert_array_equal(host(layer.bias.data), np.full(300, 0.5))


# ---- gradchecks: inputs and parameters, float64 -----------------------------------------------
def check_module(module, x, names=("weight", "bias")):
    """gradcheck module(x) w.r.t. x and the module's named parameters, in float64.

    gradcheck perturbs float64 copies of its inputs, so the parameters are made inputs: fn puts
    the copies it is given into the module for the call and puts the originals back after.
    """
    module.to(np.float64)
    names = [n for n in names if getattr(module, n) is not None]
    originals = [getattr(module, n) for n in names]

    def fn(x, *params):
        for n, p in zip(names, params):
            setattr(module, n, p)
        try:
            return module(x)
        finally:
            for n, p in zip(names, originals):
                setattr(module, n, p)

    assert gradcheck(fn, [x, *originals])
    assert module.parameters() == [p for p in originals if isinstance(p, nn.Parameter)]


def randn(*shape, seed=0, device="cpu", scale=1.0, shift=0.0):
    rng = np.random.default_rng(seed)
    return Tensor(shift + scale * rng.standard_normal(shape), dtype=np.float64,
                  requires_grad=True, device=device)


def randomise(module, seed=1):
    """Non-trivial affine parameters (and running statistics) so every term is exercised."""
    rng = np.random.default_rng(seed)
    for name, t in module.named_parameters() + module.named_buffers():
        if name.endswith("num_batches_tracked"):
            continue
        values = rng.uniform(0.5, 1.5, t.shape) if name.endswith(("var", "weight")) \
            else rng.standard_normal(t.shape)
        t.data[...] = minigrad.backend.to_device(values, t.device)
    return module


def test_gradcheck_linear(device):
    minigrad.manual_seed(0)
    check_module(nn.Linear(4, 3).to(device), randn(5, 4, device=device))
    check_module(nn.Linear(4, 3, bias=False).to(device), randn(2, 3, 4, device=device))


@pytest.mark.parametrize("kernel, stride, padding", [
    (3, 1, 0), (3, 2, 1), ((3, 2), (2, 1), (1, 0)), ((1, 3), 1, (0, 2)), (2, 3, 1),
], ids=["k3s1p0", "k3s2p1", "k32s21p10", "k13p02", "k2s3p1"])
def test_gradcheck_conv2d(kernel, stride, padding, device):
    minigrad.manual_seed(0)
    conv = nn.Conv2d(3, 2, kernel, stride=stride, padding=padding).to(device)
    check_module(conv, randn(2, 3, 6, 5, device=device))


def test_gradcheck_conv2d_without_bias(device):
    minigrad.manual_seed(0)
    conv = nn.Conv2d(2, 3, 3, padding=1, bias=False).to(device)
    check_module(conv, randn(2, 2, 4, 4, device=device))


BN_CASES = [(nn.BatchNorm1d, (6, 3)), (nn.BatchNorm1d, (3, 3, 4)), (nn.BatchNorm2d, (3, 2, 3, 3))]
BN_IDS = ["bn1d_2d", "bn1d_3d", "bn2d"]


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("cls, shape", BN_CASES, ids=BN_IDS)
def test_gradcheck_batchnorm(cls, shape, training, device):
    bn = randomise(cls(shape[1]).to(np.float64).to(device))
    bn.train(training)
    check_module(bn, randn(*shape, device=device, scale=2.0, shift=0.5))


@pytest.mark.parametrize("cls, shape", BN_CASES, ids=BN_IDS)
def test_gradcheck_batchnorm_without_affine(cls, shape):
    check_module(cls(shape[1], affine=False), randn(*shape, scale=2.0, shift=0.5))


@pytest.mark.parametrize("shape, normalized", [((4, 5), 5), ((2, 3, 4), (3, 4)),
                                               ((2, 2, 3, 3), (2, 3, 3))],
                         ids=["nd", "last2", "chw"])
def test_gradcheck_layernorm(shape, normalized, device):
    ln = randomise(nn.LayerNorm(normalized).to(device))
    check_module(ln, randn(*shape, device=device, scale=2.0, shift=0.5))
    check_module(nn.LayerNorm(normalized, elementwise_affine=False), randn(*shape))


@pytest.mark.parametrize("groups", [1, 2, 4])
@pytest.mark.parametrize("shape", [(3, 4, 3, 2), (5, 4)], ids=["nchw", "nc"])
def test_gradcheck_groupnorm(groups, shape, device):
    gn = randomise(nn.GroupNorm(groups, 4).to(device))
    check_module(gn, randn(*shape, device=device, scale=2.0, shift=0.5))


def test_gradcheck_cross_entropy(device):
    target = Tensor(np.array([0, 3, 1, 3, 2]), device=device)
    assert gradcheck(lambda z: F.cross_entropy(z, target), [randn(5, 4, device=device, scale=3.0)])
    lin = nn.Linear(4, 4).to(device)
    assert gradcheck(lambda x, w, b: F.cross_entropy(F.linear(x, w, b), target[:4]),
                     [randn(4, 4, device=device), lin.weight, lin.bias])


# ---- BatchNorm behaviour and errors ------------------------------------------------------------
@pytest.mark.parametrize("cls, shape", [(nn.BatchNorm1d, (1, 3)), (nn.BatchNorm2d, (1, 3, 1, 1))],
                         ids=["bn1d", "bn2d"])
def test_batchnorm_batch_of_one_fails_in_training_and_works_in_eval(cls, shape):
    bn = randomise(cls(3))
    before = snapshot(bn)
    x = Tensor(np.arange(3.0).reshape(shape))
    with pytest.raises(ValueError) as info:
        bn(x)
    assert str(info.value).startswith("Expected more than 1 value per channel when training, "
                                      f"got input size {shape}")
    assert bn.num_batches_tracked.data == 0             # the failing call counted nothing
    assert_same_state(snapshot(bn), before)
    bn.eval()
    out = bn(x)
    w, b, rm, rv = (before[k].reshape(shape) for k in ("weight", "bias", "running_mean",
                                                         "running_var"))
    np.testing.assert_allclose(out.data, (x.data - rm) / np.sqrt(rv + 1e-5) * w + b, rtol=1e-6)
    assert_same_state(snapshot(bn), before)


def test_batchnorm_one_example_with_several_positions_trains():
    """Batch of 1 with L > 1 (or H*W > 1) has several values per channel, as in PyTorch."""
    x = Tensor(np.random.default_rng(0).standard_normal((1, 3, 5)))
    out = nn.BatchNorm1d(3)(x)
    np.testing.assert_allclose(out.data.mean(axis=2), 0, atol=1e-6)
    out = nn.BatchNorm2d(3)(Tensor(np.random.default_rng(0).standard_normal((1, 3, 2, 2))))
    np.testing.assert_allclose(out.data.mean(axis=(0, 2, 3)), 0, atol=1e-6)


def test_batchnorm_without_running_stats_rejects_a_batch_of_one():
    bn = nn.BatchNorm1d(3, track_running_stats=False)
    with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
        bn(Tensor(np.ones((1, 3))))


@pytest.mark.parametrize("cls, shape, dims", [
    (nn.BatchNorm1d, (2, 3, 4, 4), "expected 2D or 3D input (got 4D input"),
    (nn.BatchNorm1d, (3,), "expected 2D or 3D input (got 1D input"),
    (nn.BatchNorm2d, (2, 3, 4), "expected 4D input (got 3D input"),
    (nn.BatchNorm2d, (2, 3), "expected 4D input (got 2D input"),
], ids=["bn1d_4d", "bn1d_1d", "bn2d_3d", "bn2d_2d"])
def test_batchnorm_wrong_number_of_dimensions(cls, shape, dims):
    bn = cls(3)
    with pytest.raises(ValueError) as info:
        bn(Tensor(np.ones(shape)))
    assert dims in str(info.value) and cls.__name__ in str(info.value)
    assert bn.num_batches_tracked.data == 0


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_batchnorm_channel_mismatch(training):
    bn = nn.BatchNorm2d(3).train(training)
    with pytest.raises(ValueError, match="has 4 channels but weight has shape"):
        bn(Tensor(np.ones((2, 4, 3, 3))))
    assert bn.num_batches_tracked.data == 0
    with pytest.raises(ValueError, match="4 channels"):
        nn.BatchNorm1d(3, affine=False)(Tensor(np.ones((5, 4))))


def test_batchnorm_dtype_mismatch_names_the_fix():
    with pytest.raises(TypeError, match=r"module.to\(np.float64\)"):
        nn.BatchNorm1d(3)(Tensor(np.ones((4, 3)), dtype=np.float64))


def test_batchnorm_constant_channel_gives_finite_output_and_correct_grads():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 3))
    x[:, 1] = 4.0                                        # zero variance in channel 1
    bn = randomise(nn.BatchNorm1d(3)).to(np.float64)
    xt = Tensor(x, dtype=np.float64, requires_grad=True)
    out = bn(xt)
    np.testing.assert_array_equal(out.data[:, 1], np.full(8, bn.bias.data[1]))   # y = beta
    dout = rng.standard_normal((8, 3))
    out.backward(dout)
    assert np.isfinite(xt.grad).all() and np.isfinite(bn.weight.grad).all()
    # the exact gradient at var = 0: dx = gamma / sqrt(eps) * (dout - mean(dout))
    np.testing.assert_allclose(xt.grad[:, 1],
                               bn.weight.data[1] / np.sqrt(1e-5) * (dout[:, 1] - dout[:, 1].mean()),
                               rtol=1e-8)
    assert bn.weight.grad[1] == 0.0
    check_module(bn, Tensor(x, dtype=np.float64, requires_grad=True))


def test_batchnorm_without_running_stats_uses_batch_statistics_in_eval():
    bn = nn.BatchNorm1d(3, track_running_stats=False).to(np.float64)
    assert bn.buffers() == [] and list(bn.state_dict()) == ["weight", "bias"]
    bn.eval()
    x = np.random.default_rng(0).standard_normal((10, 3)) * [1.0, 5.0, 0.1] + [3.0, -2.0, 0.0]
    out = bn(Tensor(x, dtype=np.float64)).data
    expected = (x - x.mean(axis=0)) / np.sqrt(x.var(axis=0) + 1e-5)
    np.testing.assert_allclose(out, expected, rtol=1e-10)


def test_batchnorm_eval_uses_running_statistics_and_does_not_update_them():
    bn = nn.BatchNorm1d(3).to(np.float64)
    x = np.random.default_rng(0).standard_normal((10, 3)) + 5.0
    bn(Tensor(x, dtype=np.float64))
    np.testing.assert_allclose(bn.running_mean.data, 0.1 * x.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(bn.running_var.data, 0.9 + 0.1 * x.var(axis=0, ddof=1), rtol=1e-12)
    bn.eval()
    before = snapshot(bn)
    out = bn(Tensor(x, dtype=np.float64)).data
    np.testing.assert_allclose(out, (x - before["running_mean"]) /
                               np.sqrt(before["running_var"] + 1e-5), rtol=1e-12)
    assert_same_state(snapshot(bn), before)


def test_batchnorm_momentum_none_is_the_cumulative_average():
    bn = nn.BatchNorm2d(2, momentum=None).to(np.float64)
    rng = np.random.default_rng(0)
    means, variances = [], []
    for k in range(5):
        x = rng.standard_normal((4, 2, 3, 3)) * (k + 1) + 2.0 * k
        bn(Tensor(x, dtype=np.float64))
        means.append(x.mean(axis=(0, 2, 3)))
        variances.append(x.var(axis=(0, 2, 3), ddof=1))
    assert bn.num_batches_tracked.data == 5
    np.testing.assert_allclose(bn.running_mean.data, np.mean(means, axis=0), rtol=1e-12)
    np.testing.assert_allclose(bn.running_var.data, np.mean(variances, axis=0), rtol=1e-12)


# ---- hooks and the Recorder ----------------------------------------------------------------------
def test_forward_hook_sees_inputs_and_output_and_can_be_removed():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    calls = []
    handle = model[1].register_forward_hook(lambda m, inputs, out: calls.append((m, inputs, out)))
    x = Tensor(np.random.default_rng(0).standard_normal((5, 3)))
    model(x)
    assert len(calls) == 1
    m, inputs, out = calls[0]
    assert m is model[1] and len(inputs) == 1
    np.testing.assert_array_equal(inputs[0].data, model[0](x).data)
    np.testing.assert_array_equal(out.data, np.maximum(model[0](x).data, 0))
    model(x)
    assert len(calls) == 2
    handle.remove()
    model(x)
    assert len(calls) == 2
    handle.remove()                                      # a second remove is harmless
    assert "_forward_hooks" not in model.state_dict()


def mlp(seed):
    minigrad.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.BatchNorm1d(8),
                         nn.ReLU(), nn.Linear(8, 3))


def data(seed, n=16):
    """A learnable task: the label is the largest of the first three features."""
    x = np.random.default_rng(seed).standard_normal((n, 4))
    return Tensor(x), Tensor(x[:, :3].argmax(axis=1))


def test_recorder_records_activations_and_gradients_of_chosen_layers():
    model = mlp(0)
    x, y = data(0)
    out0 = model[0](x).data                  # before the hooks: a hooked call would be recorded
    rec = Recorder(model, [nn.Linear])
    logits = model(x)
    assert sorted(rec.activations) == ["0", "2", "5"]
    np.testing.assert_array_equal(rec.activations["5"], logits.data)
    np.testing.assert_array_equal(rec.activations["0"], out0)
    F.cross_entropy(logits, y).backward()
    grads = rec.collect_gradients()
    assert sorted(grads) == ["0", "2", "5"]
    # dL/dlogits of the mean cross-entropy: (softmax - onehot) / N
    p = np.exp(logits.data - logits.data.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(16), y.data] -= 1
    np.testing.assert_allclose(grads["5"], p / 16, rtol=1e-5, atol=1e-7)
    # and through ReLU and Linear 2: dL/d(out0) = (dL/d(out2) @ W2) * 1[out0 > 0]
    np.testing.assert_allclose(grads["0"], (grads["2"] @ model[2].weight.data)
                               * (rec.activations["0"] > 0), rtol=1e-5, atol=1e-7)
    assert isinstance(rec.activations["0"], np.ndarray) and grads["0"].shape == (16, 8)
    rec.remove()
    model(data(1)[0])
    np.testing.assert_array_equal(rec.activations["5"], logits.data)     # nothing new recorded


def test_recorder_layer_selection_by_name_and_default_leaves():
    model = mlp(0)
    with Recorder(model, ["3"]) as rec:
        model(data(0)[0])
        assert list(rec.activations) == ["3"]
        np.testing.assert_allclose(rec.activations["3"].mean(axis=0), 0, atol=1e-5)
    model(data(1)[0])
    rec_all = Recorder(model)
    model(data(0)[0])
    assert sorted(rec_all.activations) == ["0", "1", "2", "3", "4", "5"]
    rec_all.remove()


def train_steps(model, steps=6, recorder=None):
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    losses = []
    for k in range(steps):
        x, y = data(k)
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        if recorder is not None:
            recorder.collect_gradients()
        opt.step()
        losses.append(loss.item())
    return losses


def test_recorder_does_not_change_training():
    plain, watched = mlp(0), mlp(0)
    assert_same_state(snapshot(plain), snapshot(watched))
    losses_plain = train_steps(plain)
    rec = Recorder(watched)                               # every leaf layer, grads collected
    losses_watched = train_steps(watched, recorder=rec)
    assert len(rec.gradients) == 6
    assert losses_plain == losses_watched
    assert_same_state(snapshot(watched), snapshot(plain))    # bit-exact
    assert losses_plain[-1] < losses_plain[0]
    rec.remove()
    assert all(not getattr(m, "_forward_hooks", None) for m in watched.modules())


# ---- a whole training step on every device --------------------------------------------------
@pytest.mark.parametrize("arch", ["mlp", "cnn"])
def test_training_step_on_every_device(arch, device):
    """Three SGD steps (momentum, weight decay) of a BatchNorm network give the CPU's numbers on
    every device; on "strict" any NumPy call on device data in the layers, the engine, the loss
    or the optimiser raises instead."""
    from minigrad import optim

    def run(dev):
        minigrad.manual_seed(0)
        if arch == "mlp":
            model = nn.Sequential(nn.Linear(12, 16, bias=False), nn.BatchNorm1d(16), nn.ReLU(),
                                  nn.Linear(16, 4))
            x = np.random.default_rng(1).standard_normal((8, 12))
        else:
            model = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4),
                                  nn.ReLU(), nn.Conv2d(4, 4, 3, stride=2, padding=1),
                                  nn.Flatten(), nn.Linear(4 * 3 * 3, 4))
            x = np.random.default_rng(1).standard_normal((8, 2, 6, 6))
        model.to(dev)
        opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
        xs = Tensor(x, device=dev)
        ys = Tensor(np.array([0, 1, 2, 3, 3, 2, 1, 0]), device=dev)
        losses = []
        for _ in range(3):
            loss = F.cross_entropy(model(xs), ys)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        model.eval()
        return losses, host(model(xs).data), {k: host(v.data) for k, v in
                                                model.state_dict().items()}

    losses, out, state = run(device)
    ref_losses, ref_out, ref_state = run("cpu")
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-5)
    assert losses[-1] < losses[0]
    np.testing.assert_allclose(out, ref_out, rtol=1e-4, atol=1e-5)
    for k in ref_state:
        np.testing.assert_allclose(state[k], ref_state[k], rtol=1e-4, atol=1e-6, err_msg=k)
