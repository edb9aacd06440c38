"""Primitive differentiable operations, one `Function` subclass each.

Each docstring gives the forward formula and the vector-Jacobian product (VJP) its backward
computes, with dout = dL/dout. Forward and backward receive raw arrays and use `ctx.xp` (NumPy or
CuPy); the engine in tensor.py sums gradients of broadcast inputs back to their shapes.
"""
import numpy as np

from . import backend
from .tensor import Function


def _normalize_axis(axis, ndim):
    """A tuple of non-negative axes (all axes for None)."""
    if axis is None:
        return tuple(range(ndim))
    axes = axis if isinstance(axis, (tuple, list)) else (axis,)
    for a in axes:
        if not -ndim <= a < max(ndim, 1):
            raise IndexError(f"axis {a} is out of range for a tensor with {ndim} dimensions")
    return tuple(sorted(a % max(ndim, 1) for a in axes))


def _expand_reduced(ctx, dout):
    """Re-insert the axes a reduction removed, so dout broadcasts against the input."""
    if ctx.keepdims or ctx.axes == ():
        return dout
    shape = list(ctx.in_shape)
    for a in ctx.axes:
        shape[a] = 1
    return dout.reshape(shape)     # (reduced shape) -> (input shape with 1s on reduced axes)


# ---- elementwise arithmetic ------------------------------------------------------------------
class Add(Function):
    """out = a + b.   VJP: da = dout, db = dout."""

    @staticmethod
    def forward(ctx, a, b):
        return a + b

    @staticmethod
    def backward(ctx, dout):
        return dout, dout


class Sub(Function):
    """out = a - b.   VJP: da = dout, db = -dout."""

    @staticmethod
    def forward(ctx, a, b):
        return a - b

    @staticmethod
    def backward(ctx, dout):
        return dout, -dout


class Mul(Function):
    """out = a * b.   VJP: da = dout * b, db = dout * a."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx, dout):
        a, b = ctx.saved
        da = dout * b if ctx.needs_input_grad[0] else None
        db = dout * a if ctx.needs_input_grad[1] else None
        return da, db


class Div(Function):
    """out = a / b.   VJP: da = dout / b, db = -dout * a / b^2 = -dout * out / b."""

    @staticmethod
    def forward(ctx, a, b):
        out = a / b
        ctx.save_for_backward(b, out)
        return out

    @staticmethod
    def backward(ctx, dout):
        b, out = ctx.saved
        da = dout / b
        db = -da * out if ctx.needs_input_grad[1] else None
        return da, db


class Neg(Function):
    """out = -x.   VJP: dx = -dout."""

    @staticmethod
    def forward(ctx, x):
        return -x

    @staticmethod
    def backward(ctx, dout):
        return -dout


class Abs(Function):
    """out = |x|.   VJP: dx = dout * sign(x)   (0 at x = 0, as in PyTorch)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return ctx.xp.abs(x)

    @staticmethod
    def backward(ctx, dout):
        (x,) = ctx.saved
        return dout * ctx.xp.sign(x)


class Clone(Function):
    """out = a copy of x in memory of its own.   VJP: dx = dout."""

    @staticmethod
    def forward(ctx, x):
        return x.copy()

    @staticmethod
    def backward(ctx, dout):
        return dout


class Pow(Function):
    """out = x^p for a constant number p.   VJP: dx = dout * p * x^(p-1)   (0 for p = 0, also
    at x = 0 where x^(p-1) is infinite, as in PyTorch)."""

    @staticmethod
    def forward(ctx, x, exponent):
        ctx.save_for_backward(x)
        ctx.exponent = exponent
        return x ** exponent

    @staticmethod
    def backward(ctx, dout):
        (x,) = ctx.saved
        p = ctx.exponent
        if p == 0:
            return ctx.xp.zeros_like(dout)
        return dout * (p * x ** (p - 1))


class Exp(Function):
    """out = e^x.   VJP: dx = dout * out."""

    @staticmethod
    def forward(ctx, x):
        out = ctx.xp.exp(x)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, dout):
        (out,) = ctx.saved
        return dout * out


class Log(Function):
    """out = ln(x).   VJP: dx = dout / x."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return ctx.xp.log(x)

    @staticmethod
    def backward(ctx, dout):
        (x,) = ctx.saved
        return dout / x


class Sqrt(Function):
    """out = sqrt(x).   VJP: dx = dout / (2 * out)."""

    @staticmethod
    def forward(ctx, x):
        out = ctx.xp.sqrt(x)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, dout):
        (out,) = ctx.saved
        return dout / (2 * out)


class Tanh(Function):
    """out = tanh(x).   VJP: dx = dout * (1 - out^2)."""

    @staticmethod
    def forward(ctx, x):
        out = ctx.xp.tanh(x)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, dout):
        (out,) = ctx.saved
        return dout * (1 - out * out)


class Sigmoid(Function):
    """out = 1 / (1 + e^-x).   VJP: dx = dout * out * (1 - out).

    Computed as (1 + tanh(x/2)) / 2, the same function without e^-x overflowing for x << 0.
    """

    @staticmethod
    def forward(ctx, x):
        out = 0.5 * (ctx.xp.tanh(0.5 * x) + 1)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, dout):
        (out,) = ctx.saved
        return dout * out * (1 - out)


class ReLU(Function):
    """out = max(x, 0).   VJP: dx = dout * 1[x > 0]   (the kink at 0 gets gradient 0)."""

    @staticmethod
    def forward(ctx, x):
        out = ctx.xp.maximum(x, 0)
        ctx.save_for_backward(out)      # the output alone tells us where x > 0
        return out

    @staticmethod
    def backward(ctx, dout):
        (out,) = ctx.saved
        return dout * (out > 0)


class Clip(Function):
    """out = min(max(x, lo), hi).   VJP: dx = dout * 1[lo <= x <= hi]   (PyTorch's clamp rule)."""

    @staticmethod
    def forward(ctx, x, min=None, max=None):
        if min is None and max is None:
            raise ValueError("clip() needs at least one of min and max")
        ctx.save_for_backward(x)
        ctx.lo, ctx.hi = min, max
        return ctx.xp.clip(x, min, max)

    @staticmethod
    def backward(ctx, dout):
        (x,) = ctx.saved
        mask = ctx.xp.ones(x.shape, dtype=bool)
        if ctx.lo is not None:
            mask &= x >= ctx.lo
        if ctx.hi is not None:
            mask &= x <= ctx.hi
        return dout * mask


class Where(Function):
    """out = a where cond else b (cond is boolean, not differentiated).

    VJP: da = dout * cond, db = dout * (1 - cond).
    """

    @staticmethod
    def forward(ctx, cond, a, b):
        ctx.save_for_backward(cond)
        return ctx.xp.where(cond, a, b)

    @staticmethod
    def backward(ctx, dout):
        (cond,) = ctx.saved
        zero = ctx.xp.zeros((), dout.dtype)
        return None, ctx.xp.where(cond, dout, zero), ctx.xp.where(cond, zero, dout)


# ---- linear algebra ------------------------------------------------------------------------
class MatMul(Function):
    """out = a @ b, with NumPy's rules for 1-D operands and broadcast batch dimensions.

    VJP: da = dout @ b^T, db = a^T @ dout (transposing the last two axes); the engine sums
    the batch axes a broadcast operand was copied along.
    """

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        try:
            return a @ b
        except ValueError:
            inner = b.shape[-2] if b.ndim > 1 else b.shape[0]
            raise ValueError(f"matmul: shapes {a.shape} @ {b.shape} cannot be multiplied: the "
                             f"last axis of the first ({a.shape[-1]}) must equal the "
                             f"{'second-to-last' if b.ndim > 1 else 'only'} axis of the "
                             f"second ({inner})") from None

    @staticmethod
    def backward(ctx, dout):
        a, b = ctx.saved
        # Treat a vector a as a (1, k) matrix and a vector b as (k, 1); dout gains those axes.
        a2 = a[None, :] if a.ndim == 1 else a                    # (k,) -> (1, k)
        b2 = b[:, None] if b.ndim == 1 else b                    # (k,) -> (k, 1)
        d = dout[..., None] if b.ndim == 1 else dout             # (..., n) -> (..., n, 1)
        d = d[..., None, :] if a.ndim == 1 else d                # (..., m) -> (..., 1, m)
        da = db = None
        if ctx.needs_input_grad[0]:
            da = d @ b2.swapaxes(-1, -2)
            da = da[..., 0, :] if a.ndim == 1 else da            # (..., 1, k) -> (..., k)
        if ctx.needs_input_grad[1]:
            db = a2.swapaxes(-1, -2) @ d
            db = db[..., 0] if b.ndim == 1 else db               # (..., k, 1) -> (..., k)
        return da, db


# ---- reductions ----------------------------------------------------------------------------
class Sum(Function):
    """out = sum of x over `axis`.   VJP: dx = dout broadcast back over the summed axes."""

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        ctx.axes, ctx.keepdims, ctx.in_shape = _normalize_axis(axis, x.ndim), keepdims, x.shape
        return x.sum(axis=ctx.axes, keepdims=keepdims)

    @staticmethod
    def backward(ctx, dout):
        return ctx.xp.broadcast_to(_expand_reduced(ctx, dout), ctx.in_shape)


class Mean(Function):
    """out = (1/m) sum of x over `axis` (m elements per output).   VJP: dx = dout / m, broadcast."""

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        ctx.axes, ctx.keepdims, ctx.in_shape = _normalize_axis(axis, x.ndim), keepdims, x.shape
        ctx.m = int(np.prod([x.shape[a] for a in ctx.axes]))
        return x.mean(axis=ctx.axes, keepdims=keepdims)

    @staticmethod
    def backward(ctx, dout):
        return ctx.xp.broadcast_to(_expand_reduced(ctx, dout) / ctx.m, ctx.in_shape)


class Max(Function):
    """out = max of x over `axis`.

    VJP: dout goes to the maximal elements; when several elements tie for the maximum the
    gradient is split evenly between them (so it still sums to dout, unlike PyTorch's max(dim)
    which picks one index).
    """

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        ctx.axes, ctx.keepdims, ctx.in_shape = _normalize_axis(axis, x.ndim), keepdims, x.shape
        out = x.max(axis=ctx.axes, keepdims=True)
        ctx.save_for_backward(x == out)
        return out if keepdims else out.reshape([n for i, n in enumerate(x.shape)
                                                 if i not in ctx.axes])

    @staticmethod
    def backward(ctx, dout):
        (is_max,) = ctx.saved
        share = is_max / is_max.sum(axis=ctx.axes, keepdims=True)
        return _expand_reduced(ctx, dout) * share.astype(dout.dtype)


class Var(Function):
    """out = sum((x - mean)^2) / (m - correction) over `axis`.

    correction=1 is Bessel's unbiased estimate (PyTorch's default), correction=0 the biased
    (population) variance BatchNorm normalises with. Two passes (mean first, then squared
    deviations) avoid the cancellation of E[x^2] - E[x]^2.
    VJP: dx = dout * 2 (x - mean) / (m - correction)   (the mean's own path sums to zero).
    """

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False, correction=1):
        axes = _normalize_axis(axis, x.ndim)
        m = int(np.prod([x.shape[a] for a in axes]))
        if m - correction <= 0:
            raise ValueError(f"var() over {m} element(s) with correction={correction} divides "
                             f"by {m - correction}; use more elements or a smaller correction")
        ctx.axes, ctx.keepdims, ctx.in_shape = axes, keepdims, x.shape
        xmu = x - x.mean(axis=axes, keepdims=True)
        ctx.save_for_backward(xmu)
        ctx.denom = m - correction
        return (xmu * xmu).sum(axis=axes, keepdims=keepdims) / ctx.denom

    @staticmethod
    def backward(ctx, dout):
        (xmu,) = ctx.saved
        return _expand_reduced(ctx, dout) * (2 / ctx.denom) * xmu


# ---- shape and indexing --------------------------------------------------------------------
class Reshape(Function):
    """out = x with a new shape (same values in the same order).   VJP: dx = dout reshaped back."""

    @staticmethod
    def forward(ctx, x, shape):
        ctx.in_shape = x.shape
        return x.reshape(shape)

    @staticmethod
    def backward(ctx, dout):
        return dout.reshape(ctx.in_shape)


class Permute(Function):
    """out = x with its axes reordered (transpose).   VJP: dx = dout with the inverse order."""

    @staticmethod
    def forward(ctx, x, axes):
        if sorted(a % x.ndim for a in axes) != list(range(x.ndim)):
            raise ValueError(f"permute axes {axes} are not a permutation of {x.ndim} dimensions")
        ctx.axes = axes
        return x.transpose(axes)

    @staticmethod
    def backward(ctx, dout):
        inverse = np.argsort([a % dout.ndim for a in ctx.axes])     # where each axis went
        return dout.transpose(tuple(inverse.tolist()))


class GetItem(Function):
    """out = x[index], basic (slices, ints) or advanced (integer/boolean arrays) indexing.

    VJP: dx = zeros like x, with dout scatter-added at `index`; repeated indices accumulate
    (that is why advanced indexing needs add.at instead of plain assignment).
    """

    @staticmethod
    def forward(ctx, x, index):
        ctx.index, ctx.in_shape = index, x.shape
        parts = index if isinstance(index, tuple) else (index,)
        # Integer arrays may pick an element twice; boolean masks and slices never do.
        ctx.advanced = any(isinstance(p, list) or getattr(p, "dtype", np.dtype(bool)).kind in "iu"
                           and getattr(p, "ndim", 0) > 0 for p in parts)
        return x[index]

    @staticmethod
    def backward(ctx, dout):
        dx = ctx.xp.zeros(ctx.in_shape, dtype=dout.dtype)
        if ctx.advanced:
            ctx.xp.add.at(dx, ctx.index, dout)
        else:
            dx[ctx.index] = dout        # basic indexing selects each element at most once
        return dx


def _along_axis(xp, index, dim):
    """The full index tuple that picks index[i, j, ...] along `dim` and i, j, ... elsewhere."""
    grids = xp.ix_(*[xp.arange(n) for n in index.shape])   # open grids, one per axis
    return tuple(index if d == dim else g for d, g in enumerate(grids))


class Gather(Function):
    """out[i, j] = x[index[i, j], j] for dim 0 (x[i, index[i, j]] for dim 1, ...): PyTorch's
    gather.   VJP: dx = zeros like x with dout added at the gathered places (repeats add up)."""

    @staticmethod
    def forward(ctx, x, index, dim):
        dim = dim % x.ndim
        ctx.where, ctx.in_shape = _along_axis(ctx.xp, index, dim), x.shape
        return x[ctx.where]

    @staticmethod
    def backward(ctx, dout):
        dx = ctx.xp.zeros(ctx.in_shape, dtype=dout.dtype)
        ctx.xp.add.at(dx, ctx.where, dout)
        return dx


class Pad(Function):
    """out = x with constant padding; pad_width as in numpy.pad: ((before, after), ...) per axis.

    VJP: dx = dout with the padding sliced off.
    """

    @staticmethod
    def forward(ctx, x, pad_width, value=0.0):
        if len(pad_width) != x.ndim:
            raise ValueError(f"pad_width needs one (before, after) pair per axis: {x.ndim} for "
                             f"shape {x.shape}, got {len(pad_width)}")
        ctx.slices = tuple(slice(b, b + n) for (b, _), n in zip(pad_width, x.shape))
        return ctx.xp.pad(x, pad_width, mode="constant", constant_values=value)

    @staticmethod
    def backward(ctx, dout):
        return dout[ctx.slices]


class Concatenate(Function):
    """out = the inputs joined along `axis`.   VJP: each input gets its slice of dout."""

    @staticmethod
    def forward(ctx, *arrays, axis=0):
        ctx.axis = axis
        ctx.sizes = [a.shape[axis] for a in arrays]
        return ctx.xp.concatenate(arrays, axis=axis)

    @staticmethod
    def backward(ctx, dout):
        bounds = np.cumsum(ctx.sizes)[:-1].tolist()
        return tuple(ctx.xp.split(dout, bounds, axis=ctx.axis))


class Stack(Function):
    """out = the inputs stacked along a new `axis`.   VJP: each input gets its slice of dout."""

    @staticmethod
    def forward(ctx, *arrays, axis=0):
        ctx.axis = axis
        return ctx.xp.stack(arrays, axis=axis)

    @staticmethod
    def backward(ctx, dout):
        return tuple(ctx.xp.moveaxis(dout, ctx.axis, 0))


# ---- softmax family ------------------------------------------------------------------------
class LogSoftmax(Function):
    """out_i = x_i - log(sum_j e^{x_j}), computed as (x - max) - log(sum e^(x - max)).

    Subtracting the max (log-sum-exp) keeps e^x from overflowing.
    VJP: dx = dout - softmax(x) * sum(dout)   (sums along `axis`).
    """

    @staticmethod
    def forward(ctx, x, axis=-1):
        xp = ctx.xp
        shifted = x - x.max(axis=axis, keepdims=True)
        out = shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))
        ctx.save_for_backward(out)
        ctx.axis = axis
        return out

    @staticmethod
    def backward(ctx, dout):
        (out,) = ctx.saved
        return dout - ctx.xp.exp(out) * dout.sum(axis=ctx.axis, keepdims=True)


class Softmax(Function):
    """out_i = e^{x_i} / sum_j e^{x_j} (max-shifted for stability).

    VJP: dx = out * (dout - sum(dout * out))   (sums along `axis`).
    """

    @staticmethod
    def forward(ctx, x, axis=-1):
        e = ctx.xp.exp(x - x.max(axis=axis, keepdims=True))
        out = e / e.sum(axis=axis, keepdims=True)
        ctx.save_for_backward(out)
        ctx.axis = axis
        return out

    @staticmethod
    def backward(ctx, dout):
        (out,) = ctx.saved
        return out * (dout - (dout * out).sum(axis=ctx.axis, keepdims=True))


# ---- type and device -----------------------------------------------------------------------
class Cast(Function):
    """out = x converted to `dtype`.   VJP: dx = dout converted back to x's dtype."""

    @staticmethod
    def forward(ctx, x, dtype):
        ctx.in_dtype = x.dtype
        return x.astype(dtype)

    @staticmethod
    def backward(ctx, dout):
        return dout.astype(ctx.in_dtype)


class ToDevice(Function):
    """out = x copied to `device`.   VJP: dx = dout copied back to x's device."""

    @staticmethod
    def forward(ctx, x, device):
        ctx.in_device = backend.device_of(x)
        return backend.to_device(x, device)

    @staticmethod
    def backward(ctx, dout):
        return backend.to_device(dout, ctx.in_device)
