"""Tensor, the autograd graph and reverse-mode differentiation.

A Tensor wraps a NumPy or CuPy array. Every differentiable operation is a `Function` subclass
(see ops.py) whose `apply` runs its forward on raw arrays and, when gradients are wanted, records
a `Context` on the output. `Tensor.backward` walks those contexts in reverse topological order.
"""
import contextlib

import numpy as np

from . import backend, kernels

_grad_enabled = True


class _GradMode(contextlib.ContextDecorator):
    """Record graphs (`enabled`) or not inside the block; the setting before it comes back."""

    enabled = True

    def __enter__(self):
        global _grad_enabled
        self._prev, _grad_enabled = _grad_enabled, self.enabled

    def __exit__(self, *exc):
        global _grad_enabled
        _grad_enabled = self._prev


class no_grad(_GradMode):
    """Context manager and decorator: operations inside record no graph.

        with no_grad():              @no_grad()
            y = model(x)             def evaluate(model): ...
    """

    enabled = False


class enable_grad(_GradMode):
    """Context manager and decorator: record graphs again inside a no_grad block."""

    enabled = True


def is_grad_enabled():
    return _grad_enabled


class Context:
    """What a Function's forward leaves for its backward.

    `xp` is the array library of the inputs, `saved` the arrays kept by `save_for_backward`,
    `needs_input_grad` one bool per forward input (PyTorch's name) so a backward can skip work.
    Ops may also store plain attributes on it (an axis, a shape).
    """

    # slots for what every op records (set on every op, faster than a dict); __dict__ for the rest
    __slots__ = ("xp", "saved", "fn", "inputs", "needs_input_grad", "__dict__")

    def __init__(self, xp):
        self.xp = xp
        self.saved = ()

    def save_for_backward(self, *arrays):
        self.saved = arrays

    @property
    def parents(self):
        """The Tensor inputs: the graph's edges back from this op's output."""
        return [a for a in self.inputs if isinstance(a, Tensor)]


class Function:
    """Base class of every differentiable op: subclasses define two static methods,

        forward(ctx, *inputs, **options) -> array      (Tensor inputs arrive as arrays)
        backward(ctx, dout) -> one gradient per input (None where there is none)

    Inputs are positional (Tensors, or None for an absent bias); options are keywords.
    """

    @classmethod
    def apply(cls, *inputs, **options):
        """Run forward on the inputs' arrays; when a gradient is wanted, record the graph edge."""
        arrays, needs_grad = [], []
        for a in inputs:                 # one plain loop: it runs for every op of every step
            tensor = isinstance(a, Tensor)
            arrays.append(a.data if tensor else a)
            needs_grad.append(tensor and a.requires_grad)
        ctx = Context(_array_library(cls, inputs))
        out = cls.forward(ctx, *arrays, **options)
        if not (_grad_enabled and True in needs_grad):
            return _make_tensor(out, False, None)
        ctx.fn, ctx.inputs, ctx.needs_input_grad = cls, inputs, tuple(needs_grad)
        return _make_tensor(out, True, ctx)


def _array_library(fn, inputs):
    """The array library all Tensor inputs share; an error naming both devices otherwise."""
    first = None
    for t in inputs:
        if isinstance(t, Tensor):
            if first is None:
                first = t
            elif type(t.data) is not type(first.data):
                raise RuntimeError(f"{fn.__name__}: expected all tensors on the same device, but "
                                   f"found one on {first.device} {first.shape} and one on "
                                   f"{t.device} {t.shape}; move one with .to(device) first")
    return np if first is None or type(first.data) is np.ndarray else backend.xp_of(first.data)


def _input_gradients(ctx, dout, retain_graph):
    """Run ctx's backward, check its contract (one gradient per input), and return a list of
    (input, gradient) for every input that wants one, in its input's shape (a broadcast input
    gets the sum over the axes it was copied along) and dtype."""
    if ctx.saved is None:
        raise RuntimeError(
            f"backward() is running through the graph a second time, but {ctx.fn.__name__}'s "
            "saved arrays were freed after the first backward(); call "
            "backward(retain_graph=True) the first time to run it again")
    grads = ctx.fn.backward(ctx, dout)
    grads = grads if isinstance(grads, tuple) else (grads,)
    if len(grads) != len(ctx.inputs):
        raise RuntimeError(f"{ctx.fn.__name__}.backward returned {len(grads)} gradients for "
                           f"{len(ctx.inputs)} inputs; return None for an input without one")
    if not retain_graph:
        ctx.saved = None        # frees the saved arrays: what keeps training memory flat
    pairs = []                  # a list, not a generator: this runs for every op of every step
    for x, g, wanted in zip(ctx.inputs, grads, ctx.needs_input_grad):
        # no gradient for an input that wants none, or was switched off since forward (PyTorch)
        if g is None or not wanted or not x.requires_grad:
            continue
        if g.shape != x.data.shape:
            g = _unbroadcast(g, x.data.shape, ctx.fn)
        dtype = x.data.dtype
        if g.dtype is not dtype and g.dtype != dtype:
            g = g.astype(dtype)     # PyTorch's rule: a gradient has its input's dtype
        pairs.append((x, g))
    return pairs


def _unbroadcast(grad, shape, fn):
    """Sum `grad` down to `shape`: the one place broadcasting is undone.

    A broadcast input was copied along the new leading axes and along its size-1 axes, so its
    gradient is the sum of the output gradient over exactly those axes. A gradient whose shape
    is no broadcast of `shape` is a bug in `fn`'s backward, reported instead of reshaped.
    """
    extra = grad.ndim - len(shape)
    if extra < 0 or any(n != 1 and n != m for n, m in zip(shape, grad.shape[extra:])):
        raise RuntimeError(f"{fn.__name__}.backward returned a gradient of shape {grad.shape} "
                           f"for an input of shape {shape}; it must have the input's shape "
                           "(or a shape the input broadcasts to)")
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad.reshape(shape)


def _coerce_dtype(array, dtype):
    """Apply minigrad's dtype rule: floats default to float32, integers and bools stay."""
    if dtype is not None:
        return array.astype(dtype, copy=False)
    kind = array.dtype.kind
    if kind == "f":
        return array if array.dtype == np.float32 else array.astype(np.float32)
    if kind in "iub":
        return array
    raise TypeError(
        f"minigrad tensors hold numbers, but got an array of dtype {array.dtype} "
        f"(kind {kind!r}); convert it to a float or integer array first, e.g. "
        "np.asarray(data, dtype=np.float32)")


def _accumulate(t, g, stored):
    """Add g into t.grad under the aliasing rule: a .grad never shares memory with another
    .grad or with the caller's gradient, so an array already stored (`stored` maps id -> array,
    holding it so that no other array can take its id), a view, or a read-only broadcast is
    copied before it becomes a .grad."""
    if t.grad is not None:
        t.grad = t.grad + g
        return
    if id(g) in stored or g.base is not None or not getattr(g.flags, "writeable", True):
        g = g.copy()
    stored[id(g)] = g
    t.grad = g


def _promote(a, b, op):
    """PyTorch's type promotion: an integer or bool operand meeting a float one takes its
    dtype, and dividing two integer tensors gives float32 (NumPy would give float64 for both)."""
    fa, fb = a.dtype.kind == "f", b.dtype.kind == "f"
    if fa != fb:
        return (a, b.astype(a.dtype)) if fa else (a.astype(b.dtype), b)
    if not fa and op is _ops.Div:
        return a.astype(np.float32), b.astype(np.float32)
    return a, b


def _make_tensor(data, requires_grad, ctx):
    """Internal constructor for op outputs: wraps the array as it is (no dtype rule, no copy)."""
    if type(data) is not np.ndarray and not backend.is_array(data):   # the common case first
        data = np.asarray(data)         # NumPy reductions return scalars, not arrays
    t = object.__new__(Tensor)
    t.data, t.grad, t.requires_grad, t._ctx, t._retains_grad = data, None, requires_grad, ctx, False
    return t


# The named methods (sum, reshape, max(dim), ...) live in tensor_methods.py; it records ops of
# ops.py, which needs Function from above: hence this import here, not at the top.
from .tensor_methods import TensorMethods  # noqa: E402


class Tensor(TensorMethods):
    """An n-dimensional array with an optional gradient.

    Tensor(data, *, requires_grad=False, dtype=None, device=None)

    data:  a Python number or nested list, a NumPy or CuPy array, or another Tensor; the
           values are copied, as torch.tensor does (use Tensor._make internally to wrap).
    dtype: floats default to float32 (Python floats and float64 arrays included); pass
           dtype=np.float64 to keep float64. Integer data (class labels) stays integer.
    device: 'cpu' or 'cuda'; by default the device the data is already on.
    """

    __slots__ = ("data", "grad", "requires_grad", "_ctx", "_retains_grad", "__weakref__")
    __array_ufunc__ = None  # make `ndarray * Tensor` defer to Tensor.__rmul__

    def __init__(self, data, *, requires_grad=False, dtype=None, device=None):
        if isinstance(data, Tensor):
            data = data.data
        if device is None:
            device = backend.device_of(data) if backend.is_array(data) else "cpu"
        xp = backend.xp_for(device)
        if backend.is_array(data) and backend.xp_of(data) is not xp:
            data = backend.to_device(data, device)
        try:
            array = xp.asarray(data)
        except (ValueError, TypeError) as exc:
            raise TypeError(f"cannot make a Tensor from {type(data).__name__}: {exc}") from None
        array = _coerce_dtype(array, dtype)
        if array is data:
            # Like torch.tensor, never share the caller's array: optimisers update parameters
            # in place, which would otherwise silently change the array the user passed in.
            array = array.copy()
        if requires_grad and array.dtype.kind != "f":
            raise TypeError(f"only floating-point tensors can require gradients, got dtype "
                            f"{array.dtype}; pass dtype=np.float32 (or float64)")
        self.data = array
        self.grad = None
        self.requires_grad = bool(requires_grad)
        self._ctx = None
        self._retains_grad = False

    _make = staticmethod(_make_tensor)    # Tensor._make(data, requires_grad, ctx)

    # ---- properties --------------------------------------------------------------------
    @property
    def shape(self):
        return self.data.shape

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def device(self):
        return backend.device_of(self.data)

    @property
    def is_leaf(self):
        return self._ctx is None

    @property
    def parents(self):
        """The tensors this one was computed from (empty for a leaf): the graph's edges."""
        return [] if self._ctx is None else self._ctx.parents

    @property
    def grad_fn(self):
        """Name of the op that made this tensor, or None for a leaf."""
        return None if self._ctx is None else self._ctx.fn.__name__

    def numel(self):
        return self.data.size

    def __len__(self):
        return len(self.data)

    def __repr__(self):
        body = np.array2string(backend.to_numpy(self.data), precision=4, separator=", ",
                               prefix="Tensor(", threshold=20, edgeitems=2)
        extra = f", grad_fn={self.grad_fn}" if self._ctx is not None else (
            ", requires_grad=True" if self.requires_grad else "")
        return (f"Tensor({body}, shape={self.shape}, dtype={self.dtype}, "
                f"device={self.device}{extra})")

    # ---- conversion --------------------------------------------------------------------
    def numpy(self):
        """The values as a host NumPy array (copied off the GPU when needed)."""
        return backend.to_numpy(self.data)

    def item(self):
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}")
        return self.data.item()

    def tolist(self):
        return self.data.tolist()

    def detach(self):
        """A tensor sharing the same array, cut from the graph."""
        return Tensor._make(self.data, False, None)

    def to(self, device):
        """This tensor on `device` ('cpu' or 'cuda'); gradients flow back across the move."""
        device = backend.check_device(device)
        if device == self.device:
            return self
        return _ops.ToDevice.apply(self, device=device)

    def cpu(self):
        return self.to("cpu")

    def cuda(self):
        return self.to("cuda")

    def retain_grad(self):
        """Keep `.grad` on this non-leaf tensor after backward (leaves always keep theirs)."""
        self._retains_grad = True
        return self

    def requires_grad_(self, requires_grad=True):
        if requires_grad and self.data.dtype.kind != "f":
            raise TypeError(f"only floating-point tensors can require gradients, got {self.dtype}")
        self.requires_grad = requires_grad
        return self

    def zero_grad(self):
        self.grad = None

    # ---- reverse mode ------------------------------------------------------------------
    def backward(self, gradient=None, retain_graph=False):
        """Accumulate d(self)/d(leaf) into every leaf's `.grad` that requires grad.

        gradient: d(loss)/d(self); may be omitted only when self holds one element (then 1).
        retain_graph: keep the saved arrays so backward can run through this graph again
        (as in PyTorch, they are freed by default: that is what keeps training memory flat).
        """
        if not self.requires_grad:
            raise RuntimeError(
                "backward() called on a tensor that does not require grad: none of the tensors "
                "it was computed from had requires_grad=True (or it was made under no_grad())")
        seed = self._seed_gradient(gradient)
        stored = {id(seed): seed}          # the caller's array must not become a .grad
        if self._ctx is None:              # backward() on a leaf: its gradient is the seed
            return _accumulate(self, seed, stored)
        grads = {self: seed}               # op output -> d(self)/d(output), once complete
        for t in self._topological_order():
            g = grads.pop(t, None)
            if g is None:                  # no path with a gradient reached t
                continue
            if t._retains_grad:
                _accumulate(t, g, stored)
            for x, dx in _input_gradients(t._ctx, g, retain_graph):
                if x._ctx is None:         # a leaf: nothing flows on from it, straight to .grad
                    _accumulate(x, dx, stored)
                else:                      # complete once every op that used x has run
                    grads[x] = grads[x] + dx if x in grads else dx

    def _seed_gradient(self, gradient):
        """The gradient backward starts from: 1 for one element, else the caller's, checked."""
        data = self.data
        if gradient is None:
            if self.data.size != 1:
                raise RuntimeError(
                    f"backward() without a gradient needs a single-element output, got shape "
                    f"{self.shape}; reduce it first (e.g. loss = out.sum()) or pass "
                    f"gradient=<array of shape {self.shape}>")
            return backend.xp_of(data).ones_like(data)
        gradient = gradient.data if isinstance(gradient, Tensor) else gradient
        if type(gradient) is not type(data) or gradient.dtype is not data.dtype:
            gradient = backend.xp_of(data).asarray(gradient, dtype=data.dtype)
        if gradient.shape != data.shape:
            raise ValueError(f"backward(gradient) needs a gradient of shape {self.shape}, "
                             f"got {gradient.shape}")
        return gradient

    def _topological_order(self):
        """self and every op output it depends on that requires grad, each before its inputs
        (leaves are left out: backward hands them their gradients directly).

        Iterative depth-first search (a chain of 10,000 ops would overflow Python's recursion
        limit): a node is emitted once all its inputs were, then the list is reversed.
        """
        order, visited = [], set()
        stack = [(self, False)]
        while stack:
            t, inputs_done = stack.pop()
            if inputs_done:
                order.append(t)
            elif t not in visited:
                visited.add(t)
                stack.append((t, True))
                for p in t._ctx.inputs:
                    if isinstance(p, Tensor) and p._ctx is not None and p.requires_grad \
                            and p not in visited:
                        stack.append((p, False))
        order.reverse()
        return order

    # ---- operators (the ops themselves live in ops.py) ----------------------------------
    def _wrap(self, other):
        """A Python number or array as a constant Tensor on self's device. A constant takes
        self's dtype when both are floats or both integers (as PyTorch types a scalar; for a
        NumPy array this is minigrad's rule, see the README), and a Python float meeting an
        integer tensor is float32, the default float dtype."""
        if isinstance(other, Tensor):
            return other
        xp = backend.xp_of(self.data)
        if backend.is_array(other) and backend.xp_of(other) is not xp:
            raise RuntimeError(f"cannot combine a tensor on {self.device} with an array on "
                               f"{backend.device_of(other)}; move one of them first")
        array = xp.asarray(other)
        if array.dtype.kind not in "fiub":
            raise TypeError(f"cannot combine a Tensor with {type(other).__name__} "
                            f"of dtype {array.dtype}")
        same_kind = (array.dtype.kind == "f") == (self.dtype.kind == "f")
        if same_kind and self.dtype.kind != "b":
            array = array.astype(self.dtype, copy=False)
        elif array.dtype.kind == "f" and array.ndim == 0:
            array = array.astype(np.float32)
        return Tensor._make(array, False, None)

    def _binary(self, op, other, reverse=False):
        """Record op(self, other), or op(other, self), with PyTorch's type promotion."""
        a, b = (self._wrap(other), self) if reverse else (self, self._wrap(other))
        dtype = a.data.dtype
        if b.data.dtype is not dtype or dtype.kind != "f":    # rare: not one float dtype
            a, b = _promote(a, b, op)
        return op.apply(a, b)

    def __add__(self, other):
        return self._binary(_ops.Add, other)

    def __radd__(self, other):
        return self._binary(_ops.Add, other, reverse=True)

    def __sub__(self, other):
        return self._binary(_ops.Sub, other)

    def __rsub__(self, other):
        return self._binary(_ops.Sub, other, reverse=True)

    def __mul__(self, other):
        return self._binary(_ops.Mul, other)

    def __rmul__(self, other):
        return self._binary(_ops.Mul, other, reverse=True)

    def __truediv__(self, other):
        return self._binary(_ops.Div, other)

    def __rtruediv__(self, other):
        return self._binary(_ops.Div, other, reverse=True)

    def __matmul__(self, other):
        return self._binary(_ops.MatMul, other)

    def __rmatmul__(self, other):
        return self._binary(_ops.MatMul, other, reverse=True)

    def __pow__(self, exponent):
        if isinstance(exponent, Tensor) or backend.is_array(exponent):
            raise TypeError("Tensor ** x supports a Python number exponent only; for a tensor "
                            "exponent write (x * base.log()).exp()")
        return _ops.Pow.apply(self, exponent=exponent)

    pow = __pow__

    def __rpow__(self, base):
        # base ** t = exp(t * ln(base)), for a positive Python number base
        return (self * float(np.log(base))).exp()

    def __neg__(self):
        return _ops.Neg.apply(self)

    # Comparisons give boolean tensors without gradient.
    def _compare(self, other, op):
        other = other.data if isinstance(other, Tensor) else other
        return Tensor._make(op(self.data, other), False, None)

    def __lt__(self, other):
        return self._compare(other, lambda a, b: a < b)

    def __le__(self, other):
        return self._compare(other, lambda a, b: a <= b)

    def __gt__(self, other):
        return self._compare(other, lambda a, b: a > b)

    def __ge__(self, other):
        return self._compare(other, lambda a, b: a >= b)

    def __eq__(self, other):
        return self._compare(other, lambda a, b: a == b)

    def __ne__(self, other):
        return self._compare(other, lambda a, b: a != b)

    __hash__ = object.__hash__   # tensors are identified by identity, like PyTorch's

    def __bool__(self):
        if self.data.size != 1:
            raise ValueError(f"the truth value of a tensor of shape {self.shape} is ambiguous; "
                             "use .any() / .all() on .data, or compare a single element")
        return bool(self.data.item())

    def __float__(self):
        return float(self._one_element("float"))

    def __int__(self):
        return int(self._one_element("int"))

    def _one_element(self, what):
        if self.data.size != 1:
            raise ValueError(f"{what}() of a tensor needs exactly one element, got shape "
                             f"{self.shape}; reduce it first (e.g. .sum(), .any()) or index it")
        return self.data.item()

    def __array__(self, dtype=None, copy=None):
        """NumPy's view of a CPU tensor (np.mean(t), plt.hist(t)); a device tensor refuses, as
        CuPy does: call .numpy() to copy it to the host."""
        if self.device != "cpu":
            raise TypeError(f"a tensor on {self.device} cannot become a NumPy array "
                            "implicitly; call .numpy() (or .cpu()) first")
        return self.data if dtype is None else self.data.astype(dtype)

    def __getitem__(self, index):
        # Tensors inside an index are replaced by their arrays: t[idx_tensor] is t[idx_array]
        if isinstance(index, tuple):
            index = tuple(i.data if isinstance(i, Tensor) else i for i in index)
        elif isinstance(index, Tensor):
            index = index.data
        return _ops.GetItem.apply(self, index=index)

def tensor(data, *, dtype=None, device=None, requires_grad=False):
    """PyTorch-style factory: same as Tensor(...)."""
    return Tensor(data, requires_grad=requires_grad, dtype=dtype, device=device)


# ops.py defines the op classes with Function and Tensor from above; importing it last
# lets Tensor's operators call them without an import on every use.
from . import ops as _ops  # noqa: E402
