"""The backend seam: the CUDA probe and its error, device strings, array helpers, seeding,
and the same-device check in Function.apply."""
import importlib.util
import sys
import types

import numpy as np
import pytest

import minigrad
from minigrad import Tensor, backend
from minigrad.install import cuda_install_hint

CUPY_INSTALLED = importlib.util.find_spec("cupy") is not None
needs_cuda = pytest.mark.skipif(not backend.cuda_available(),
                                reason=f"CUDA unavailable: {backend.cuda_unavailable_reason()}")
needs_no_cuda = pytest.mark.skipif(backend.cuda_available(), reason="CUDA works on this machine")


# ---- the probe and the one error ------------------------------------------------------------
@pytest.mark.skipif(CUPY_INSTALLED, reason="CuPy is installed on this machine")
def test_without_cupy_cuda_is_unavailable():
    assert backend.cuda_available() is False
    assert minigrad.cuda_available() is False
    assert "CuPy is not installed" in backend.cuda_unavailable_reason()


@needs_cuda
def test_with_cuda_there_is_no_reason():
    assert backend.cuda_unavailable_reason() is None


@needs_no_cuda
@pytest.mark.parametrize("make", [
    lambda: Tensor([1.0, 2.0], device="cuda"),
    lambda: minigrad.tensor(np.zeros(3), device="cuda:0"),
    lambda: minigrad.zeros(2, device="cuda"),
    lambda: minigrad.randn(2, device="gpu"),
    lambda: Tensor([1.0]).to("cuda"),
    lambda: Tensor([1.0]).cuda(),
], ids=["Tensor", "tensor-cuda:0", "zeros", "randn-gpu", "to", "cuda"])
def test_cuda_request_raises_one_error_naming_cause_and_extras(make):
    with pytest.raises(RuntimeError) as info:
        make()
    message = str(info.value)
    assert backend.cuda_unavailable_reason() in message
    assert cuda_install_hint() in message     # worded for a checkout or an installed package
    # one error, not a chain of tracebacks the learner has to dig through
    assert info.value.__cause__ is None and info.value.__context__ is None


@pytest.fixture
def fresh_probe(monkeypatch):
    """Forget the probe's verdict and the registered CUDA device (restored after the test)."""
    monkeypatch.setattr(backend, "_DEVICES", {"cpu": backend._DEVICES["cpu"]})
    monkeypatch.setattr(backend, "_BY_TYPE", {np.ndarray: backend._DEVICES["cpu"]})
    monkeypatch.setattr(backend, "_cuda_reason", None)
    return monkeypatch


def _fake_cupy(get_device_count):
    """A stand-in for a CuPy wheel that imports fine, as it does on a machine without a GPU."""
    cupy = types.ModuleType("cupy")
    cupy.__version__ = "99.0"
    cupy.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(
        getDeviceCount=get_device_count))
    cupy.ndarray = type("ndarray", (), {})
    cupy.asnumpy = cupy.asarray = None
    return cupy


def test_probe_importable_cupy_with_failing_driver_is_unusable(fresh_probe):
    def no_driver():
        raise RuntimeError("cudaErrorInsufficientDriver: CUDA driver version is insufficient")

    fresh_probe.setitem(sys.modules, "cupy", _fake_cupy(no_driver))
    backend._probe_cuda()
    assert backend.cuda_available() is False
    reason = backend.cuda_unavailable_reason()
    assert "99.0" in reason and "driver failed" in reason and "Insufficient" in reason
    with pytest.raises(RuntimeError, match="cuda12") as info:
        Tensor([1.0], device="cuda")
    assert "cudaErrorInsufficientDriver" in str(info.value)


def test_probe_importable_cupy_without_devices_is_unusable(fresh_probe):
    fresh_probe.setitem(sys.modules, "cupy", _fake_cupy(lambda: 0))
    backend._probe_cuda()
    assert backend.cuda_available() is False
    assert "no CUDA device" in backend.cuda_unavailable_reason()


def test_probe_with_a_device_registers_cuda_and_later_checks_do_not_probe(fresh_probe):
    calls = []
    cupy = _fake_cupy(lambda: calls.append(1) or 1)
    fresh_probe.setitem(sys.modules, "cupy", cupy)
    backend._probe_cuda()
    for _ in range(3):
        assert backend.cuda_available() is True
        assert backend.cuda_unavailable_reason() is None
    assert calls == [1]                                   # the driver was asked once
    assert backend.check_device("cuda:0") == "cuda" and backend.xp_for("gpu") is cupy
    assert backend.device_of(cupy.ndarray()) == "cuda" and backend.xp_of(cupy.ndarray()) is cupy


# ---- device strings --------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["tpu", "mps", "CPU", "cuda:1", ""])
def test_unknown_device_raises_value_error(name):
    with pytest.raises(ValueError, match="unknown device"):
        Tensor([1.0], device=name)
    with pytest.raises(ValueError, match="unknown device"):
        backend.check_device(name)


def test_check_device_normalises():
    assert backend.check_device(None) == "cpu"
    assert backend.check_device("cpu") == "cpu"
    if backend.cuda_available():
        assert backend.check_device("cuda:0") == "cuda" and backend.check_device("gpu") == "cuda"


# ---- array helpers ---------------------------------------------------------------------------
def test_numpy_array_helpers():
    a = np.arange(6.0).reshape(2, 3)
    assert backend.xp_of(a) is np
    assert backend.device_of(a) == "cpu"
    assert backend.xp_for("cpu") is np
    assert backend.is_array(a) and not backend.is_array([1.0, 2.0])
    assert backend.to_numpy(a) is a                       # no copy when already on the host
    assert backend.to_device(a, "cpu") is a
    np.testing.assert_array_equal(backend.to_numpy([1, 2]), [1, 2])
    assert Tensor(a).device == "cpu"


def test_versions_reports_numpy_and_cuda_verdict():
    info = backend.versions()
    assert info["numpy"] == np.__version__
    assert info["cuda"] is backend.cuda_available()
    assert info["cuda_reason"] == backend.cuda_unavailable_reason()


@needs_cuda
def test_cuda_helpers_round_trip():
    a = np.arange(4.0)
    g = backend.to_device(a, "cuda")
    assert backend.device_of(g) == "cuda" and backend.xp_of(g) is not np
    np.testing.assert_array_equal(backend.to_numpy(g), a)


# ---- seeding ---------------------------------------------------------------------------------
def test_manual_seed_makes_random_tensors_reproducible():
    minigrad.manual_seed(123)
    a, u = minigrad.randn(3, 4).numpy(), minigrad.rand(5).numpy()
    legacy = np.random.rand(2)
    minigrad.manual_seed(123)
    b, v = minigrad.randn(3, 4).numpy(), minigrad.rand(5).numpy()
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(u, v)
    np.testing.assert_array_equal(np.random.rand(2), legacy)     # NumPy's global one too
    minigrad.manual_seed(124)
    assert not np.array_equal(minigrad.randn(3, 4).numpy(), a)
    # the draws are standard normal, not a constant
    minigrad.manual_seed(0)
    big = minigrad.randn(20_000).numpy()
    assert abs(big.mean()) < 0.05 and abs(big.std() - 1) < 0.05


# ---- tensors on different devices -----------------------------------------------------------
def test_same_device_check_names_both_devices():
    """Function.apply refuses inputs on different devices; the strict device of the tests
    (a CuPy stand-in, tests/strict_device.py) plays the second device."""
    host = Tensor(np.ones((2, 3)), requires_grad=True)
    other = Tensor(np.ones((2, 3)), device="strict")
    for combine in (lambda: host + other, lambda: other * host, lambda: host @ other.T):
        with pytest.raises(RuntimeError, match="same device") as info:
            combine()
        message = str(info.value)
        assert "cpu" in message and "strict" in message and ".to(device)" in message
    with pytest.raises(RuntimeError, match="^Add: .*on cpu \\(2, 3\\) and one on strict \\(2, 3\\)"):
        host + other
    with pytest.raises(RuntimeError, match="cpu.*strict|strict.*cpu"):
        other * np.ones(3)       # a host array cannot silently join a device tensor
    np.testing.assert_array_equal((other.to("cpu") + host).numpy(), np.full((2, 3), 2.0))


@needs_cuda
def test_mixing_real_devices_raises():
    cpu, gpu = Tensor([1.0, 2.0]), Tensor([1.0, 2.0], device="cuda")
    with pytest.raises(RuntimeError, match="cpu.*cuda|cuda.*cpu"):
        cpu + gpu
    with pytest.raises(RuntimeError, match="cpu.*cuda|cuda.*cpu"):
        gpu * np.ones(2)          # a host array cannot silently join a GPU tensor
    np.testing.assert_array_equal((gpu.to("cpu") + cpu).numpy(), [2.0, 4.0])


def _in_child(code):
    import subprocess
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.split()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt is Linux-only")
def test_importing_minigrad_leaves_malloc_alone_and_tune_malloc_is_explicit():
    import platform
    if platform.libc_ver()[0] != "glibc":
        pytest.skip("not a glibc system: tune_malloc does nothing there")
    assert _in_child("import minigrad; from minigrad import backend; "
                     "print(backend.MALLOC_TUNED, backend.versions()['malloc_tuned'])") == [
        "False", "False"]
    assert _in_child("from minigrad import backend; print(backend.tune_malloc(), "
                     "backend.MALLOC_TUNED, backend.versions()['malloc_tuned'])") == [
        "True", "True", "True"]
