"""Optimisers with PyTorch's exact update rules: SGD, Adam and AdamW on one Optimizer base.

Each optimiser updates its parameters' arrays in place, so the Parameter objects a model holds
stay the same ones. Per-parameter state (momentum buffers, Adam's moments) lives in
`optimizer.state[param]` and travels with state_dict() / load_state_dict().
Learning-rate schedules are in minigrad.optim.lr_scheduler.
"""
import math

import numpy as np

from . import backend
from .tensor import Tensor


class Optimizer:
    """Base class: parameter groups, zero_grad, and state dicts. Subclasses define step().

    `params` is an iterable of Parameters, of (name, Parameter) pairs (model.named_parameters())
    or of dicts {"params": [...], "lr": ...} (groups with their own hyper-parameters; a key a
    group leaves out takes the constructor's value, as in PyTorch).
    `state` maps each parameter to a dict of its arrays ({"momentum_buffer": ...}), filled on
    the first step() that sees a gradient for it.
    """

    def __init__(self, params, defaults):
        if isinstance(params, Tensor):
            raise TypeError(f"{type(self).__name__}: params should be an iterable of Tensors or "
                            "dicts, but got one Tensor; pass [tensor] or model.parameters()")
        self.defaults = defaults
        self.state = {}          # param -> {"momentum_buffer": array, ...}; keyed by identity
        self.param_groups = []
        groups = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list (did the model register "
                             "its Parameters? model.parameters() is empty)")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, param_group):
        """Add a group of parameters, e.g. layers unfrozen during fine-tuning (PyTorch's API)."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group).__name__}")
        params = param_group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        names = None
        if params and isinstance(params[0], tuple):         # from model.named_parameters()
            names, params = [n for n, _ in params], [p for _, p in params]
        for p in params:
            # Frozen parameters (requires_grad=False) are accepted, as in PyTorch: their
            # gradient stays None, so step() leaves them alone.
            if not isinstance(p, Tensor):
                raise TypeError(f"{type(self).__name__} optimises Tensors (model.parameters()), "
                                f"got {type(p).__name__}")
            if not p.is_leaf:
                raise ValueError("can't optimize a non-leaf Tensor (one computed from "
                                 "others); pass the model's Parameters")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in params):
            raise ValueError("some parameters appear in more than one parameter group")
        group = {**self.defaults, **param_group, "params": params}
        if names is not None:
            group["param_names"] = names
        self.param_groups.append(group)

    def _params(self):
        return [p for group in self.param_groups for p in group["params"]]

    def zero_grad(self, set_to_none=True):
        """Reset every parameter's gradient: None (PyTorch 2's default), or zeros in place."""
        for p in self._params():
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad[...] = 0

    def step(self):
        raise NotImplementedError(f"{type(self).__name__} must define step()")

    def _state_for(self, p, **zeros_like_param):
        """The state dict of p, created on first use with zero arrays for the names given."""
        state = self.state.get(p)
        if state is None:
            xp = backend.xp_of(p.data)
            state = self.state[p] = {k: (v if v is not None else xp.zeros_like(p.data))
                                     for k, v in zeros_like_param.items()}
        return state

    # ---- state dicts ---------------------------------------------------------------------------
    def state_dict(self):
        """{"state": {index: {name: array or number}}, "param_groups": {index: {...}}}.

        Parameters are referred to by their position in the groups, as in PyTorch; the keys
        are strings (and the groups a dict) so the result can be saved with minigrad.save.
        Arrays are copies: later steps do not change a state dict taken earlier.
        """
        params = self._params()
        state = {}
        for i, p in enumerate(params):
            if p in self.state:
                state[str(i)] = {k: (v.copy() if backend.is_array(v) else v)
                                 for k, v in self.state[p].items()}
        groups, start = {}, 0
        for gi, group in enumerate(self.param_groups):
            n = len(group["params"])
            groups[str(gi)] = {k: v for k, v in group.items() if k != "params"}
            groups[str(gi)]["params"] = np.arange(start, start + n)
            start += n
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Restore hyper-parameters and per-parameter state saved by state_dict().

        Everything is checked before anything changes: a state dict for other parameter
        shapes raises and leaves this optimizer as it was.
        """
        params = self._params()
        groups = state_dict["param_groups"]
        groups = list(groups.values()) if isinstance(groups, dict) else list(groups)
        sizes = [len(np.atleast_1d(_host(g["params"]))) for g in groups]
        own = [len(g["params"]) for g in self.param_groups]
        if sizes != own:
            raise ValueError(f"optimizer state has parameter groups of sizes {sizes}, this "
                             f"optimizer has {own}")
        new_state = {}
        for key, entry in state_dict.get("state", {}).items():   # absent: saved before a step
            i = int(key)
            if i >= len(params):
                raise ValueError(f"optimizer state names parameter {i}, but this optimizer "
                                 f"has {len(params)} parameters")
            p, restored = params[i], {}
            for name, value in entry.items():
                value = _value(value)
                if name in self._scalar_state:
                    restored[name] = _group_value(value)
                    continue
                if tuple(np.shape(value)) != p.shape:
                    raise ValueError(f"{name.replace('_', ' ')} {i} has shape "
                                     f"{tuple(np.shape(value))}, but the parameter has shape "
                                     f"{p.shape}")
                restored[name] = backend.to_device(value, p.device).astype(p.dtype, copy=True)
            new_state[p] = restored
        for group, saved in zip(self.param_groups, groups):
            for k, v in saved.items():
                if k != "params":
                    group[k] = _group_value(v)
        self.state = new_state

    _scalar_state = frozenset({"step"})      # state entries that are numbers, not arrays

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {v}" for k, v in sorted(group.items())
                      if k not in ("params", "param_names")]
        return "\n".join(lines + [")"])


def _value(v):
    return v.data if isinstance(v, Tensor) else v


def _host(v):
    v = _value(v)
    return backend.to_numpy(v) if backend.is_array(v) else v


def _group_value(v):
    """A hyper-parameter read back from a state dict (perhaps through minigrad.load, which
    returns Tensors): 0-d arrays become Python numbers, 1-d ones tuples (Adam's betas)."""
    v = _host(v)
    if isinstance(v, np.ndarray):
        return v.item() if v.ndim == 0 else tuple(v.tolist())
    return v


def _check_hyper(lr, weight_decay, momentum=0.0, eps=0.0, betas=(0.0, 0.0)):
    """PyTorch's argument checks and messages."""
    if lr is None or lr < 0:
        raise ValueError(f"Invalid learning rate: {lr} (must be >= 0)")
    if momentum < 0:
        raise ValueError(f"Invalid momentum value: {momentum} (must be >= 0)")
    if weight_decay < 0:
        raise ValueError(f"Invalid weight_decay value: {weight_decay} (must be >= 0)")
    if eps < 0:
        raise ValueError(f"Invalid epsilon value: {eps} (must be >= 0)")
    for i, beta in enumerate(betas):
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"Invalid beta parameter at index {i}: {beta} (must be in [0, 1))")


class SGD(Optimizer):
    """SGD(params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False, *,
    maximize=False)

    For each parameter p with gradient g, as torch.optim.SGD does it:
        g = -g                                           (maximize: ascend instead)
        g = g + weight_decay * p                         (L2 penalty, if weight_decay)
        buf = g                          on the first step (no dampening on it)
        buf = momentum * buf + (1 - dampening) * g       afterwards
        g = g + momentum * buf  (nesterov)   or   g = buf   (plain momentum)
        p = p - lr * g
    State per parameter: {"momentum_buffer": buf} (only with momentum).
    """

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0,
                 nesterov=False, *, maximize=False):
        _check_hyper(lr, weight_decay, momentum=momentum)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening "
                             f"(got momentum={momentum}, dampening={dampening})")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov,
                                      maximize=maximize))

    def step(self):
        for group in self.param_groups:
            lr, momentum, dampening = group["lr"], group["momentum"], group["dampening"]
            weight_decay, nesterov = group["weight_decay"], group["nesterov"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = -p.grad if group["maximize"] else p.grad
                if weight_decay:
                    g = g + weight_decay * p.data
                if momentum:
                    state = self.state.get(p)
                    if state is None:
                        buf = g.copy()
                        self.state[p] = {"momentum_buffer": buf}
                    else:
                        buf = state["momentum_buffer"]
                        buf *= momentum
                        buf += (1 - dampening) * g if dampening else g
                    g = g + momentum * buf if nesterov else buf
                p.data -= lr * g


class Adam(Optimizer):
    """Adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, *,
    maximize=False, decoupled_weight_decay=False)      (Kingma & Ba 2015, as torch.optim.Adam)

    For each parameter p with gradient g, at step t = 1, 2, ...:
        g = -g                                      (maximize)
        g = g + weight_decay * p                    (L2 penalty; decoupled: p = p (1 - lr wd))
        m = beta1 m + (1 - beta1) g                 first moment (exp_avg)
        v = beta2 v + (1 - beta2) g^2               second moment (exp_avg_sq)
        v_max = max(v_max, v)                       (amsgrad: never let the step grow back)
        p = p - lr / (1 - beta1^t) * m / (sqrt(v or v_max) / sqrt(1 - beta2^t) + eps)
    The (1 - beta^t) factors undo the bias of moments that start at zero.
    State per parameter: step (an int), exp_avg, exp_avg_sq, and max_exp_avg_sq (amsgrad).
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 amsgrad=False, *, maximize=False, decoupled_weight_decay=False):
        _check_hyper(lr, weight_decay, eps=eps, betas=betas)
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps,
                                      weight_decay=weight_decay, amsgrad=amsgrad,
                                      maximize=maximize,
                                      decoupled_weight_decay=decoupled_weight_decay))

    def step(self):
        for group in self.param_groups:
            lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
            weight_decay, amsgrad = group["weight_decay"], group["amsgrad"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self._state_for(p, step=0, exp_avg=None, exp_avg_sq=None,
                                        **({"max_exp_avg_sq": None} if amsgrad else {}))
                g = -p.grad if group["maximize"] else p.grad
                state["step"] += 1
                t = state["step"]
                if weight_decay:
                    if group["decoupled_weight_decay"]:
                        p.data *= 1 - lr * weight_decay          # AdamW: shrink p directly
                    else:
                        g = g + weight_decay * p.data            # Adam: an L2 term in g
                m, v = state["exp_avg"], state["exp_avg_sq"]
                m += (1 - beta1) * (g - m)                       # torch's lerp form of the EMA
                v *= beta2
                v += (1 - beta2) * g * g
                if amsgrad:
                    v_max = state["max_exp_avg_sq"]
                    backend.xp_of(v).maximum(v_max, v, out=v_max)
                    v = v_max
                bias_correction1 = 1 - beta1 ** t
                bias_correction2_sqrt = math.sqrt(1 - beta2 ** t)
                denom = backend.xp_of(v).sqrt(v) / bias_correction2_sqrt + eps
                p.data -= (lr / bias_correction1) * m / denom


class AdamW(Adam):
    """AdamW(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *,
    maximize=False)                        (Loshchilov & Hutter 2019, as torch.optim.AdamW)

    Adam with decoupled weight decay: before the Adam step, p = p * (1 - lr * weight_decay),
    instead of adding weight_decay * p to the gradient (where Adam's scaling would shrink it).
    Note PyTorch's default weight_decay here is 1e-2, not Adam's 0.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, *, maximize=False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize,
                         decoupled_weight_decay=True)


from . import lr_scheduler  # noqa: E402,F401  (minigrad.optim.lr_scheduler, as in torch.optim)
