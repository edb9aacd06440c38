"""Adam, AdamW, SGD's maximize, the Optimizer base class and minigrad.optim.lr_scheduler.

Trajectories (6 steps: weight decay, amsgrad, maximize, parameter groups) and optimiser state
against stored PyTorch runs in float64 and float32 on every device; learning-rate (and
momentum) sequences of every scheduler against PyTorch's; state dicts that resume the exact
same trajectory through minigrad.save / load; argument errors and PyTorch's defaults.

References: tests/fixtures/habits_optim.npz and habits_sched.npz, written by
make_fixtures_pytorch_habits.py.
"""
import inspect
import json

import numpy as np
import pytest

import minigrad
from minigrad import Tensor, backend, nn, optim
from minigrad.optim import lr_scheduler
import pytorch_fixtures
from pytorch_fixtures import REF, load as _fixture

# relative to the array's largest entry; float32 trajectories drift further than one op's rounding
TOL = {np.float64: 1e-10, np.float32: 1e-4}
# the LambdaLR functions the fixture names (make_fixtures_pytorch_habits.py defines the same)
LAMBDAS = {"exp0.9": lambda e: 0.9 ** e, "inv": lambda e: 1.0 / (e + 1),
           "warmup5": lambda e: min(1.0, (e + 1) / 5)}


def _cases(name):
    return sorted({k.split("/")[0] for k in _fixture(name) if k.count("/") >= 1
                   and k.split("/")[0] not in ("init",)})


def _case(name, case):
    return {k[len(case) + 1:]: v for k, v in _fixture(name).items() if k.startswith(case + "/")}


def _json(fx, key):
    return {k: tuple(v) if isinstance(v, list) else v
            for k, v in json.loads(str(fx[key])).items()}


def check(actual, expected, dtype, what):
    pytorch_fixtures.check(actual, expected, dtype, what, TOL)


# ---- optimiser trajectories against PyTorch ----------------------------------------------------
def _problem(dtype, device):
    """The fixture's Linear(4, 3) least-squares problem: (weight, bias, loss function)."""
    fx = _fixture("habits_optim")
    w = nn.Parameter(fx["init/weight"], dtype=dtype)
    b = nn.Parameter(fx["init/bias"], dtype=dtype)
    w.data, b.data = backend.to_device(w.data, device), backend.to_device(b.data, device)
    x, y = (Tensor(fx[k], dtype=dtype, device=device) for k in ("x", "y"))

    def loss():
        r = x @ w.T + b - y
        return (r * r).sum()
    return w, b, loss


def _optimizer(fx, w, b):
    kwargs = _json(fx, "kwargs")
    params = [w, b]
    if "bias_group" in fx:
        params = [{"params": [w]}, {"params": [b], **_json(fx, "bias_group")}]
    return getattr(optim, str(fx["opt"]))(params, **kwargs)


OPTIM_CASES = _cases("habits_optim")


@pytest.mark.parametrize("case", OPTIM_CASES)
def test_optimizer_trajectory_matches_pytorch(case, dtype, device):
    fx, ref = _case("habits_optim", case), REF[dtype]
    w, b, loss_fn = _problem(dtype, device)
    opt = _optimizer(fx, w, b)
    for k in range(1, 7):
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        opt.step()
        check(loss, fx[f"{ref}/step{k}/loss"], dtype, f"{case} step {k} loss")
        check(w, fx[f"{ref}/step{k}/weight"], dtype, f"{case} step {k} weight")
        check(b, fx[f"{ref}/step{k}/bias"], dtype, f"{case} step {k} bias")
    for i, p in enumerate((w, b)):
        expected = {k.split("/")[-1]: v for k, v in fx.items()
                    if k.startswith(f"{ref}/state/{i}/")}
        assert set(opt.state[p]) == set(expected), f"{case}: state names of parameter {i}"
        for name, value in expected.items():
            if name == "step":
                assert opt.state[p]["step"] == value == 6
            else:
                check(opt.state[p][name], value, dtype, f"{case} state {i} {name}")


def test_the_cases_cover_what_the_issue_asks():
    kinds = [json.loads(str(_case("habits_optim", c)["kwargs"])) for c in OPTIM_CASES]
    for option in ("weight_decay", "amsgrad", "maximize", "betas", "decoupled_weight_decay"):
        assert any(option in k for k in kinds), option
    assert {str(_case("habits_optim", c)["opt"]) for c in OPTIM_CASES} == {"Adam", "AdamW",
                                                                          "SGD"}


# ---- defaults and argument errors --------------------------------------------------------------
def test_defaults_are_pytorchs():
    def defaults(cls):
        return {k: v.default for k, v in inspect.signature(cls).parameters.items()
                if v.default is not inspect.Parameter.empty}
    assert defaults(optim.Adam) == dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                                        amsgrad=False, maximize=False,
                                        decoupled_weight_decay=False)
    assert defaults(optim.AdamW) == dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
                                         weight_decay=1e-2, amsgrad=False, maximize=False)
    assert defaults(optim.SGD) == dict(lr=1e-3, momentum=0, dampening=0, weight_decay=0,
                                       nesterov=False, maximize=False)
    assert list(inspect.signature(optim.Adam).parameters)[:6] == [
        "params", "lr", "betas", "eps", "weight_decay", "amsgrad"]
    group = optim.AdamW([nn.Parameter(np.ones(2))]).param_groups[0]
    assert group["weight_decay"] == 1e-2 and group["decoupled_weight_decay"] is True


@pytest.mark.parametrize("kwargs, message", [
    (dict(lr=-1e-3), "Invalid learning rate: -0.001"),
    (dict(eps=-1.0), "Invalid epsilon value: -1.0"),
    (dict(betas=(1.0, 0.999)), "Invalid beta parameter at index 0: 1.0"),
    (dict(betas=(0.9, -0.1)), "Invalid beta parameter at index 1: -0.1"),
    (dict(weight_decay=-0.1), "Invalid weight_decay value: -0.1"),
])
def test_adam_rejects_invalid_arguments(kwargs, message):
    for cls in (optim.Adam, optim.AdamW):
        with pytest.raises(ValueError, match=message):
            cls([nn.Parameter(np.ones(2))], **kwargs)


def test_unsupported_pytorch_options_are_refused_by_name():
    for option in ("foreach", "fused", "capturable", "differentiable"):
        with pytest.raises(TypeError, match=option):
            optim.Adam([nn.Parameter(np.ones(2))], **{option: True})


# ---- the Optimizer base class -------------------------------------------------------------------
def test_zero_grad_set_to_none_and_in_place():
    lin = nn.Linear(3, 2)
    opt = optim.Adam(lin.parameters())
    lin(Tensor(np.ones((2, 3)))).sum().backward()
    grad = lin.weight.grad
    opt.zero_grad(set_to_none=False)
    assert lin.weight.grad is grad and np.all(grad == 0)          # zeroed in place
    opt.zero_grad()
    assert lin.weight.grad is None and lin.bias.grad is None      # PyTorch 2's default


def test_named_parameters_groups_and_duplicates():
    lin = nn.Linear(3, 2)
    opt = optim.Adam(lin.named_parameters(), lr=0.1)
    assert opt.param_groups[0]["param_names"] == ["weight", "bias"]
    assert opt.param_groups[0]["params"] == [lin.weight, lin.bias]
    extra = nn.Parameter(np.ones(2))
    opt.add_param_group({"params": extra, "lr": 0.5})
    assert opt.param_groups[1]["lr"] == 0.5 and opt.param_groups[1]["betas"] == (0.9, 0.999)
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [lin.weight]})
    with pytest.raises(TypeError, match="iterable of Tensors or dicts, but got one Tensor"):
        optim.Adam(lin.weight)
    with pytest.raises(TypeError, match="Adam optimises Tensors"):
        optim.Adam([np.ones(3)])
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.AdamW([])


def test_adam_skips_parameters_without_gradient_and_frozen_ones():
    a, b = nn.Parameter(np.ones(3)), nn.Parameter(np.ones(3))
    b.requires_grad = False
    opt = optim.Adam([a, b], lr=0.1, weight_decay=0.5)
    a.grad = np.full(3, 2.0, dtype=np.float32)
    opt.step()
    # first Adam step: m/(1-beta1) = g, sqrt(v/(1-beta2)) = |g|: a step of lr * sign(g)
    np.testing.assert_allclose(a.data, 1 - 0.1, rtol=1e-6)
    np.testing.assert_array_equal(b.data, np.ones(3))
    assert b not in opt.state and opt.state[a]["step"] == 1


def test_sgd_maximize_ascends():
    p = nn.Parameter(np.zeros(2))
    opt = optim.SGD([p], lr=0.5, maximize=True)
    p.grad = np.array([1.0, -2.0], dtype=np.float32)
    opt.step()
    np.testing.assert_array_equal(p.data, [0.5, -1.0])


# ---- state dicts --------------------------------------------------------------------------------
def _model(seed):
    minigrad.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))


def _train_step(net, opt, k, device):
    x = np.random.default_rng(50 + k).standard_normal((16, 4))
    y = x[:, :3].argmax(axis=1)
    opt.zero_grad()
    loss = minigrad.functional.cross_entropy(net(Tensor(x, device=device)),
                                             Tensor(y, device=device))
    loss.backward()
    opt.step()
    return loss.item()


@pytest.mark.parametrize("make", [
    lambda p: optim.Adam(p, lr=0.01, amsgrad=True, weight_decay=1e-3),
    lambda p: optim.AdamW(p, lr=0.01, betas=(0.8, 0.95)),
    lambda p: optim.SGD(p, lr=0.1, momentum=0.9, maximize=False, nesterov=True),
], ids=["adam_amsgrad", "adamw", "sgd"])
def test_resuming_through_a_file_continues_the_exact_trajectory(make, tmp_path, device):
    ref = _model(0).to(device)
    ref_opt = make(ref.parameters())
    ref_losses = [_train_step(ref, ref_opt, k, device) for k in range(6)]

    first = _model(0).to(device)
    opt = make(first.parameters())
    losses = [_train_step(first, opt, k, device) for k in range(3)]
    minigrad.save({"model": first.state_dict(), "optim": opt.state_dict()}, tmp_path / "c.npz")
    ckpt = minigrad.load(tmp_path / "c.npz")
    resumed = _model(1).to(device)
    resumed_opt = type(opt)(resumed.parameters(), lr=0.5)        # other hyper-parameters
    resumed.load_state_dict(ckpt["model"])
    resumed_opt.load_state_dict(ckpt["optim"])
    assert resumed_opt.param_groups[0] == {**opt.param_groups[0],
                                           "params": resumed.parameters()}
    losses += [_train_step(resumed, resumed_opt, k, device) for k in range(3, 6)]
    assert losses == ref_losses
    for (k, a), (_, b) in zip(resumed.state_dict().items(), ref.state_dict().items()):
        np.testing.assert_array_equal(backend.to_numpy(a.data), backend.to_numpy(b.data), k)


def test_without_the_adam_state_the_trajectory_differs():
    """The control for the test above: a fresh Adam restarts its moments and bias correction."""
    ref = _model(0)
    ref_opt = optim.Adam(ref.parameters(), lr=0.01)
    for k in range(6):
        _train_step(ref, ref_opt, k, "cpu")
    first = _model(0)
    opt = optim.Adam(first.parameters(), lr=0.01)
    for k in range(3):
        _train_step(first, opt, k, "cpu")
    fresh = optim.Adam(first.parameters(), lr=0.01)
    for k in range(3, 6):
        _train_step(first, fresh, k, "cpu")
    assert not np.array_equal(first[0].weight.data, ref[0].weight.data)


def test_adam_state_dict_layout_and_copies():
    net = _model(0)
    opt = optim.Adam(net.parameters(), lr=0.01, amsgrad=True)
    _train_step(net, opt, 0, "cpu")
    sd = opt.state_dict()
    assert sorted(sd["state"], key=int) == ["0", "1", "2", "3"]
    assert set(sd["state"]["0"]) == {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"}
    assert sd["state"]["0"]["step"] == 1
    np.testing.assert_array_equal(sd["param_groups"]["0"]["params"], [0, 1, 2, 3])
    assert sd["param_groups"]["0"]["betas"] == (0.9, 0.999)
    frozen = sd["state"]["0"]["exp_avg"].copy()
    _train_step(net, opt, 1, "cpu")
    np.testing.assert_array_equal(sd["state"]["0"]["exp_avg"], frozen)
    assert opt.state_dict()["state"]["0"]["step"] == 2


def test_load_state_dict_with_other_shapes_raises_and_changes_nothing():
    net = _model(0)
    opt = optim.Adam(net.parameters(), lr=0.01)
    _train_step(net, opt, 0, "cpu")
    other = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3))
    other_opt = optim.Adam(other.parameters(), lr=0.3)
    with pytest.raises(ValueError, match=r"exp avg 0 has shape \(8, 4\).*\(5, 4\)"):
        other_opt.load_state_dict(opt.state_dict())
    assert other_opt.state == {} and other_opt.param_groups[0]["lr"] == 0.3


def test_state_dict_before_any_step_loads():
    opt = optim.Adam(_model(0).parameters(), lr=0.02)
    fresh = optim.Adam(_model(1).parameters())
    fresh.load_state_dict(opt.state_dict())
    assert fresh.param_groups[0]["lr"] == 0.02 and fresh.state == {}


# ---- learning-rate schedules against PyTorch ----------------------------------------------------
SCHED_CASES = _cases("habits_sched")


def _scheduled(fx):
    """A fresh optimiser (two groups, lr 0.5 and 0.1) and the fixture's scheduler on it."""
    p, q = nn.Parameter(np.zeros(2)), nn.Parameter(np.zeros(1))
    extra = dict(momentum=0.9) if str(fx["opt"]) == "SGD" else {}
    opt = getattr(optim, str(fx["opt"]))([{"params": [p], "lr": 0.5},
                                          {"params": [q], "lr": 0.1}], **extra)
    kwargs = json.loads(str(fx["kwargs"]))
    if str(fx["sched"]) == "LambdaLR":
        fns = [LAMBDAS[n] for n in kwargs.pop("lambdas")]
        kwargs["lr_lambda"] = fns if len(fns) > 1 else fns[0]
    return opt, getattr(lr_scheduler, str(fx["sched"]))(opt, **kwargs), (p, q)


def _momenta(opt):
    return [g["betas"][0] if "betas" in g else g["momentum"] for g in opt.param_groups]


def _run(fx, opt, sched, params, start=1, lrs=None, moms=None):
    edit = json.loads(str(fx["edit"])) if "edit" in fx else None
    lrs = [sched.get_last_lr()] if lrs is None else lrs
    moms = [_momenta(opt)] if moms is None else moms
    for epoch in range(start, int(fx["steps"]) + 1):
        for t in params:
            t.grad = np.ones(t.shape, dtype=np.float32)
        opt.step()
        if edit is not None and epoch == edit["epoch"]:
            for g in opt.param_groups:
                g["lr"] *= edit["factor"]
        sched.step()
        lrs.append(sched.get_last_lr())
        moms.append(_momenta(opt))
    return np.array(lrs), np.array(moms)


@pytest.mark.parametrize("case", SCHED_CASES)
def test_schedule_matches_pytorch(case):
    fx = _case("habits_sched", case)
    lrs, moms = _run(fx, *_scheduled(fx))
    np.testing.assert_allclose(lrs, fx["lr"], rtol=1e-13, atol=1e-15, err_msg=f"{case} lr")
    np.testing.assert_allclose(moms, fx["momentum"], rtol=1e-13, err_msg=f"{case} momentum")


@pytest.mark.parametrize("case", ["cosine", "onecycle", "multistep", "onecycle_adam",
                                  "lambda"])
def test_scheduler_resumes_through_a_file(case, tmp_path):
    """Save optimiser and scheduler mid-way, build fresh ones, load, and finish the schedule."""
    fx = _case("habits_sched", case)
    half = int(fx["steps"]) // 2
    opt, sched, params = _scheduled(fx)
    lrs, moms = _run({**fx, "steps": np.array(half)}, opt, sched, params)
    minigrad.save({"optim": opt.state_dict(), "sched": sched.state_dict()}, tmp_path / "s.npz")
    ckpt = minigrad.load(tmp_path / "s.npz")
    opt2, sched2, params2 = _scheduled(fx)
    opt2.load_state_dict(ckpt["optim"])
    sched2.load_state_dict(ckpt["sched"])
    assert sched2.last_epoch == half and sched2.get_last_lr() == sched.get_last_lr()
    lrs, moms = _run(fx, opt2, sched2, params2, start=half + 1, lrs=list(lrs), moms=list(moms))
    np.testing.assert_allclose(lrs, fx["lr"], rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(moms, fx["momentum"], rtol=1e-13)


def test_scheduler_errors():
    opt = optim.SGD([nn.Parameter(np.zeros(1))], lr=0.1)
    sched = lr_scheduler.StepLR(opt, 2)
    with pytest.raises(TypeError, match=r"step\(epoch\) is deprecated"):
        sched.step(3)
    with pytest.raises(TypeError, match="list is not an Optimizer"):
        lr_scheduler.StepLR([], 2)
    with pytest.raises(ValueError, match="step_size must be a positive int"):
        lr_scheduler.StepLR(opt, 0)
    fresh = optim.SGD([nn.Parameter(np.zeros(1))], lr=0.1)
    with pytest.raises(KeyError, match=r"'initial_lr' is not specified in param_groups\[0\]"):
        lr_scheduler.CosineAnnealingLR(fresh, 10, last_epoch=4)
    with pytest.raises(ValueError, match="Expected 1 lr_lambdas, but got 2"):
        lr_scheduler.LambdaLR(opt, [lambda e: 1, lambda e: 2])
    one = lr_scheduler.OneCycleLR(optim.SGD([nn.Parameter(np.zeros(1))]), 1.0, total_steps=3)
    for _ in range(3):
        one.step()
    with pytest.raises(ValueError, match="Tried to step 4 times. The specified number of total "
                                         "steps is 3"):
        one.step()
    with pytest.raises(ValueError, match="either total_steps OR"):
        lr_scheduler.OneCycleLR(opt, 1.0)
    with pytest.raises(ValueError, match="Expected float between 0 and 1 pct_start"):
        lr_scheduler.OneCycleLR(opt, 1.0, total_steps=10, pct_start=1)
    with pytest.raises(ValueError, match="max_lr must have the same length"):
        lr_scheduler.OneCycleLR(opt, [1.0, 2.0], total_steps=10)

    class Plain(optim.Optimizer):
        def __init__(self, params):
            super().__init__(params, dict(lr=0.1))
    with pytest.raises(ValueError, match="must support momentum or beta1"):
        lr_scheduler.OneCycleLR(Plain([nn.Parameter(np.zeros(1))]), 1.0, total_steps=10)


def test_schedulers_reach_the_optimizer_step():
    """The lr a scheduler sets is the one the next optimizer.step() uses."""
    p = nn.Parameter(np.zeros(1))
    opt = optim.SGD([p], lr=1.0)
    sched = lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    for expected in (1.0, 0.5, 0.25):
        before = p.data.copy()
        p.grad = np.ones(1, dtype=np.float32)
        opt.step()
        sched.step()
        np.testing.assert_allclose(before - p.data, expected)
