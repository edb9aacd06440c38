"""Stochastic gradient descent with PyTorch's exact update rules.

The optimiser updates each parameter's array in place, so the Parameter objects a model holds
stay the same ones; its momentum buffers are its state (state_dict / load_state_dict).
"""
import numpy as np

from . import backend
from .tensor import Tensor


class SGD:
    """SGD(params, lr, momentum=0, dampening=0, weight_decay=0, nesterov=False)

    For each parameter p with gradient g, as torch.optim.SGD does it:
        g = g + weight_decay * p                         (L2 penalty, if weight_decay)
        buf = g                          on the first step (no dampening on it)
        buf = momentum * buf + (1 - dampening) * g       afterwards
        g = g + momentum * buf  (nesterov)   or   g = buf   (plain momentum)
        p = p - lr * g
    `params` is an iterable of Parameters, or of dicts {"params": [...], "lr": ...} (groups).
    """

    def __init__(self, params, lr, momentum=0.0, dampening=0.0, weight_decay=0.0,
                 nesterov=False):
        if lr is None or lr < 0:
            raise ValueError(f"Invalid learning rate: {lr} (must be >= 0)")
        if momentum < 0:
            raise ValueError(f"Invalid momentum value: {momentum} (must be >= 0)")
        if weight_decay < 0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay} (must be >= 0)")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening "
                             f"(got momentum={momentum}, dampening={dampening})")
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening,
                        weight_decay=weight_decay, nesterov=nesterov)
        params = list(params)
        if not params:
            raise ValueError("optimizer got an empty parameter list (did the model register "
                             "its Parameters? model.parameters() is empty)")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        self.param_groups = []
        for group in groups:
            group = {**defaults, **group, "params": list(group["params"])}
            for p in group["params"]:
                # Frozen parameters (requires_grad=False) are accepted, as in PyTorch: their
                # gradient stays None, so step() leaves them alone.
                if not isinstance(p, Tensor):
                    raise TypeError(f"SGD optimises Tensors (model.parameters()), got "
                                    f"{type(p).__name__}")
                if not p.is_leaf:
                    raise ValueError("can't optimize a non-leaf Tensor (one computed from "
                                     "others); pass the model's Parameters")
            self.param_groups.append(group)
        self.state = {}      # id(param) -> momentum buffer (an array like param.data)

    def _params(self):
        return [p for group in self.param_groups for p in group["params"]]

    def zero_grad(self):
        """Set every parameter's gradient to None (PyTorch's default set_to_none=True)."""
        for p in self._params():
            p.grad = None

    def step(self):
        for group in self.param_groups:
            lr, momentum, dampening = group["lr"], group["momentum"], group["dampening"]
            weight_decay, nesterov = group["weight_decay"], group["nesterov"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                if weight_decay:
                    g = g + weight_decay * p.data
                if momentum:
                    buf = self.state.get(id(p))
                    if buf is None:
                        buf = self.state[id(p)] = g.copy()
                    else:
                        buf *= momentum
                        buf += (1 - dampening) * g if dampening else g
                    g = g + momentum * buf if nesterov else buf
                p.data -= lr * g

    def state_dict(self):
        """{"state": {index: {"momentum_buffer": array}}, "param_groups": {index: {...}}}.

        Parameters are referred to by their position in the groups, as in PyTorch; the keys
        are strings so the dict can be saved with minigrad.save.
        """
        params = self._params()
        state = {str(i): {"momentum_buffer": self.state[id(p)].copy()}
                 for i, p in enumerate(params) if id(p) in self.state}
        groups, start = {}, 0
        for gi, group in enumerate(self.param_groups):
            n = len(group["params"])
            groups[str(gi)] = {k: v for k, v in group.items() if k != "params"}
            groups[str(gi)]["params"] = np.arange(start, start + n)
            start += n
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Restore hyper-parameters and momentum buffers saved by state_dict()."""
        params = self._params()
        groups = state_dict["param_groups"]
        sizes = [len(np.atleast_1d(_value(g["params"]))) for g in groups.values()]
        if sizes != [len(g["params"]) for g in self.param_groups]:
            raise ValueError(f"optimizer state has parameter groups of sizes {sizes}, this "
                             f"optimizer has {[len(g['params']) for g in self.param_groups]}")
        buffers = {}
        for key, entry in state_dict["state"].items():
            i = int(key)
            buf = _value(entry["momentum_buffer"])
            if i >= len(params) or np.shape(buf) != params[i].shape:
                want = params[i].shape if i < len(params) else "none"
                raise ValueError(f"momentum buffer {i} has shape {np.shape(buf)}, but the "
                                 f"parameter has shape {want}")
            buffers[id(params[i])] = backend.to_device(buf, params[i].device).astype(
                params[i].dtype)
        for group, saved in zip(self.param_groups, groups.values()):
            for k, v in saved.items():
                if k != "params":
                    v = _value(v)
                    group[k] = v.item() if hasattr(v, "item") else v
        self.state = buffers


def _value(v):
    return v.data if isinstance(v, Tensor) else v
