"""Fast kernels tuned for NumPy on the CPU (they use ctx.xp only, so CuPy runs them too).

Each class stands in for the reference op of the same name and returns the same numbers; what
makes it faster is said in its docstring, and measured in benchmarks/README.md. The levers:
    - channels-last memory: a conv output viewed as (N, H, W, C) is a plain matrix, so im2col,
      BatchNorm's per-channel sums and the next layer read it without copying;
    - per-channel sums as matrix-vector products with a vector of ones: BLAS reads the array
      once at memory speed, where NumPy restarts its loop on every short row;
    - fewer full-size passes: BatchNorm never stores xhat, it folds it into per-channel factors;
    - blocks that stay in cache: conv's im2col and BatchNorm's passes work on about
      _BLOCK_BYTES of images at a time, so only a block's first read goes to memory;
    - NumPy's SIMD loops: maximum against an array, not a scalar.
"""
import functools

from .. import functional as F, ops
from ..tensor import Function
from . import stands_in_for


@stands_in_for(ops.ReLU)
class ReLU(Function):
    """max(x, 0), with NumPy's SIMD loop: against the scalar 0 maximum takes a scalar loop,
    against an array of zeros (which then takes the result) a vectorised one."""

    @staticmethod
    def forward(ctx, x):
        out = ctx.xp.zeros_like(x)
        ctx.xp.maximum(x, out, out=out)
        ctx.save_for_backward(out)
        return out

    backward = ops.ReLU.backward


@stands_in_for(ops.Reshape)
class Reshape(Function):
    """A reshape whose gradient keeps x's memory order: flattening a channels-last conv output
    gives a gradient that is channels-last too, so the ReLU and BatchNorm backward that read it
    next see both of their arrays in the same order (one pass, no strided loop)."""

    @staticmethod
    def forward(ctx, x, shape):
        ctx.in_shape = x.shape
        ctx.like = None if x.flags.c_contiguous else x      # only its layout is used
        return x.reshape(shape)

    @staticmethod
    def backward(ctx, dout):
        if ctx.like is None:
            return dout.reshape(ctx.in_shape)
        dx = ctx.xp.empty_like(ctx.like)                    # same strides order as x
        dx[...] = dout.reshape(ctx.in_shape)
        return dx


_BLOCK_BYTES = 1 << 21    # work on blocks of about this size, so each stays in the CPU's cache


def _blocks(n, bytes_per_item):
    """Slices of range(n), each covering about _BLOCK_BYTES of items of bytes_per_item."""
    step = max(1, _BLOCK_BYTES // max(1, bytes_per_item))
    return [slice(i, min(i + step, n)) for i in range(0, n, step)]


def _windows(xp, x_pad, kh, kw, sh, sw, Ho, Wo):
    """Every kh x kw patch of channels-last x_pad (N, Hp, Wp, C): (N, Ho, Wo, kh, kw, C), a view."""
    N, _, _, C = x_pad.shape
    sN, sH, sW, sC = x_pad.strides
    return xp.lib.stride_tricks.as_strided(
        x_pad, shape=(N, Ho, Wo, kh, kw, C), strides=(sN, sH * sh, sW * sw, sH, sW, sC))


def _im2col(xp, windows):
    """The (rows, kh*kw*C) patch matrix of a block of windows (N, Ho, Wo, kh, kw, C): one copy.

    With one input channel (an image network's first layer) the windows' contiguous runs are
    only kw values long, so the copy goes tap by tap instead, Wo values at a time, into a
    (kh*kw, rows) array that is returned transposed (BLAS reads either order)."""
    N, Ho, Wo, kh, kw, C = windows.shape
    if C > 1:
        return windows.reshape(-1, kh * kw * C)     # (N, Ho, Wo, kh, kw, C) -> (rows, kh*kw*C)
    cols_t = xp.empty((kh, kw, N, Ho, Wo), dtype=windows.dtype)
    for u in range(kh):
        for v in range(kw):
            cols_t[u, v] = windows[:, :, :, u, v, 0]
    return cols_t.reshape(kh * kw, -1).T        # (kh*kw, rows) -> (rows, kh*kw), a view


@stands_in_for(F.Conv2d)
class Conv2d(Function):
    """im2col on channels-last memory, a block of images at a time.

    On channels-last memory a patch row is kh*kw contiguous runs of C values, copied from a
    strided view of every patch (no Python loop; with one channel, tap by tap: _im2col). The
    rows of a block of images (_BLOCK_BYTES) are built and multiplied while they are in cache,
    and never kept: backward builds them again, block by block, from the padded input it saved
    (a ninth of their size for a 3x3 kernel). The output is an (N, O, Ho, Wo) view of the
    (N, Ho, Wo, O) product, channels-last in memory. Backward adds one (rows, O) @ (O, C)
    product per kernel tap straight into the padded input gradient, instead of building the
    (rows, C*kh*kw) column gradient.
    """

    @staticmethod
    def forward(ctx, x, w, b=None, stride=(1, 1), padding=(0, 0)):
        xp = ctx.xp
        N, C, H, W = x.shape
        O, _, kh, kw = w.shape
        (sh, sw), (ph, pw) = stride, padding
        Ho, Wo = (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1
        x_pad = xp.zeros((N, H + 2 * ph, W + 2 * pw, C), dtype=x.dtype)
        x_pad[:, ph:ph + H, pw:pw + W, :] = x.transpose(0, 2, 3, 1)   # (N, C, H, W) -> (N, H, W, C)
        windows = _windows(xp, x_pad, kh, kw, sh, sw, Ho, Wo)     # (N, Ho, Wo, kh, kw, C), no copy
        w_mat = w.transpose(0, 2, 3, 1).reshape(O, kh * kw * C)  # (O, C, kh, kw) -> (O, kh*kw*C)
        out = xp.empty((N, Ho, Wo, O), dtype=x.dtype)
        for n in _blocks(N, windows[0].size * x.itemsize):
            cols = _im2col(xp, windows[n])                      # im2col of the block
            xp.matmul(cols, w_mat.T, out=out[n].reshape(-1, O))     # (rows, O), channels-last
        if b is not None:
            out += b
        ctx.save_for_backward(x_pad, w_mat)
        ctx.geometry = (H, W, Ho, Wo, kh, kw, sh, sw, ph, pw)
        return out.transpose(0, 3, 1, 2)                         # -> (N, O, Ho, Wo) view

    @staticmethod
    def backward(ctx, dout):
        xp = ctx.xp
        x_pad, w_mat = ctx.saved
        H, W, Ho, Wo, kh, kw, sh, sw, ph, pw = ctx.geometry
        N, C, O = x_pad.shape[0], x_pad.shape[3], w_mat.shape[0]
        d = dout.transpose(0, 2, 3, 1)            # (N, O, Ho, Wo) -> (N, Ho, Wo, O), a view
        windows = _windows(xp, x_pad, kh, kw, sh, sw, Ho, Wo)
        w_taps = w_mat.reshape(O, kh, kw, C)
        need_dx, need_dw, need_db = ctx.needs_input_grad
        dx_pad = xp.zeros_like(x_pad) if need_dx else None
        dw_t = xp.zeros((kh * kw * C, O), dtype=w_mat.dtype) if need_dw else None
        for n in _blocks(N, windows[0].size * x_pad.itemsize):
            d_rows = d[n].reshape(-1, O)               # (rows, O); a view if channels-last
            if need_dw:
                dw_t += _im2col(xp, windows[n]).T @ d_rows     # im2col of the block again
            if need_dx:
                dx_block = dx_pad[n]
                for u in range(kh):      # a loop over the kh*kw kernel taps, not over pixels
                    for v in range(kw):
                        tap = (d_rows @ w_taps[:, u, v, :]).reshape(-1, Ho, Wo, C)
                        dx_block[:, u:u + sh * Ho:sh, v:v + sw * Wo:sw, :] += tap
        dx = dx_pad[:, ph:ph + H, pw:pw + W, :].transpose(0, 3, 1, 2) if need_dx else None
        # (kh*kw*C, O) -> (O, kh, kw, C) -> (O, C, kh, kw)
        dw = (xp.ascontiguousarray(dw_t.T.reshape(O, kh, kw, C).transpose(0, 3, 1, 2))
              if need_dw else None)
        db = _ones(xp, N * Ho * Wo, dout.dtype) @ d.reshape(-1, O) if need_db else None
        return dx, dw, db


# ---- BatchNorm on a 3-D view --------------------------------------------------------------
def _channels_last(x):
    """(N, C, *spatial) -> (N, *spatial, C), a view."""
    return x.transpose((0,) + tuple(range(2, x.ndim)) + (1,))


def _channel_axis(x):
    """Where the channel axis goes so that viewing x in 3-D needs no copy: 2 for channels-last
    memory (conv outputs, and 2-D (N, C) input): (N, L, C); 1 otherwise: (N, C, L)."""
    return 2 if x.ndim == 2 or _channels_last(x).flags.c_contiguous else 1


def _view3(x, cax):
    """(N, C, *spatial) -> (N, C, L) if cax == 1, or (N, L, C) if cax == 2."""
    N, C = x.shape[0], x.shape[1]
    if cax == 1:
        return x.reshape(N, C, -1)
    return _channels_last(x).reshape(N, -1, C)


def _unview3(v, cax, shape):
    """The inverse of _view3: back to (N, C, *spatial), as a view."""
    if cax == 1:
        return v.reshape(shape)
    n = len(shape)
    v = v.reshape((shape[0],) + tuple(shape[2:]) + (shape[1],))      # (N, *spatial, C)
    return v.transpose((0, n - 1) + tuple(range(1, n - 1)))            # -> (N, C, *spatial)


@functools.lru_cache(maxsize=64)
def _ones(xp, n, dtype):
    """A vector of n ones, made once per (library, length, dtype) and shared: only ever read,
    as a matmul operand (not marked read-only: NumPy's matmul is slower on such an operand)."""
    return xp.ones(n, dtype)


def _channel_sum(xp, v, cax):
    """Per-channel sum over a 3-D view as matrix-vector products with a vector of ones: one
    BLAS pass at memory speed, with several partial sums (smaller float32 rounding)."""
    N, A, B = v.shape
    if cax == 1:        # (N, C, L): sum each row of L values, then the N rows of each channel
        return (v.reshape(N * A, B) @ _ones(xp, B, v.dtype)).reshape(N, A).sum(axis=0)
    return _ones(xp, N * A, v.dtype) @ v.reshape(N * A, B)     # (N, L, C) -> (N*L, C) -> (C,)


def _channel_dot(xp, a, b, cax):
    """sum of a * b per channel over a 3-D view, without the (a * b) temporary."""
    return xp.einsum("ncl,ncl->c" if cax == 1 else "nlc,nlc->c", a, b)


_TILE_MIN = 1 << 14     # planes of fewer values are broadcast, not tiled (see _tile)


def _tile(xp, vec, v, cax):
    """A per-channel (C,) vector shaped to broadcast against the 3-D view v.

    For a large plane it is repeated into a contiguous (1, C, L) or (1, L, C) array, so each of
    the N rows of v is one long loop over two contiguous operands instead of a loop restarted
    every L (or C) values. Small planes are only reshaped: tiling gained little there, and a
    recycled small tile at an unlucky address made the whole op several times slower on one
    of our machines (benchmarks/README.md).
    """
    per_channel = (1, -1, 1) if cax == 1 else (1, 1, -1)
    plane = v.shape[1] * v.shape[2]
    if plane < _TILE_MIN or v.shape[3 - cax] == 1:  # small, or BatchNorm1d (L == 1): no copy
        return vec.reshape(per_channel)
    return xp.ascontiguousarray(xp.broadcast_to(vec.reshape(per_channel), (1,) + v.shape[1:]))


@stands_in_for(F.BatchNorm)
class BatchNorm(Function):
    """The same statistics and closed-form backward, in fewer full-size passes over memory.

    Works on a 3-D view of x, (N, C, L) or (N, L, C), whichever x's memory order gives without
    a copy, and a block of images at a time (_BLOCK_BYTES): each pass reads a block from memory
    once, and the passes after it find the block in cache. Shifted two-pass statistics (Chan,
    Golub & LeVeque 1983): centre x on a first estimate mu0 of the mean, then measure what is
    left, dmean = mu - mu0; the sums then run over values the size of the spread, not of the
    mean, which keeps float32 precision. xhat is never stored: xhat = (xc - dmean) * invstd
    with xc = x - mu0, folded into per-channel factors.
    """

    @staticmethod
    def forward(ctx, x, weight=None, bias=None, *, running_mean=None, running_var=None,
                training=True, momentum=0.1, eps=1e-5):
        xp = ctx.xp
        cax = _channel_axis(x)
        v = _view3(x, cax)                              # (N, C, L) or (N, L, C)
        m = v.shape[0] * v.shape[3 - cax]
        blocks = _blocks(v.shape[0], v.nbytes // v.shape[0])
        mean0 = _channel_sum(xp, v, cax) / m if training else running_mean    # mu0
        mean0_t = _tile(xp, mean0, v, cax)
        xc = xp.empty_like(v)
        s1 = s2 = 0
        for n in blocks:                                # read x, write x - mu0; sums in cache
            xc_n = xc[n]                                # a view: this block of xc
            xp.subtract(v[n], mean0_t, out=xc_n)
            if training:
                s1 = s1 + _channel_sum(xp, xc_n, cax)
                s2 = s2 + _channel_dot(xp, xc_n, xc_n, cax)
        if training:
            dmean = s1 / m                              # mu - mu0: mu0's rounding error
            var = xp.maximum(s2 / m - dmean * dmean, 0)     # biased; a constant channel gives 0
            if running_mean is not None:
                F.update_running_stats(running_mean, running_var, mean0 + dmean, var, m,
                                       momentum)
        else:
            dmean, var = xp.zeros_like(running_var), running_var
        invstd = 1 / xp.sqrt(var + eps)
        scale = invstd if weight is None else weight * invstd     # gamma * invstd, (C,)
        # y = gamma * xhat + beta = xc * scale + (beta - dmean * scale)
        offset = -dmean * scale if bias is None else bias - dmean * scale
        scale_t, offset_t = _tile(xp, scale, v, cax), _tile(xp, offset, v, cax)
        y = xp.empty_like(v)
        for n in blocks:                                # read xc, write y; the add in cache
            y_n = y[n]
            xp.multiply(xc[n], scale_t, out=y_n)
            y_n += offset_t
        ctx.save_for_backward(xc, dmean, invstd, scale)
        ctx.training, ctx.cax, ctx.m = training, cax, m
        return _unview3(y, cax, x.shape)

    @staticmethod
    def backward(ctx, dout):
        xc, dmean, invstd, scale = ctx.saved  # xhat = (xc - dmean) * invstd; scale = gamma * invstd
        xp, cax, m = ctx.xp, ctx.cax, ctx.m
        d = _view3(dout, cax)                           # same 3-D layout as xc
        blocks = _blocks(d.shape[0], d.nbytes // d.shape[0])
        dbeta = dot = 0
        for n in blocks:                                # read dout and xc once
            dbeta = dbeta + _channel_sum(xp, d[n], cax)               # sum dout, (C,)
            dot = dot + _channel_dot(xp, d[n], xc[n], cax)            # sum dout * xc
        dgamma = (dot - dmean * dbeta) * invstd                       # sum dout * xhat
        scale_t = _tile(xp, scale, d, cax)
        dx = xp.empty_like(d)
        if ctx.training:
            # gamma * invstd / m * (m * dout - dbeta - xhat * dgamma) = scale * dout + a * xc + c
            a = -scale * invstd * dgamma / m
            c = scale * (dmean * invstd * dgamma - dbeta) / m
            a_t, c_t = _tile(xp, a, d, cax), _tile(xp, c, d, cax)
            for n in blocks:                            # read dout and xc, write dx
                t = xc[n] * a_t
                t += c_t
                dx_n = dx[n]
                xp.multiply(d[n], scale_t, out=dx_n)
                dx_n += t
        else:
            xp.multiply(d, scale_t, out=dx)
        return (_unview3(dx, cax, dout.shape), dgamma if ctx.needs_input_grad[1] else None,
                dbeta if ctx.needs_input_grad[2] else None)


@stands_in_for(F.CrossEntropy)
class CrossEntropy(Function):
    """Row sums as a matrix-vector product (NumPy restarts its sum loop on every short row of
    C classes, BLAS does not), the mean without np.mean's Python layer, and a backward that
    edits softmax(x) in place instead of building a one-hot matrix."""

    @staticmethod
    def forward(ctx, logits, target):
        xp = ctx.xp
        n, classes = logits.shape
        shifted = logits - logits.max(axis=1, keepdims=True)
        sum_exp = xp.exp(shifted) @ _ones(xp, classes, shifted.dtype)      # (N,)
        logp = shifted - xp.log(sum_exp)[:, None]
        rows = xp.arange(n)
        ctx.save_for_backward(logp, target, rows)
        return -logp[rows, target].sum() / n

    @staticmethod
    def backward(ctx, dout):
        logp, target, rows = ctx.saved
        dx = ctx.xp.exp(logp)                       # softmax(x)
        dx[rows, target] -= 1                       # minus one-hot(t)
        dx *= dout / len(rows)
        return dx, None
