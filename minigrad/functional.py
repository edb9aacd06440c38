"""Functional forms (import as F): thin wrappers over ops.py, composites, and the fused ops.

The fused ops are Conv2d (im2col: a convolution as one matrix product), BatchNorm (its backward
is the closed form lesson 06 derives) and CrossEntropy (softmax minus one-hot). Everything else
here is a composition of primitive ops, so autograd derives its gradient.
"""
import functools

import numpy as np

from . import ops
from .tensor import Function, Tensor


def _t(x):
    return x if isinstance(x, Tensor) else Tensor(x)


# ---- primitive ops under their functional names -------------------------------------------
def add(a, b): return _t(a) + b
def sub(a, b): return _t(a) - b
def mul(a, b): return _t(a) * b
def div(a, b): return _t(a) / b
def neg(x): return -_t(x)
def pow(x, exponent): return _t(x) ** exponent
def exp(x): return _t(x).exp()
def log(x): return _t(x).log()
def sqrt(x): return _t(x).sqrt()
def tanh(x): return _t(x).tanh()
def sigmoid(x): return _t(x).sigmoid()
def relu(x): return _t(x).relu()
def matmul(a, b): return _t(a) @ b
def sum(x, axis=None, keepdims=False): return _t(x).sum(axis, keepdims)
def mean(x, axis=None, keepdims=False): return _t(x).mean(axis, keepdims)
def max(x, axis=None, keepdims=False): return _t(x).max(axis, keepdims)
def var(x, axis=None, keepdims=False, correction=1): return _t(x).var(axis, keepdims, correction)
def reshape(x, shape): return _t(x).reshape(shape)
def permute(x, axes): return _t(x).permute(axes)
def transpose(x, dim0=-2, dim1=-1): return _t(x).transpose(dim0, dim1)
def clip(x, min=None, max=None): return _t(x).clip(min, max)
def softmax(x, axis=-1): return _t(x).softmax(axis)
def log_softmax(x, axis=-1): return _t(x).log_softmax(axis)


def pad(x, pad_width, value=0.0):
    """Constant padding, pad_width as numpy.pad's ((before, after), ...) per axis."""
    return ops.Pad.apply(_t(x), pad_width=tuple(tuple(p) for p in pad_width), value=value)


def concatenate(tensors, axis=0):
    return ops.Concatenate.apply(*[_t(t) for t in tensors], axis=axis)


cat = concatenate    # PyTorch's name


def stack(tensors, axis=0):
    return ops.Stack.apply(*[_t(t) for t in tensors], axis=axis)


def where(cond, a, b):
    """a where cond else b; a or b may be Python numbers."""
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
class Linear(Function):
    """y = x W^T + b for x (..., in), W (out, in), b (out,).

    VJP (lesson 02 derives it), with rows = every leading index of x:
        dx = dout W,   dW = dout_rows^T x_rows,   db = sum of dout over the rows.
    """

    @staticmethod
    def forward(ctx, x, weight, bias=None):
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        out = x @ weight.T
        if bias is not None:
            out += bias
        return out

    @staticmethod
    def backward(ctx, dout):
        x, weight = ctx.saved
        d_rows = dout.reshape(-1, dout.shape[-1])            # (..., out) -> (rows, out)
        dx = dout @ weight if ctx.needs_input_grad[0] else None
        dw = d_rows.T @ x.reshape(-1, x.shape[-1]) if ctx.needs_input_grad[1] else None
        if not ctx.has_bias:
            return dx, dw
        return dx, dw, d_rows.sum(axis=0)


def linear(x, weight, bias=None):
    """y = x W^T + b, with W of shape (out_features, in_features) as in PyTorch."""
    if x.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear: input has {x.shape[-1]} features (shape {x.shape}) but the "
                         f"weight {weight.shape} expects {weight.shape[1]}")
    if x.dtype != weight.dtype:
        raise TypeError(f"linear: input dtype {x.dtype} differs from weight dtype "
                        f"{weight.dtype}; convert one (e.g. x.float() or model.to(np.float64))")
    return Linear.apply(x, weight, bias)


def _pair(v, name):
    pair = (v, v) if isinstance(v, int) else tuple(v)
    if len(pair) != 2 or not all(isinstance(n, (int, np.integer)) for n in pair):
        raise ValueError(f"{name} must be an int or a pair of ints, got {v!r}")
    return pair


class Conv2d(Function):
    """2-D cross-correlation (what deep learning calls convolution) via im2col.

    Forward: unfold every kh x kw x C input patch into a row of `cols`, then
        out[n, o, i, j] = sum_{u,v,c} x_pad[n, c, i*s + u, j*s + v] * w[o, c, u, v] + b[o]
                        = (cols @ W^T)[row (n, i, j), o]        with W = w as (O, kh*kw*C)
    VJP (lesson 03 derives it):
        dW = dout_rows^T @ cols,   db = sum of dout over (n, i, j),
        dx: for each kernel tap (u, v), dout_rows @ W[:, u, v, :] is the gradient of the input
        pixels that tap touched; adding them back in place is col2im.
    Internally the arrays are channels-last (N, H, W, C): a patch row is then kh*kw contiguous
    runs of C values, so both the unfold and the adds move whole runs instead of single floats.
    The output is an (N, O, Ho, Wo) view of channels-last memory, which BatchNorm and the next
    convolution read without copying.
    """

    @staticmethod
    def forward(ctx, x, w, b=None, stride=(1, 1), padding=(0, 0)):
        xp = ctx.xp
        N, C, H, W = x.shape
        O, _, kh, kw = w.shape
        (sh, sw), (ph, pw) = stride, padding
        Ho, Wo = (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1
        x = x.transpose(0, 2, 3, 1)                      # (N, C, H, W) -> (N, H, W, C) view
        if ph or pw:
            x = xp.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0)))
        else:
            x = xp.ascontiguousarray(x)
        # A strided view of every patch, no copy yet: (N, Ho, Wo, kh, kw, C).
        sN, sH, sW, sC = x.strides
        windows = xp.lib.stride_tricks.as_strided(
            x, shape=(N, Ho, Wo, kh, kw, C), strides=(sN, sH * sh, sW * sw, sH, sW, sC))
        cols = windows.reshape(N * Ho * Wo, kh * kw * C)     # the one copy: im2col
        w_mat = w.transpose(0, 2, 3, 1).reshape(O, kh * kw * C)  # (O, C, kh, kw) -> (O, kh*kw*C)
        out = cols @ w_mat.T                                 # (N*Ho*Wo, O), channels-last
        if b is not None:
            out += b
        ctx.save_for_backward(cols, w_mat)
        ctx.geometry = (N, C, H, W, Ho, Wo, kh, kw, sh, sw, ph, pw)
        ctx.has_bias = b is not None
        return out.reshape(N, Ho, Wo, O).transpose(0, 3, 1, 2)   # -> (N, O, Ho, Wo) view

    @staticmethod
    def backward(ctx, dout):
        xp = ctx.xp
        cols, w_mat = ctx.saved
        N, C, H, W, Ho, Wo, kh, kw, sh, sw, ph, pw = ctx.geometry
        O = w_mat.shape[0]
        # (N, O, Ho, Wo) -> (N*Ho*Wo, O); a view when dout is channels-last in memory
        d_rows = dout.transpose(0, 2, 3, 1).reshape(N * Ho * Wo, O)
        dw = db = dx = None
        if ctx.needs_input_grad[1]:
            dw = (d_rows.T @ cols).reshape(O, kh, kw, C).transpose(0, 3, 1, 2)  # -> (O,C,kh,kw)
            dw = xp.ascontiguousarray(dw)
        if ctx.has_bias:
            db = d_rows.sum(axis=0)
        if ctx.needs_input_grad[0]:
            dx_pad = xp.zeros((N, H + 2 * ph, W + 2 * pw, C), dtype=dout.dtype)
            w_taps = w_mat.reshape(O, kh, kw, C)
            for u in range(kh):          # a loop over the kh*kw kernel taps, not over pixels
                for v in range(kw):
                    tap = (d_rows @ w_taps[:, u, v, :]).reshape(N, Ho, Wo, C)
                    dx_pad[:, u:u + sh * Ho:sh, v:v + sw * Wo:sw, :] += tap
            dx = dx_pad[:, ph:ph + H, pw:pw + W, :].transpose(0, 3, 1, 2)  # -> (N, C, H, W)
        return (dx, dw, db) if ctx.has_bias else (dx, dw)


def conv2d(x, weight, bias=None, stride=1, padding=0):
    """2-D convolution of an (N, C, H, W) input with a (O, C, kh, kw) weight (PyTorch's layout)."""
    stride, padding = _pair(stride, "stride"), _pair(padding, "padding")
    if x.ndim != 4:
        raise ValueError(f"conv2d expects a 4-D (N, C, H, W) input, got shape {x.shape}")
    if weight.ndim != 4:
        raise ValueError(f"conv2d expects a 4-D (O, C, kh, kw) weight, got shape {weight.shape}")
    if x.shape[1] != weight.shape[1]:
        raise ValueError(f"conv2d: input has {x.shape[1]} channels (shape {x.shape}) but the "
                         f"weight {weight.shape} expects {weight.shape[1]}")
    if min(stride) < 1 or min(padding) < 0:
        raise ValueError(f"conv2d needs stride >= 1 and padding >= 0, got {stride}, {padding}")
    kh, kw = weight.shape[2:]
    if x.shape[2] + 2 * padding[0] < kh or x.shape[3] + 2 * padding[1] < kw:
        raise ValueError(f"conv2d: kernel {kh}x{kw} is larger than the padded input "
                         f"{x.shape[2] + 2 * padding[0]}x{x.shape[3] + 2 * padding[1]}")
    if x.dtype != weight.dtype:
        raise TypeError(f"conv2d: input dtype {x.dtype} differs from weight dtype {weight.dtype}; "
                        "convert one (e.g. x.float() or model.to(np.float64))")
    args = (x, weight) if bias is None else (x, weight, bias)
    return Conv2d.apply(*args, stride=stride, padding=padding)


# ---- BatchNorm -------------------------------------------------------------------------------
def _channels_last(x):
    """(N, C, *spatial) -> (N, *spatial, C), a view."""
    return x.transpose((0,) + tuple(range(2, x.ndim)) + (1,))


def _channel_axis(x):
    """Where BatchNorm should put the channel axis so that viewing x in 3-D needs no copy.

    2 for channels-last memory, which convolution outputs and 2-D (N, C) input have: the view
    is (N, L, C). 1 otherwise: the view is (N, C, L), a copy only if x is not contiguous.
    """
    return 2 if x.ndim == 2 or _channels_last(x).flags.c_contiguous else 1


def _view3(x, cax):
    """(N, C, *spatial) -> (N, C, L) if cax == 1, or (N, L, C) if cax == 2."""
    N, C = x.shape[0], x.shape[1]
    if cax == 1:
        return x.reshape(N, C, -1)
    return _channels_last(x).reshape(N, -1, C)


@functools.lru_cache(maxsize=64)
def _ones(xp, n, dtype):
    """A vector of n ones, made once per (library, length, dtype) and shared.

    The sums below multiply by it; allocating and filling a fresh one every call cost 5-6 us,
    as much as the product itself on a BatchNorm1d batch. Only ever a matmul operand, never
    written to. (Not marked read-only: NumPy's matmul takes 1.3 us longer on such an operand.)
    With CuPy the vector lives on the current GPU, the only one minigrad uses.
    """
    return xp.ones(n, dtype)


def _channel_sum(xp, v, cax):
    """Per-channel sum over a 3-D view, as matrix-vector products with a vector of ones.

    BLAS reads the array once at full memory speed, several times faster than v.sum(axis=...),
    and keeps several partial sums, so float32 rounding stays small: 9e-7 relative error on
    50,176 values of mean 1e4 per channel, against 1e-5 for v.sum(axis=0).
    """
    N, A, B = v.shape
    if cax == 1:        # (N, C, L): sum each row of L values, then the N rows of each channel
        return (v.reshape(N * A, B) @ _ones(xp, B, v.dtype)).reshape(N, A).sum(axis=0)
    return _ones(xp, N * A, v.dtype) @ v.reshape(N * A, B)     # (N, L, C) -> (N*L, C) -> (C,)


def _channel_dot(xp, a, b, cax):
    """sum of a * b per channel over a 3-D view, without the (a * b) temporary."""
    return xp.einsum("ncl,ncl->c" if cax == 1 else "nlc,nlc->c", a, b)


# Planes smaller than this are not tiled (see _tile): 16K values, 64 KiB in float32.
_TILE_MIN = 1 << 14


def _tile(xp, vec, v, cax):
    """A per-channel (C,) vector shaped to broadcast against the 3-D view v: for a large plane,
    repeated into a contiguous (1, C, L) or (1, L, C) array; for a small one, just reshaped.

    Broadcasting the (C,) vector itself makes NumPy restart its inner loop every L (or C)
    values; against a contiguous plane, each of the N rows of v is one long loop over two
    contiguous operands: BatchNorm2d (64, 64, 28, 28) fwd+bwd 16.9 against 20.4 ms. The plane
    is 1/N of v's size. Small planes (BatchNorm2d (128, 64, 8, 8): 16 KiB) gained only 10%
    (2.26 against 2.51 ms) and, on the VM we measure on, made the whole op 3-5x slower
    whenever the recycled 16 KiB block malloc handed out sat at an unlucky address relative
    to v (see benchmarks/README.md), so they are broadcast instead.
    """
    per_channel = (1, -1, 1) if cax == 1 else (1, 1, -1)
    plane = v.shape[1] * v.shape[2]
    if plane < _TILE_MIN or v.shape[3 - cax] == 1:  # small, or BatchNorm1d (L == 1): no copy
        return vec.reshape(per_channel)
    return xp.ascontiguousarray(xp.broadcast_to(vec.reshape(per_channel), (1,) + v.shape[1:]))


def _unview3(v, cax, shape):
    """The inverse of _view3: back to (N, C, *spatial), as a view."""
    if cax == 1:
        return v.reshape(shape)
    n = len(shape)
    v = v.reshape((shape[0],) + tuple(shape[2:]) + (shape[1],))      # (N, *spatial, C)
    return v.transpose((0, n - 1) + tuple(range(1, n - 1)))            # -> (N, C, *spatial)


class BatchNorm(Function):
    """Batch normalisation over every axis but the channel axis 1 (Ioffe & Szegedy 2015, Alg. 1).

    With m values per channel (m = N, N*L or N*H*W):
        mu = (1/m) sum x,   var = (1/m) sum (x - mu)^2          (biased, two passes)
        xhat = (x - mu) * invstd,   invstd = 1 / sqrt(var + eps),   y = gamma * xhat + beta
    VJP in training, the closed form derived in lesson 06:
        dbeta = sum dout,   dgamma = sum dout * xhat,
        dx = gamma * invstd / m * (m * dout - dbeta - xhat * dgamma)
    In eval mode mu and var are constants (the running statistics), so dx = dout * gamma * invstd.
    The work is done on a 3-D view of x, (N, C, L) or (N, L, C), whichever x's memory order
    gives without copying (see _channel_axis), with the per-channel vectors tiled along it.
    Each full-size pass costs about as much as all the per-channel arithmetic, so xhat is never
    stored: the op keeps xc = x - mu0 (mu0 is a first estimate of mu, see below) and folds
    xhat = (xc - dmean) * invstd, with dmean = mu - mu0, into per-channel factors.
    """

    @staticmethod
    def forward(ctx, x, weight=None, bias=None, running_mean=None, running_var=None,
                training=True, momentum=0.1, eps=1e-5):
        xp = ctx.xp
        cax = _channel_axis(x)
        v = _view3(x, cax)                              # (N, C, L) or (N, L, C)
        m = v.shape[0] * v.shape[3 - cax]
        if training:
            # Corrected two-pass statistics (Chan, Golub & LeVeque 1983): centre x on a first
            # estimate of the mean, then measure what is left of it. The second sums run over
            # values the size of the spread, not of the mean, so float32 data with mean 1e4
            # keeps its precision.
            mean0 = _channel_sum(xp, v, cax) / m
            xc = v - _tile(xp, mean0, v, cax)           # x - mu0
            dmean = _channel_sum(xp, xc, cax) / m       # mu - mu0: mu0's rounding error
            var = _channel_dot(xp, xc, xc, cax) / m - dmean * dmean   # biased: divides by m
            var = xp.maximum(var, 0)                    # a constant channel: 0, not -1e-17
            mean = mean0 + dmean
            if running_mean is not None:
                # PyTorch's convention: running = (1 - momentum) * running + momentum * batch,
                # and the running variance stores the *unbiased* estimate var * m / (m - 1).
                running_mean *= 1 - momentum
                running_mean += momentum * mean
                running_var *= 1 - momentum
                running_var += (momentum * m / (m - 1)) * var
        else:
            var = running_var
            xc = v - _tile(xp, running_mean, v, cax)    # x - mu, exactly
            dmean = xp.zeros_like(running_var)
        invstd = 1 / xp.sqrt(var + eps)
        scale = invstd if weight is None else weight * invstd     # gamma * invstd, (C,)
        # y = gamma * xhat + beta = xc * scale + (beta - dmean * scale): two passes over xc
        y = xc * _tile(xp, scale, v, cax)
        offset = -dmean * scale if bias is None else bias - dmean * scale
        y += _tile(xp, offset, v, cax)
        ctx.save_for_backward(xc, dmean, invstd, scale)
        ctx.training, ctx.cax, ctx.m = training, cax, m
        ctx.has_weight, ctx.has_bias = weight is not None, bias is not None
        return _unview3(y, cax, x.shape)

    @staticmethod
    def backward(ctx, dout):
        xc, dmean, invstd, scale = ctx.saved  # xhat = (xc - dmean) * invstd; scale = gamma * invstd
        xp, cax = ctx.xp, ctx.cax
        d = _view3(dout, cax)                           # same 3-D layout as xc
        m = ctx.m
        dbeta = _channel_sum(xp, d, cax)                                # sum dout, (C,)
        dgamma = (_channel_dot(xp, d, xc, cax) - dmean * dbeta) * invstd  # sum dout * xhat
        if ctx.training:
            # gamma * invstd / m * (m * dout - dbeta - xhat * dgamma), in three passes once
            # xhat * dgamma / m is written as xc * k - dmean * k with k = invstd * dgamma / m
            k = invstd * dgamma / m
            dx = d - xc * _tile(xp, k, d, cax)
            dx += _tile(xp, dmean * k - dbeta / m, d, cax)
            dx *= _tile(xp, scale, d, cax)
        else:
            dx = d * _tile(xp, scale, d, cax)
        grads = [_unview3(dx, cax, dout.shape)]         # one gradient per Tensor input present
        if ctx.has_weight:
            grads.append(dgamma)
        if ctx.has_bias:
            grads.append(dbeta)
        return tuple(grads)


def _check_batch_norm_input(x, weight, running_mean, training):
    if x.ndim < 2:
        raise ValueError(f"batch_norm expects input of shape (N, C, ...), got {x.shape}")
    C = x.shape[1]
    for name, t in (("weight", weight), ("running_mean", running_mean)):
        if t is not None and t.shape != (C,):
            raise ValueError(f"batch_norm: input {x.shape} has {C} channels but {name} has "
                             f"shape {t.shape}; the channel axis is axis 1")
    if training and x.numel() // C <= 1:
        raise ValueError(
            f"Expected more than 1 value per channel when training, got input size {x.shape}. "
            "With one value per channel the batch variance is 0 and every output is beta, so "
            "there is nothing to learn from: use a batch of at least 2 (DataLoader(..., "
            "drop_last=True) drops a last batch of 1), or call model.eval() for inference.")


def batch_norm(x, running_mean=None, running_var=None, weight=None, bias=None,
               training=False, momentum=0.1, eps=1e-5):
    """PyTorch's F.batch_norm: the fused op (closed-form backward).

    running_mean / running_var (Tensors or arrays of shape (C,)) are updated in place when
    training; in eval mode (training=False) they are used for normalising. Passing None for
    both means batch statistics are always used.
    """
    _check_batch_norm_input(x, weight, running_mean, training)
    rm = running_mean.data if isinstance(running_mean, Tensor) else running_mean
    rv = running_var.data if isinstance(running_var, Tensor) else running_var
    training = training or rm is None
    return BatchNorm.apply(x, weight, bias, running_mean=rm, running_var=rv, training=training,
                           momentum=momentum, eps=eps)


def batch_norm_composite(x, running_mean=None, running_var=None, weight=None, bias=None,
                         training=False, momentum=0.1, eps=1e-5):
    """The same function as `batch_norm`, written with primitive ops only.

    Autograd derives its backward through mean, subtract, square, sqrt and divide; tests and
    lesson 06 check that it agrees with the fused op's closed form.
    """
    _check_batch_norm_input(x, weight, running_mean, training)
    rm = running_mean.data if isinstance(running_mean, Tensor) else running_mean
    rv = running_var.data if isinstance(running_var, Tensor) else running_var
    axes = (0,) + tuple(range(2, x.ndim))
    shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)       # per-channel vectors broadcast over axes
    if training or rm is None:
        mu = x.mean(axis=axes, keepdims=True)
        xmu = x - mu
        var = (xmu * xmu).mean(axis=axes, keepdims=True)
        if rm is not None:
            m = x.data.size // x.shape[1]
            rm *= 1 - momentum
            rm += momentum * mu.data.ravel()
            rv *= 1 - momentum
            rv += (momentum * m / (m - 1)) * var.data.ravel()
    else:
        xmu = x - Tensor._make(rm.reshape(shape), False, None)
        var = Tensor._make(rv.reshape(shape), False, None)
    xhat = xmu / (var + eps).sqrt()
    if weight is not None:
        xhat = xhat * weight.reshape(shape)
    if bias is not None:
        xhat = xhat + bias.reshape(shape)
    return xhat


# ---- losses ----------------------------------------------------------------------------------
class CrossEntropy(Function):
    """loss = -(1/N) sum_n log softmax(x_n)[t_n], for logits x (N, C) and class indices t (N,).

    log softmax uses log-sum-exp (max-shifted), so large logits do not overflow.
    VJP: dx = dout * (softmax(x) - onehot(t)) / N.
    """

    @staticmethod
    def forward(ctx, logits, target):
        xp = ctx.xp
        n, classes = logits.shape
        shifted = logits - logits.max(axis=1, keepdims=True)
        # Row sums as a matrix-vector product: NumPy's sum(axis=1) restarts its loop on every
        # short row (10 classes), BLAS does not (2.8 against 6.4 us at (128, 10)).
        sum_exp = xp.exp(shifted) @ _ones(xp, classes, shifted.dtype)      # (N,)
        logp = shifted - xp.log(sum_exp)[:, None]
        rows = xp.arange(n)
        ctx.save_for_backward(logp, target, rows)
        return -logp[rows, target].sum() / n       # the mean, without np.mean's Python layer

    @staticmethod
    def backward(ctx, dout):
        logp, target, rows = ctx.saved
        dx = ctx.xp.exp(logp)                       # softmax(x)
        dx[rows, target] -= 1                       # minus one-hot(t)
        dx *= dout / len(rows)
        return dx, None


def cross_entropy(logits, target):
    """Mean cross-entropy of (N, C) logits against integer class targets of shape (N,)."""
    target_data = target.data if isinstance(target, Tensor) else target
    if logits.ndim != 2:
        raise ValueError(f"cross_entropy expects (N, C) logits, got shape {logits.shape}")
    if not hasattr(target_data, "dtype"):
        target_data = np.asarray(target_data)
    if target_data.dtype.kind not in "iu":
        raise TypeError(f"cross_entropy expects integer class indices as target, got dtype "
                        f"{target_data.dtype}; use labels like np.array([3, 0, 7]), not one-hot "
                        "or float vectors")
    if target_data.shape != (logits.shape[0],):
        raise ValueError(f"cross_entropy: logits {logits.shape} need a target of shape "
                         f"({logits.shape[0]},), got {target_data.shape}")
    if target_data.size and (target_data.min() < 0 or target_data.max() >= logits.shape[1]):
        raise ValueError(f"cross_entropy: target values must lie in [0, {logits.shape[1]}) for "
                         f"{logits.shape[1]} classes, got min {int(target_data.min())} and max "
                         f"{int(target_data.max())}")
    target = target if isinstance(target, Tensor) else Tensor(target_data, device=logits.device)
    return CrossEntropy.apply(logits, target)


def mse_loss(x, target):
    """Mean squared error, mean((x - target)^2); shapes must match (no silent broadcasting)."""
    target = _t(target) if not isinstance(target, Tensor) else target
    if x.shape != target.shape:
        raise ValueError(f"mse_loss: input shape {x.shape} and target shape {target.shape} "
                         "differ; broadcasting them would silently average the wrong pairs")
    diff = x - target
    return (diff * diff).mean()
