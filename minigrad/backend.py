"""The array backend: NumPy on the CPU, CuPy on an NVIDIA GPU.

This is the only module that imports CuPy. Everything else asks it for the array library of an
array (`xp_of`), moves arrays between devices (`to_device`) and learns why CUDA is unusable.
"""
import ctypes
import os
import platform

import numpy as np

DEVICES = ("cpu", "cuda")

_cupy = None              # the cupy module once the probe found a usable GPU
_cuda_reason = None       # why CUDA is unusable, or None when it works
_probed = False
_ARRAY_TYPES = (np.ndarray,)
_rng = np.random.default_rng()


def _probe():
    """Decide once whether CUDA works: CuPy must import *and* see a device.

    Importing CuPy succeeds on machines without a GPU (it is a plain wheel), so the import alone
    proves nothing; asking the runtime for the device count is what fails there.
    """
    global _cupy, _cuda_reason, _probed, _ARRAY_TYPES
    if _probed:
        return
    _probed = True
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
    _cupy = cupy
    _ARRAY_TYPES = (np.ndarray, cupy.ndarray)


def cuda_available():
    """True when CuPy imports and reports at least one CUDA device."""
    _probe()
    return _cupy is not None


def cuda_unavailable_reason():
    """Why CUDA cannot be used here, or None when it can."""
    _probe()
    return _cuda_reason


def _require_cuda():
    if not cuda_available():
        raise RuntimeError(
            f"device 'cuda' was requested but is not usable: {_cuda_reason}. "
            "Install the CuPy build matching your CUDA driver: pip install 'minigrad[cuda12]' "
            "(CUDA 12.x) or 'minigrad[cuda13]' (CUDA 13.x); `nvidia-smi` shows the driver's "
            "CUDA version and `python -m minigrad info` shows what minigrad found.")
    return _cupy


def check_device(device):
    """Normalise a device string: 'cpu', 'cuda' ('cuda:0' is accepted as 'cuda')."""
    if device is None:
        return "cpu"
    name = str(device)
    if name in ("cuda:0", "gpu"):
        name = "cuda"
    if name not in DEVICES:
        raise ValueError(f"unknown device {device!r}; expected one of {DEVICES}")
    if name == "cuda":
        _require_cuda()
    return name


def is_array(obj):
    """True for a NumPy or (when CUDA works) CuPy ndarray."""
    return isinstance(obj, _ARRAY_TYPES)


def xp_of(array):
    """The array library (numpy or cupy) that owns `array`."""
    if _cupy is not None and isinstance(array, _cupy.ndarray):
        return _cupy
    return np


def device_of(array):
    return "cuda" if xp_of(array) is not np else "cpu"


def xp_for(device):
    """The array library for a device string."""
    return _require_cuda() if check_device(device) == "cuda" else np


def to_device(array, device):
    """Return `array` on `device`, copying only when it has to move."""
    device = check_device(device)
    if device == "cuda":
        return _cupy.asarray(array)
    if _cupy is not None and isinstance(array, _cupy.ndarray):
        return _cupy.asnumpy(array)
    return np.asarray(array)


def to_numpy(array):
    """A host NumPy array (a copy only when the data lives on the GPU)."""
    if _cupy is not None and isinstance(array, _cupy.ndarray):
        return _cupy.asnumpy(array)
    return np.asarray(array)


def manual_seed(seed):
    """Seed minigrad's NumPy generator, NumPy's legacy global one and, when usable, CuPy's."""
    global _rng
    _rng = np.random.default_rng(seed)
    np.random.seed(seed)
    if cuda_available():
        _cupy.random.seed(seed)


def rng():
    """The generator that initialisers, dropout-like noise and shuffling draw from (on the CPU)."""
    return _rng


_probe()   # once, at import: every later check is a cheap attribute read


def _keep_freed_memory():
    """Ask glibc's malloc to keep freed array memory for reuse instead of returning it at once.

    Every op allocates its output, and by default glibc hands blocks of a few MB straight back
    to the operating system when they are freed; the next allocation of the same size then
    page-faults on every 4 KiB page it touches. On the virtual machines we measured that is
    about 5 us per page: `v * 2 + 1` on 2 MiB took 2.9 ms instead of 0.14 ms, and keeping up
    to 128 MiB of freed memory in the process made a CNN training step 1.5-1.9x faster
    (benchmarks/README.md has the numbers). PyTorch avoids the same cost with its own caching
    allocator. Set MINIGRAD_MALLOC_TUNING=0 to leave malloc alone.
    Returns True when the settings were applied.
    """
    if os.environ.get("MINIGRAD_MALLOC_TUNING", "1") == "0" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3          # glibc's <malloc.h> constants
    # blocks up to 32 MiB (glibc's maximum) come from the heap, not from fresh mmap calls ...
    applied = mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024) == 1
    # ... and up to 128 MiB of free heap is kept instead of being returned to the system
    return mallopt(M_TRIM_THRESHOLD, 128 * 1024 * 1024) == 1 and applied


MALLOC_TUNED = _keep_freed_memory()


def versions():
    """Library versions and the CUDA verdict, for `python -m minigrad info`."""
    _probe()
    info = {"numpy": np.__version__, "cupy": None, "cuda": cuda_available(),
            "cuda_reason": _cuda_reason, "gpu": None, "malloc_tuned": MALLOC_TUNED}
    try:
        import cupy
        info["cupy"] = cupy.__version__
    except ImportError:
        pass
    if _cupy is not None:
        props = _cupy.cuda.runtime.getDeviceProperties(0)
        info["gpu"] = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    return info
