"""Layers with PyTorch's names, defaults and state-dict keys.

A Module finds its Parameters, Buffers and sub-modules by walking its attributes in assignment
order (also inside lists, tuples and dicts), so `self.fc = Linear(3, 4)` is all it takes.
The maths lives in functional.py and ops.py; modules hold state and pick the mode.
"""
import math
from collections import OrderedDict, namedtuple

import numpy as np

from . import backend, init
from . import functional as F
from .tensor import Tensor

IncompatibleKeys = namedtuple("IncompatibleKeys", "missing_keys unexpected_keys")


class StateDictError(KeyError):
    """load_state_dict's error; a KeyError whose message prints on several lines."""

    def __str__(self):
        return self.args[0]


class Parameter(Tensor):
    """A Tensor that a Module trains: requires_grad=True by default, float32 by default."""

    __slots__ = ()

    def __init__(self, data, requires_grad=True, *, dtype=None):
        super().__init__(data, requires_grad=requires_grad, dtype=dtype)


class Buffer(Tensor):
    """A Tensor that belongs to a Module's state but is not trained (BatchNorm's running stats).

    Buffers are in `state_dict()` and move with `.to()`, but not in `parameters()`.
    """

    __slots__ = ()

    def __init__(self, data, *, dtype=None):
        super().__init__(data, requires_grad=False, dtype=dtype)


class _HookHandle:
    def __init__(self, hooks, key):
        self._hooks, self._key = hooks, key

    def remove(self):
        self._hooks.pop(self._key, None)


class Module:
    """Base class of every layer and model. Subclasses define `forward`.

    Calling super().__init__() is optional: all state is discovered from attributes.
    """

    training = True

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args, **kwargs):
        out = self.forward(*args, **kwargs)
        hooks = self.__dict__.get("_forward_hooks")
        if hooks:                # most modules have none: no dict or list to build per call
            for hook in list(hooks.values()):
                hook(self, args, out)
        return out

    def register_forward_hook(self, hook):
        """Call hook(module, inputs, output) after every forward; returns a handle to .remove().

        The hook observes; to record gradients, call output.retain_grad() inside it.
        """
        hooks = self.__dict__.setdefault("_forward_hooks", {})
        key = object()
        hooks[key] = hook
        return _HookHandle(hooks, key)

    # ---- discovery ------------------------------------------------------------------------
    # Plain lists, no generator per attribute: parameters() runs on every zero_grad().
    def _named_members(self, prefix=""):
        """[(dotted name, object)] for every Parameter, Buffer and Module held by self: its
        attributes, also inside lists, tuples and dicts (a list `layers` gives 'layers.0', ...).
        Attributes starting with '_' are private and not searched."""
        found = []
        for attr, value in vars(self).items():
            if not attr.startswith("_"):
                _collect(prefix + attr, value, found)
        return found

    def _tree(self, prefix=""):
        """[(name, module, its members)] for self and every sub-module, parents first."""
        members = self._named_members(prefix + "." if prefix else "")
        tree = [(prefix, self, members)]
        for name, value in members:
            if isinstance(value, Module):
                tree += value._tree(name)
        return tree

    def named_modules(self, memo=None, prefix="", remove_duplicate=True):
        """(dotted name, module) for self (named prefix, "" at the top) and every sub-module;
        a module held twice (shared) is listed once, under its first name, as in PyTorch."""
        memo = set() if memo is None else memo
        found = []
        for name, module, _ in self._tree(prefix):
            if remove_duplicate:
                if module in memo:
                    continue
                memo.add(module)
            found.append((name, module))
        return iter(found)

    def modules(self, remove_duplicate=True):
        return [m for _, m in self.named_modules(remove_duplicate=remove_duplicate)]

    def children(self):
        return [v for _, v in self.named_children()]

    def _named_tensors(self, kind, unique=True):
        """[(name, tensor)] of the given kind; a shared (tied) tensor is listed once if unique,
        and under every name otherwise (as PyTorch's state_dict does)."""
        found, seen = [], set()
        for _, _, members in self._tree():
            for name, value in members:
                if isinstance(value, kind) and not (unique and id(value) in seen):
                    seen.add(id(value))
                    found.append((name, value))
        return found

    def named_parameters(self):
        return self._named_tensors(Parameter)

    def parameters(self):
        return [p for _, p in self._named_tensors(Parameter)]

    def named_buffers(self):
        return self._named_tensors(Buffer)

    def buffers(self):
        return [b for _, b in self._named_tensors(Buffer)]

    # ---- state ----------------------------------------------------------------------------
    def state_dict(self):
        """Parameters and buffers by dotted name, as detached copies (later training does not
        change a state dict you took earlier)."""
        out = OrderedDict()
        for name, t in self._named_tensors((Parameter, Buffer), unique=False):
            out[name] = Tensor(t.data, dtype=t.dtype)      # Tensor() copies
        return out

    def load_state_dict(self, state_dict, strict=True):
        """Copy values into this module's parameters and buffers (in place, same dtype/device).

        strict=True: any missing, unexpected or wrong-shape key raises one KeyError listing
        them all, and nothing is changed. strict=False: the matching keys are loaded and the
        missing and unexpected ones are returned as (missing_keys, unexpected_keys); a key
        whose shape differs still raises, and nothing is loaded (as in PyTorch: a checkpoint
        for another architecture should not load half-way).
        """
        own = OrderedDict(self._named_tensors((Parameter, Buffer), unique=False))
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        mismatched = []
        for k, t in own.items():
            if k in state_dict:
                shape = tuple(np.shape(_array_of(state_dict[k])))
                if shape != t.shape:
                    mismatched.append(f"{k}: checkpoint {shape} vs model {t.shape}")
        if mismatched or (strict and (missing or unexpected)):
            lines = [f"load_state_dict failed for {type(self).__name__}; nothing was loaded."]
            if strict and missing:
                lines.append(f"  missing keys: {missing}")
            if strict and unexpected:
                lines.append(f"  unexpected keys: {unexpected}")
            if mismatched:
                lines.append(f"  wrong shapes: {mismatched}")
            lines.append("  strict=False loads the keys that match, but never a wrong shape."
                         if mismatched else "  Pass strict=False to load the keys that match.")
            raise StateDictError("\n".join(lines))
        for k, t in own.items():
            if k in state_dict:
                value = backend.to_device(_array_of(state_dict[k]), t.device)
                t.data[...] = value.astype(t.dtype, copy=False)
        return IncompatibleKeys(missing, unexpected)

    # ---- modes and devices ------------------------------------------------------------------
    def train(self, mode=True):
        for m in self.modules():
            m.training = mode
        return self

    def eval(self):
        return self.train(False)

    def zero_grad(self, set_to_none=True):
        """Forget the gradients (None, PyTorch 2's default), or zero them (set_to_none=False)."""
        for p in self.parameters():
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad[...] = 0         # in place, as PyTorch's grad.zero_(): a NaN becomes 0 too

    def apply(self, fn):
        """Call fn on every sub-module (children first) and on self, e.g. to initialise."""
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    def requires_grad_(self, requires_grad=True):
        """Freeze (False) or unfreeze every parameter."""
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def named_children(self):
        """(name, module) of the direct sub-modules, each once (a shared one under its first
        name), as in PyTorch."""
        found, seen = [], set()
        for n, v in self._named_members():
            if isinstance(v, Module) and id(v) not in seen:
                seen.add(id(v))
                found.append((n, v))
        return found

    def register_buffer(self, name, tensor, persistent=True):
        """PyTorch's way to add a buffer; here it is the same as assigning a Buffer."""
        if not persistent:
            raise ValueError("register_buffer(persistent=False) is not supported: every "
                             "buffer is in the state dict; keep a private attribute instead")
        setattr(self, name, None if tensor is None else Buffer(tensor, dtype=tensor.dtype))

    def register_parameter(self, name, param):
        setattr(self, name, param)

    def to(self, target):
        """Move every parameter and buffer to a device ('cpu'/'cuda') or float dtype, in place.

        The Parameter objects stay the same (an optimizer built earlier still points at them);
        only their arrays are replaced. Integer buffers keep their dtype.
        """
        is_device = isinstance(target, str)
        if is_device:
            target = backend.check_device(target)
        else:
            target = np.dtype(target)
            if target.kind != "f":
                raise TypeError(f"Module.to() takes a device or a float dtype, got {target}")
        for t in self.parameters() + self.buffers():
            if is_device:
                t.data = backend.to_device(t.data, target)
            elif t.dtype.kind == "f":
                t.data = t.data.astype(target)
            if t.grad is not None:
                t.grad = None
        return self

    def double(self):
        return self.to(np.float64)

    def cpu(self):
        return self.to("cpu")

    def cuda(self):
        return self.to("cuda")

    def _place(self, device, dtype):
        """The device=/dtype= arguments PyTorch's layers take, applied once they are built."""
        if dtype is not None:
            self.to(dtype)
        if device is not None:
            self.to(device)

    def float(self):
        return self.to(np.float32)

    # ---- printing -------------------------------------------------------------------------
    def extra_repr(self):
        return ""

    def __repr__(self):
        children = [(n, v) for n, v in self._named_members() if isinstance(v, Module)]
        if not children:
            return f"{type(self).__name__}({self.extra_repr()})"
        lines = [f"  ({n}): " + repr(m).replace("\n", "\n  ") for n, m in children]
        return f"{type(self).__name__}(\n" + "\n".join(lines) + "\n)"


def _collect(name, value, found):
    """Append (name, value) if value is a Tensor or Module, and search lists, tuples and dicts
    for them (their entries get dotted names: 'layers.0', 'blocks.a')."""
    if isinstance(value, (Tensor, Module)):
        found.append((name, value))
    elif isinstance(value, (list, tuple, dict)):
        for key, v in (value.items() if isinstance(value, dict) else enumerate(value)):
            _collect(f"{name}.{key}", v, found)


def _array_of(value):
    """The array inside a state-dict value (a Tensor, a NumPy/CuPy array, or a number)."""
    if isinstance(value, Tensor):
        return value.data
    return value if backend.is_array(value) else np.asarray(value)


# ---- containers and simple layers ---------------------------------------------------------------
class Sequential(Module):
    """Apply modules in order; indexable, with state-dict names '0', '1', ... as in PyTorch.

    Sequential(m0, m1, ...), or Sequential(OrderedDict([("conv", m0), ...])) to name them.
    A slice keeps the original names (seq[1:] holds '1', '2', ...), as PyTorch's does, so
    its state dict uses the same keys as the full model's.
    """

    def __init__(self, *modules):
        if len(modules) == 1 and isinstance(modules[0], dict):
            named = list(modules[0].items())
        else:
            named = [(str(i), m) for i, m in enumerate(modules)]
        self._names = []
        for name, m in named:
            self._add(name, m)

    def _add(self, name, module):
        if not isinstance(module, Module):
            raise TypeError(f"Sequential takes Modules, got {type(module).__name__} for "
                            f"entry {name!r}")
        if not name.isidentifier() and not name.isdigit() or name in self._names:
            raise ValueError(f"Sequential: {name!r} is not a new name (names in use: "
                             f"{self._names}); use a Python identifier or a number")
        setattr(self, name, module)
        self._names.append(name)

    def _layers(self):
        return [getattr(self, n) for n in self._names]

    def __getitem__(self, i):
        if isinstance(i, slice):
            return Sequential(OrderedDict((n, getattr(self, n)) for n in self._names[i]))
        return self._layers()[i]

    def __len__(self):
        return len(self._names)

    def __iter__(self):
        return iter(self._layers())

    def append(self, module):
        """Add a module at the end, named by the next number (PyTorch names it len(self),
        which after a slice would overwrite a layer: seq[1:] holds '1' and '2')."""
        numbers = [int(n) for n in self._names if n.isdigit()]
        self._add(str(max(numbers, default=-1) + 1), module)
        return self

    def forward(self, x):
        for layer in self._layers():
            x = layer(x)
        return x


def _uniform_fan_in(shape, fan_in):
    """PyTorch's default for Linear and Conv2d weights and biases: U(-1/sqrt(fan_in),
    1/sqrt(fan_in)) (kaiming_uniform with a = sqrt(5), which works out to that bound)."""
    bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
    return init.uniform(shape, -bound, bound)


class Linear(Module):
    """y = x W^T + b with W of shape (out_features, in_features), PyTorch's initialisation."""

    def __init__(self, in_features, out_features, bias=True, device=None, dtype=None):
        self.in_features, self.out_features = in_features, out_features
        self.weight = Parameter(np.zeros((out_features, in_features)))
        self.bias = Parameter(np.zeros(out_features)) if bias else None
        self.reset_parameters()
        self._place(device, dtype)

    def reset_parameters(self):
        for p in (self.weight, self.bias):
            if p is not None:
                p.data[...] = backend.to_device(_uniform_fan_in(p.shape, self.in_features),
                                                p.device)

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class Conv2d(Module):
    """2-D convolution over (N, C, H, W) input; weight (out, in/groups, kh, kw) as in PyTorch.

    padding_mode 'zeros' pads inside the convolution; 'reflect', 'replicate' and 'circular'
    pad with F.pad first, as PyTorch does. Initialisation as PyTorch's (fan_in = in/groups*kh*kw).
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, padding_mode="zeros", device=None, dtype=None):
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"Conv2d: groups={groups} must divide in_channels={in_channels} "
                             f"and out_channels={out_channels}")
        if padding_mode not in ("zeros", "reflect", "replicate", "circular"):
            raise ValueError(f"Conv2d: padding_mode must be 'zeros', 'reflect', 'replicate' or "
                             f"'circular', got {padding_mode!r}")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = F._pair(kernel_size, "kernel_size")
        self.stride, self.dilation = F._pair(stride, "stride"), F._pair(dilation, "dilation")
        self.padding = padding if isinstance(padding, str) else F._pair(padding, "padding")
        self.padding_mode = padding_mode
        self.weight = Parameter(np.zeros((out_channels, in_channels // groups) + self.kernel_size))
        self.bias = Parameter(np.zeros(out_channels)) if bias else None
        self.reset_parameters()
        self._place(device, dtype)

    def reset_parameters(self):
        fan_in = self.weight.shape[1] * self.kernel_size[0] * self.kernel_size[1]
        for p in (self.weight, self.bias):
            if p is not None:
                p.data[...] = backend.to_device(_uniform_fan_in(p.shape, fan_in), p.device)

    def forward(self, x):
        if self.padding_mode == "zeros" or self.padding in ("valid", (0, 0)):
            return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation,
                            self.groups)
        if self.padding == "same":
            raise ValueError("Conv2d: padding='same' is supported with padding_mode='zeros'")
        (ph, pw) = self.padding
        x = F.pad(x, (pw, pw, ph, ph), mode=self.padding_mode)
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)

    def extra_repr(self):
        # PyTorch's format: only the options that differ from their defaults
        text = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}")
        if self.padding != (0, 0):
            text += f", padding={self.padding!r}" if isinstance(self.padding, str) else (
                f", padding={self.padding}")
        if self.dilation != (1, 1):
            text += f", dilation={self.dilation}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        if self.bias is None:
            text += ", bias=False"
        return text + (f", padding_mode={self.padding_mode}" if self.padding_mode != "zeros"
                       else "")


class ReLU(Module):
    def __init__(self, inplace=False):
        if inplace:
            raise ValueError("inplace=True is not supported by minigrad (ops never modify "
                             "their input); leave it at False")

    def forward(self, x):
        return x.relu()


class Sigmoid(Module):
    def forward(self, x):
        return x.sigmoid()


class Tanh(Module):
    def forward(self, x):
        return x.tanh()


class Flatten(Module):
    """(N, d1, d2, ...) -> (N, d1*d2*...): axes start_dim..end_dim merged, as in PyTorch."""

    def __init__(self, start_dim=1, end_dim=-1):
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x):
        return x.flatten(self.start_dim, self.end_dim)

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


# ---- normalisation ------------------------------------------------------------------------------
def _affine_parameters(shape, affine, bias):
    """The norm layers' weight (ones) and bias (zeros) of `shape`, or None where absent."""
    weight = Parameter(np.ones(shape)) if affine else None
    return weight, Parameter(np.zeros(shape)) if affine and bias else None


def _reset_affine(weight, bias):
    if weight is not None:
        weight.data[...] = 1
    if bias is not None:
        bias.data[...] = 0


class _BatchNorm(Module):
    """Shared code of BatchNorm1d/2d; PyTorch's semantics exactly (see F.batch_norm).

    Training: normalise with the batch mean and biased variance; update running statistics as
    running = (1 - momentum) * running + momentum * batch (unbiased variance), or with
    momentum=None as a cumulative average (factor 1 / num_batches_tracked).
    Eval: normalise with the running statistics. track_running_stats=False: no buffers, batch
    statistics in both modes. affine=False: no weight and bias; bias=False: a weight only.
    """

    _expected_dims = ()

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, device=None, dtype=None, *, bias=True):
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        self.weight, self.bias = _affine_parameters(num_features, affine, bias)
        if track_running_stats:
            self.running_mean = Buffer(np.zeros(num_features))
            self.running_var = Buffer(np.ones(num_features))
            self.num_batches_tracked = Buffer(np.array(0, dtype=np.int64))
        else:
            self.running_mean = self.running_var = self.num_batches_tracked = None
        self._place(device, dtype)

    def reset_running_stats(self):
        """Running mean 0, running variance 1, no batches counted (as freshly built)."""
        if self.track_running_stats:
            self.running_mean.data[...] = 0
            self.running_var.data[...] = 1
            self.num_batches_tracked.data[...] = 0

    def reset_parameters(self):
        self.reset_running_stats()
        _reset_affine(self.weight, self.bias)

    def forward(self, x):
        if x.ndim not in self._expected_dims:
            dims = " or ".join(f"{d}D" for d in self._expected_dims)
            raise ValueError(f"{type(self).__name__} expected {dims} input (got {x.ndim}D input "
                             f"of shape {x.shape})")
        counting = self.training and self.track_running_stats
        factor = 0.0 if self.momentum is None else self.momentum
        if counting and self.momentum is None:   # cumulative average over batches 1..n
            factor = 1.0 / (float(self.num_batches_tracked.data) + 1)
        use_running = not self.training or self.track_running_stats
        out = F.batch_norm(x, self.running_mean if use_running else None,
                           self.running_var if use_running else None, self.weight, self.bias,
                           self.training or self.running_mean is None, factor, self.eps)
        if counting:             # only after F.batch_norm accepted the batch
            self.num_batches_tracked.data += 1
        return out

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, bias={self.bias is not None}, "
                f"track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """BatchNorm over (N, C) or (N, C, L) input: statistics per channel over N (and L)."""
    _expected_dims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Spatial BatchNorm over (N, C, H, W): statistics per channel over N*H*W values."""
    _expected_dims = (4,)


class LayerNorm(Module):
    """Normalise each example over its last len(normalized_shape) axes (Ba et al. 2016).

    Same statistics in training and eval (no running averages); weight/bias of
    normalized_shape. Built from primitive ops, so autograd derives the backward.
    """

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True,
                 device=None, dtype=None):
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else normalized_shape
        self.normalized_shape, self.eps = tuple(shape), eps
        self.elementwise_affine = elementwise_affine
        self.weight, self.bias = _affine_parameters(self.normalized_shape, elementwise_affine,
                                                    bias)
        self._place(device, dtype)

    def reset_parameters(self):
        _reset_affine(self.weight, self.bias)

    def forward(self, x):
        k = len(self.normalized_shape)
        if x.shape[-k:] != self.normalized_shape:
            raise ValueError(f"LayerNorm{self.normalized_shape} got input of shape {x.shape}: "
                             f"its last {k} axes must be {self.normalized_shape}")
        xhat, _, _ = F.normalize(x, tuple(range(x.ndim - k, x.ndim)), self.eps)
        return F.affine(xhat, self.weight, self.bias)

    def extra_repr(self):
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}, bias={self.bias is not None}")


class GroupNorm(Module):
    """Normalise each example over groups of C/G channels and all spatial axes (Wu & He 2018).

    G = 1 is LayerNorm over (C, H, W), G = C is InstanceNorm. One weight/bias per channel.
    """

    def __init__(self, num_groups, num_channels, eps=1e-5, affine=True, device=None, dtype=None,
                 *, bias=True):
        if num_channels % num_groups:
            raise ValueError(f"num_channels ({num_channels}) must be divisible by num_groups "
                             f"({num_groups})")
        self.num_groups, self.num_channels, self.eps = num_groups, num_channels, eps
        self.affine = affine
        self.weight, self.bias = _affine_parameters(num_channels, affine, bias)
        self._place(device, dtype)

    def reset_parameters(self):
        _reset_affine(self.weight, self.bias)

    def forward(self, x):
        if x.ndim < 2 or x.shape[1] != self.num_channels:
            raise ValueError(f"GroupNorm expects (N, {self.num_channels}, ...) input, got "
                             f"{x.shape}")
        g = x.reshape(x.shape[0], self.num_groups, -1)   # (N, C, ...) -> (N, G, C/G * ...)
        ghat, _, _ = F.normalize(g, 2, self.eps)
        shape = (1, self.num_channels) + (1,) * (x.ndim - 2)   # per-channel, broadcast over N
        return F.affine(ghat.reshape(x.shape), self.weight, self.bias, shape)  # -> (N, C, ...)

    def extra_repr(self):
        return (f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}, "
                f"bias={self.bias is not None}")


# Layers, containers and loss modules live in their own files (they subclass Module, so they
# are imported last); re-exported here under PyTorch's names.
from .layers import (AdaptiveAvgPool2d, AvgPool2d, Dropout, Embedding, GELU,  # noqa: E402,F401
                     Identity, LeakyReLU, MaxPool2d, Softmax)
from .containers import ModuleDict, ModuleList  # noqa: E402,F401
from .losses import (BCEWithLogitsLoss, CrossEntropyLoss, L1Loss, MSELoss,  # noqa: E402,F401
                     NLLLoss)
from . import nn_utils as utils  # noqa: E402,F401  (nn.utils.fuse_conv_bn_eval, update_bn)
