"""Saving and loading state dicts as .npz files, with pickling disabled, and the random state.

A checkpoint written by `save` holds only arrays (np.load(allow_pickle=False) reads it back),
so loading one can never run code. Nested dicts are stored with '/'-joined keys (an empty dict
as its name and a trailing '/'). `rng_state` / `set_rng_state` capture minigrad's random
generators: with model.state_dict(), optimizer.state_dict() and DataLoader.state_dict() they
are what a checkpoint needs to resume training exactly.
"""
import json
import os
import zipfile
import tempfile

import numpy as np

from . import backend
from .tensor import Tensor


def _flatten(obj, prefix, out):
    for key, value in obj.items():
        key = str(key)
        if "/" in key or not key:
            raise ValueError(f"checkpoint keys may not be empty or contain '/': {key!r}")
        name = f"{prefix}{key}"
        if isinstance(value, dict) and not value:
            out[name + "/"] = np.zeros(0)       # a trailing '/' marks an empty dict (no leaf)
        elif isinstance(value, dict):
            _flatten(value, name + "/", out)
        else:
            try:
                array = backend.to_numpy(value.data if isinstance(value, Tensor) else value)
            except ValueError as exc:      # e.g. a ragged list
                raise TypeError(f"cannot save {name!r}: {exc}") from None
            if array.dtype == object:
                raise TypeError(f"cannot save {name!r} of type {type(value).__name__}: a "
                                "checkpoint holds numbers, arrays, Tensors and strings only")
            out[name] = array


def save(obj, f):
    """Write a (possibly nested) dict of Tensors, arrays and numbers to the path f as .npz.

    The file appears complete or not at all: it is written to a temporary file in the same
    folder and renamed over `path` only after the write succeeded.
    """
    arrays = {}
    _flatten(obj, "", arrays)
    path = os.fspath(f)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".npz")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)         # what open() would give, not mkstemp's 0600
        with os.fdopen(fd, "wb") as out:
            np.savez(out, **arrays)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def load(f):
    """Read a checkpoint written by `save` from the path f: nested dicts with Tensors (dtype
    kept exactly).

    A file that is not one (truncated, corrupt, another format, pickled objects) raises one
    ValueError that names the file."""
    try:
        return _read(f)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise ValueError(f"{os.fspath(f)} is not a valid minigrad checkpoint (a .npz written "
                         f"by minigrad.save): {type(exc).__name__}: {exc}. The file may be "
                         "truncated (an interrupted copy or download) or another format; "
                         "`minigrad train` keeps a checkpoint.npz per run folder") from None


def _read(path):
    out = {}
    with np.load(os.fspath(path), allow_pickle=False) as f:
        for name in f.files:
            array = f[name]
            *parents, leaf = name.split("/")
            node = out
            for p in parents:
                node = node.setdefault(p, {})
            if leaf == "":                         # the marker of an empty dict: nothing more
                continue
            if array.dtype.kind in "US":           # text comes back as str / list of str
                node[leaf] = array.item() if array.ndim == 0 else array.tolist()
            else:
                node[leaf] = Tensor(array, dtype=array.dtype)
    return out


def rng_state():
    """The state of the CPU random generators minigrad draws from, as a dict `save` can store:

    "minigrad": backend.rng() (initialisers, and DataLoader shuffling without a seed) and
    "numpy": NumPy's legacy global generator (np.random.seed), each as JSON text.
    CuPy's generator is not included: minigrad draws its random numbers on the CPU.
    """
    legacy = np.random.get_state(legacy=False)
    legacy["state"]["key"] = legacy["state"]["key"].tolist()      # uint32 array -> JSON list
    return {"minigrad": json.dumps(backend.rng().bit_generator.state),
            "numpy": json.dumps(legacy)}


def set_rng_state(state):
    """Put the generators back to a state from rng_state() (also after a save/load round trip):
    the random numbers drawn afterwards are the ones drawn after rng_state() was taken."""
    backend.rng().bit_generator.state = json.loads(state["minigrad"])
    legacy = json.loads(state["numpy"])
    legacy["state"]["key"] = np.array(legacy["state"]["key"], dtype=np.uint32)
    np.random.set_state(legacy)
