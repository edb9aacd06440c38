"""Loss functions and their modules with PyTorch's semantics: cross-entropy (class weights,
ignore_index, label smoothing, class-probability targets), NLL, MSE, L1 and BCE-with-logits.

Every loss takes reduction='none' | 'mean' | 'sum'. The plain mean cross-entropy of (N, C)
logits against class indices is lesson 02's op, functional.CrossEntropy (and its fast kernel);
everything else (weights, ignore_index, smoothing, probabilities, other reductions) is the
general fused op below, whose backward is softmax minus the (smoothed, weighted) target. The
other losses are small ops or compositions of existing ones.
"""
import numpy as np

from . import backend, kernels
from . import functional as F
from .nn import Buffer, Module
from .tensor import Function, Tensor


def _check_reduction(fn, reduction, size_average=None, reduce=None):
    if size_average is not None or reduce is not None:
        raise ValueError(f"{fn}: size_average and reduce are deprecated in PyTorch and not "
                         "supported; use reduction='mean', 'sum' or 'none'")
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(f"{reduction!r} is not a valid value for reduction (expected 'none', "
                         "'mean' or 'sum')")


def _array_on(value, like, fn, name):
    """The array inside a Tensor, array or list, on the device of the Tensor `like`."""
    data = value.data if isinstance(value, Tensor) else value
    if backend.is_array(data):
        return backend.to_device(data, like.device)
    data = np.asarray(data)
    if data.dtype == object:
        raise TypeError(f"{fn}: {name} must be a Tensor or an array, got {type(value).__name__}")
    return backend.to_device(data, like.device)


def _tensor_like(value, like, fn, name):
    """value as a Tensor of like's dtype and device (a Tensor keeps its graph)."""
    if isinstance(value, Tensor):
        return value if value.dtype == like.dtype else value.astype(like.dtype)
    return Tensor._make(_array_on(value, like, fn, name).astype(like.dtype), False, None)


def _class_weight(weight, classes, like, fn):
    if weight is None:
        return None
    w = _array_on(weight, like, fn, "weight")
    if w.shape != (classes,):
        raise ValueError(f"{fn}: weight should hold one value for each of the {classes} "
                         f"classes, got a weight of shape {tuple(w.shape)}")
    return w.astype(like.dtype, copy=False)


def _rows(input, fn):
    """(N, C) or (C,) or (N, C, d1, ...) logits -> (M, C) rows, one per prediction, class last."""
    if not isinstance(input, Tensor):
        raise TypeError(f"{fn}: input must be a Tensor, got {type(input).__name__}")
    if input.ndim == 0 or input.dtype.kind != "f":
        raise ValueError(f"{fn}: input must be floating-point scores of shape (N, C), (C,) or "
                         f"(N, C, d1, ...), got shape {input.shape} and dtype {input.dtype}")
    if input.ndim == 2:
        return input
    if input.ndim == 1:
        return input.reshape(1, -1)
    axes = (0,) + tuple(range(2, input.ndim)) + (1,)
    return input.permute(axes).reshape(-1, input.shape[1])   # (N, C, d...) -> (N*d..., C)


def _element_shape(input):
    """The shape of one loss per prediction: input's shape without the class axis."""
    return () if input.ndim == 1 else (input.shape[0],) + tuple(input.shape[2:])


def _index_target(input, target, weight, ignore_index, fn):
    """Check integer class targets. Returns (t, keep, row_weight, denom): the flat targets (an
    ignored one replaced by class 0), the mask of the kept ones (None: all kept), the weight
    of each row (weight[t], 0 where ignored) and their sum, the divisor of 'mean'."""
    t = _array_on(target, input, fn, "target")
    if t.dtype.kind not in "iu":
        raise TypeError(f"{fn}: target must hold integer class indices (or, for cross_entropy, "
                        f"class probabilities shaped like the input {input.shape}); got dtype "
                        f"{t.dtype} and shape {tuple(t.shape)}")
    if tuple(t.shape) != _element_shape(input):
        raise ValueError(f"{fn}: input of shape {input.shape} needs a target of shape "
                         f"{_element_shape(input)}, got {tuple(t.shape)}")
    xp, t = backend.xp_of(t), t.reshape(-1)
    classes = input.shape[-1] if input.ndim == 1 else input.shape[1]
    lo, hi = (int(t.min()), int(t.max())) if t.size else (0, -1)
    if t.size and 0 <= lo and hi < classes and not lo <= ignore_index <= hi:   # none ignored
        if weight is None:
            return t, None, xp.ones(len(t), dtype=input.dtype), len(t)
        return t, None, weight[t], weight[t].sum()
    keep = t != ignore_index
    bad = keep & ((t < 0) | (t >= classes))
    if bad.any():
        raise IndexError(f"{fn}: target {int(t[bad][0])} is out of bounds for {classes} classes "
                         f"(valid: 0..{classes - 1}, or ignore_index={ignore_index})")
    t = t * keep
    row_weight = (weight[t] if weight is not None else 1) * keep.astype(input.dtype)
    return t, keep, row_weight, row_weight.sum()


# ---- cross-entropy ------------------------------------------------------------------------------
class WeightedCrossEntropy(Function):
    """loss_m = -sum_c q[m, c] log softmax(x_m)_c for logits x (M, C), with target weights

        q[m] = a_m onehot(t_m) + spread[m]
        a_m        the weight of the class index t_m: (1 - eps) weight[t_m], 0 if ignored
        spread     None, or (M, C): label smoothing's eps / C weight, or probability targets

    (cross_entropy builds them). log softmax uses log-sum-exp (max-shifted): no overflow.
    reduction 'mean' divides the sum by `denom`, 'sum' takes the sum, 'none' keeps every loss_m.
    VJP: dx_m = (softmax(x_m) sum_c q[m, c] - q[m]) * dout_m (/ denom for 'mean'): the softmax
    minus the target (sum_c q[m, c] = 1 without class weights).
    """

    @staticmethod
    def forward(ctx, logits, target, a, spread, reduction, denom):
        xp = ctx.xp
        shifted = logits - logits.max(axis=1, keepdims=True)
        logp = shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))
        rows = xp.arange(len(logp))
        # an ignored row (a = 0) adds 0, even where its stand-in class has a logit of -inf
        losses = xp.where(a != 0, -a * logp[rows, target], 0)
        if spread is not None:
            losses = losses - (spread * logp).sum(axis=1)
        ctx.save_for_backward(logp, rows, target, a, spread)
        ctx.reduction, ctx.denom = reduction, denom if reduction == "mean" else 1
        return losses if reduction == "none" else losses.sum() / ctx.denom

    @staticmethod
    def backward(ctx, dout):
        logp, rows, target, a, spread = ctx.saved
        total = a if spread is None else a + spread.sum(axis=1)        # sum_c q[m, c]
        dx = ctx.xp.exp(logp) * total[:, None]                         # softmax * sum q
        dx[rows, target] -= a                                          # minus the one-hot part
        if spread is not None:
            dx -= spread
        return dx * (dout[:, None] if ctx.reduction == "none" else dout / ctx.denom)


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
                  reduction="mean", label_smoothing=0.0):
    """Cross-entropy of logits `input` (N, C), (C,) or (N, C, d1, ...) against `target`.

    target: integer class indices shaped like input without the class axis, or class
    probabilities shaped like input (float). As torch.nn.functional.cross_entropy:
      weight (C,): loss of a prediction with target t is scaled by weight[t]; 'mean' divides
        by the sum of weight[t] over the non-ignored targets (not by their number);
      ignore_index: targets with this value contribute 0 and do not count in the mean;
      label_smoothing eps: the target becomes (1 - eps) one-hot + eps / C uniform; with
        weights the uniform part is weighted per class, and 'mean' keeps the divisor above.
    With probability targets, 'mean' divides by the number of predictions (weights or not).
    """
    _check_reduction("cross_entropy", reduction, size_average, reduce)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing}")
    if _is_plain(input, target, weight, ignore_index, reduction, label_smoothing):
        labels = target if isinstance(target, Tensor) else Tensor(target, device=input.device)
        return kernels.pick(F.CrossEntropy).apply(input, labels)
    logits = _rows(input, "cross_entropy")
    xp, (M, C), eps = backend.xp_of(logits.data), logits.shape, label_smoothing
    w = _class_weight(weight, C, input, "cross_entropy")
    t = target.data if isinstance(target, Tensor) else target
    if getattr(t, "dtype", np.asarray(t).dtype).kind == "f":      # class probabilities
        probs = _tensor_like(target, input, "cross_entropy", "target").data
        if probs.shape != input.shape:
            raise ValueError(f"cross_entropy: probability targets must have the input's shape "
                             f"{input.shape}, got {probs.shape}")
        if input.ndim > 2:
            probs = xp.moveaxis(probs, 1, -1)             # (N, C, d...) -> (N, d..., C)
        spread = probs.reshape(M, C) * (1 - eps) + eps / C
        spread = spread * w if w is not None else spread
        t, a, denom = xp.zeros(M, dtype=np.int64), xp.zeros(M, dtype=input.dtype), M
    else:
        t, keep, row_weight, denom = _index_target(input, target, w, ignore_index,
                                                   "cross_entropy")
        a, spread = (1 - eps) * row_weight if eps else row_weight, None
        if eps:
            uniform = (eps / C) * (w if w is not None else xp.ones(C, dtype=input.dtype))
            mask = keep[:, None] if keep is not None else xp.ones((M, 1), dtype=bool)
            spread = uniform * mask                       # (M, C): no smoothing where ignored
    out = WeightedCrossEntropy.apply(logits, target=t, a=a, spread=spread, reduction=reduction,
                                     denom=denom)
    shape = _element_shape(input)
    return out.reshape(shape) if reduction == "none" and out.shape != shape else out


def _is_plain(input, target, weight, ignore_index, reduction, label_smoothing):
    """The textbook case: the mean over N rows of (N, C) logits, valid class indices, nothing
    weighted, ignored or smoothed (then lesson 02's op computes exactly this loss)."""
    t = target.data if isinstance(target, Tensor) else target
    if not (input.ndim == 2 and weight is None and reduction == "mean" and not label_smoothing
            and backend.is_array(t) and t.dtype.kind in "iu" and t.shape == (input.shape[0],)
            and t.size and input.dtype.kind == "f"):
        return False
    return bool(((t >= 0) & (t < input.shape[1])).all()) and not bool((t == ignore_index).any())


# ---- negative log-likelihood --------------------------------------------------------------------
class NLL(Function):
    """loss_m = -w_m logp[m, t_m]: pick the log-probability of the target class, weighted.

    w_m is the class weight of t_m (0 for an ignored target). VJP: dlogp[m, t_m] = -w_m dout_m
    / denom, zero elsewhere.
    """

    @staticmethod
    def forward(ctx, logp, target, row_weight, reduction, denom):
        rows = ctx.xp.arange(len(target))
        ctx.save_for_backward(target, row_weight)
        ctx.shape, ctx.reduction = logp.shape, reduction
        ctx.denom = denom if reduction == "mean" else 1
        losses = -row_weight * logp[rows, target]
        return losses if reduction == "none" else losses.sum() / ctx.denom

    @staticmethod
    def backward(ctx, dout):
        target, row_weight = ctx.saved
        scale = dout if ctx.reduction == "none" else dout / ctx.denom
        dlogp = ctx.xp.zeros(ctx.shape, dtype=row_weight.dtype)
        dlogp[ctx.xp.arange(len(target)), target] = -row_weight * scale
        return dlogp


def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
             reduction="mean"):
    """Negative log-likelihood of log-probabilities `input` (N, C), (C,) or (N, C, d1, ...)
    at integer targets; weight, ignore_index and 'mean' as in cross_entropy."""
    _check_reduction("nll_loss", reduction, size_average, reduce)
    logp = _rows(input, "nll_loss")
    w = _class_weight(weight, logp.shape[1], input, "nll_loss")
    t, _, row_weight, denom = _index_target(input, target, w, ignore_index, "nll_loss")
    out = NLL.apply(logp, target=t, row_weight=row_weight, reduction=reduction, denom=denom)
    shape = _element_shape(input)
    return out.reshape(shape) if reduction == "none" and out.shape != shape else out


# ---- regression losses ---------------------------------------------------------------------------
def _same_shape(fn, input, target):
    if input.shape != target.shape:
        raise ValueError(f"{fn}: input shape {input.shape} and target shape {target.shape} "
                         "differ; broadcasting them (PyTorch only warns) would silently "
                         "average the wrong pairs, so reshape one of them")


def _reduce(fn, losses, reduction, weight, input):
    """Apply an elementwise weight and the reduction; a weighted mean divides by sum(weight)."""
    if weight is not None:
        weight = _tensor_like(weight, input, fn, "weight")
        if weight.shape != input.shape:
            raise ValueError(f"{fn}: weight must have the input's shape {input.shape}, got "
                             f"{weight.shape}")
        losses = losses * weight
    if reduction == "none":
        return losses
    if reduction == "sum":
        return losses.sum()
    return losses.sum() / weight.sum() if weight is not None else losses.mean()


def mse_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    """(input - target)^2 per element, reduced; shapes must match (no silent broadcasting)."""
    _check_reduction("mse_loss", reduction, size_average, reduce)
    target = _tensor_like(target, input, "mse_loss", "target")
    _same_shape("mse_loss", input, target)
    diff = input - target
    return _reduce("mse_loss", diff * diff, reduction, weight, input)


class AbsoluteError(Function):
    """y = |x - t|.   VJP: dx = dout sign(x - t), dt = -dx   (sign(0) = 0, as PyTorch)."""

    @staticmethod
    def forward(ctx, x, t):
        diff = x - t
        ctx.save_for_backward(diff)
        return ctx.xp.abs(diff)

    @staticmethod
    def backward(ctx, dout):
        (diff,) = ctx.saved
        dx = dout * ctx.xp.sign(diff)
        return dx, -dx


def l1_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    """|input - target| per element, reduced; shapes must match (no silent broadcasting)."""
    _check_reduction("l1_loss", reduction, size_average, reduce)
    target = _tensor_like(target, input, "l1_loss", "target")
    _same_shape("l1_loss", input, target)
    return _reduce("l1_loss", AbsoluteError.apply(input, target), reduction, weight, input)


# ---- binary cross-entropy on logits --------------------------------------------------------------
class BCEWithLogits(Function):
    """loss = (1 - t) x + l * softplus(-x),  l = 1 + (pos_weight - 1) t  (l = 1 without it),

    which is -[pos_weight t log sigmoid(x) + (1 - t) log(1 - sigmoid(x))] written without ever
    forming sigmoid(x): softplus(-x) = -log sigmoid(x) = log(1 + e^{-|x|}) + max(-x, 0) cannot
    overflow. VJP: dx = dout (l sigmoid(x) - l + 1 - t)  (= sigmoid(x) - t without pos_weight),
    dt = dout ((pos_weight - 1) softplus(-x) - x),  dpos_weight = dout t softplus(-x).
    """

    @staticmethod
    def forward(ctx, x, t, pos_weight=None):
        xp = ctx.xp
        softplus = xp.log1p(xp.exp(-xp.abs(x))) + xp.maximum(-x, 0)
        lw = 1 if pos_weight is None else 1 + (pos_weight - 1) * t
        ctx.save_for_backward(x, t, softplus, pos_weight)
        ctx.has_pos_weight = pos_weight is not None
        return (1 - t) * x + lw * softplus

    @staticmethod
    def backward(ctx, dout):
        x, t, softplus, pos_weight = ctx.saved
        sigmoid = ctx.xp.exp(-softplus)
        if not ctx.has_pos_weight:
            return dout * (sigmoid - t), -dout * x
        lw = 1 + (pos_weight - 1) * t
        return (dout * (lw * sigmoid - lw + 1 - t), dout * ((pos_weight - 1) * softplus - x),
                dout * t * softplus)


def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None, reduce=None,
                                     reduction="mean", pos_weight=None):
    """Binary cross-entropy of logits against targets in [0, 1] of the same shape.

    weight scales each element's loss (broadcast); pos_weight (broadcast along the last axis,
    one per class) scales the positive term. 'mean' is the plain mean over elements.
    """
    _check_reduction("binary_cross_entropy_with_logits", reduction, size_average, reduce)
    fn = "binary_cross_entropy_with_logits"
    target = _tensor_like(target, input, fn, "target")
    if target.shape != input.shape:
        raise ValueError(f"{fn}: target size {target.shape} must be the same as input size "
                         f"{input.shape}")
    args = (input, target)
    if pos_weight is not None:
        args += (_tensor_like(pos_weight, input, fn, "pos_weight"),)
    losses = BCEWithLogits.apply(*args)
    if weight is not None:
        losses = losses * _tensor_like(weight, input, fn, "weight")
    return _reduce(fn, losses, reduction, None, input)


# ---- modules -------------------------------------------------------------------------------------
def _buffer(value):
    """A class weight as a Buffer (in state_dict, as PyTorch registers it), or None; a Tensor
    keeps its dtype, an array follows minigrad's rule (floats become float32)."""
    if isinstance(value, Tensor):
        return Buffer(value.data, dtype=value.dtype)
    return None if value is None else Buffer(value)


class CrossEntropyLoss(Module):
    def __init__(self, weight=None, size_average=None, ignore_index=-100, reduce=None,
                 reduction="mean", label_smoothing=0.0):
        _check_reduction("CrossEntropyLoss", reduction, size_average, reduce)
        self.weight, self.ignore_index = _buffer(weight), ignore_index
        self.reduction, self.label_smoothing = reduction, label_smoothing

    def forward(self, input, target):
        return cross_entropy(input, target, self.weight, ignore_index=self.ignore_index,
                             reduction=self.reduction, label_smoothing=self.label_smoothing)


class NLLLoss(Module):
    def __init__(self, weight=None, size_average=None, ignore_index=-100, reduce=None,
                 reduction="mean"):
        _check_reduction("NLLLoss", reduction, size_average, reduce)
        self.weight, self.ignore_index, self.reduction = _buffer(weight), ignore_index, reduction

    def forward(self, input, target):
        return nll_loss(input, target, self.weight, ignore_index=self.ignore_index,
                        reduction=self.reduction)


class MSELoss(Module):
    def __init__(self, size_average=None, reduce=None, reduction="mean"):
        _check_reduction("MSELoss", reduction, size_average, reduce)
        self.reduction = reduction

    def forward(self, input, target):
        return mse_loss(input, target, reduction=self.reduction)


class L1Loss(Module):
    def __init__(self, size_average=None, reduce=None, reduction="mean"):
        _check_reduction("L1Loss", reduction, size_average, reduce)
        self.reduction = reduction

    def forward(self, input, target):
        return l1_loss(input, target, reduction=self.reduction)


class BCEWithLogitsLoss(Module):
    def __init__(self, weight=None, size_average=None, reduce=None, reduction="mean",
                 pos_weight=None):
        _check_reduction("BCEWithLogitsLoss", reduction, size_average, reduce)
        self.weight, self.pos_weight = _buffer(weight), _buffer(pos_weight)
        self.reduction = reduction

    def forward(self, input, target):
        return binary_cross_entropy_with_logits(input, target, self.weight,
                                                reduction=self.reduction,
                                                pos_weight=self.pos_weight)
