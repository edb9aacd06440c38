"""Shared fixtures: `device` runs a test once per device (CPU always, CUDA when usable).

Devices are a fixture parameter, never a copied test file: a test that takes `device` is
collected as test[cpu], test[strict] and test[cuda]. "strict" is a CuPy stand-in on the CPU
(tests/strict_device.py) whose arrays refuse implicit conversion to NumPy, so a NumPy call on
device data fails here instead of on a learner's GPU; the CUDA copy skips with the reason
minigrad found when there is no usable GPU.
"""
import os

# The test command runs two pytest workers (-n 2) on two cores; with OpenBLAS's default of one
# thread per core they would fight over the cores and every matrix product slows down several
# times. One BLAS thread per worker (inherited by the lesson kernels nbmake starts) is fastest.
# Set before NumPy is imported; an explicit setting in the environment wins.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from minigrad import backend  # noqa: E402

import strict_device  # noqa: E402

strict_device.register()


@pytest.fixture(params=["cpu", "strict", "cuda"])
def device(request):
    if request.param == "cuda" and not backend.cuda_available():
        pytest.skip(f"CUDA unavailable: {backend.cuda_unavailable_reason()}")
    return request.param


@pytest.fixture(params=[np.float64, np.float32], ids=["float64", "float32"])
def dtype(request):
    """Run a test in float64 and in float32 (compared with PyTorch's run of the same dtype)."""
    return request.param
