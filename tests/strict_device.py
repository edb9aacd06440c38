"""A strict stand-in for CuPy, so CPU-only CI catches NumPy calls on device arrays.

`StrictArray` wraps a NumPy array the way a CuPy array wraps GPU memory: it is its own type,
its methods and operators return StrictArrays, and it refuses implicit conversion to NumPy
(`np.asarray(a)`, `np.exp(a)`, `ndarray + a` all raise TypeError, as CuPy does). The module
`xp` below plays `cupy`: the NumPy functions under the same names, taking and returning
StrictArrays. Registered as the device "strict", it runs the op table, the layers and a training
step on CPU machines; any code path that reaches for NumPy on device data fails there.
"""
import operator

import numpy as np

from minigrad import backend


def _unwrap(obj):
    if isinstance(obj, StrictArray):
        return obj._a
    if isinstance(obj, np.ndarray):
        raise TypeError("strict device: a NumPy array was mixed with a device array; move it "
                        "with backend.to_device first (CuPy refuses this too)")
    if isinstance(obj, (list, tuple)):
        return type(obj)(_unwrap(o) for o in obj)
    if isinstance(obj, dict):
        return {k: _unwrap(v) for k, v in obj.items()}
    return obj


def _wrap(obj):
    if isinstance(obj, (np.ndarray, np.generic)) and not isinstance(obj, np.dtype):
        return StrictArray(np.asarray(obj))     # reductions give 0-d device arrays, as CuPy
    if isinstance(obj, tuple):
        return tuple(_wrap(o) for o in obj)
    if isinstance(obj, list):
        return [_wrap(o) for o in obj]
    return obj


def _call(fn):
    def wrapped(*args, **kwargs):
        return _wrap(fn(*_unwrap(args), **_unwrap(kwargs)))
    return wrapped


class StrictArray:
    __slots__ = ("_a",)
    __array_ufunc__ = None          # np.exp(a), ndarray + a: refused

    def __init__(self, array):
        self._a = array

    def __array__(self, *args, **kwargs):
        raise TypeError("Implicit conversion to a NumPy array is not allowed (strict device, "
                        "as CuPy). Use backend.to_numpy(array) to copy it to the host.")

    def __getattr__(self, name):            # shape, dtype, strides, flags, reshape, sum, ...
        attr = getattr(self._a, name)
        return _call(attr) if callable(attr) else _wrap(attr)

    @property
    def base(self):
        return None if self._a.base is None else StrictArray(self._a.base)

    @property
    def T(self):
        return StrictArray(self._a.T)

    def get(self):
        """The host copy (CuPy's name)."""
        return self._a.copy()

    def __getitem__(self, index):
        return _wrap(self._a[_unwrap(index)])

    def __setitem__(self, index, value):
        self._a[_unwrap(index)] = _unwrap(value)

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        return (_wrap(v) for v in self._a)

    def __bool__(self):
        return bool(self._a)

    def __float__(self):
        return float(self._a)

    def __int__(self):
        return int(self._a)

    def __index__(self):
        return operator.index(self._a)

    def __repr__(self):
        return f"StrictArray({self._a!r})"

    def item(self):
        return self._a.item()

    def tolist(self):
        return self._a.tolist()


def _binary(op, reflected=False):
    def method(self, other):
        other = _unwrap(other)
        return _wrap(op(other, self._a) if reflected else op(self._a, other))
    return method


def _inplace(op):
    def method(self, other):
        op(self._a, _unwrap(other))
        return self
    return method


for _name in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul", "and", "or",
              "xor"):
    _op = getattr(operator, _name if _name not in ("and", "or") else _name + "_")
    setattr(StrictArray, f"__{_name}__", _binary(_op))
    setattr(StrictArray, f"__r{_name}__", _binary(_op, reflected=True))
    setattr(StrictArray, f"__i{_name}__", _inplace(getattr(operator, f"i{_name}")))
for _name in ("lt", "le", "gt", "ge", "eq", "ne"):
    setattr(StrictArray, f"__{_name}__", _binary(getattr(operator, _name)))
for _name in ("neg", "pos", "abs", "invert"):
    setattr(StrictArray, f"__{_name}__", (lambda op: lambda self: _wrap(op(self._a)))(
        getattr(operator, _name)))
StrictArray.__hash__ = None


class _Namespace:
    """numpy's namespace with every function taking and returning StrictArrays."""

    def __init__(self, module):
        self._module = module

    def __getattr__(self, name):
        attr = getattr(self._module, name)
        if isinstance(attr, type) or isinstance(attr, np.dtype):   # np.float32, dtypes
            return attr
        if callable(attr):
            return _Callable(attr)
        if hasattr(attr, "__dict__") and not isinstance(attr, (int, float)):
            return _Namespace(attr)           # np.lib, np.lib.stride_tricks, np.random
        return attr


class _Callable:
    """A NumPy function or ufunc; its methods (np.add.at) unwrap their arguments too."""

    def __init__(self, fn):
        self._fn = fn

    def __call__(self, *args, **kwargs):
        return _wrap(self._fn(*_unwrap(args), **_unwrap(kwargs)))

    def __getattr__(self, name):
        return _Callable(getattr(self._fn, name))


def _host_to_device(copy):
    """cupy.asarray / cupy.array: the one explicit way host data (lists, NumPy) gets in; like
    a copy to GPU memory, host data always lands in a new C-ordered array."""
    def convert(a, dtype=None, copy=copy):
        if isinstance(a, StrictArray):
            return StrictArray(np.array(a._a, dtype=dtype, copy=copy))
        return StrictArray(np.array(a, dtype=dtype, copy=True, order="C"))
    return convert


xp = _Namespace(np)
xp.ndarray = StrictArray
xp.asarray = _host_to_device(copy=None)
xp.array = _host_to_device(copy=True)


def register():
    """Register the device "strict" with minigrad's backend (idempotent)."""
    backend.register_device("strict", xp, StrictArray, to_host=lambda a: a.get(),
                            from_host=xp.asarray)
