"""minigrad.losses against stored PyTorch results (float64 and float32, every device): cross-
entropy with class weights, ignore_index, label smoothing, K-dim and probability targets; NLL,
MSE, L1 and BCE-with-logits with every reduction; float64 gradchecks; the fused cross-entropy
backward; the loss modules; and errors that name shapes and dtypes.

References: tests/fixtures/habits_losses.npz, written by make_fixtures_pytorch_habits.py.
"""
import json

import numpy as np
import pytest

from minigrad import Tensor, losses
from minigrad.nn import Sequential, Linear
from minigrad.tensor import Function
from minigrad.testing import gradcheck
from pytorch_fixtures import REF, check, load


def _fixture():
    return load("habits_losses")


CASES = sorted({k.split("/")[0] for k in _fixture() if "/" in k})


def _case(case):
    return {k[len(case) + 1:]: v for k, v in _fixture().items() if k.startswith(case + "/")}


def _inputs(fx, dtype, device):
    """(input, target, array options) of a fixture case as minigrad values."""
    x = Tensor(fx["input"], requires_grad=True, dtype=dtype, device=device)
    t = fx["target"]
    if t.dtype.kind == "f":
        t = Tensor(t, dtype=dtype, device=device, requires_grad="f64/dtarget" in fx)
    else:
        t = Tensor(t, device=device)
    arrays = {k[4:]: Tensor(v, dtype=dtype, device=device) for k, v in fx.items()
              if k.startswith("arg/")}
    return x, t, arrays


@pytest.mark.parametrize("case", CASES)
def test_loss_matches_pytorch(case, dtype, device):
    fx, ref = _case(case), REF[dtype]
    x, t, arrays = _inputs(fx, dtype, device)
    loss = getattr(losses, str(fx["fn"]))(x, t, **json.loads(str(fx["kwargs"])), **arrays)
    loss.backward(fx["dout"].astype(dtype))
    check(loss, fx[f"{ref}/out"], dtype, f"{case} loss")
    check(x.grad, fx[f"{ref}/dinput"], dtype, f"{case} dinput")
    if f"{ref}/dtarget" in fx:
        check(t.grad, fx[f"{ref}/dtarget"], dtype, f"{case} dtarget")


MODULES = {"cross_entropy": losses.CrossEntropyLoss, "nll_loss": losses.NLLLoss,
           "mse_loss": losses.MSELoss, "l1_loss": losses.L1Loss,
           "binary_cross_entropy_with_logits": losses.BCEWithLogitsLoss}


def _has_module(case):
    """MSELoss and L1Loss take no weight (only the functional forms do): no module case."""
    fx = _case(case)
    return not ("arg/weight" in fx and str(fx["fn"]) in ("mse_loss", "l1_loss"))


@pytest.mark.parametrize("case", [c for c in CASES if _has_module(c)])
def test_loss_module_matches_pytorch(case, device):
    fx = _case(case)
    x, t, arrays = _inputs(fx, np.float64, device)
    module = MODULES[str(fx["fn"])](**json.loads(str(fx["kwargs"])), **arrays)
    loss = module.to(np.float64).to(device)(x, t)
    loss.backward(fx["dout"])
    check(loss, fx["f64/out"], np.float64, f"{case} module loss")
    check(x.grad, fx["f64/dinput"], np.float64, f"{case} module dinput")


def test_weight_is_a_buffer_in_the_state_dict_as_in_pytorch():
    crit = losses.CrossEntropyLoss(weight=np.array([1.0, 2.0, 3.0]))
    assert list(crit.state_dict()) == ["weight"] and crit.parameters() == []
    bce = losses.BCEWithLogitsLoss(pos_weight=np.ones(3))
    assert list(bce.state_dict()) == ["pos_weight"]
    assert list(losses.CrossEntropyLoss().state_dict()) == []


# ---- gradchecks (float64) ---------------------------------------------------------------------
rng = np.random.default_rng(3)
X = rng.standard_normal((5, 4))
T = np.array([0, 3, -100, 2, 3])
W = np.array([0.5, 1.0, 2.0, 0.25])
PROBS = rng.dirichlet(np.ones(4), size=5)
GRADCHECKS = {
    "ce": lambda x: losses.cross_entropy(x, T),
    "ce_weight_ignore_smooth": lambda x: losses.cross_entropy(x, T, W, label_smoothing=0.2),
    "ce_none": lambda x: losses.cross_entropy(x, T, W, reduction="none", label_smoothing=0.1),
    "ce_sum": lambda x: losses.cross_entropy(x, T, reduction="sum"),
    "ce_probs": lambda x: losses.cross_entropy(x, PROBS, W, label_smoothing=0.1),
    "ce_kdim": lambda x: losses.cross_entropy(x.reshape(1, 4, 5), np.array([[0, 1, 2, 3, 1]])),
    "nll": lambda x: losses.nll_loss(x, T, W),
    "nll_none": lambda x: losses.nll_loss(x, T, reduction="none"),
}


@pytest.mark.parametrize("name", GRADCHECKS)
def test_gradcheck_class_losses(name, device):
    x = Tensor(X, dtype=np.float64, device=device)
    assert gradcheck(GRADCHECKS[name], [x])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_gradcheck_regression_losses(reduction, device):
    x, t = (Tensor(rng.standard_normal((3, 4)), dtype=np.float64, device=device,
                   requires_grad=True) for _ in range(2))
    w = Tensor(rng.random((3, 4)) + 0.1, dtype=np.float64, device=device)
    assert gradcheck(lambda x, t: losses.mse_loss(x, t, reduction=reduction, weight=w), [x, t])
    assert gradcheck(lambda x, t: losses.l1_loss(x, t, reduction=reduction), [x, t])


def test_gradcheck_bce_with_logits_input_target_and_pos_weight(device):
    x, t = (Tensor(v, dtype=np.float64, device=device, requires_grad=True)
            for v in (rng.standard_normal((4, 3)) * 3, rng.random((4, 3))))
    pw = Tensor(rng.random(3) + 0.5, dtype=np.float64, device=device, requires_grad=True)
    w = Tensor(rng.random((1, 3)), dtype=np.float64, device=device)
    assert gradcheck(lambda x, t, pw: losses.binary_cross_entropy_with_logits(
        x, t, w, pos_weight=pw), [x, t, pw])
    assert gradcheck(lambda x, t: losses.binary_cross_entropy_with_logits(
        x, t, reduction="none"), [x, t])


def test_every_loss_op_is_gradchecked():
    defined = {o.__name__ for o in vars(losses).values() if isinstance(o, type)
               and issubclass(o, Function) and o is not Function
               and o.__module__ == losses.__name__}
    x = Tensor(X, dtype=np.float64, requires_grad=True)
    covered = {fn(x).grad_fn for fn in GRADCHECKS.values()}
    covered |= {"AbsoluteError", "BCEWithLogits"}     # the two tests above
    assert defined - covered == set()


# ---- the fused cross-entropy -------------------------------------------------------------------
def test_cross_entropy_backward_is_softmax_minus_the_smoothed_weighted_target():
    x = Tensor(X, requires_grad=True, dtype=np.float64)
    eps, C = 0.2, 4
    losses.cross_entropy(x, T, W, reduction="sum", label_smoothing=eps).backward()
    p = np.exp(X - X.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    keep = T != -100
    q = np.zeros((5, C))
    q[np.arange(5)[keep], T[keep]] = (1 - eps) * W[T[keep]]
    q[keep] += eps / C * W                               # the weighted uniform part
    np.testing.assert_allclose(x.grad, p * q.sum(1, keepdims=True) - q, rtol=1e-12, atol=1e-15)
    assert np.all(x.grad[~keep] == 0)                    # an ignored row gets no gradient


def test_cross_entropy_large_logits_and_masked_classes_stay_finite():
    x = Tensor(np.array([[1e4, -1e4, 0.0], [0.0, -np.inf, 1.0]]), requires_grad=True,
               dtype=np.float64)
    loss = losses.cross_entropy(x, np.array([1, 2]), reduction="none")
    np.testing.assert_allclose(loss.numpy(), [2e4, np.log1p(np.exp(-1.0))], rtol=1e-12)
    loss.sum().backward()
    assert np.isfinite(x.grad).all() and x.grad[1, 1] == 0


def test_every_target_ignored_gives_nan_as_pytorch():
    with np.errstate(invalid="ignore"):
        loss = losses.cross_entropy(Tensor(X), np.full(5, -100))
    assert np.isnan(loss.item())
    assert losses.cross_entropy(Tensor(X), np.full(5, -100), reduction="sum").item() == 0


def test_loss_defaults_match_pytorch():
    assert losses.cross_entropy(Tensor(X), T).shape == ()
    crit = losses.CrossEntropyLoss()
    assert (crit.ignore_index, crit.reduction, crit.label_smoothing) == (-100, "mean", 0.0)
    assert losses.NLLLoss().ignore_index == -100 and losses.MSELoss().reduction == "mean"
    # positional order as PyTorch: (input, target, weight, size_average, ignore_index, ...)
    a = losses.cross_entropy(Tensor(X), np.array([0, 3, 1, 2, 3]), W, None, 1)
    b = losses.cross_entropy(Tensor(X), np.array([0, 3, 1, 2, 3]), W, ignore_index=1)
    assert a.item() == b.item()


def test_a_loss_trains_a_model():
    net = Sequential(Linear(4, 8), Linear(8, 3))
    crit = losses.CrossEntropyLoss(label_smoothing=0.1)
    x, y = Tensor(X), np.array([0, 1, 2, 1, 0])
    first = crit(net(x), y).item()
    for _ in range(50):
        net.zero_grad()
        crit(net(x), y).backward()
        for p in net.parameters():
            p.data -= 0.1 * p.grad
    assert crit(net(x), y).item() < 0.6 * first


# ---- errors -------------------------------------------------------------------------------------
@pytest.mark.parametrize("call, error, message", [
    (lambda: losses.cross_entropy(Tensor(X), np.array([0, 1])), ValueError,
     r"input of shape \(5, 4\) needs a target of shape \(5,\), got \(2,\)"),
    (lambda: losses.cross_entropy(Tensor(X), np.array([0, 1, 4, 0, 0])), IndexError,
     r"target 4 is out of bounds for 4 classes \(valid: 0\.\.3"),
    (lambda: losses.nll_loss(Tensor(X), np.array([0, 1, -1, 0, 0])), IndexError,
     "target -1 is out of bounds"),
    (lambda: losses.cross_entropy(Tensor(X), np.zeros(5, dtype=np.float32)), ValueError,
     r"probability targets must have the input's shape \(5, 4\), got \(5,\)"),
    (lambda: losses.nll_loss(Tensor(X), np.zeros(5)), TypeError,
     "target must hold integer class indices.*got dtype float64"),
    (lambda: losses.cross_entropy(Tensor(X), T, np.ones(3)), ValueError,
     r"one value for each of the 4 classes, got a weight of shape \(3,\)"),
    (lambda: losses.cross_entropy(Tensor(X), T, reduction="avg"), ValueError,
     "'avg' is not a valid value for reduction"),
    (lambda: losses.cross_entropy(Tensor(X), T, size_average=True), ValueError,
     "size_average and reduce are deprecated"),
    (lambda: losses.CrossEntropyLoss(reduce=False), ValueError, "size_average and reduce"),
    (lambda: losses.cross_entropy(Tensor(X), T, label_smoothing=1.5), ValueError,
     "label_smoothing must be between 0.0 and 1.0. Got: 1.5"),
    (lambda: losses.cross_entropy(Tensor(np.ones(3, dtype=np.int64)), T), ValueError,
     "floating-point scores"),
    (lambda: losses.mse_loss(Tensor(np.ones((4, 1))), np.ones(4)), ValueError,
     r"input shape \(4, 1\) and target shape \(4,\) differ"),
    (lambda: losses.l1_loss(Tensor(np.ones(4)), np.ones(4), weight=np.ones(3)), ValueError,
     r"weight must have the input's shape \(4,\)"),
    (lambda: losses.binary_cross_entropy_with_logits(Tensor(np.ones((4, 3))), np.ones(4)),
     ValueError, r"target size \(4,\) must be the same as input size \(4, 3\)"),
])
def test_loss_errors_name_shapes_and_dtypes(call, error, message):
    with pytest.raises(error, match=message):
        call()
