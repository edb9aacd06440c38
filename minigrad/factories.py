"""Tensor factories with PyTorch's names, arguments and default dtypes: zeros, ones, full,
arange, linspace, eye, random tensors (from minigrad's seeded generator) and the *_like forms.

Floats default to float32, integer fills and ranges to int64, as in PyTorch.
"""
import numpy as np

from . import backend
from .tensor import Tensor


def _shape(size):
    """zeros(2, 3) and zeros((2, 3)) both mean shape (2, 3)."""
    return tuple(size[0]) if len(size) == 1 and isinstance(size[0], (tuple, list)) else size


def _make(array, dtype, device, requires_grad):
    return Tensor(backend.to_device(array, device or "cpu"), requires_grad=requires_grad,
                  dtype=dtype)


def zeros(*size, dtype=np.float32, device=None, requires_grad=False):
    return _make(np.zeros(_shape(size), dtype), dtype, device, requires_grad)


def ones(*size, dtype=np.float32, device=None, requires_grad=False):
    return _make(np.ones(_shape(size), dtype), dtype, device, requires_grad)


def full(size, fill_value, *, dtype=None, device=None, requires_grad=False):
    """A tensor of `size` filled with fill_value; dtype from the value (bool, int64, float32)."""
    if dtype is None:
        dtype = (np.bool_ if isinstance(fill_value, bool) else
                 np.int64 if isinstance(fill_value, int) else np.float32)
    return _make(np.full(_shape((size,)), fill_value, dtype), dtype, device, requires_grad)


def eye(n, m=None, *, dtype=np.float32, device=None, requires_grad=False):
    return _make(np.eye(n, m, dtype=dtype), dtype, device, requires_grad)


def arange(start, end=None, step=1, *, dtype=None, device=None, requires_grad=False):
    """[start, end) in steps; int64 when all of them are ints, float32 otherwise."""
    if end is None:
        start, end = 0, start
    if dtype is None:
        dtype = np.int64 if all(isinstance(v, int) for v in (start, end, step)) else np.float32
    return _make(np.arange(start, end, step).astype(dtype), dtype, device, requires_grad)


def linspace(start, end, steps, *, dtype=np.float32, device=None, requires_grad=False):
    return _make(np.linspace(start, end, steps), dtype, device, requires_grad)


def randn(*size, dtype=np.float32, device=None, requires_grad=False):
    """Standard-normal samples from minigrad's seeded generator (see manual_seed)."""
    return _make(backend.rng().standard_normal(_shape(size)), dtype, device, requires_grad)


def rand(*size, dtype=np.float32, device=None, requires_grad=False):
    """Uniform [0, 1) samples from minigrad's seeded generator."""
    return _make(backend.rng().random(_shape(size)), dtype, device, requires_grad)


def randint(low, high=None, size=None, *, dtype=np.int64, device=None):
    """Integers in [low, high) (or [0, low) when high is omitted, as randint(high, size))."""
    if size is None:
        raise TypeError("randint() needs a size, e.g. randint(10, (3,)) or randint(2, 10, (3,))")
    if high is None:
        low, high = 0, low
    return _make(backend.rng().integers(low, high, _shape((size,))), dtype, device, False)


def _like(fill, t, dtype, device, requires_grad):
    dtype = t.dtype if dtype is None else dtype
    return fill(t.shape, dtype=dtype, device=device or t.device, requires_grad=requires_grad)


def zeros_like(input, *, dtype=None, device=None, requires_grad=False):
    return _like(zeros, input, dtype, device, requires_grad)


def ones_like(input, *, dtype=None, device=None, requires_grad=False):
    return _like(ones, input, dtype, device, requires_grad)


def full_like(input, fill_value, *, dtype=None, device=None, requires_grad=False):
    return full(input.shape, fill_value, dtype=input.dtype if dtype is None else dtype,
                device=device or input.device, requires_grad=requires_grad)


def randn_like(input, *, dtype=None, device=None, requires_grad=False):
    return _like(randn, input, dtype, device, requires_grad)


def rand_like(input, *, dtype=None, device=None, requires_grad=False):
    return _like(rand, input, dtype, device, requires_grad)
