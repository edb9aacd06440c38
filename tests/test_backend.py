"""The backend seam: the CUDA probe and its error, device strings, array helpers, seeding,
and the same-device check in Function.apply."""
import importlib.util
import sys
import types

import numpy as np
import pytest

import minigrad
from minigrad import Tensor, backend

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
    assert "minigrad[cuda12]" in message and "minigrad[cuda13]" in message
    # one error, not a chain of tracebacks the learner has to dig through
    assert info.value.__cause__ is None and info.value.__context__ is None


@pytest.fixture
def fresh_probe(monkeypatch):
    """Forget the probe's verdict (monkeypatch restores it after the test)."""
    monkeypatch.setattr(backend, "_probed", False)
    monkeypatch.setattr(backend, "_cupy", None)
    monkeypatch.setattr(backend, "_cuda_reason", None)
    monkeypatch.setattr(backend, "_ARRAY_TYPES", (np.ndarray,))
    return monkeypatch


def _fake_cupy(get_device_count):
    """A stand-in for a CuPy wheel that imports fine, as it does on a machine without a GPU."""
    cupy = types.ModuleType("cupy")
    cupy.__version__ = "99.0"
    cupy.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(
        getDeviceCount=get_device_count))
    return cupy


def test_probe_importable_cupy_with_failing_driver_is_unusable(fresh_probe):
    def no_driver():
        raise RuntimeError("cudaErrorInsufficientDriver: CUDA driver version is insufficient")

    fresh_probe.setitem(sys.modules, "cupy", _fake_cupy(no_driver))
    assert backend.cuda_available() is False
    reason = backend.cuda_unavailable_reason()
    assert "99.0" in reason and "driver failed" in reason and "Insufficient" in reason
    with pytest.raises(RuntimeError, match="minigrad\\[cuda12\\]") as info:
        Tensor([1.0], device="cuda")
    assert "cudaErrorInsufficientDriver" in str(info.value)


def test_probe_importable_cupy_without_devices_is_unusable(fresh_probe):
    fresh_probe.setitem(sys.modules, "cupy", _fake_cupy(lambda: 0))
    assert backend.cuda_available() is False
    assert "no CUDA device" in backend.cuda_unavailable_reason()


def test_probe_runs_once(fresh_probe):
    calls = []
    fresh_probe.setitem(sys.modules, "cupy", _fake_cupy(lambda: calls.append(1) or 0))
    backend.cuda_available()
    backend.cuda_available()
    backend.cuda_unavailable_reason()
    assert calls == [1]


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
class _OtherDeviceArray(np.ndarray):
    """An ndarray subclass standing in for another device's array type (see the test below)."""


def test_same_device_check_names_both_devices(monkeypatch):
    """Function.apply refuses inputs whose arrays are of different types (numpy vs cupy).

    Without a GPU we stand in a NumPy subclass for the foreign array type and teach
    backend.device_of to call it 'cuda'; the check in apply, and its message, are the real code.
    """
    real_device_of = backend.device_of
    monkeypatch.setattr(backend, "device_of", lambda arr: "cuda" if isinstance(
        arr, _OtherDeviceArray) else real_device_of(arr))
    host = Tensor(np.ones((2, 3)), requires_grad=True)
    foreign = Tensor._make(np.ones((2, 3), dtype=np.float32).view(_OtherDeviceArray), False, None)
    assert foreign.device == "cuda"
    for combine in (lambda: host + foreign, lambda: foreign * host, lambda: host @ foreign.T):
        with pytest.raises(RuntimeError, match="same device") as info:
            combine()
        message = str(info.value)
        assert "cpu" in message and "cuda" in message and ".to(device)" in message
    with pytest.raises(RuntimeError, match="^Add: .*on cpu \\(2, 3\\) and one on cuda \\(2, 3\\)"):
        host + foreign


@needs_cuda
def test_mixing_real_devices_raises():
    cpu, gpu = Tensor([1.0, 2.0]), Tensor([1.0, 2.0], device="cuda")
    with pytest.raises(RuntimeError, match="cpu.*cuda|cuda.*cpu"):
        cpu + gpu
    with pytest.raises(RuntimeError, match="cpu.*cuda|cuda.*cpu"):
        gpu * np.ones(2)          # a host array cannot silently join a GPU tensor
    np.testing.assert_array_equal((gpu.to("cpu") + cpu).numpy(), [2.0, 4.0])


def _malloc_tuned_in_child(env_value):
    import os
    import subprocess
    env = dict(os.environ)
    env.pop("MINIGRAD_MALLOC_TUNING", None)
    if env_value is not None:
        env["MINIGRAD_MALLOC_TUNING"] = env_value
    out = subprocess.run([sys.executable, "-c", "from minigrad import backend; "
                          "print(backend.MALLOC_TUNED)"],
                         env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt is Linux-only")
def test_malloc_tuning_is_on_by_default_on_glibc_and_can_be_turned_off():
    import platform
    if platform.libc_ver()[0] != "glibc":
        pytest.skip("not a glibc system: minigrad leaves malloc alone there")
    assert _malloc_tuned_in_child(None) == "True"
    assert _malloc_tuned_in_child("0") == "False"
    assert backend.versions()["malloc_tuned"] is backend.MALLOC_TUNED
