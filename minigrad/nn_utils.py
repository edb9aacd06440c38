"""BatchNorm tools with PyTorch's names and semantics: folding into the layer before, recalibration.

fuse_conv_bn_eval / fuse_linear_bn_eval (torch.nn.utils.fusion) fold an eval-mode BatchNorm into
the Conv2d or Linear before it (lesson 07 derives W' = W s, b' = (b - mean) s + beta);
update_bn (torch.optim.swa_utils.update_bn) recomputes the running statistics over a loader.
"""
import copy

from . import backend
from .functional import _array
from .nn import Parameter, _BatchNorm
from .tensor import Tensor, no_grad

__all__ = ["fuse_conv_bn_eval", "fuse_conv_bn_weights", "fuse_linear_bn_eval",
           "fuse_linear_bn_weights", "update_bn"]


def _bn_scale(xp, bn_rm, bn_rv, bn_eps, bn_w):
    """s = gamma / sqrt(running_var + eps), one factor per channel (gamma = 1 without affine)."""
    s = 1 / xp.sqrt(_array(bn_rv) + bn_eps)
    return s if bn_w is None else s * _array(bn_w)


def fuse_conv_bn_weights(conv_w, conv_b, bn_rm, bn_rv, bn_eps, bn_w, bn_b, transpose=False):
    """(W', b') of the convolution that computes bn(conv(x)) in eval mode, as Parameters.

        s = bn_w / sqrt(bn_rv + bn_eps)          (bn_w = 1, bn_b = 0 when BN has no affine)
        W'[k] = W[k] * s[k]                      (every weight of output channel k)
        b' = (b - bn_rm) * s + bn_b              (b = 0 when the conv has no bias)
    As in PyTorch, W' keeps conv_w's requires_grad and b' gets conv_b's (False when absent).
    """
    if transpose:
        raise ValueError("fuse_conv_bn_weights: transpose=True is for ConvTranspose layers, "
                         "which minigrad does not have")
    w = _array(conv_w)
    xp = backend.xp_of(w)
    rm = _array(bn_rm)
    s = _bn_scale(xp, rm, bn_rv, bn_eps, bn_w)
    b = xp.zeros_like(rm) if conv_b is None else _array(conv_b)
    shift = 0 if bn_b is None else _array(bn_b)
    fused_w = (w * s.reshape((-1,) + (1,) * (w.ndim - 1))).astype(w.dtype)  # (O,) -> (O, 1, ...)
    fused_b = ((b - rm) * s + shift).astype(w.dtype if conv_b is None else b.dtype)
    return (Parameter(fused_w, requires_grad=_wants_grad(conv_w), dtype=fused_w.dtype),
            Parameter(fused_b, requires_grad=conv_b is not None and _wants_grad(conv_b),
                      dtype=fused_b.dtype))


def fuse_linear_bn_weights(linear_w, linear_b, bn_rm, bn_rv, bn_eps, bn_w, bn_b):
    """(W', b') of the Linear that computes bn(linear(x)) in eval mode, as Parameters.

        s = bn_w / sqrt(bn_rv + bn_eps);   W'[k, :] = W[k, :] * s[k];   b' = (b - bn_rm) * s + bn_b
    A BN with one feature scales every output row by the same s. bn_w and bn_b may be None
    (affine=False); PyTorch's version fails there with a TypeError.
    """
    # a Linear's weight (out, in) is a 1x1 convolution's (O, C): the same scaling per row
    return fuse_conv_bn_weights(linear_w, linear_b, bn_rm, bn_rv, bn_eps, bn_w, bn_b)


def _wants_grad(t):
    return t.requires_grad if isinstance(t, Tensor) else True


def _check_fusable(layer, bn, what):
    if not isinstance(bn, _BatchNorm):
        raise TypeError(f"expected a BatchNorm1d/2d as bn, got {type(bn).__name__}")
    if layer.training or bn.training:
        raise AssertionError(
            f"Fusion only for eval! ({what}.training={layer.training}, "
            f"bn.training={bn.training}); call model.eval() first: the fused layer reproduces "
            "BatchNorm with its running statistics, never with batch statistics")
    if bn.running_mean is None or bn.running_var is None:
        raise AssertionError("bn.running_mean and bn.running_var must not be None: a BatchNorm "
                             "with track_running_stats=False has nothing to fold")


def fuse_conv_bn_eval(conv, bn, transpose=False):
    """A new Conv2d equal to bn(conv(x)) in eval mode; conv and bn are left unchanged.

    Both must be in eval mode (AssertionError otherwise, as in PyTorch). The new layer always
    has a bias: a conv without one still needs the shift beta - mean * s.
    """
    _check_fusable(conv, bn, "conv")
    if bn.num_features != conv.out_channels:
        raise ValueError(f"bn.num_features ({bn.num_features}) must equal conv.out_channels "
                         f"({conv.out_channels}): BatchNorm2d normalises the conv's outputs")
    fused = copy.deepcopy(conv)
    fused.weight, fused.bias = fuse_conv_bn_weights(
        fused.weight, fused.bias, bn.running_mean, bn.running_var, bn.eps, bn.weight, bn.bias,
        transpose)
    return fused


def fuse_linear_bn_eval(linear, bn):
    """A new Linear equal to bn(linear(x)) in eval mode; linear and bn are left unchanged.

    Needs linear.out_features == bn.num_features, or a BN of one feature (PyTorch's rule).
    """
    _check_fusable(linear, bn, "linear")
    if linear.out_features != bn.num_features and bn.num_features != 1:
        raise AssertionError(
            f"To fuse, linear.out_features == bn.num_features or bn.num_features == 1, got "
            f"linear.out_features={linear.out_features} and bn.num_features={bn.num_features}")
    fused = copy.deepcopy(linear)
    fused.weight, fused.bias = fuse_linear_bn_weights(
        fused.weight, fused.bias, bn.running_mean, bn.running_var, bn.eps, bn.weight, bn.bias)
    return fused


def update_bn(loader, model, device=None):
    """Recompute every BatchNorm's running statistics with one pass over `loader`.

    PyTorch's torch.optim.swa_utils.update_bn: reset running_mean = 0, running_var = 1 and
    num_batches_tracked = 0, set momentum=None (the running statistics become the plain average
    of the batch statistics: Algorithm 2 of [BN15]), run the model in train mode under no_grad on
    each batch (a batch that is a tuple or list is run on its first element), then restore each
    BatchNorm's momentum. Afterwards every module is back in the mode it had before: where
    PyTorch sets the whole model to the top module's mode, a BatchNorm frozen in eval mode inside
    a training model stays frozen. A model without BatchNorm is left untouched.

    Batches of equal size weigh equally (drop_last=True keeps a small last batch from counting
    as much as a full one); a batch of one example fails as in training.
    """
    bns = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    if not bns:
        return
    modes = [(m, m.training) for m in model.modules()]
    momenta = [bn.momentum for bn in bns]
    for bn in bns:
        if bn.track_running_stats:
            bn.running_mean.data[...] = 0
            bn.running_var.data[...] = 1
            bn.num_batches_tracked.data[...] = 0
        bn.momentum = None
    model.train()
    try:
        with no_grad():
            for batch in loader:
                x = batch[0] if isinstance(batch, (list, tuple)) else batch
                if device is not None:
                    x = x.to(device)
                model(x)
    finally:
        for bn, momentum in zip(bns, momenta):
            bn.momentum = momentum
        for m, training in modes:
            m.training = training
