"""Functional forms (import as F): thin wrappers over ops.py, composites, and the fused ops.

The fused ops are Linear, Conv2d (im2col: a convolution as one matrix product, lesson 03),
BatchNorm (its backward is the closed form lesson 06 derives) and CrossEntropy (softmax minus
one-hot, lesson 02); each is written as its lesson writes the math. Faster versions with the
same inputs and outputs live in minigrad/kernels/ and run by default (`kernels.use_fast`).
Everything else here is a composition of primitive ops, so autograd derives its gradient.
"""
import warnings

import numpy as np

from . import kernels, ops
from .tensor import Function, Tensor


def _t(x):
    return x if isinstance(x, Tensor) else Tensor(x)


# ---- primitive ops under their functional names (PyTorch's argument order) -----------------
def add(input, other): return _t(input) + other
def sub(input, other): return _t(input) - other
def mul(input, other): return _t(input) * other
def div(input, other): return _t(input) / other
def neg(input): return -_t(input)
def pow(input, exponent): return _t(input) ** exponent
def exp(input): return _t(input).exp()
def log(input): return _t(input).log()
def sqrt(input): return _t(input).sqrt()
def abs(input): return _t(input).abs()
def tanh(input): return _t(input).tanh()
def sigmoid(input): return _t(input).sigmoid()
def relu(input): return _t(input).relu()
def matmul(input, other): return _t(input) @ other
def sum(input, dim=None, keepdim=False, **kw): return _t(input).sum(dim, keepdim, **kw)
def mean(input, dim=None, keepdim=False, **kw): return _t(input).mean(dim, keepdim, **kw)
def max(input, dim=None, keepdim=False, **kw): return _t(input).max(dim, keepdim, **kw)
def min(input, dim=None, keepdim=False, **kw): return _t(input).min(dim, keepdim, **kw)
def amax(input, dim=None, keepdim=False): return _t(input).amax(dim, keepdim)
def amin(input, dim=None, keepdim=False): return _t(input).amin(dim, keepdim)
def argmax(input, dim=None, keepdim=False): return _t(input).argmax(dim, keepdim)
def argmin(input, dim=None, keepdim=False): return _t(input).argmin(dim, keepdim)
def gather(input, dim, index): return _t(input).gather(dim, index)
def reshape(input, shape): return _t(input).reshape(shape)
def flatten(input, start_dim=0, end_dim=-1): return _t(input).flatten(start_dim, end_dim)
def squeeze(input, dim=None): return _t(input).squeeze(dim)
def unsqueeze(input, dim): return _t(input).unsqueeze(dim)
def permute(input, dims): return _t(input).permute(dims)
def transpose(input, dim0, dim1): return _t(input).transpose(dim0, dim1)
def clamp(input, min=None, max=None): return _t(input).clamp(min, max)


def var(input, dim=None, unbiased=None, keepdim=False, *, correction=None, **kw):
    return _t(input).var(dim, unbiased, keepdim, correction=correction, **kw)


def std(input, dim=None, unbiased=None, keepdim=False, *, correction=None, **kw):
    return _t(input).std(dim, unbiased, keepdim, correction=correction, **kw)


def _implicit_dim(name, ndim):
    """PyTorch's legacy dim for F.softmax(x) without dim (0 for 0-, 1- and 3-D input, else 1),
    with PyTorch's deprecation warning: picking the last axis instead would differ silently."""
    dim = 0 if ndim in (0, 1, 3) else 1
    warnings.warn(f"Implicit dimension choice for {name} has been deprecated. Change the call "
                  f"to include dim={dim} as an argument.", stacklevel=3)
    return dim


def softmax(input, dim=None, **kw):
    input = _t(input)
    if dim is None and kw.get("axis") is None:
        dim = _implicit_dim("softmax", input.ndim)
    return input.softmax(dim, **kw)


def log_softmax(input, dim=None, **kw):
    input = _t(input)
    if dim is None and kw.get("axis") is None:
        dim = _implicit_dim("log_softmax", input.ndim)
    return input.log_softmax(dim, **kw)


clip = clamp


def cat(tensors, dim=0, *, axis=None):
    """Join tensors along an existing axis (NumPy's concatenate)."""
    return ops.Concatenate.apply(*[_t(t) for t in tensors], axis=dim if axis is None else axis)


def concatenate(tensors, axis=0):
    """torch.concatenate: cat under NumPy's name."""
    return cat(tensors, axis)


def stack(tensors, dim=0, *, axis=None):
    """Join tensors along a new axis."""
    return ops.Stack.apply(*[_t(t) for t in tensors], axis=dim if axis is None else axis)


_PAD_MODES = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}   # -> numpy.pad's


def _pad_widths(pad, ndim):
    """PyTorch's flat pad (left, right, top, bottom, ...: last axis first) as numpy.pad's
    ((before, after), ...) for every axis; a NumPy-style nested one is taken as it is."""
    if all(isinstance(p, (tuple, list)) for p in pad):
        widths = tuple(tuple(p) for p in pad)
        if len(widths) != ndim:
            raise ValueError(f"pad: {len(widths)} (before, after) pairs for {ndim} axes")
    else:
        if len(pad) % 2 or len(pad) // 2 > ndim:
            raise ValueError(f"pad: padding length must be even and cover at most {ndim} axes "
                             f"(last axis first), got {tuple(pad)}")
        pairs = [tuple(pad[i:i + 2]) for i in range(0, len(pad), 2)][::-1]
        widths = ((0, 0),) * (ndim - len(pairs)) + tuple(pairs)
    if any(n < 0 for p in widths for n in p):
        raise ValueError(f"pad: negative padding (cropping) is not supported, got {tuple(pad)}")
    return widths


def pad(input, pad, mode="constant", value=None):
    """PyTorch's F.pad: `pad` = (left, right) for the last axis, then (top, bottom) for the
    one before, ...; mode 'constant' (with value, default 0), 'reflect', 'replicate' or
    'circular'. NumPy's ((before, after), ...) per axis is accepted too."""
    x = _t(input)
    widths = _pad_widths(pad, x.ndim)
    if mode == "constant":
        return ops.Pad.apply(x, pad_width=widths, value=0.0 if value is None else value)
    if mode not in _PAD_MODES:
        raise ValueError(f"pad: mode must be 'constant', 'reflect', 'replicate' or 'circular', "
                         f"got {mode!r}")
    padded = [n for n, p in zip(x.shape, widths) if any(p)]
    if value is not None:
        raise ValueError(f"pad: value= applies to mode 'constant' only, not {mode!r}")
    if len(pad) // 2 not in (x.ndim - 1, x.ndim - 2) or len(pad) > 6:
        raise ValueError(f"pad: mode {mode!r} pads the last 1-3 axes of a batched input: "
                         f"(N, C, ...) with {x.ndim - 2} or (C, ...) with {x.ndim - 1} pairs, "
                         f"got {len(pad) // 2} for shape {x.shape}")
    if mode == "reflect" and any(b >= n or a >= n for n, (b, a) in zip(
            x.shape, widths) if b or a):
        raise ValueError(f"pad: reflect padding must be smaller than the padded axes "
                         f"{padded}, got {tuple(pad)}")
    for axis, (before, after) in enumerate(widths):
        if before or after:
            # which input index each output position copies, e.g. reflect: 2 1 | 0 1 2 3 | 2
            src = np.pad(np.arange(x.shape[axis]), (before, after), mode=_PAD_MODES[mode])
            x = x[(slice(None),) * axis + (Tensor(src, device=x.device),)]
    return x


def where(condition, input, other):
    """input where condition else other; input or other may be Python numbers."""
    cond, a, b = condition, input, other
    if isinstance(a, Tensor):
        b = a._wrap(b)
    elif isinstance(b, Tensor):
        a = b._wrap(a)
    else:
        a, b = _t(a), _t(b)
    # cond is an input like any other (on a's device); Where.backward gives it None
    cond = cond if isinstance(cond, Tensor) else Tensor(cond, device=a.device)
    return ops.Where.apply(cond, a, b)


# ---- layers ---------------------------------------------------------------------------------
def _check_same_dtype(op, x, weight):
    if x.dtype != weight.dtype:
        raise TypeError(f"{op}: input dtype {x.dtype} differs from weight dtype {weight.dtype}; "
                        "convert one: the input with x.float() / x.double(), or the layer "
                        "with module.to(np.float64)")


class Linear(Function):
    """y = x W^T + b for x (..., in), W (out, in), b (out,).

    VJP (lesson 02 derives it), with rows = every leading index of x:
        dx = dout W,   dW = dout_rows^T x_rows,   db = sum of dout over the rows.
    """

    @staticmethod
    def forward(ctx, x, weight, bias=None):
        ctx.save_for_backward(x, weight)
        out = x @ weight.T
        return out if bias is None else out + bias

    @staticmethod
    def backward(ctx, dout):
        x, weight = ctx.saved
        d_rows = dout.reshape(-1, dout.shape[-1])            # (..., out) -> (rows, out)
        x_rows = x.reshape(-1, x.shape[-1])                  # (..., in) -> (rows, in)
        dx = dout @ weight if ctx.needs_input_grad[0] else None
        dw = d_rows.T @ x_rows if ctx.needs_input_grad[1] else None
        db = d_rows.sum(axis=0) if ctx.needs_input_grad[2] else None
        return dx, dw, db


def linear(input, weight, bias=None):
    """y = x W^T + b, with W of shape (out_features, in_features) as in PyTorch."""
    x = input
    if x.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear: input has {x.shape[-1]} features (shape {x.shape}) but the "
                         f"weight {weight.shape} expects {weight.shape[1]}")
    _check_same_dtype("linear", x, weight)
    return kernels.pick(Linear).apply(x, weight, bias)


def _pair(v, name):
    """An int or a pair of ints as a pair of Python ints (kernel sizes, strides, paddings)."""
    pair = (v, v) if isinstance(v, (int, np.integer)) else tuple(v)
    if len(pair) != 2 or not all(isinstance(n, (int, np.integer)) for n in pair):
        raise ValueError(f"{name} must be an int or a pair of ints, got {v!r}")
    return tuple(int(n) for n in pair)


def _im2col(xp, x, kernel, stride, padding, dilation):
    """Every kh x kw patch of x (N, C, H, W) as one row: (N*Ho*Wo, C*kh*kw), and (Ho, Wo).
    A row lists the patch channel by channel, each channel's kh*kw taps row-major."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    x = xp.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    N, C, H, W = x.shape
    Ho, Wo = (H - dh * (kh - 1) - 1) // sh + 1, (W - dw * (kw - 1) - 1) // sw + 1
    taps = [x[:, :, u * dh:u * dh + sh * Ho:sh, v * dw:v * dw + sw * Wo:sw]
            for u in range(kh) for v in range(kw)]        # kh*kw arrays (N, C, Ho, Wo)
    cols = xp.stack(taps, axis=2)                        # (N, C, kh*kw, Ho, Wo)
    cols = cols.transpose(0, 3, 4, 1, 2)                 # -> (N, Ho, Wo, C, kh*kw)
    return cols.reshape(N * Ho * Wo, C * kh * kw), (Ho, Wo)


def _col2im(xp, dcols, x_shape, kernel, stride, padding, dilation, out_hw):
    """The adjoint of _im2col: add every row's values back onto the pixels its patch read."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw), (Ho, Wo) = kernel, stride, padding, dilation, out_hw
    N, C, H, W = x_shape
    dcols = dcols.reshape(N, Ho, Wo, C, kh * kw).transpose(0, 3, 4, 1, 2)  # (N, C, kh*kw, Ho, Wo)
    dx = xp.zeros((N, C, H + 2 * ph, W + 2 * pw), dtype=dcols.dtype)
    for k in range(kh * kw):
        u, v = divmod(k, kw)
        dx[:, :, u * dh:u * dh + sh * Ho:sh, v * dw:v * dw + sw * Wo:sw] += dcols[:, :, k]
    return dx[:, :, ph:ph + H, pw:pw + W]                # overlapping patches added up


class Unfold(Function):
    """PyTorch's unfold (im2col): every patch of x (N, C, H, W) as a column of
    out (N, C*kh*kw, L), L = Ho*Wo patches.   VJP: dx = col2im(dout), overlaps added."""

    @staticmethod
    def forward(ctx, x, kernel_size, dilation, padding, stride):
        ctx.geometry = (x.shape, kernel_size, stride, padding, dilation)
        cols, ctx.out_hw = _im2col(ctx.xp, x, kernel_size, stride, padding, dilation)
        N, L = x.shape[0], ctx.out_hw[0] * ctx.out_hw[1]
        return cols.reshape(N, L, -1).transpose(0, 2, 1)  # (N*L, C*kh*kw) -> (N, C*kh*kw, L)

    @staticmethod
    def backward(ctx, dout):
        x_shape, kernel, stride, padding, dilation = ctx.geometry
        dcols = dout.transpose(0, 2, 1).reshape(-1, dout.shape[1])   # -> (N*L, C*kh*kw)
        return _col2im(ctx.xp, dcols, x_shape, kernel, stride, padding, dilation, ctx.out_hw)


def unfold(input, kernel_size, dilation=1, padding=0, stride=1):
    """PyTorch's F.unfold: (N, C, H, W) -> (N, C*kh*kw, L), the patches conv2d multiplies."""
    x = input
    if x.ndim != 4:
        raise ValueError(f"unfold expects a 4-D (N, C, H, W) input, got shape {x.shape}")
    k, d, p, s = (_pair(v, n) for v, n in ((kernel_size, "kernel_size"), (dilation, "dilation"),
                                           (padding, "padding"), (stride, "stride")))
    _check_conv_geometry("unfold", x.shape, k, d, p, s)
    return Unfold.apply(x, kernel_size=k, dilation=d, padding=p, stride=s)


class Conv2d(Function):
    """2-D cross-correlation (what deep learning calls convolution) via im2col (lesson 03).

        out[n, o, i, j] = sum_{c,u,v} x_pad[n, c, i*s + u*d, j*s + v*d] * w[o, c, u, v] + b[o]
                        = (cols @ W^T)[row (n, i, j), o]      with W = w as (O, C*kh*kw)
    VJP, with dout_rows = dout as (N*Ho*Wo, O):
        dW = dout_rows^T @ cols,   db = sum of dout_rows over the rows,
        dx = col2im(dout_rows @ W): each patch's gradient added back onto its pixels.
    groups = G splits the channels into G independent convolutions (C/G inputs, O/G outputs
    each): the same products, batched over the groups. G = 1 is the ordinary convolution.
    """

    @staticmethod
    def forward(ctx, x, w, b=None, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1):
        N, O, G = x.shape[0], w.shape[0], groups
        cols, (Ho, Wo) = _im2col(ctx.xp, x, w.shape[2:], stride, padding, dilation)
        cols = cols.reshape(len(cols), G, -1).transpose(1, 0, 2)   # -> (G, N*Ho*Wo, C/G*kh*kw)
        w_mat = w.reshape(G, O // G, -1)                  # (O, C/G, kh, kw) -> (G, O/G, C/G*kh*kw)
        out = cols @ w_mat.transpose(0, 2, 1)             # (G, N*Ho*Wo, O/G)
        out = out.transpose(1, 0, 2).reshape(-1, O)       # -> (N*Ho*Wo, O)
        if b is not None:
            out = out + b
        ctx.save_for_backward(cols, w_mat)
        ctx.geometry = (x.shape, w.shape, stride, padding, dilation, (Ho, Wo))
        return out.reshape(N, Ho, Wo, O).transpose(0, 3, 1, 2)   # -> (N, O, Ho, Wo)

    @staticmethod
    def backward(ctx, dout):
        cols, w_mat = ctx.saved
        x_shape, w_shape, stride, padding, dilation, out_hw = ctx.geometry
        G, O = w_mat.shape[0], w_shape[0]
        d_rows = dout.transpose(0, 2, 3, 1).reshape(-1, O)             # -> (N*Ho*Wo, O)
        d_g = d_rows.reshape(-1, G, O // G).transpose(1, 0, 2)         # -> (G, N*Ho*Wo, O/G)
        dx = dw = db = None
        if ctx.needs_input_grad[0]:
            dcols = (d_g @ w_mat).transpose(1, 0, 2).reshape(len(d_rows), -1)  # (N*Ho*Wo, C*kh*kw)
            dx = _col2im(ctx.xp, dcols, x_shape, w_shape[2:], stride, padding, dilation, out_hw)
        if ctx.needs_input_grad[1]:
            dw = (d_g.transpose(0, 2, 1) @ cols).reshape(w_shape)     # (G, O/G, ...) -> w's
        if ctx.needs_input_grad[2]:
            db = d_rows.sum(axis=0)
        return dx, dw, db


def _check_conv_geometry(op, x_shape, kernel, dilation, padding, stride):
    if any(s < 1 for s in stride + dilation) or any(p < 0 for p in padding):
        raise ValueError(f"{op} needs stride >= 1, dilation >= 1 and padding >= 0, got "
                         f"stride={stride}, dilation={dilation}, padding={padding}")
    span = [d * (k - 1) + 1 for d, k in zip(dilation, kernel)]
    padded = [n + 2 * p for n, p in zip(x_shape[2:], padding)]
    if span[0] > padded[0] or span[1] > padded[1]:
        raise ValueError(f"{op}: the kernel {kernel[0]}x{kernel[1]} (dilation {dilation}) spans "
                         f"{span[0]}x{span[1]}, more than the padded input "
                         f"{padded[0]}x{padded[1]} (input {x_shape})")


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution of an (N, C, H, W) input with a (O, C/groups, kh, kw) weight, as in
    PyTorch; padding may also be 'valid' (0) or 'same' (output as large as the input)."""
    x = input
    if x.ndim != 4:
        raise ValueError(f"conv2d expects a 4-D (N, C, H, W) input, got shape {x.shape}")
    if weight.ndim != 4:
        raise ValueError(f"conv2d expects a 4-D (O, C, kh, kw) weight, got shape {weight.shape}")
    stride, dilation = _pair(stride, "stride"), _pair(dilation, "dilation")
    if isinstance(padding, str):
        x, padding = _string_padding(x, padding, weight.shape[2:], stride, dilation)
    padding = _pair(padding, "padding")
    if not isinstance(groups, int) or groups < 1 or x.shape[1] % groups or weight.shape[0] % groups:
        raise ValueError(f"conv2d: groups={groups} must divide the input's {x.shape[1]} and the "
                         f"output's {weight.shape[0]} channels")
    if x.shape[1] != weight.shape[1] * groups:
        raise ValueError(f"conv2d: input has {x.shape[1]} channels (shape {x.shape}) but the "
                         f"weight {weight.shape} with groups={groups} expects "
                         f"{weight.shape[1] * groups}")
    _check_conv_geometry("conv2d", x.shape, weight.shape[2:], dilation, padding, stride)
    _check_same_dtype("conv2d", x, weight)
    plain = dilation == (1, 1) and groups == 1                  # what the fast kernel covers
    op = kernels.pick(Conv2d) if plain else Conv2d
    options = dict(stride=stride, padding=padding)
    if not plain:
        options.update(dilation=dilation, groups=groups)
    return op.apply(x, weight, bias, **options)


def _string_padding(x, padding, kernel, stride, dilation):
    """padding='valid' is 0; 'same' pads so that the output has the input's size (stride 1),
    putting the odd pixel of an even kernel on the right and bottom, as PyTorch does."""
    if padding == "valid":
        return x, 0
    if padding != "same":
        raise ValueError(f"conv2d: padding must be an int, a pair, 'valid' or 'same', got "
                         f"{padding!r}")
    if stride != (1, 1):
        raise ValueError("conv2d: padding='same' is not supported for strided convolutions")
    total = [d * (k - 1) for d, k in zip(dilation, kernel)]
    if total[0] % 2 == 0 and total[1] % 2 == 0:
        return x, (total[0] // 2, total[1] // 2)
    (th, tw) = total
    return pad(x, (tw // 2, tw - tw // 2, th // 2, th - th // 2)), 0


# ---- BatchNorm -------------------------------------------------------------------------------
def update_running_stats(running_mean, running_var, mean, var, m, momentum):
    """PyTorch's convention, in place: running = (1 - momentum) * running + momentum * batch,
    where the running variance takes the *unbiased* batch variance var * m / (m - 1)."""
    running_mean *= 1 - momentum
    running_mean += momentum * mean
    running_var *= 1 - momentum
    running_var += momentum * var * (m / (m - 1))


class BatchNorm(Function):
    """Batch normalisation over every axis but the channel axis 1 (Ioffe & Szegedy 2015, Alg. 1).

    With m values per channel (m = N, N*L or N*H*W), in training:
        mu = (1/m) sum x,   var = (1/m) sum (x - mu)^2     (biased: divides by m)
        xhat = (x - mu) / sqrt(var + eps),   y = gamma * xhat + beta
    VJP, the closed form derived in lesson 06:
        dbeta = sum dout,   dgamma = sum dout * xhat,
        dx = gamma * invstd / m * (m * dout - dbeta - xhat * dgamma),   invstd = 1/sqrt(var + eps)
    In eval mode mu and var are the running statistics, constants: dx = dout * gamma * invstd.
    """

    @staticmethod
    def forward(ctx, x, weight=None, bias=None, *, running_mean=None, running_var=None,
                training=True, momentum=0.1, eps=1e-5):
        axes = (0,) + tuple(range(2, x.ndim))           # every axis but the channel axis
        c = (1, -1) + (1,) * (x.ndim - 2)               # (C,) -> (1, C, 1, ...): broadcasts
        m = x.size // x.shape[1]
        if training:
            mu = x.mean(axis=axes)
            mu = mu + (x - mu.reshape(c)).mean(axis=axes)   # removes the mean's float32 rounding
            xmu = x - mu.reshape(c)
            var = (xmu * xmu).mean(axis=axes)           # two passes: no E[x^2] - E[x]^2
            if running_mean is not None:
                update_running_stats(running_mean, running_var, mu, var, m, momentum)
        else:
            xmu = x - running_mean.reshape(c)
            var = running_var
        invstd = 1 / ctx.xp.sqrt(var + eps)
        xhat = xmu * invstd.reshape(c)
        y = xhat if weight is None else weight.reshape(c) * xhat
        y = y if bias is None else y + bias.reshape(c)
        ctx.save_for_backward(xhat, invstd, weight)
        ctx.axes, ctx.c, ctx.m, ctx.training = axes, c, m, training
        return y

    @staticmethod
    def backward(ctx, dout):
        xhat, invstd, weight = ctx.saved
        axes, c, m = ctx.axes, ctx.c, ctx.m
        dbeta = dout.sum(axis=axes)
        dgamma = (dout * xhat).sum(axis=axes)
        gamma = 1 if weight is None else weight.reshape(c)
        if ctx.training:
            dx = gamma * invstd.reshape(c) / m * (m * dout - dbeta.reshape(c)
                                                  - xhat * dgamma.reshape(c))
        else:
            dx = dout * gamma * invstd.reshape(c)
        return (dx, dgamma if ctx.needs_input_grad[1] else None,
                dbeta if ctx.needs_input_grad[2] else None)


def _check_batch_norm_input(x, weight, bias, running_mean, running_var, training):
    """Every argument checked before anything (a running statistic) is changed."""
    if x.ndim < 2:
        raise ValueError(f"batch_norm expects input of shape (N, C, ...), got {x.shape}")
    C = x.shape[1]
    for name, t in (("weight", weight), ("bias", bias), ("running_mean", running_mean),
                    ("running_var", running_var)):
        if t is not None and tuple(t.shape) != (C,):
            raise ValueError(f"batch_norm: input {x.shape} has {C} channels but {name} has "
                             f"shape {tuple(t.shape)}; it must have {C} elements (one per "
                             "channel, the channel axis is axis 1)")
    if (running_mean is None) != (running_var is None):
        raise ValueError("batch_norm: running_mean and running_var must either both be None or "
                         "neither be None")
    if not training and running_mean is None:
        raise RuntimeError("running_mean must be defined in evaluation mode: pass the running "
                           "statistics, or training=True to normalise with batch statistics")
    if training and 0 < x.numel() <= C:             # at most one value per channel
        raise ValueError(
            f"Expected more than 1 value per channel when training, got input size {x.shape}. "
            "With one value per channel the batch variance is 0 and every output is beta, so "
            "there is nothing to learn from: use a batch of at least 2 (DataLoader(..., "
            "drop_last=True) drops a last batch of 1), or call model.eval() for inference.")


def _array(t):
    return t.data if isinstance(t, Tensor) else t


def batch_norm(input, running_mean=None, running_var=None, weight=None, bias=None,
               training=False, momentum=0.1, eps=1e-5):
    """PyTorch's F.batch_norm: the fused op (closed-form backward).

    running_mean / running_var (Tensors or arrays of shape (C,)) are updated in place when
    training; in eval mode (training=False) they are used for normalising. Passing None for
    both means batch statistics are always used.
    """
    x = input
    _check_batch_norm_input(x, weight, bias, running_mean, running_var, training)
    if weight is not None:
        _check_same_dtype("batch_norm", x, weight)
    if x.numel() == 0:      # an empty batch: an empty output, zero gradients, as PyTorch
        return affine(x.clone(), weight, bias, (1, -1) + (1,) * (x.ndim - 2))
    rm, rv = _array(running_mean), _array(running_var)
    return kernels.pick(BatchNorm).apply(x, weight, bias, running_mean=rm, running_var=rv,
                                         training=training, momentum=momentum, eps=eps)


def normalize(x, axes, eps):
    """(x - mean) / sqrt(var + eps) over `axes` from primitive ops (biased variance, two
    passes); returns it with the mean and variance. BatchNorm, LayerNorm and GroupNorm share it."""
    mu = x.mean(axis=axes, keepdims=True)
    xmu = x - mu
    var = (xmu * xmu).mean(axis=axes, keepdims=True)
    return xmu / (var + eps).sqrt(), mu, var


def affine(y, weight, bias, shape=None):
    """y * weight + bias, either optional; `shape` reshapes both to broadcast (per channel)."""
    if weight is not None:
        y = y * (weight if shape is None else weight.reshape(shape))
    if bias is not None:
        y = y + (bias if shape is None else bias.reshape(shape))
    return y


def batch_norm_composite(x, running_mean=None, running_var=None, weight=None, bias=None,
                         training=False, momentum=0.1, eps=1e-5):
    """The same function as `batch_norm`, written with primitive ops only.

    Autograd derives its backward through mean, subtract, square, sqrt and divide; tests and
    lesson 06 check that it agrees with the fused op's closed form.
    """
    _check_batch_norm_input(x, weight, bias, running_mean, running_var, training)
    rm, rv = _array(running_mean), _array(running_var)
    if x.numel() == 0:
        return affine(x.clone(), weight, bias, (1, -1) + (1,) * (x.ndim - 2))
    axes = (0,) + tuple(range(2, x.ndim))
    c = (1, x.shape[1]) + (1,) * (x.ndim - 2)           # per-channel vectors broadcast over axes
    if training:
        xhat, mu, var = normalize(x, axes, eps)
        if rm is not None:
            update_running_stats(rm, rv, mu.data.reshape(-1), var.data.reshape(-1),
                                 x.numel() // x.shape[1], momentum)
    else:
        mu, var = Tensor._make(rm.reshape(c), False, None), Tensor._make(rv.reshape(c), False, None)
        xhat = (x - mu) / (var + eps).sqrt()
    return affine(xhat, weight, bias, c)


# ---- losses ----------------------------------------------------------------------------------
class CrossEntropy(Function):
    """loss = -(1/N) sum_n log softmax(x_n)[t_n], for logits x (N, C) and class indices t (N,)
    (F.cross_entropy runs it for the plain mean; losses.py has PyTorch's other options).

    log softmax uses log-sum-exp: log sum_j e^{x_j} = max + log sum_j e^{x_j - max}, so large
    logits do not overflow.   VJP (lesson 02): dx = dout * (softmax(x) - onehot(t)) / N.
    """

    @staticmethod
    def forward(ctx, logits, target):
        xp = ctx.xp
        shifted = logits - logits.max(axis=1, keepdims=True)
        logp = shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))
        rows = xp.arange(len(target))
        ctx.save_for_backward(logp, target, rows)
        return -logp[rows, target].mean()

    @staticmethod
    def backward(ctx, dout):
        logp, target, rows = ctx.saved
        onehot = ctx.xp.zeros_like(logp)
        onehot[rows, target] = 1
        return dout * (ctx.xp.exp(logp) - onehot) / len(rows), None


# The other losses (and cross_entropy with PyTorch's options), and the functional forms of
# layers.py. nn is imported first: those files subclass nn.Module, and nn re-exports them.
from . import nn as _nn  # noqa: E402,F401
from .layers import (adaptive_avg_pool2d, avg_pool2d, dropout, embedding, gelu,  # noqa: E402,F401
                     leaky_relu, max_pool2d)
from .losses import (binary_cross_entropy_with_logits, cross_entropy, l1_loss,  # noqa: E402,F401
                     mse_loss, nll_loss)
