"""Tensor's named methods, with PyTorch's names and arguments: reductions, shape, elementwise
functions and dtype conversions. Each records one or more ops of ops.py; the engine and the
operators (+, *, @, indexing) are in tensor.py, whose Tensor class inherits these.
"""
from collections import namedtuple

import numpy as np

from . import backend, kernels, ops as _ops


class TensorMethods:
    __slots__ = ()

    # ---- methods: each records ops of ops.py, with PyTorch's names and arguments -----------
    # Reductions take PyTorch's dim/keepdim or NumPy's axis/keepdims (PyTorch accepts both);
    # dtype/out are accepted as np.mean(t) passes them, and anything else is refused by name.
    def sum(self, dim=None, keepdim=False, **numpy_style):
        dim, keepdim = _reduction_args("sum", dim, keepdim, numpy_style)
        return _ops.Sum.apply(self, axis=dim, keepdims=keepdim)

    def mean(self, dim=None, keepdim=False, **numpy_style):
        dim, keepdim = _reduction_args("mean", dim, keepdim, numpy_style)
        return _ops.Mean.apply(self, axis=dim, keepdims=keepdim)

    def amax(self, dim=None, keepdim=False):
        """The maximum over dim (all axes for None or ()); tied elements share the gradient
        evenly."""
        return _ops.Max.apply(self, axis=None if dim in (None, ()) else dim, keepdims=keepdim)

    def amin(self, dim=None, keepdim=False):
        return -(-self).amax(dim, keepdim)

    def max(self, dim=None, keepdim=False, **numpy_style):
        """max() -> the largest element; max(dim) -> (values, indices), as in PyTorch: the
        gradient goes to the index returned (the first maximum)."""
        dim, keepdim = _reduction_args("max", dim, keepdim, numpy_style)
        if dim is None:
            return self.amax()
        return self._pick_along(dim, keepdim, self.data.argmax, "max")

    def min(self, dim=None, keepdim=False, **numpy_style):
        dim, keepdim = _reduction_args("min", dim, keepdim, numpy_style)
        if dim is None:
            return self.amin()
        return self._pick_along(dim, keepdim, self.data.argmin, "min")

    def _pick_along(self, dim, keepdim, arg, name):
        if not isinstance(dim, int):
            raise TypeError(f"{name}(dim) takes one int dim, got {dim!r}; use amax/amin for "
                            "several dims")
        index = arg(axis=dim, keepdims=True)             # (..., 1, ...) at dim
        values = self.gather(dim, self._make(index, False, None))
        if not keepdim:
            values, index = values.squeeze(dim), index.squeeze(dim)
        return MinMax(values, self._make(index, False, None))

    def argmax(self, dim=None, keepdim=False):
        """Index of the largest element (in the flattened tensor for dim=None)."""
        return self._make(self.data.argmax(axis=dim, keepdims=keepdim), False, None)

    def argmin(self, dim=None, keepdim=False):
        return self._make(self.data.argmin(axis=dim, keepdims=keepdim), False, None)

    def var(self, dim=None, unbiased=None, keepdim=False, *, correction=None, **numpy_style):
        """Variance over dim: divides by m - correction; correction=1 (unbiased, Bessel)
        by default, unbiased=False or correction=0 for the biased one BatchNorm uses."""
        if isinstance(dim, bool):    # PyTorch's var(unbiased) overload: x.var(False) is biased
            if unbiased is not None:
                raise TypeError(f"var: got unbiased={dim} as the first argument and again "
                                f"as unbiased={unbiased}")
            dim, unbiased = None, dim
        dim, keepdim = _reduction_args("var", dim, keepdim, numpy_style)
        if unbiased is not None and correction is not None:
            raise TypeError("var: pass unbiased or correction, not both")
        correction = (1 if unbiased in (None, True) else 0) if correction is None else correction
        return _ops.Var.apply(self, axis=dim, keepdims=keepdim, correction=correction)

    def std(self, dim=None, unbiased=None, keepdim=False, *, correction=None, **numpy_style):
        return self.var(dim, unbiased, keepdim, correction=correction, **numpy_style).sqrt()

    def gather(self, dim, index):
        """out[i][j] = self[index[i][j]][j] for dim 0 (and so on): PyTorch's gather."""
        index = index.data if hasattr(index, "requires_grad") else index     # a Tensor's array
        return _ops.Gather.apply(self, index=backend.to_device(index, self.device), dim=dim)

    # ---- shape --------------------------------------------------------------------------
    def size(self, dim=None):
        return self.shape if dim is None else self.shape[dim]

    def dim(self):
        return self.ndim

    def reshape(self, *shape):
        shape = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        return kernels.pick(_ops.Reshape).apply(self, shape=tuple(shape))

    def view(self, *shape):
        """reshape, refused (as PyTorch refuses it) where it could not share memory."""
        if not self.data.flags.c_contiguous:
            raise RuntimeError(f"view size is not compatible with input tensor's size and "
                               f"stride (a non-contiguous tensor of shape {self.shape}). "
                               "Use .reshape(...) instead.")
        return self.reshape(*shape)

    def flatten(self, start_dim=0, end_dim=-1):
        """Merge axes start_dim..end_dim (both included) into one, as torch.flatten."""
        shape, n = self.shape, max(self.ndim, 1)        # a 0-d tensor flattens to (1,)
        start, end = _axis(start_dim, n, "flatten", shape), _axis(end_dim, n, "flatten", shape)
        if start > end:
            raise ValueError(f"flatten: start_dim ({start_dim}) comes after end_dim ({end_dim})")
        merged = int(np.prod(shape[start:end + 1], dtype=np.int64))
        return self.reshape(shape[:start] + (merged,) + shape[end + 1:])

    def unsqueeze(self, dim):
        dim = _axis(dim, self.ndim + 1, "unsqueeze", self.shape)
        return self.reshape(self.shape[:dim] + (1,) + self.shape[dim:])

    def squeeze(self, dim=None):
        """Drop axes of size 1 (only `dim`, if given and of size 1, as in PyTorch)."""
        given = dim if isinstance(dim, (tuple, list)) else (dim,)
        dims = range(self.ndim) if dim is None else [_axis(d, self.ndim, "squeeze", self.shape)
                                                     for d in given]
        drop = {d for d in dims if self.shape[d] == 1}
        return self.reshape(tuple(n for d, n in enumerate(self.shape) if d not in drop))

    def permute(self, *dims):
        dims = dims[0] if len(dims) == 1 and isinstance(dims[0], (tuple, list)) else dims
        return _ops.Permute.apply(self, axes=tuple(dims))

    def transpose(self, dim0, dim1):
        """Swap two axes, as torch.transpose."""
        axes = list(range(self.ndim))
        axes[dim0], axes[dim1] = axes[dim1], axes[dim0]
        return self.permute(axes)

    def t(self):
        if self.ndim > 2:
            raise ValueError(f"t() expects a tensor with <= 2 dimensions, got {self.shape}; "
                             "use transpose(dim0, dim1) or permute")
        return self.permute(tuple(reversed(range(self.ndim))))

    @property
    def T(self):
        return self.permute(tuple(reversed(range(self.ndim))))

    # ---- elementwise ---------------------------------------------------------------------
    def exp(self):
        return _ops.Exp.apply(self)

    def log(self):
        return _ops.Log.apply(self)

    def sqrt(self):
        return _ops.Sqrt.apply(self)

    def abs(self):
        return _ops.Abs.apply(self)

    def tanh(self):
        return _ops.Tanh.apply(self)

    def sigmoid(self):
        return _ops.Sigmoid.apply(self)

    def relu(self):
        return kernels.pick(_ops.ReLU).apply(self)

    def clamp(self, min=None, max=None):
        return _ops.Clip.apply(self, min=min, max=max)

    clip = clamp

    def softmax(self, dim=None, **numpy_style):
        """Softmax along dim (the last axis when not given)."""
        dim = _reduction_args("softmax", dim, False, numpy_style)[0]
        return _ops.Softmax.apply(self, axis=-1 if dim is None else dim)

    def log_softmax(self, dim=None, **numpy_style):
        dim = _reduction_args("log_softmax", dim, False, numpy_style)[0]
        return _ops.LogSoftmax.apply(self, axis=-1 if dim is None else dim)

    def clone(self):
        """A copy with its own memory that stays in the graph (gradients flow through)."""
        return _ops.Clone.apply(self)

    # ---- dtype ---------------------------------------------------------------------------
    def astype(self, dtype):
        dtype = np.dtype(dtype)
        if dtype.kind != "f":                # integers and bools carry no gradient
            return self._make(self.data.astype(dtype), False, None)
        return _ops.Cast.apply(self, dtype=dtype)

    def float(self):
        return self.astype(np.float32)

    def double(self):
        return self.astype(np.float64)

    def long(self):
        return self.astype(np.int64)

    def int(self):
        return self.astype(np.int32)

    def bool(self):
        return self.astype(np.bool_)




MinMax = namedtuple("MinMax", "values indices")    # what max(dim) / min(dim) return


def _axis(d, n, name, shape):
    """A dim in [-n, n) as a non-negative index, or an IndexError naming the shape."""
    if not -n <= d < n:
        raise IndexError(f"{name}: dimension {d} is out of range for a tensor of shape {shape} "
                         f"(expected to be in range of [{-n}, {n - 1}])")
    return d % n


def _reduction_args(name, dim, keepdim, numpy_style):
    """PyTorch's (dim, keepdim) from dim/keepdim or NumPy's axis/keepdims; NumPy's dtype and
    out (passed by np.mean(t)) only with their default; anything else refused by name."""
    unknown = set(numpy_style) - {"axis", "keepdims", "dtype", "out"}
    if unknown:
        raise TypeError(f"{name}() got unexpected keyword arguments {sorted(unknown)}")
    if numpy_style.get("out") is not None or numpy_style.get("dtype") is not None:
        raise TypeError(f"{name}(): minigrad supports no out= or dtype= here; convert the "
                        "result with .astype(dtype)")
    if numpy_style.get("axis") is not None:
        if dim is not None:
            raise TypeError(f"{name}(): pass dim or axis, not both")
        dim = numpy_style["axis"]
    if isinstance(dim, list):
        dim = tuple(dim)
    return dim, bool(numpy_style.get("keepdims", keepdim))


