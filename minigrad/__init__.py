"""minigrad: a small tensor library with reverse-mode autograd on NumPy (CPU) or CuPy (GPU).

Public surface: Tensor, Function, grad modes, factories, the common functions at top level
(mg.cat, mg.exp, mg.matmul, ...), seeding and devices, save/load, and the submodules
functional (F), nn, optim, data, kernels and testing.
"""
import numpy as np

from .backend import cuda_available, cuda_unavailable_reason, manual_seed
from .tensor import Tensor, Function, no_grad, enable_grad, is_grad_enabled, tensor
from .factories import (zeros, ones, full, eye, arange, linspace, randn, rand, randint,
                        zeros_like, ones_like, full_like, randn_like, rand_like)
from . import functional, kernels, testing
from .kernels import cpu as _cpu_kernels  # noqa: F401  (registers the fast kernels)
from .functional import (cat, concatenate, stack, where, exp, log, sqrt, abs, tanh, sigmoid,
                         relu, matmul, sum, mean, max, min, amax, amin, argmax, argmin, var,
                         std, clamp, clip, gather, reshape, flatten, squeeze, unsqueeze,
                         permute, transpose, softmax, log_softmax)
from .testing import gradcheck

__version__ = "0.1.0"

float32 = np.dtype(np.float32)
float64 = np.dtype(np.float64)
int64 = np.dtype(np.int64)
int32 = np.dtype(np.int32)
bool = np.dtype(np.bool_)

from . import data, init, nn, optim  # noqa: E402
from .checkpoint import save, load  # noqa: E402
