"""The array backend: NumPy on the CPU, CuPy on an NVIDIA GPU.

This is the only module that imports CuPy. Everything else asks it for the array library of an
array (`xp_of`), moves arrays between devices (`to_device`) and learns why CUDA is unusable.
A device is a name, an array library and its array type; the tests register a strict stand-in
for CuPy through `register_device`, so CPU-only CI catches NumPy calls on device arrays.
"""
import ctypes
import platform
from collections import namedtuple

import numpy as np

Device = namedtuple("Device", "name xp array_type to_host from_host")

_DEVICES = {"cpu": Device("cpu", np, np.ndarray, np.asarray, np.asarray)}
_BY_TYPE = {np.ndarray: _DEVICES["cpu"]}     # exact array type -> device, for the hot path
_cuda_reason = None       # why CUDA is unusable, or None when it works
_rng = np.random.default_rng()


def register_device(name, xp, array_type, to_host, from_host):
    """Make `name` a device whose arrays are `array_type`, made and worked on by module `xp`.

    to_host(array) -> NumPy array; from_host(numpy_array) -> device array. The CUDA device is
    registered this way when CuPy works; the tests register a strict CuPy stand-in.
    """
    device = Device(name, xp, array_type, to_host, from_host)
    _DEVICES[name] = device
    _BY_TYPE[array_type] = device
    return device


def _probe_cuda():
    """Register 'cuda' when CuPy imports *and* sees a device; otherwise remember why not.

    Importing CuPy succeeds on machines without a GPU (it is a plain wheel), so the import alone
    proves nothing; asking the runtime for the device count is what fails there.
    """
    global _cuda_reason
    try:
        import cupy
    except ImportError as exc:
        _cuda_reason = f"CuPy is not installed ({exc})"
        return
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDARuntimeError, missing driver libraries, ...
        _cuda_reason = f"CuPy {cupy.__version__} is installed but the CUDA driver failed: {exc}"
        return
    if count == 0:
        _cuda_reason = f"CuPy {cupy.__version__} is installed but reports no CUDA device"
        return
    register_device("cuda", cupy, cupy.ndarray, cupy.asnumpy, cupy.asarray)


def cuda_available():
    """True when CuPy imports and reports at least one CUDA device."""
    return "cuda" in _DEVICES


def cuda_unavailable_reason():
    """Why CUDA cannot be used here, or None when it can."""
    return None if cuda_available() else _cuda_reason


def check_device(device):
    """Normalise a device name: 'cpu', 'cuda' ('cuda:0' and 'gpu' mean 'cuda'), or a
    registered one. Asking for 'cuda' where it cannot work raises one error saying why."""
    name = "cpu" if device is None else str(device)
    name = "cuda" if name in ("cuda:0", "gpu") else name
    if name == "cuda" and not cuda_available():
        from .install import cuda_install_hint
        raise RuntimeError(
            f"device 'cuda' was requested but is not usable: {_cuda_reason}. "
            f"To install the CuPy build matching your CUDA driver, {cuda_install_hint()}; "
            "`nvidia-smi` shows the driver's CUDA version and `python -m minigrad info` shows "
            "what minigrad found.")
    if name not in _DEVICES and name != "cuda":
        known = ("cpu", "cuda") + tuple(n for n in _DEVICES if n not in ("cpu", "cuda"))
        raise ValueError(f"unknown device {device!r}; expected one of {known}")
    return name


def _device_of_array(array):
    device = _BY_TYPE.get(type(array))
    if device is None:          # a subclass (np.memmap, ...) or not an array at all
        device = next((d for d in _DEVICES.values() if isinstance(array, d.array_type)), None)
    return device


def is_array(obj):
    """True for an array of any usable device (NumPy, CuPy, ...)."""
    return _device_of_array(obj) is not None


def xp_of(array):
    """The array library (numpy, cupy, ...) that owns `array`; numpy for anything else."""
    device = _device_of_array(array)
    return np if device is None else device.xp


def device_of(array):
    device = _device_of_array(array)
    return "cpu" if device is None else device.name


def xp_for(device):
    """The array library for a device name."""
    return _DEVICES[check_device(device)].xp


def to_device(array, device):
    """Return `array` on `device`, copying only when it has to move (through host memory)."""
    target = _DEVICES[check_device(device)]
    source = _device_of_array(array)
    if source is target:
        return array
    host = np.asarray(array) if source is None else source.to_host(array)
    return target.from_host(host)


def to_numpy(array):
    """A host NumPy array (a copy only when the data lives on another device)."""
    source = _device_of_array(array)
    return np.asarray(array) if source is None else source.to_host(array)


def manual_seed(seed):
    """Seed minigrad's NumPy generator, NumPy's legacy global one and, when usable, CuPy's."""
    global _rng
    _rng = np.random.default_rng(seed)
    np.random.seed(seed)
    if cuda_available():
        _DEVICES["cuda"].xp.random.seed(seed)


def rng():
    """The generator that initialisers, dropout-like noise and shuffling draw from (on the CPU)."""
    return _rng


def uniform(shape, dtype, device):
    """U[0, 1) samples on `device`: minigrad's generator on the CPU, the device's own random
    module elsewhere (both seeded by manual_seed), so no sample crosses the bus."""
    if device == "cpu":
        return _rng.random(shape, dtype=dtype)
    return _DEVICES[device].xp.random.random(shape).astype(dtype)


_probe_cuda()   # once, at import: every later check is a dictionary lookup

MALLOC_TUNED = False


def tune_malloc():
    """Ask glibc's malloc to keep freed memory for reuse; affects the whole Python process.

    Every op allocates its output, and by default glibc returns freed blocks of a few MB to the
    operating system at once, so the next op's output page-faults on every page it touches:
    a CNN training step runs 1.5-2x slower (benchmarks/README.md has the measurements).
    `minigrad train` and the benchmarks call this; importing minigrad never does.
    Returns True when the settings were applied (glibc only; elsewhere it does nothing).
    """
    global MALLOC_TUNED
    if platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3          # glibc's <malloc.h> constants
    # blocks up to 32 MiB (glibc's maximum) come from the heap, and up to 1 GiB of free heap is
    # kept instead of being returned to the system: a large batch's step peaks above 128 MiB
    applied = mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024) == 1
    MALLOC_TUNED = mallopt(M_TRIM_THRESHOLD, 1024 * 1024 * 1024) == 1 and applied
    return MALLOC_TUNED


def versions():
    """Library versions and the CUDA verdict, for `python -m minigrad info`."""
    info = {"numpy": np.__version__, "cupy": None, "cuda": cuda_available(),
            "cuda_reason": _cuda_reason, "gpu": None, "malloc_tuned": MALLOC_TUNED}
    try:
        import cupy
        info["cupy"] = cupy.__version__
    except ImportError:
        pass
    if cuda_available():
        props = _DEVICES["cuda"].xp.cuda.runtime.getDeviceProperties(0)
        info["gpu"] = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    return info
