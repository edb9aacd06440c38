"""minigrad: a small tensor library with reverse-mode autograd on NumPy (CPU) or CuPy (GPU).

Public surface: Tensor, no_grad, manual_seed, device helpers, save/load, and the submodules
functional (F), nn, optim, data and testing.
"""
import numpy as np

from .backend import cuda_available, cuda_unavailable_reason, manual_seed
from .tensor import Tensor, no_grad, is_grad_enabled, tensor, zeros, ones, randn, rand
from . import functional, kernels, testing
from .kernels import cpu as _cpu_kernels  # noqa: F401  (registers the fast kernels)

__version__ = "0.1.0"

float32 = np.dtype(np.float32)
float64 = np.dtype(np.float64)
int64 = np.dtype(np.int64)

from . import data, init, nn, optim
from .checkpoint import save, load
