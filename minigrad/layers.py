"""The layers a course needs next to BatchNorm: dropout, pooling, activations, embeddings, and
the ModuleList / ModuleDict containers, with PyTorch's names, defaults and semantics.

Each differentiable op is one Function class (suffix Fn: the Module of the same name is the
layer), forward and backward side by side; the functional forms (dropout, max_pool2d, ...)
check their arguments and call them. Modules hold the options and pick the mode.
"""
import math

import numpy as np

from . import backend
from .functional import _pair
from .nn import Module, Parameter
from .tensor import Function, Tensor


def _refuse(name, value, default, why):
    if value != default:
        raise ValueError(f"{name}={value!r} is not supported by minigrad ({why}); leave it at "
                         f"{default!r}")


# ---- dropout ----------------------------------------------------------------------------------
class DropoutFn(Function):
    """out = x * mask, where mask holds 0 (dropped) or 1/(1-p) (kept) per element.

    Scaling the kept values by 1/(1-p) ("inverted dropout") keeps E[out] = x, so evaluation
    needs no rescaling. The mask is drawn outside (see dropout), so this op is deterministic
    and gradcheck can hold the mask fixed.  VJP: dx = dout * mask.
    """

    @staticmethod
    def forward(ctx, x, mask):
        ctx.save_for_backward(mask)
        return x * mask

    @staticmethod
    def backward(ctx, dout):
        (mask,) = ctx.saved
        return dout * mask


def dropout(input, p=0.5, training=True, inplace=False):
    """Zero each element with probability p and scale the rest by 1/(1-p) (training only).

    As PyTorch: training=False or p=0 returns the input unchanged, p=1 returns zeros.
    """
    if not 0 <= p <= 1:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    _refuse("inplace", inplace, False, "ops never modify their input")
    if not training or p == 0:
        return input
    if input.dtype.kind != "f":
        raise TypeError(f"dropout needs a floating-point input, got dtype {input.dtype}")
    data = input.data
    if p == 1:
        mask = data * 0          # zeros of the input's dtype and device (NaN stays NaN, as torch)
    else:
        keep = backend.uniform(data.shape, data.dtype, backend.device_of(data)) < 1 - p
        mask = keep.astype(data.dtype) / data.dtype.type(1 - p)
    return DropoutFn.apply(input, mask=mask)


class Dropout(Module):
    """Dropout(p=0.5): in training zero each element with probability p, scale the rest by
    1/(1-p); in eval (model.eval()) the identity."""

    def __init__(self, p=0.5, inplace=False):
        if not 0 <= p <= 1:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        _refuse("inplace", inplace, False, "ops never modify their input")
        self.p = p

    def forward(self, x):
        return dropout(x, self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}, inplace=False"


# ---- pooling ----------------------------------------------------------------------------------
def _out_size(size, k, s, p, d, ceil_mode):
    """PyTorch's pooling output size; with ceil_mode the last window must start inside the
    input or its left padding."""
    out = (size + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    return out


def _windows(kernel, stride, dilation, out):
    """(rows, cols) slices of the padded input, one pair per kernel offset (a, b): the entries
    that offset contributes to every output position."""
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel, stride, dilation, out
    return [(slice(a * dh, a * dh + sh * (oh - 1) + 1, sh),
             slice(b * dw, b * dw + sw * (ow - 1) + 1, sw)) for a in range(kh) for b in range(kw)]


def _canvas(xp, x, padding, kernel, stride, dilation, out, fill):
    """x inside a frame of `fill`: the padding, plus what ceil_mode's last windows overhang."""
    N, C, H, W = x.shape
    (ph, pw) = padding
    rows = max(H + 2 * ph, (out[0] - 1) * stride[0] + dilation[0] * (kernel[0] - 1) + 1)
    cols = max(W + 2 * pw, (out[1] - 1) * stride[1] + dilation[1] * (kernel[1] - 1) + 1)
    canvas = xp.full((N, C, rows, cols), fill, dtype=x.dtype)
    canvas[:, :, ph:ph + H, pw:pw + W] = x
    return canvas


class MaxPool2dFn(Function):
    """out[n, c, i, j] = max over a, b of xpad[n, c, i*s + a*d, j*s + b*d], padding = -inf.

    VJP: each output's gradient goes to the one input that was its maximum (the first one in
    the window on a tie, as PyTorch); where windows overlap the contributions add up.
    """

    @staticmethod
    def forward(ctx, x, kernel, stride, padding, dilation, out):
        xp = ctx.xp
        canvas = _canvas(xp, x, padding, kernel, stride, dilation, out, -xp.inf)
        slices = _windows(kernel, stride, dilation, out)
        windows = xp.stack([canvas[:, :, r, c] for r, c in slices])   # (kh*kw, N, C, OH, OW)
        ctx.which = windows.argmax(axis=0)          # which kernel offset won, per output
        ctx.slices, ctx.canvas_shape, ctx.in_shape = slices, canvas.shape, x.shape
        ctx.padding = padding
        return windows.max(axis=0)

    @staticmethod
    def backward(ctx, dout):
        xp, (ph, pw), (H, W) = ctx.xp, ctx.padding, ctx.in_shape[2:]
        dcanvas = xp.zeros(ctx.canvas_shape, dtype=dout.dtype)
        for k, (r, c) in enumerate(ctx.slices):
            dcanvas[:, :, r, c] += dout * (ctx.which == k)
        return dcanvas[:, :, ph:ph + H, pw:pw + W]


class AvgPool2dFn(Function):
    """out[n, c, i, j] = sum over a, b of xpad[n, c, i*s + a, j*s + b] / divisor[i, j],
    padding = 0; divisor counts the window's cells (see avg_pool2d for which).

    VJP: every cell of a window gets dout[i, j] / divisor[i, j]; overlaps add up.
    """

    @staticmethod
    def forward(ctx, x, kernel, stride, padding, out, divisor):
        xp = ctx.xp
        canvas = _canvas(xp, x, padding, kernel, stride, (1, 1), out, 0)
        slices = _windows(kernel, stride, (1, 1), out)
        total = xp.zeros(x.shape[:2] + tuple(out), dtype=x.dtype)
        for r, c in slices:
            total += canvas[:, :, r, c]
        ctx.divisor = xp.asarray(divisor, dtype=x.dtype)                # (OH, OW)
        ctx.slices, ctx.canvas_shape, ctx.in_shape = slices, canvas.shape, x.shape
        ctx.padding = padding
        return total / ctx.divisor

    @staticmethod
    def backward(ctx, dout):
        xp, (ph, pw), (H, W) = ctx.xp, ctx.padding, ctx.in_shape[2:]
        share = dout / ctx.divisor
        dcanvas = xp.zeros(ctx.canvas_shape, dtype=dout.dtype)
        for r, c in ctx.slices:
            dcanvas[:, :, r, c] += share
        return dcanvas[:, :, ph:ph + H, pw:pw + W]


def _pool_args(fn, x, kernel_size, stride, padding, dilation, ceil_mode):
    """Check a pooling call as PyTorch does; returns the pairs and the output size."""
    if not isinstance(x, Tensor) or x.ndim not in (3, 4) or x.data.size == 0:
        raise ValueError(f"{fn}: expected a non-empty 3D (C, H, W) or 4D (N, C, H, W) tensor, "
                         f"got shape {getattr(x, 'shape', type(x).__name__)}")
    if x.dtype.kind != "f":
        raise TypeError(f"{fn}: expected a floating-point input, got dtype {x.dtype}")
    kernel = _pair(kernel_size, "kernel_size")
    stride = kernel if stride is None or stride == () else _pair(stride, "stride")
    padding, dilation = _pair(padding, "padding"), _pair(dilation, "dilation")
    if min(kernel) <= 0 or min(stride) <= 0 or min(dilation) <= 0:
        raise ValueError(f"{fn}: kernel_size {kernel}, stride {stride} and dilation {dilation} "
                         "must be positive")
    for p, k, d in zip(padding, kernel, dilation):
        if not 0 <= p <= (d * (k - 1) + 1) // 2:
            raise ValueError(f"{fn}: pad should be at most half of effective kernel size, but "
                             f"got pad={p}, kernel_size={k} and dilation={d}")
    H, W = x.shape[-2:]
    out = tuple(_out_size(n, k, s, p, d, ceil_mode) for n, k, s, p, d in
                zip((H, W), kernel, stride, padding, dilation))
    if min(out) < 1:
        raise ValueError(f"{fn}: input of shape {x.shape} is too small for kernel {kernel} "
                         f"(dilation {dilation}, padding {padding}): output size {out}")
    return kernel, stride, padding, dilation, out


def _batched(x, pool):
    """Apply pool to (N, C, H, W); a (C, H, W) input is treated as a batch of one."""
    if x.ndim == 4:
        return pool(x)
    out = pool(x.reshape((1,) + x.shape))
    return out.reshape(out.shape[1:])


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """2-D max pooling; stride defaults to kernel_size, padding counts as -inf."""
    _refuse("return_indices", return_indices, False, "no MaxUnpool2d to use them")
    kernel, stride, padding, dilation, out = _pool_args(
        "max_pool2d", input, kernel_size, stride, padding, dilation, ceil_mode)
    return _batched(input, lambda x: MaxPool2dFn.apply(
        x, kernel=kernel, stride=stride, padding=padding, dilation=dilation, out=out))


def _window_counts(size, k, s, p, out, count_include_pad):
    """Cells of each window along one axis: PyTorch's divisor rule. Padding cells count when
    count_include_pad; ceil_mode's overhang beyond the padding never does."""
    counts = []
    for o in range(out):
        start = o * s - p
        end = min(start + k, size + p)
        counts.append(end - start if count_include_pad else min(end, size) - max(start, 0))
    return counts


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    """2-D average pooling; stride defaults to kernel_size, padding counts as zeros (and in
    the divisor when count_include_pad); divisor_override replaces the divisor."""
    kernel, stride, padding, _, out = _pool_args(
        "avg_pool2d", input, kernel_size, stride, padding, 1, ceil_mode)
    if divisor_override is not None:
        if divisor_override <= 0:
            raise ValueError(f"avg_pool2d: divisor_override must be positive, got "
                             f"{divisor_override}")
        divisor = [[divisor_override] * out[1]] * out[0]
    else:
        rows, cols = (_window_counts(n, k, s, p, o, count_include_pad) for n, k, s, p, o in
                      zip(input.shape[-2:], kernel, stride, padding, out))
        divisor = [[r * c for c in cols] for r in rows]
    return _batched(input, lambda x: AvgPool2dFn.apply(
        x, kernel=kernel, stride=stride, padding=padding, out=out, divisor=divisor))


class AdaptiveAvgPool2dFn(Function):
    """out[n, c] = P_h x[n, c] P_w^T, where row i of P_h (OH, H) averages input rows
    floor(i H / OH) .. ceil((i + 1) H / OH) - 1 (PyTorch's bins; likewise P_w for columns).

    VJP: dx[n, c] = P_h^T dout[n, c] P_w.
    """

    @staticmethod
    def forward(ctx, x, row_bins, col_bins):
        xp = ctx.xp
        ctx.ph, ctx.pw = (_bin_matrix(xp, bins, n, x.dtype)
                          for bins, n in ((row_bins, x.shape[-2]), (col_bins, x.shape[-1])))
        return ctx.ph @ x @ ctx.pw.T           # (OH, H) @ (N, C, H, W) @ (W, OW)

    @staticmethod
    def backward(ctx, dout):
        return ctx.ph.T @ dout @ ctx.pw        # (H, OH) @ (N, C, OH, OW) @ (OW, W)


def _bin_matrix(xp, bins, size, dtype):
    p = xp.zeros((len(bins), size), dtype=dtype)
    for i, (start, end) in enumerate(bins):
        p[i, start:end] = 1 / (end - start)
    return p


def adaptive_avg_pool2d(input, output_size):
    """Average pooling to a fixed output size (an int, a pair, None keeps that axis)."""
    if not isinstance(input, Tensor) or input.ndim not in (3, 4):
        raise ValueError(f"adaptive_avg_pool2d: expected a 3D or 4D tensor, got shape "
                         f"{getattr(input, 'shape', type(input).__name__)}")
    sizes = (output_size, output_size) if not isinstance(output_size, (tuple, list)) \
        else tuple(output_size)
    if len(sizes) != 2:
        raise ValueError(f"adaptive_avg_pool2d: output_size must be an int or a pair, got "
                         f"{output_size!r}")
    sizes = tuple(n if o is None else o for o, n in zip(sizes, input.shape[-2:]))
    if min(sizes) <= 0:
        raise ValueError(f"adaptive_avg_pool2d: output_size must be positive, got {sizes}")
    row_bins, col_bins = ([(i * n // o, -(-(i + 1) * n // o)) for i in range(o)]
                          for o, n in zip(sizes, input.shape[-2:]))
    return AdaptiveAvgPool2dFn.apply(input, row_bins=row_bins, col_bins=col_bins)


class MaxPool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False,
                 ceil_mode=False):
        _refuse("return_indices", return_indices, False, "no MaxUnpool2d to use them")
        self.kernel_size, self.padding = kernel_size, padding
        self.stride = kernel_size if stride is None else stride
        self.dilation, self.ceil_mode = dilation, ceil_mode

    def forward(self, x):
        return max_pool2d(x, self.kernel_size, self.stride, self.padding, self.dilation,
                          self.ceil_mode)

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class AvgPool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True, divisor_override=None):
        self.kernel_size, self.padding = kernel_size, padding
        self.stride = kernel_size if stride is None else stride
        self.ceil_mode, self.count_include_pad = ceil_mode, count_include_pad
        self.divisor_override = divisor_override

    def forward(self, x):
        return avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                          self.count_include_pad, self.divisor_override)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AdaptiveAvgPool2d(Module):
    def __init__(self, output_size):
        self.output_size = output_size

    def forward(self, x):
        return adaptive_avg_pool2d(x, self.output_size)

    def extra_repr(self):
        return f"output_size={self.output_size}"


# ---- activations ------------------------------------------------------------------------------
class LeakyReLUFn(Function):
    """y = x for x > 0, negative_slope * x otherwise.   VJP: dx = dout * (1 or negative_slope)."""

    @staticmethod
    def forward(ctx, x, negative_slope):
        positive = x > 0
        ctx.save_for_backward(positive)
        ctx.negative_slope = negative_slope
        return ctx.xp.where(positive, x, x * negative_slope)

    @staticmethod
    def backward(ctx, dout):
        (positive,) = ctx.saved
        return ctx.xp.where(positive, dout, dout * ctx.negative_slope)


def leaky_relu(input, negative_slope=0.01, inplace=False):
    _refuse("inplace", inplace, False, "ops never modify their input")
    return LeakyReLUFn.apply(input, negative_slope=negative_slope)


# W. J. Cody's rational approximations (Math. Comp. 23, 1969), accurate to float64 precision:
# erf(x) = x A(x^2)/B(x^2) for |x| <= 0.46875; erfc(x) = e^{-x^2} C(x)/D(x) up to 4, and
# e^{-x^2}/x (1/sqrt(pi) - z P(z)/Q(z)), z = 1/x^2, beyond. NumPy has no erf of its own.
_ERF_A = (1.85777706184603153e-1, 3.16112374387056560e0, 1.13864154151050156e2,
          3.77485237685302021e2, 3.20937758913846947e3)
_ERF_B = (1.0, 2.36012909523441209e1, 2.44024637934444173e2, 1.28261652607737228e3,
          2.84423683343917062e3)
_ERF_C = (2.15311535474403846e-8, 5.64188496988670089e-1, 8.88314979438837594e0,
          6.61191906371416295e1, 2.98635138197400131e2, 8.81952221241769090e2,
          1.71204761263407058e3, 2.05107837782607147e3, 1.23033935479799725e3)
_ERF_D = (1.0, 1.57449261107098347e1, 1.17693950891312499e2, 5.37181101862009858e2,
          1.62138957456669019e3, 3.29079923573345963e3, 4.36261909014324716e3,
          3.43936767414372164e3, 1.23033935480374942e3)
_ERF_P = (1.63153871373020978e-2, 3.05326634961232344e-1, 3.60344899949804439e-1,
          1.25781726111229246e-1, 1.60837851487422766e-2, 6.58749161529837803e-4)
_ERF_Q = (1.0, 2.56852019228982242e0, 1.87295284992346047e0, 5.27905102951428412e-1,
          6.05183413124413191e-2, 2.33520497626869185e-3)


def _polyval(coeffs, x):
    out = coeffs[0]
    for c in coeffs[1:]:
        out = out * x + c
    return out


def erf(xp, x):
    """The error function of an array, elementwise, with array methods only (CPU and GPU)."""
    y = xp.abs(x)
    small = xp.minimum(y, 0.5) ** 2
    erf_small = y * _polyval(_ERF_A, small) / _polyval(_ERF_B, small)
    mid = xp.minimum(y, 4.0)
    erfc_mid = xp.exp(-mid * mid) * _polyval(_ERF_C, mid) / _polyval(_ERF_D, mid)
    big = xp.maximum(y, 4.0)
    z = 1 / (big * big)
    erfc_big = xp.exp(-big * big) / big * (1 / math.sqrt(math.pi)
                                           - z * _polyval(_ERF_P, z) / _polyval(_ERF_Q, z))
    out = xp.where(y <= 0.46875, erf_small, 1 - xp.where(y <= 4.0, erfc_mid, erfc_big))
    return xp.where(x < 0, -out, out).astype(x.dtype, copy=False)


_SQRT_2_OVER_PI = math.sqrt(2 / math.pi)


class GELUFn(Function):
    """y = x Phi(x), Phi the standard normal CDF = (1 + erf(x / sqrt 2)) / 2   (Hendrycks &
    Gimpel 2016);  VJP: dx = dout (Phi(x) + x phi(x)), phi(x) = e^{-x^2/2} / sqrt(2 pi).

    approximate='tanh': y = x (1 + tanh(u)) / 2 with u = sqrt(2/pi) (x + 0.044715 x^3);
    VJP: dx = dout ((1 + t) / 2 + x (1 - t^2) / 2 sqrt(2/pi) (1 + 3 * 0.044715 x^2)), t = tanh(u).
    """

    @staticmethod
    def forward(ctx, x, approximate):
        xp = ctx.xp
        ctx.save_for_backward(x)
        ctx.approximate = approximate
        if approximate == "tanh":
            return 0.5 * x * (1 + xp.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x ** 3)))
        return 0.5 * x * (1 + erf(xp, x / math.sqrt(2)))

    @staticmethod
    def backward(ctx, dout):
        xp, (x,) = ctx.xp, ctx.saved
        if ctx.approximate == "tanh":
            t = xp.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x ** 3))
            du = _SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x * x)
            return dout * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du)
        cdf = 0.5 * (1 + erf(xp, x / math.sqrt(2)))
        pdf = xp.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
        return dout * (cdf + x * pdf)


def _check_approximate(approximate):
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate argument must be either none or tanh, got "
                         f"{approximate!r}")


def gelu(input, approximate="none"):
    _check_approximate(approximate)
    return GELUFn.apply(input, approximate=approximate)


class LeakyReLU(Module):
    def __init__(self, negative_slope=0.01, inplace=False):
        _refuse("inplace", inplace, False, "ops never modify their input")
        self.negative_slope = negative_slope

    def forward(self, x):
        return leaky_relu(x, self.negative_slope)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}"


class GELU(Module):
    def __init__(self, approximate="none"):
        _check_approximate(approximate)
        self.approximate = approximate

    def forward(self, x):
        return gelu(x, self.approximate)

    def extra_repr(self):
        return f"approximate={self.approximate!r}"


class Softmax(Module):
    """Softmax over `dim`. dim=None picks PyTorch's legacy implicit dimension (0 for 0-, 1- and
    3-D input, else 1) with PyTorch's warning; pass dim explicitly."""

    def __init__(self, dim=None):
        self.dim = dim

    def forward(self, x):
        dim = self.dim
        if dim is None:
            import warnings
            dim = 0 if x.ndim in (0, 1, 3) else 1
            warnings.warn("Implicit dimension choice for softmax has been deprecated. Change "
                          f"the call to include dim={dim} as an argument.", stacklevel=2)
        return x.softmax(dim)

    def extra_repr(self):
        return f"dim={self.dim}"


class Identity(Module):
    """Returns its input; any constructor arguments are ignored, as in PyTorch."""

    def __init__(self, *args, **kwargs):
        pass

    def forward(self, x):
        return x


# ---- embeddings -------------------------------------------------------------------------------
class EmbeddingFn(Function):
    """out = weight[indices]: row lookup, (num_embeddings, dim) -> indices.shape + (dim,).

    VJP: dweight = zeros with dout's rows scatter-added at the indices (a repeated index
    accumulates); the padding_idx row gets no gradient, so it stays as it is.
    """

    @staticmethod
    def forward(ctx, weight, indices, padding_idx):
        ctx.indices, ctx.padding_idx, ctx.shape = indices, padding_idx, weight.shape
        return weight[indices]

    @staticmethod
    def backward(ctx, dout):
        dweight = ctx.xp.zeros(ctx.shape, dtype=dout.dtype)
        ctx.xp.add.at(dweight, ctx.indices, dout)
        if ctx.padding_idx is not None:
            dweight[ctx.padding_idx] = 0
        return dweight


def embedding(input, weight, padding_idx=None, max_norm=None, norm_type=2.0,
              scale_grad_by_freq=False, sparse=False):
    """Look up rows of weight (num_embeddings, dim) at integer indices `input`."""
    _refuse("max_norm", max_norm, None, "rows are never renormalised")
    _refuse("scale_grad_by_freq", scale_grad_by_freq, False, "gradients are plain sums")
    _refuse("sparse", sparse, False, "gradients are dense arrays")
    data = input.data if isinstance(input, Tensor) else input
    xp = backend.xp_of(weight.data)
    data = backend.to_device(data, weight.device) if backend.is_array(data) else xp.asarray(data)
    if data.dtype.kind not in "iu":
        raise TypeError(f"embedding: indices must be integers, got dtype {data.dtype}")
    n = weight.shape[0]
    if data.size and (int(data.min()) < 0 or int(data.max()) >= n):
        raise IndexError(f"embedding: index out of range: indices span {int(data.min())}.."
                         f"{int(data.max())}, but there are {n} embeddings (0..{n - 1})")
    if padding_idx is not None and padding_idx < 0:
        padding_idx += n
    return EmbeddingFn.apply(weight, indices=data, padding_idx=padding_idx)


class Embedding(Module):
    """A lookup table of num_embeddings vectors of size embedding_dim, initialised N(0, 1) as
    PyTorch; the padding_idx row starts at zero and is never trained."""

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None, max_norm=None,
                 norm_type=2.0, scale_grad_by_freq=False, sparse=False, _weight=None,
                 _freeze=False, device=None, dtype=None):
        _refuse("max_norm", max_norm, None, "rows are never renormalised")
        _refuse("scale_grad_by_freq", scale_grad_by_freq, False, "gradients are plain sums")
        _refuse("sparse", sparse, False, "gradients are dense arrays")
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(f"Embedding: padding_idx {padding_idx} must be within "
                                 f"num_embeddings ({num_embeddings})")
            padding_idx %= num_embeddings
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.padding_idx = padding_idx
        if _weight is None:
            self.weight = Parameter(np.zeros((num_embeddings, embedding_dim)),
                                    requires_grad=not _freeze)
            self.reset_parameters()
        else:
            w = _weight.data if isinstance(_weight, Tensor) else _weight
            if tuple(w.shape) != (num_embeddings, embedding_dim):
                raise ValueError(f"Embedding: _weight has shape {tuple(w.shape)}, expected "
                                 f"({num_embeddings}, {embedding_dim})")
            self.weight = Parameter(w, requires_grad=not _freeze, dtype=w.dtype)
        self._place(device, dtype)

    def reset_parameters(self):
        """N(0, 1) rows from minigrad's generator, the padding_idx row zero (as PyTorch)."""
        w = backend.rng().standard_normal(self.weight.shape)
        if self.padding_idx is not None:
            w[self.padding_idx] = 0
        self.weight.data[...] = backend.to_device(w.astype(self.weight.dtype), self.weight.device)

    @classmethod
    def from_pretrained(cls, embeddings, freeze=True, padding_idx=None, max_norm=None,
                        norm_type=2.0, scale_grad_by_freq=False, sparse=False):
        """An Embedding holding a copy of `embeddings` (rows, dim); frozen unless freeze=False."""
        rows, dim = embeddings.shape
        return cls(rows, dim, padding_idx, max_norm, norm_type, scale_grad_by_freq, sparse,
                   _weight=embeddings, _freeze=freeze)

    def forward(self, input):
        return embedding(input, self.weight, self.padding_idx)

    def extra_repr(self):
        text = f"{self.num_embeddings}, {self.embedding_dim}"
        return text if self.padding_idx is None else text + f", padding_idx={self.padding_idx}"
