"""Shared fixtures: `device` runs a test once per device (CPU always, CUDA when usable).

Devices are a fixture parameter, never a copied test file: a test that takes `device` is
collected as test[cpu] and test[cuda], and the CUDA copy skips with the reason minigrad found.
"""
import pytest

from minigrad import backend


@pytest.fixture(params=["cpu", "cuda"])
def device(request):
    if request.param == "cuda" and not backend.cuda_available():
        pytest.skip(f"CUDA unavailable: {backend.cuda_unavailable_reason()}")
    return request.param
