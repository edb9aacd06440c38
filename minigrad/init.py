"""Weight initialisers (PyTorch's formulas), drawing from minigrad's seeded generator.

Each function returns a new float32 NumPy array of the given shape; wrap it in a Parameter, or
use the `_` versions that fill an existing Parameter in place, as `torch.nn.init` does.
fan_in/fan_out of a (out, in, kh, kw) weight are in*kh*kw and out*kh*kw.
"""
import math

import numpy as np

from . import backend


def _fans(shape):
    if len(shape) < 2:
        raise ValueError(f"fan in/out need a weight with at least 2 dimensions, got {shape}")
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def calculate_gain(nonlinearity, param=None):
    """The gain that keeps activations' variance steady: sqrt(2) for ReLU, 5/3 for tanh, ..."""
    if nonlinearity in ("linear", "conv2d", "sigmoid"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        return math.sqrt(2.0 / (1 + slope ** 2))
    raise ValueError(f"unknown nonlinearity {nonlinearity!r}")


def uniform(shape, low=0.0, high=1.0):
    return backend.rng().uniform(low, high, size=shape).astype(np.float32)


def normal(shape, mean=0.0, std=1.0):
    return (mean + std * backend.rng().standard_normal(shape)).astype(np.float32)


def xavier_uniform(shape, gain=1.0):
    """U(-a, a), a = gain * sqrt(6 / (fan_in + fan_out))   (Glorot & Bengio 2010)."""
    fan_in, fan_out = _fans(shape)
    a = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform(shape, -a, a)


def xavier_normal(shape, gain=1.0):
    """N(0, std^2), std = gain * sqrt(2 / (fan_in + fan_out))."""
    fan_in, fan_out = _fans(shape)
    return normal(shape, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)))


def kaiming_uniform(shape, a=0.0, mode="fan_in", nonlinearity="leaky_relu"):
    """U(-b, b), b = gain * sqrt(3 / fan)   (He et al. 2015); a is the leaky-ReLU slope."""
    fan = _fans(shape)[0 if mode == "fan_in" else 1]
    bound = calculate_gain(nonlinearity, a) * math.sqrt(3.0 / fan)
    return uniform(shape, -bound, bound)


def kaiming_normal(shape, a=0.0, mode="fan_in", nonlinearity="leaky_relu"):
    """N(0, std^2), std = gain / sqrt(fan)   (He et al. 2015)."""
    fan = _fans(shape)[0 if mode == "fan_in" else 1]
    return normal(shape, 0.0, calculate_gain(nonlinearity, a) / math.sqrt(fan))


def _fill(tensor, values):
    tensor.data[...] = backend.to_device(values, tensor.device).astype(tensor.dtype)
    return tensor


def uniform_(tensor, a=0.0, b=1.0):
    return _fill(tensor, uniform(tensor.shape, a, b))


def normal_(tensor, mean=0.0, std=1.0):
    return _fill(tensor, normal(tensor.shape, mean, std))


def constant_(tensor, val):
    tensor.data[...] = val
    return tensor


def zeros_(tensor):
    return constant_(tensor, 0)


def ones_(tensor):
    return constant_(tensor, 1)


def xavier_uniform_(tensor, gain=1.0):
    return _fill(tensor, xavier_uniform(tensor.shape, gain))


def xavier_normal_(tensor, gain=1.0):
    return _fill(tensor, xavier_normal(tensor.shape, gain))


def kaiming_uniform_(tensor, a=0.0, mode="fan_in", nonlinearity="leaky_relu"):
    return _fill(tensor, kaiming_uniform(tensor.shape, a, mode, nonlinearity))


def kaiming_normal_(tensor, a=0.0, mode="fan_in", nonlinearity="leaky_relu"):
    return _fill(tensor, kaiming_normal(tensor.shape, a, mode, nonlinearity))
