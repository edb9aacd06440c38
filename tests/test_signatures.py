"""The signature table: every public callable of minigrad that has a PyTorch counterpart,
compared with PyTorch 2.x's signature (issue 13: "every public function, method and
constructor takes PyTorch's positional order; an argument minigrad does not support is refused
by name; a default that differs from PyTorch's is a bug").

PyTorch's side is tests/fixtures/signatures_torch.json, written by make_fixtures_core_habits.py:
inspect.signature of torch's Python code (nn modules, nn.functional, optim, lr_scheduler, ...)
and, for C-implemented functions and Tensor methods, the signature PyTorch documents, written
by hand there and checked against torch's docstrings. The rules, for each row of TABLE:

  order      minigrad's i-th positional parameter is not a parameter PyTorch has at another
             position (a positional call would silently bind another argument's value)
  name       minigrad's i-th positional parameter has PyTorch's i-th name (else a call by
             keyword, F.relu(input=x), fails)
  default    a parameter both have takes PyTorch's default (and is optional where PyTorch's is)
  extra      a minigrad-only parameter is keyword-only (else a PyTorch call with one more
             positional argument would bind to it)
  keyword    a parameter PyTorch takes positionally is positional in minigrad too
  missing    a PyTorch parameter minigrad lacks is listed in NOT_SUPPORTED (or REFUSED_BY_NAME
             when minigrad accepts it through **kwargs and refuses a value other than the default)

A finding is explained by NOT_SUPPORTED(_ANYWHERE) or REFUSED_BY_NAME (missing), SAME_MEANING
(a default spelled differently, e.g. dtype=float32 for PyTorch's None) or INTENTIONAL (a
difference on purpose, with the reason the README gives); any other finding is a mismatch, and
test_no_unexplained_signature_mismatches lists them. Completeness: every public callable is a
row or in NO_COUNTERPART. summary() has the numbers; `python tests/test_signatures.py` prints
every finding and them.
"""
import inspect
import json
import os

import pytest

import minigrad as mg
from minigrad import data, init, nn, nn_utils, optim
from minigrad import functional as F
from minigrad.optim import lr_scheduler

FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures",
                       "signatures_torch.json")
with open(FIXTURE) as _f:
    TORCH = json.load(_f)["callables"]

T = mg.Tensor
# (label, minigrad callable, key in signatures_torch.json); a class stands for its constructor
TABLE = [
    # ---- minigrad top level ----
    ("mg.tensor", mg.tensor, "torch.tensor"),
    ("mg.Tensor", mg.Tensor, "torch.tensor"),
    ("mg.zeros", mg.zeros, "torch.zeros"),
    ("mg.ones", mg.ones, "torch.ones"),
    ("mg.full", mg.full, "torch.full"),
    ("mg.eye", mg.eye, "torch.eye"),
    ("mg.arange", mg.arange, "torch.arange"),
    ("mg.linspace", mg.linspace, "torch.linspace"),
    ("mg.randn", mg.randn, "torch.randn"),
    ("mg.rand", mg.rand, "torch.rand"),
    ("mg.randint", mg.randint, "torch.randint"),
    ("mg.zeros_like", mg.zeros_like, "torch.zeros_like"),
    ("mg.ones_like", mg.ones_like, "torch.ones_like"),
    ("mg.full_like", mg.full_like, "torch.full_like"),
    ("mg.randn_like", mg.randn_like, "torch.randn_like"),
    ("mg.rand_like", mg.rand_like, "torch.rand_like"),
    ("mg.manual_seed", mg.manual_seed, "torch.manual_seed"),
    ("mg.no_grad", mg.no_grad, "torch.no_grad"),
    ("mg.enable_grad", mg.enable_grad, "torch.enable_grad"),
    ("mg.is_grad_enabled", mg.is_grad_enabled, "torch.is_grad_enabled"),
    ("mg.save", mg.save, "torch.save"),
    ("mg.load", mg.load, "torch.load"),
    ("mg.gradcheck", mg.gradcheck, "torch.autograd.gradcheck"),
    ("mg.Function.apply", mg.Function.apply, "torch.autograd.Function.apply"),
    # ---- functions at top level and in minigrad.functional (torch.* names) ----
    *[(f"mg.{n}", getattr(mg, n), f"torch.{n}") for n in (
        "cat", "concatenate", "stack", "where", "exp", "log", "sqrt", "abs", "tanh", "sigmoid",
        "relu", "matmul", "sum", "mean", "max", "min", "amax", "amin", "argmax", "argmin",
        "var", "std", "clamp", "clip", "gather", "reshape", "flatten", "squeeze", "unsqueeze",
        "permute", "transpose", "softmax", "log_softmax")],
    *[(f"F.{n}", getattr(F, n), f"torch.{n}") for n in (
        "add", "sub", "mul", "div", "neg", "pow")],
    # ---- minigrad.functional with torch.nn.functional counterparts ----
    *[(f"F.{n}", getattr(F, n), f"F.{n}") for n in (
        "linear", "conv2d", "unfold", "pad", "batch_norm", "dropout", "max_pool2d",
        "avg_pool2d", "adaptive_avg_pool2d", "leaky_relu", "gelu", "embedding",
        "cross_entropy", "nll_loss", "mse_loss", "l1_loss", "binary_cross_entropy_with_logits",
        "softmax", "log_softmax", "relu", "sigmoid", "tanh")],
    # ---- Tensor methods ----
    *[(f"Tensor.{n}", getattr(T, n), f"Tensor.{n}") for n in (
        "abs", "amax", "amin", "argmax", "argmin", "backward", "bool", "clamp", "clip",
        "clone", "cpu", "cuda", "detach", "dim", "double", "exp", "flatten", "float", "gather",
        "int", "item", "log", "log_softmax", "long", "max", "mean", "min", "numel", "numpy",
        "permute", "pow", "relu", "requires_grad_", "reshape", "retain_grad", "sigmoid",
        "size", "softmax", "sqrt", "squeeze", "std", "sum", "t", "tanh", "to", "tolist",
        "transpose", "unsqueeze", "var", "view", "__array__")],
    # ---- nn: constructors ----
    *[(f"nn.{n}", getattr(nn, n), f"nn.{n}") for n in (
        "Module", "Parameter", "Buffer", "Sequential", "Linear", "Conv2d", "ReLU", "Sigmoid",
        "Tanh", "Flatten", "BatchNorm1d", "BatchNorm2d", "LayerNorm", "GroupNorm", "Dropout",
        "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "LeakyReLU", "GELU", "Softmax",
        "Identity", "Embedding", "ModuleList", "ModuleDict", "CrossEntropyLoss", "NLLLoss",
        "MSELoss", "L1Loss", "BCEWithLogitsLoss")],
    ("nn.Embedding.from_pretrained", nn.Embedding.from_pretrained,
     "nn.Embedding.from_pretrained"),
    # ---- nn: Module methods and the containers' ----
    *[(f"nn.Module.{n}", getattr(nn.Module, n), f"nn.Module.{n}") for n in (
        "forward", "register_forward_hook", "named_modules", "modules", "children",
        "named_children", "named_parameters", "parameters", "named_buffers", "buffers",
        "state_dict", "load_state_dict", "train", "eval", "zero_grad", "apply",
        "requires_grad_", "register_buffer", "register_parameter", "to", "double", "float",
        "cpu", "cuda", "extra_repr")],
    ("nn.Sequential.append", nn.Sequential.append, "nn.Sequential.append"),
    *[(f"nn.ModuleList.{n}", getattr(nn.ModuleList, n), f"nn.ModuleList.{n}")
      for n in ("append", "extend", "insert")],
    *[(f"nn.ModuleDict.{n}", getattr(nn.ModuleDict, n), f"nn.ModuleDict.{n}")
      for n in ("update", "pop", "keys", "values", "items", "clear")],
    *[(f"nn.{n}.reset_parameters", getattr(nn, n).reset_parameters,
       f"nn.{'BatchNorm1d' if n == 'BatchNorm2d' else n}.reset_parameters")
      for n in ("Linear", "Conv2d", "BatchNorm1d", "BatchNorm2d", "LayerNorm", "GroupNorm")],
    ("nn.BatchNorm1d.reset_running_stats", nn.BatchNorm1d.reset_running_stats,
     "nn.BatchNorm1d.reset_running_stats"),
    # ---- nn.init ----
    *[(f"init.{n}", getattr(init, n), f"init.{n}") for n in (
        "calculate_gain", "uniform_", "normal_", "constant_", "zeros_", "ones_",
        "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_")],
    # ---- nn.utils (torch.nn.utils.fusion, torch.optim.swa_utils) ----
    *[(f"nn.utils.{n}", getattr(nn_utils, n), f"utils.{n}") for n in (
        "fuse_conv_bn_eval", "fuse_conv_bn_weights", "fuse_linear_bn_eval",
        "fuse_linear_bn_weights", "update_bn")],
    # ---- optim ----
    *[(f"optim.{n}", getattr(optim, n), f"optim.{n}") for n in ("Optimizer", "SGD", "Adam",
                                                                 "AdamW")],
    *[(f"optim.Optimizer.{n}", getattr(optim.Optimizer, n), f"optim.Optimizer.{n}") for n in (
        "add_param_group", "zero_grad", "step", "state_dict", "load_state_dict")],
    *[(f"optim.{n}.step", getattr(optim, n).step, "optim.Optimizer.step")
      for n in ("SGD", "Adam")],
    # ---- optim.lr_scheduler ----
    *[(f"lr_scheduler.{n}", getattr(lr_scheduler, n), f"lr_scheduler.{n}") for n in (
        "LRScheduler", "LambdaLR", "StepLR", "MultiStepLR", "CosineAnnealingLR", "OneCycleLR")],
    *[(f"lr_scheduler.LRScheduler.{n}", getattr(lr_scheduler.LRScheduler, n),
       f"lr_scheduler.LRScheduler.{n}") for n in (
        "get_lr", "step", "get_last_lr", "state_dict", "load_state_dict")],
    # ---- data ----
    ("data.DataLoader", data.DataLoader, "data.DataLoader"),
    ("data.ArrayDataset", data.ArrayDataset, "data.TensorDataset"),
]


# Methods a subclass overrides are rows of their own, compared with the base method's PyTorch
# signature (BatchNorm2d.reset_parameters, SGD.step, StepLR.get_lr, Linear.extra_repr, ...).
OVERRIDE_BASES = {"reset_parameters": None, "reset_running_stats": None, "step": None,
                  "get_lr": "lr_scheduler.LRScheduler.get_lr",
                  "extra_repr": "nn.Module.extra_repr"}
# forward is called through module(input): PyTorch documents the call, and each layer's forward
# takes the input(s) the layer documents; it is not a row.
NOT_ROWS = {"forward"}

# ---- explanations -------------------------------------------------------------------------------
# PyTorch parameters minigrad does not have, wherever they appear, and why (README: "not
# supported"). A call passing one by keyword fails with Python's TypeError naming it.
NOT_SUPPORTED_ANYWHERE = {
    "out": "no out= buffers: every op returns a new tensor",
    "layout": "dense (strided) tensors only",
    "pin_memory": "no pinned host memory",
    "memory_format": "C-contiguous arrays only",
    "generator": "one global generator, seeded by manual_seed",
    "foreach": "one plain implementation per optimiser",
    "fused": "one plain implementation per optimiser",
    "capturable": "no CUDA graphs",
    "differentiable": "no gradients through the optimiser step",
    "non_blocking": "transfers are synchronous",
}
# Per callable: (label, parameter) -> why it is not supported.
NOT_SUPPORTED = {
    ("mg.randint", "requires_grad"): "random integers carry no gradient",
    ("mg.enable_grad", "orig_func"): "the bare @enable_grad form; write @enable_grad()",
    **{("mg.save", n): "minigrad.save writes its own .npz format, not a pickle"
       for n in ("pickle_module", "pickle_protocol", "_use_new_zipfile_serialization",
                 "_disable_byteorder_record")},
    ("mg.load", "map_location"): "load returns CPU tensors; move them with .to(device)",
    **{("mg.load", n): "minigrad.load reads its own .npz format, never a pickle (nothing "
       "runs code), so weights_only is always true"
       for n in ("pickle_module", "weights_only", "mmap")},
    **{("mg.gradcheck", n): "minigrad's gradcheck checks reverse-mode gradients in float64 "
       "and raises on a mismatch; these checks of PyTorch's do not apply"
       for n in ("raise_exception", "nondet_tol", "check_undefined_grad", "check_grad_dtypes",
                 "check_batched_grad", "check_batched_forward_grad", "check_forward_ad",
                 "check_backward_ad", "fast_mode", "masked")},
    **{(f"F.{n}", "alpha"): "write a + alpha * b" for n in ("add", "sub")},
    ("F.div", "rounding_mode"): "true division only",
    ("F.relu", "inplace"): "ops never modify their input (minigrad.relu is F.relu and "
                           "torch.relu at once; nn.ReLU(inplace=True) is refused by name)",
    ("mg.gather", "sparse_grad"): "gradients are dense arrays",
    **{(f"F.{n}", "_stacklevel"): "an internal argument of PyTorch's warning"
       for n in ("softmax", "log_softmax")},
    **{(f"F.{n}", "dtype"): "no dtype= cast; convert the input with .astype(dtype)"
       for n in ("softmax", "log_softmax")},
    ("Tensor.backward", "create_graph"): "no higher-order gradients: the backward pass "
                                         "records no graph",
    ("Tensor.backward", "inputs"): "backward accumulates into every leaf that requires grad",
    ("Tensor.cuda", "device"): "one GPU, 'cuda'",
    ("Tensor.numpy", "force"): "numpy() always copies a GPU tensor to the host",
    ("nn.Buffer", "persistent"): "every buffer is in the state dict; keep a private attribute "
                                 "(self._x) for one that should not be",
    **{("nn.Module.register_forward_hook", n): "hooks run after forward, in the order "
       "registered, with (module, inputs, output)"
       for n in ("prepend", "with_kwargs", "always_call")},
    **{(f"nn.Module.{m}", n): "every parameter/buffer of the whole tree, each once"
       for m, names in (("named_parameters", ("prefix", "recurse", "remove_duplicate")),
                        ("parameters", ("recurse",)),
                        ("named_buffers", ("prefix", "recurse", "remove_duplicate")),
                        ("buffers", ("recurse",))) for n in names},
    **{("nn.Module.state_dict", n): "state_dict() returns a new dict of copies"
       for n in ("*args", "destination", "prefix", "keep_vars")},
    ("nn.Module.load_state_dict", "assign"): "values are copied into the existing tensors",
    ("nn.Module.cuda", "device"): "one GPU, 'cuda'",
    ("optim.Optimizer.step", "closure"): "no closure-based optimisers (L-BFGS)",
    **{(f"optim.{n}.step", "closure"): "no closure-based optimisers (L-BFGS)"
       for n in ("SGD", "Adam")},
    **{("data.DataLoader", n): "minigrad's DataLoader batches in the main process from a "
       "dataset of arrays; sampling is shuffle/seed"
       for n in ("sampler", "batch_sampler", "num_workers", "collate_fn", "timeout",
                 "worker_init_fn", "multiprocessing_context", "prefetch_factor",
                 "persistent_workers", "pin_memory_device", "in_order")},
}
# minigrad accepts these through **kwargs and refuses a value other than PyTorch's default,
# by name: (label, parameter) -> a call passing a non-default value (checked below).
_x = mg.ones(2, 3)
REFUSED_BY_NAME = {
    ("Tensor.sum", "dtype"): lambda: _x.sum(0, dtype="float64"),
    ("Tensor.mean", "dtype"): lambda: _x.mean(0, dtype="float64"),
    ("Tensor.log_softmax", "dtype"): lambda: _x.log_softmax(0, dtype="float64"),
    ("mg.sum", "dtype"): lambda: mg.sum(_x, dtype="float64"),
    ("mg.mean", "dtype"): lambda: mg.mean(_x, dtype="float64"),
    ("mg.mean", "out"): lambda: mg.mean(_x, out=_x.numpy()),
    ("mg.max", "out"): lambda: mg.max(_x, 0, out=_x.numpy()),
    ("mg.min", "out"): lambda: mg.min(_x, 0, out=_x.numpy()),
    ("mg.var", "out"): lambda: mg.var(_x, 0, out=_x.numpy()),
    ("mg.std", "out"): lambda: mg.std(_x, 0, out=_x.numpy()),
    ("mg.softmax", "dtype"): lambda: mg.softmax(_x, 0, dtype="float64"),
    ("mg.log_softmax", "dtype"): lambda: mg.log_softmax(_x, 0, dtype="float64"),
}
# Rows whose minigrad signature has **kwargs: a call with an unknown keyword must be refused by
# name (so **kwargs never swallows a PyTorch argument silently).
KWARGS_CALLS = {
    **{f"Tensor.{n}": (lambda n: lambda **kw: getattr(_x, n)(0, **kw))(n) for n in (
        "sum", "mean", "max", "min", "var", "std", "softmax", "log_softmax")},
    **{f"mg.{n}": (lambda n: lambda **kw: getattr(mg, n)(_x, 0, **kw))(n) for n in (
        "sum", "mean", "max", "min", "var", "std", "softmax", "log_softmax")},
    **{f"F.{n}": (lambda n: lambda **kw: getattr(F, n)(_x, 0, **kw))(n) for n in (
        "softmax", "log_softmax")},
}
# The base Module.forward takes **kwargs only to raise NotImplementedError for any call.
KWARGS_EXEMPT = {"nn.Module.forward"}
# Defaults spelled differently with the same meaning: (label, parameter) -> why.
SAME_MEANING = {
    **{(f"mg.{n}", "dtype"): "float32 is PyTorch's default dtype (None means it there)"
       for n in ("zeros", "ones", "eye", "linspace", "randn", "rand")},
    ("mg.randint", "dtype"): "int64 is what PyTorch's dtype=None gives",
    ("mg.arange", "start"): "PyTorch documents arange(start=0, end, step=1): with one "
                            "argument it is end, as here",
    ("mg.randint", "low"): "PyTorch documents randint(low=0, high, size): with two arguments "
                           "they are high and size, as here",
    **{(f"{p}.{n}", "unbiased"): "None: not given, so correction (default 1, Bessel's) decides, "
       "as PyTorch's overloads do" for p in ("mg", "Tensor") for n in ("var", "std")},
    **{(f"Tensor.{n}", "correction"): "None: 1 unless unbiased=False, as PyTorch's "
       "correction=None" for n in ("var", "std")},
    **{(f"mg.{n}", "correction"): "None: 1 unless unbiased=False, as PyTorch's "
       "correction=None" for n in ("var", "std")},
    ("Tensor.backward", "retain_graph"): "PyTorch's None means create_graph's value, False",
    ("data.DataLoader", "shuffle"): "PyTorch's None means False",
}
# Differences on purpose, each with the README's reason: (label, parameter) -> why.
INTENTIONAL = {
    **{(f"Tensor.{n}", "dim"): "dim may be left out: the last axis (PyTorch requires it)"
       for n in ("softmax", "log_softmax")},
    **{(f"mg.{n}", "dim"): "minigrad.softmax is F.softmax: without dim it takes PyTorch's "
       "implicit dim, with PyTorch's warning (torch.softmax requires dim)"
       for n in ("softmax", "log_softmax")},
    **{("F.batch_norm", n): "may be left out with training=True (batch statistics only); "
       "PyTorch requires them positionally (as None)" for n in ("running_mean", "running_var")},
    **{("Tensor.to", n): "one positional argument, a device or a dtype (PyTorch's "
       "to(device) and to(dtype)); no copy=/non_blocking=" for n in ("device", "*args")},
    **{("nn.Module.to", n): "one positional argument, a device or a float dtype "
       "(PyTorch's to(device) and to(dtype))" for n in ("target", "*args")},
    ("data.DataLoader", "drop_last"): "keyword-only: PyTorch's positions 3-7 (sampler ... "
                                      "pin_memory) are not supported",
    ("Tensor.__array__", "copy"): "NumPy 2's __array__ protocol passes copy=",
    ("nn.Parameter", "data"): "a Parameter needs its values (PyTorch's Parameter() is empty)",
    ("nn.Buffer", "data"): "a Buffer needs its values",
    ("data.ArrayDataset", "*tensors"): "ArrayDataset(*arrays) takes arrays, PyTorch's "
                                       "TensorDataset(*tensors) tensors",
}
# Rows whose PyTorch signature is Module.__init__(*args, **kwargs), which refuses arguments.
TORCH_TAKES_NOTHING = {"nn.Module", "nn.Sigmoid", "nn.Tanh"}
# Public minigrad callables without a PyTorch counterpart of the same name: label -> why.
NO_COUNTERPART = {
    "mg.cuda_available": "PyTorch's is torch.cuda.is_available()",
    "mg.cuda_unavailable_reason": "minigrad's explanation of why CUDA is off",
    "mg.Function": "subclass it (forward/backward); Function.apply is a row",
    "Tensor.astype": "NumPy's name; PyTorch writes .to(dtype)",
    "Tensor.zero_grad": "sets .grad to None (PyTorch writes t.grad = None)",
    "F.affine": "lesson helper: y * weight + bias",
    "F.normalize": "lesson helper: (x - mean) / sqrt(var + eps); PyTorch's F.normalize is "
                   "Lp normalisation, a different function",
    "F.update_running_stats": "lesson helper: PyTorch's running-average update",
    "F.batch_norm_composite": "lesson 06: F.batch_norm from primitive ops",
    "DataLoader.state_dict": "resumable loaders (torchdata's StatefulDataLoader has these)",
    "DataLoader.load_state_dict": "resumable loaders",
    **{f"init.{n}": "returns a new float32 array of a shape (PyTorch's same-named functions "
       "are deprecated aliases of the _ versions, which fill a tensor)"
       for n in ("uniform", "normal", "xavier_uniform", "xavier_normal", "kaiming_uniform",
                 "kaiming_normal")},
}


# ---- the comparison -----------------------------------------------------------------------------
POSITIONAL = ("POSITIONAL_ONLY", "POSITIONAL_OR_KEYWORD")
REQUIRED = {"required": True}


def minigrad_params(obj):
    """[(name, kind, default)] of a minigrad callable: a class's constructor, a method
    without self."""
    params = list(inspect.signature(obj).parameters.values())
    if not inspect.isclass(obj) and params and params[0].name in ("self", "cls"):
        params = params[1:]
    return [(p.name, p.kind.name, p.default) for p in params]


def _same_default(mine, theirs):
    if mine is inspect.Parameter.empty:
        return theirs == REQUIRED
    if isinstance(theirs, dict):              # required, or a value JSON could not hold
        return theirs != REQUIRED and theirs.get("repr") == repr(mine)
    if isinstance(mine, tuple):
        mine = list(mine)
    if isinstance(mine, bool) or isinstance(theirs, bool):
        return type(mine) is type(theirs) and mine == theirs
    return mine == theirs


def compare(label, obj, key):
    """The findings of one row: [(rule, parameter, what)] (see the module docstring)."""
    mine, theirs = minigrad_params(obj), TORCH[key]["params"]
    if key in TORCH_TAKES_NOTHING:
        theirs = [p for p in theirs if p[1] not in ("VAR_POSITIONAL", "VAR_KEYWORD")]
    found = []
    my_pos = [p for p in mine if p[1] in POSITIONAL]
    their_pos = [p for p in theirs if p[1] in POSITIONAL]
    their_var = [p for p in theirs if p[1] == "VAR_POSITIONAL"]
    my_var = [p for p in mine if p[1] == "VAR_POSITIONAL"]
    my_names = {p[0] for p in mine}
    their_names = {p[0]: p for p in theirs}
    renamed = set()                  # PyTorch's positional names minigrad has under another
    for i, (name, _, _) in enumerate(my_pos):
        if i < len(their_pos):
            theirs_i = their_pos[i][0]
            if name != theirs_i and name in their_names:
                found.append(("order", name, f"positional {i} is {name!r}, PyTorch's is "
                              f"{theirs_i!r}; PyTorch's {name!r} is elsewhere, so a "
                              "positional call silently binds another argument"))
            elif name != theirs_i:
                renamed.add(theirs_i)
                found.append(("name", name, f"positional {i} is named {name!r}, PyTorch's "
                              f"{theirs_i!r} (a call by keyword fails)"))
        elif name in their_names:
            found.append(("extra", name, f"{name!r} is positional {i} here, keyword-only in "
                          "PyTorch"))
        else:
            found.append(("extra", name, f"minigrad-only {name!r} is positional {i}; PyTorch "
                          f"takes {len(their_pos)} positional arguments"
                          + (f" then *{their_var[0][0]}" if their_var else "")))
    if my_var and not their_var:
        found.append(("extra", "*" + my_var[0][0], f"*{my_var[0][0]} takes positional "
                      "arguments PyTorch does not"))
    for name, kind, default in mine:
        if kind in ("VAR_POSITIONAL", "VAR_KEYWORD") or name not in their_names:
            continue                 # minigrad-only: positional ones are reported above
        their_kind, their_default = their_names[name][1], their_names[name][2]
        if their_kind in POSITIONAL and kind not in POSITIONAL:
            found.append(("keyword", name, f"{name!r} is keyword-only here, positional in "
                          "PyTorch"))
        if not _same_default(default, their_default):
            shown = "required" if default is inspect.Parameter.empty else repr(default)
            found.append(("default", name, f"{name!r} defaults to {shown}, PyTorch's to "
                          f"{their_default}"))
    for name, kind, default in theirs:
        if kind == "VAR_KEYWORD" or name in my_names or name in renamed:
            continue
        if kind == "VAR_POSITIONAL":
            if not my_var:
                found.append(("missing", "*" + name, f"PyTorch takes *{name}"))
            continue
        found.append(("missing", name, f"PyTorch's {name!r} (default {default}) is not here"))
    return found


def explanation(label, rule, param):
    """Why a finding is not a mismatch, or None."""
    if rule == "missing":
        if param in NOT_SUPPORTED_ANYWHERE:
            return "not supported: " + NOT_SUPPORTED_ANYWHERE[param]
        if (label, param) in NOT_SUPPORTED:
            return "not supported: " + NOT_SUPPORTED[(label, param)]
        if (label, param) in REFUSED_BY_NAME:
            return "accepted and refused by name"
    if rule == "default" and (label, param) in SAME_MEANING:
        return "same meaning: " + SAME_MEANING[(label, param)]
    if (label, param) in INTENTIONAL:
        return "on purpose: " + INTENTIONAL[(label, param)]
    return None


def _public_methods(cls, stop):
    """{name: function} of the public methods cls defines or inherits below `stop`."""
    out = {}
    for klass in reversed(cls.__mro__[:cls.__mro__.index(stop)] if stop in cls.__mro__
                          else cls.__mro__[:-1]):
        for name, value in vars(klass).items():
            if not name.startswith("_") and (inspect.isfunction(value)
                                             or isinstance(value, classmethod)):
                out[name] = getattr(cls, name)
    return out


def rows():
    """TABLE plus a row for every override of a method of a row's class."""
    table = list(TABLE)
    known = {label for label, _, _ in table}
    by_function = {_unwrap(obj) for _, obj, _ in table}
    for label, obj, key in TABLE:
        if not (inspect.isclass(obj) and key.split(".")[0] in ("nn", "optim", "lr_scheduler")):
            continue
        for name, fn in _public_methods(obj, nn.Module if issubclass(obj, nn.Module)
                                        and obj is not nn.Module else object).items():
            if name not in OVERRIDE_BASES or _unwrap(fn) in by_function:
                continue
            base = OVERRIDE_BASES[name] or _base_key(obj, name, table)
            row = f"{label}.{name}"
            if base and row not in known:
                table.append((row, fn, base))
                known.add(row)
                by_function.add(_unwrap(fn))
    return table


def _unwrap(obj):
    return getattr(obj, "__func__", obj)


def _base_key(cls, name, table):
    """The PyTorch key of the nearest base class's row for method `name`."""
    for klass in cls.__mro__[1:]:
        for label, obj, key in table:
            if _unwrap(obj) is _unwrap(getattr(klass, name, None)) and key.endswith("." + name):
                return key
    return {"step": "optim.Optimizer.step", "reset_parameters": "nn.Linear.reset_parameters",
            "reset_running_stats": "nn.BatchNorm1d.reset_running_stats"}.get(name)


def findings():
    """[(label, rule, parameter, what, explanation or None)] over every row."""
    out = []
    for label, obj, key in rows():
        for rule, param, what in compare(label, obj, key):
            out.append((label, rule, param, what, explanation(label, rule, param)))
    return out


def summary():
    """The table's numbers: callables compared, findings, how many are explained and how."""
    found = findings()
    unexplained = [f for f in found if f[4] is None]
    by_rule = {}
    for f in unexplained:
        by_rule[f[1]] = by_rule.get(f[1], 0) + 1
    return {"callables": len(rows()), "findings": len(found),
            "explained": len(found) - len(unexplained), "mismatches": len(unexplained),
            "mismatches_by_rule": by_rule,
            "callables_with_mismatches": len({f[0] for f in unexplained})}


# ---- tests --------------------------------------------------------------------------------------
def test_every_row_has_a_pytorch_signature():
    missing = sorted({key for _, _, key in rows() if key not in TORCH})
    assert not missing, f"no PyTorch signature in signatures_torch.json for {missing}"
    unused = sorted(set(TORCH) - {key for _, _, key in rows()})
    assert not unused, f"signatures_torch.json entries no row uses: {unused}"


def _minigrad_public():
    """{label: function} of every public callable in the modules the table covers."""
    out = {}
    modules = {"mg": mg, "F": F, "init": init}
    for prefix, module in modules.items():
        for name in dir(module):
            value = getattr(module, name)
            if name.startswith("_") or inspect.ismodule(value) or not callable(value):
                continue
            if inspect.isclass(value) and (issubclass(value, mg.Function) and value is not
                                           mg.Function or value in (mg.Tensor, mg.Function)
                                           and prefix != "mg"):
                continue             # op classes (forward/backward) and re-exports
            if getattr(value, "__module__", "").split(".")[0] != "minigrad":
                continue             # NumPy's dtypes and the like
            out[f"{prefix}.{name}"] = value
    for name in nn_utils.__all__:
        out[f"nn.utils.{name}"] = getattr(nn_utils, name)
    for prefix, module in (("nn", nn), ("optim", optim), ("lr_scheduler", lr_scheduler),
                           ("data", data)):
        for name in dir(module):
            cls = getattr(module, name)
            if (name.startswith("_") or not inspect.isclass(cls) or cls is mg.Tensor
                    or not cls.__module__.startswith("minigrad")
                    or issubclass(cls, (Exception, tuple))):
                continue
            out[f"{prefix}.{name}"] = cls
            stop = nn.Module if issubclass(cls, nn.Module) and cls is not nn.Module else object
            if issubclass(cls, mg.Tensor):
                continue             # Parameter and Buffer: Tensor's methods, rows below
            for method, fn in _public_methods(cls, stop).items():
                out[f"{prefix}.{name}.{method}"] = fn
    for method, fn in _public_methods(mg.Tensor, object).items():
        out[f"Tensor.{method}"] = fn
    out["mg.Function.apply"] = mg.Function.apply
    return out


def test_every_public_callable_is_a_row_or_has_no_counterpart():
    """Completeness: a public callable is compared (a row, by identity), is a layer's forward,
    or is listed in NO_COUNTERPART with a reason."""
    compared = {_unwrap(obj) for _, obj, _ in rows()}
    labels = {label for label, _, _ in rows()}
    uncovered = []
    for label, fn in sorted(_minigrad_public().items()):
        if (_unwrap(fn) in compared or label in labels or label.split(".")[-1] in NOT_ROWS
                or label in NO_COUNTERPART or ".".join(label.split(".")[-2:]) in NO_COUNTERPART):
            continue
        uncovered.append(label)
    assert not uncovered, ("public callables neither compared with PyTorch nor listed in "
                           f"NO_COUNTERPART: {uncovered}")


def test_every_explanation_is_used():
    """An entry that explains no current finding is stale (the difference was fixed): remove
    it, so the table lists only real differences."""
    found = {(f[0], f[2]) for f in findings()}
    for label, obj, key in rows():           # PyTorch's parameters minigrad names otherwise
        mine = {p[0] for p in minigrad_params(obj)}
        found |= {(label, ("*" if p[1] == "VAR_POSITIONAL" else "") + p[0])
                  for p in TORCH[key]["params"] if p[0] not in mine}
    for name, table in (("NOT_SUPPORTED", NOT_SUPPORTED), ("REFUSED_BY_NAME", REFUSED_BY_NAME),
                        ("SAME_MEANING", SAME_MEANING), ("INTENTIONAL", INTENTIONAL)):
        stale = sorted(k for k in table if k not in found)
        assert not stale, f"{name} entries that explain nothing: {stale}"
    used = {f[2] for f in findings()}
    stale = sorted(set(NOT_SUPPORTED_ANYWHERE) - used)
    assert not stale, f"NOT_SUPPORTED_ANYWHERE entries that explain nothing: {stale}"


@pytest.mark.parametrize("key", sorted(REFUSED_BY_NAME), ids=lambda k: f"{k[0]}-{k[1]}")
def test_refused_by_name(key):
    with pytest.raises((TypeError, ValueError), match=key[1]):
        REFUSED_BY_NAME[key]()


@pytest.mark.parametrize("label", sorted(KWARGS_CALLS))
def test_kwargs_never_swallow_an_argument(label):
    with pytest.raises(TypeError, match="not_a_pytorch_argument"):
        KWARGS_CALLS[label](not_a_pytorch_argument=1)


def test_every_kwargs_row_is_checked():
    """A row whose minigrad signature has **kwargs where PyTorch's has none must refuse an
    unknown keyword by name (a PyTorch argument minigrad lacks must not vanish silently)."""
    with_kwargs = sorted(
        label for label, obj, key in rows()
        if any(k == "VAR_KEYWORD" for _, k, _ in minigrad_params(obj))
        and not any(p[1] == "VAR_KEYWORD" for p in TORCH[key]["params"])
        and label not in KWARGS_EXEMPT)
    assert with_kwargs == sorted(KWARGS_CALLS), \
        "every row whose signature has **kwargs needs a KWARGS_CALLS entry (and no other)"


def test_the_table_covers_the_public_api():
    """The numbers the issue's closing note quotes; a shrinking table would hide callables."""
    numbers = summary()
    assert numbers["callables"] >= 260, numbers
    assert numbers["findings"] == numbers["explained"] + numbers["mismatches"]


def test_no_unexplained_signature_mismatches():
    """The table's result: every finding is explained (not supported, refused by name, same
    meaning, or on purpose); anything else is a mismatch to fix in minigrad."""
    unexplained = [f for f in findings() if f[4] is None]
    numbers = summary()
    lines = [f"  {label:38s} {rule:8s} {what}" for label, rule, _, what, _ in unexplained]
    assert not unexplained, (
        f"{numbers['mismatches']} signature mismatches with PyTorch in "
        f"{numbers['callables_with_mismatches']} of {numbers['callables']} callables "
        f"({numbers['mismatches_by_rule']}):\n" + "\n".join(lines))


if __name__ == "__main__":
    for label, rule, _, what, why in findings():
        print(f"{label:40s} {rule:8s} {what}" + (f"   [{why}]" if why else "   [MISMATCH]"))
    print(summary())
