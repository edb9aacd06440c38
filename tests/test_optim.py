"""SGD beyond the PyTorch conformance runs: argument errors, parameters without gradients,
parameter groups, and optimizer state that survives a save/load and continues the exact same
trajectory as an uninterrupted run."""
import numpy as np
import pytest

import minigrad
from minigrad import Tensor, nn, optim
from minigrad import functional as F
from minigrad.backend import to_numpy as host


def model(seed=0):
    minigrad.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))


def batch(k, device="cpu"):
    x = np.random.default_rng(100 + k).standard_normal((16, 4))
    return Tensor(x, device=device), Tensor(x[:, :3].argmax(axis=1), device=device)


def step(net, opt, k, device="cpu"):
    x, y = batch(k, device)
    opt.zero_grad()
    loss = F.cross_entropy(net(x), y)
    loss.backward()
    opt.step()
    return loss.item()


def state(net):
    return {k: host(v.data).copy() for k, v in net.state_dict().items()}


def assert_same(a, b):
    assert list(a) == list(b)
    for k in a:
        assert a[k].dtype == b[k].dtype, k
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


# ---- argument errors ---------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, message", [
    (dict(lr=-0.1), "Invalid learning rate: -0.1"),
    (dict(lr=None), "Invalid learning rate: None"),
    (dict(lr=0.1, momentum=-0.5), "Invalid momentum value: -0.5"),
    (dict(lr=0.1, weight_decay=-1e-4), "Invalid weight_decay value: -0.0001"),
    (dict(lr=0.1, nesterov=True), "Nesterov momentum requires a momentum and zero dampening"),
    (dict(lr=0.1, momentum=0.9, dampening=0.1, nesterov=True),
     "Nesterov momentum requires a momentum and zero dampening"),
], ids=["negative_lr", "no_lr", "negative_momentum", "negative_weight_decay",
        "nesterov_without_momentum", "nesterov_with_dampening"])
def test_sgd_rejects_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError) as info:
        optim.SGD(nn.Linear(2, 2).parameters(), **kwargs)
    assert message in str(info.value)


def test_sgd_rejects_an_empty_parameter_list():
    class Empty(nn.Module):
        def forward(self, x):
            return x

    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD(Empty().parameters(), lr=0.1)
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD(iter([]), lr=0.1)


def test_sgd_rejects_non_tensors_and_non_leaf_tensors():
    with pytest.raises(TypeError, match="optimises Tensors"):
        optim.SGD([np.ones(3)], lr=0.1)
    w = Tensor(np.ones(3), requires_grad=True)
    with pytest.raises(ValueError, match="non-leaf"):
        optim.SGD([w * 2], lr=0.1)


def test_sgd_accepts_frozen_parameters_and_leaves_them_alone():
    """As in PyTorch: a frozen parameter (requires_grad=False) gets no grad, so no update."""
    bn = nn.BatchNorm1d(3)
    bn.weight.requires_grad = False
    frozen = bn.weight.data.copy()
    opt = optim.SGD(bn.parameters(), lr=0.5, momentum=0.9)
    x = Tensor(np.random.default_rng(0).standard_normal((8, 3)))
    for _ in range(3):
        opt.zero_grad()
        (bn(x) * x).sum().backward()
        opt.step()
    np.testing.assert_array_equal(bn.weight.data, frozen)
    assert bn.weight.grad is None
    assert not np.allclose(bn.bias.data, 0)      # the trainable one did move


def test_sgd_accepts_a_generator_and_zero_lr():
    lin = nn.Linear(2, 2)
    before = lin.weight.data.copy()
    opt = optim.SGD((p for p in lin.parameters()), lr=0.0)
    assert len(opt.param_groups[0]["params"]) == 2
    lin.weight.grad = np.ones((2, 2), dtype=np.float32)
    opt.step()
    np.testing.assert_array_equal(lin.weight.data, before)


# ---- the update ------------------------------------------------------------------------------
def test_parameters_without_gradient_are_skipped(device):
    lin = nn.Linear(3, 2).to(device)
    opt = optim.SGD(lin.parameters(), lr=0.5, momentum=0.9, weight_decay=0.1)
    w0, b0 = host(lin.weight.data).copy(), host(lin.bias.data).copy()
    lin.weight.grad = lin.weight.data * 0 + 1.0          # only the weight has a gradient
    opt.step()
    np.testing.assert_array_equal(host(lin.bias.data), b0)          # untouched, even by decay
    np.testing.assert_allclose(host(lin.weight.data), w0 - 0.5 * (1.0 + 0.1 * w0), rtol=1e-6)
    assert list(opt.state_dict()["state"]) == ["0"]                  # no momentum buffer for bias
    # a later step with a bias gradient starts the bias's momentum buffer then, undamped
    lin.weight.grad, lin.bias.grad = None, lin.bias.data * 0 + 2.0
    w1 = host(lin.weight.data).copy()
    opt.step()
    np.testing.assert_array_equal(host(lin.weight.data), w1)         # buffer not applied
    np.testing.assert_allclose(host(lin.bias.data), b0 - 0.5 * (2.0 + 0.1 * b0), rtol=1e-6)
    assert sorted(opt.state_dict()["state"]) == ["0", "1"]


def test_zero_grad_sets_every_gradient_to_none():
    lin = nn.Linear(3, 2)
    opt = optim.SGD(lin.parameters(), lr=0.1)
    lin(Tensor(np.ones((2, 3)))).sum().backward()
    assert lin.weight.grad is not None and lin.bias.grad is not None
    opt.zero_grad()
    assert lin.weight.grad is None and lin.bias.grad is None


def test_param_groups_have_their_own_hyperparameters():
    a, b = nn.Linear(3, 2), nn.Linear(2, 2)
    opt = optim.SGD([{"params": a.parameters(), "lr": 0.5},
                     {"params": b.parameters(), "momentum": 0.9}], lr=0.01)
    assert [g["lr"] for g in opt.param_groups] == [0.5, 0.01]
    assert [g["momentum"] for g in opt.param_groups] == [0.0, 0.9]
    start = {n: p.data.copy() for n, p in [("a", a.weight), ("b", b.weight)]}
    for k in (1, 2):
        for p in a.parameters() + b.parameters():
            p.grad = np.full(p.shape, 1.0, dtype=np.float32)
        opt.step()
    np.testing.assert_allclose(a.weight.data, start["a"] - 2 * 0.5, rtol=1e-6)     # no momentum
    # momentum 0.9: buffers 1, then 1.9; steps of lr * buf
    np.testing.assert_allclose(b.weight.data, start["b"] - 0.01 * (1 + 1.9), rtol=1e-6)
    opt.param_groups[0]["lr"] = 0.0                       # a schedule edits the group in place
    a.weight.grad = np.ones((2, 3), dtype=np.float32)
    before = a.weight.data.copy()
    opt.step()
    np.testing.assert_array_equal(a.weight.data, before)


def test_step_updates_in_place_and_keeps_parameter_objects():
    net = model()
    params = net.parameters()
    arrays = [p.data for p in params]
    opt = optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    step(net, opt, 0)
    assert all(p is q for p, q in zip(net.parameters(), params))
    assert all(p.data is a for p, a in zip(params, arrays))


# ---- state dicts: resuming continues the same trajectory --------------------------------------
def run_interrupted(tmp_path, through_file, device="cpu"):
    kwargs = dict(lr=0.1, momentum=0.9, weight_decay=1e-3, nesterov=True)
    # the uninterrupted reference: 6 steps
    ref = model(0).to(device)
    ref_opt = optim.SGD(ref.parameters(), **kwargs)
    ref_losses = [step(ref, ref_opt, k, device) for k in range(6)]

    # 3 steps, checkpoint, then a fresh model and optimizer (other init, other lr) resume
    first = model(0).to(device)
    opt = optim.SGD(first.parameters(), **kwargs)
    losses = [step(first, opt, k, device) for k in range(3)]
    checkpoint = {"model": first.state_dict(), "optim": opt.state_dict(), "epoch": 3}
    if through_file:
        minigrad.save(checkpoint, tmp_path / "ckpt.npz")
        checkpoint = minigrad.load(tmp_path / "ckpt.npz")
    resumed = model(1).to(device)
    resumed_opt = optim.SGD(resumed.parameters(), lr=0.5, momentum=0.5)
    resumed.load_state_dict(checkpoint["model"])
    resumed_opt.load_state_dict(checkpoint["optim"])
    group = resumed_opt.param_groups[0]
    assert (group["lr"], group["momentum"], group["nesterov"]) == (0.1, 0.9, True)
    assert group["weight_decay"] == 1e-3 and isinstance(group["nesterov"], bool)
    assert int(np.asarray(host(getattr(checkpoint["epoch"], "data", checkpoint["epoch"])))) == 3
    losses += [step(resumed, resumed_opt, k, device) for k in range(3, 6)]
    assert losses == ref_losses
    assert_same(state(resumed), state(ref))
    assert ref_losses[-1] < ref_losses[0]


def test_resuming_from_state_dicts_continues_the_exact_trajectory(tmp_path, device):
    run_interrupted(tmp_path, through_file=False, device=device)


def test_resuming_from_a_saved_file_continues_the_exact_trajectory(tmp_path, device):
    run_interrupted(tmp_path, through_file=True, device=device)


def test_without_optimizer_state_the_trajectory_differs():
    """The control for the tests above: dropping the momentum buffers changes the result."""
    ref = model(0)
    ref_opt = optim.SGD(ref.parameters(), lr=0.1, momentum=0.9)
    for k in range(6):
        step(ref, ref_opt, k)
    first = model(0)
    opt = optim.SGD(first.parameters(), lr=0.1, momentum=0.9)
    for k in range(3):
        step(first, opt, k)
    fresh_opt = optim.SGD(first.parameters(), lr=0.1, momentum=0.9)
    for k in range(3, 6):
        step(first, fresh_opt, k)
    assert not np.array_equal(state(first)["0.weight"], state(ref)["0.weight"])


def test_optimizer_state_dict_layout_and_copies():
    net = model()
    opt = optim.SGD([{"params": net[0].parameters()},
                     {"params": net[1].parameters() + net[3].parameters(), "lr": 0.01}],
                    lr=0.1, momentum=0.9)
    step(net, opt, 0)
    sd = opt.state_dict()
    assert sorted(sd["state"], key=int) == ["0", "1", "2", "3", "4", "5"]
    assert list(sd["param_groups"]) == ["0", "1"]
    np.testing.assert_array_equal(sd["param_groups"]["0"]["params"], [0, 1])
    np.testing.assert_array_equal(sd["param_groups"]["1"]["params"], [2, 3, 4, 5])
    assert sd["param_groups"]["1"]["lr"] == 0.01 and sd["param_groups"]["0"]["lr"] == 0.1
    buf = sd["state"]["0"]["momentum_buffer"]
    assert buf.shape == net[0].weight.shape
    frozen = buf.copy()
    step(net, opt, 1)                                  # the optimizer's buffers move on ...
    np.testing.assert_array_equal(buf, frozen)         # ... the state dict taken earlier does not
    assert not np.array_equal(opt.state_dict()["state"]["0"]["momentum_buffer"], frozen)


def test_load_state_dict_with_mismatched_sizes_raises():
    big = model()
    opt = optim.SGD(big.parameters(), lr=0.1, momentum=0.9)
    step(big, opt, 0)
    sd = opt.state_dict()
    small = nn.Linear(4, 3)
    with pytest.raises(ValueError, match=r"groups of sizes \[6\].*has \[2\]"):
        optim.SGD(small.parameters(), lr=0.1, momentum=0.9).load_state_dict(sd)
    # the same number of parameters with other shapes
    other = nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 3))
    other_opt = optim.SGD(other.parameters(), lr=0.3)
    with pytest.raises(ValueError, match=r"momentum buffer 0 has shape \(8, 4\).*\(5, 4\)"):
        other_opt.load_state_dict(sd)
    assert other_opt.state == {} and other_opt.param_groups[0]["lr"] == 0.3   # unchanged
