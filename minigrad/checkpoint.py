"""Saving and loading state dicts as .npz files, with pickling disabled.

A checkpoint written by `save` holds only arrays (np.load(allow_pickle=False) reads it back),
so loading one can never run code. Nested dicts are stored with '/'-joined keys.
"""
import os
import tempfile

import numpy as np

from . import backend
from .tensor import Tensor


def _flatten(obj, prefix, out):
    for key, value in obj.items():
        key = str(key)
        if "/" in key:
            raise ValueError(f"checkpoint keys may not contain '/': {key!r}")
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            if not value:
                raise ValueError(f"cannot save the empty dict at {name!r}")
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


def save(state, path):
    """Write a (possibly nested) dict of Tensors, arrays and numbers to `path` as .npz.

    The file appears complete or not at all: it is written to a temporary file in the same
    folder and renamed over `path` only after the write succeeded.
    """
    arrays = {}
    _flatten(state, "", arrays)
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def load(path):
    """Read a checkpoint written by `save`: nested dicts with Tensors (dtype kept exactly)."""
    out = {}
    with np.load(os.fspath(path), allow_pickle=False) as f:
        for name in f.files:
            array = f[name]
            *parents, leaf = name.split("/")
            node = out
            for p in parents:
                node = node.setdefault(p, {})
            if array.dtype.kind in "US":           # text comes back as str / list of str
                node[leaf] = array.item() if array.ndim == 0 else array.tolist()
            else:
                node[leaf] = Tensor(array, dtype=array.dtype)
    return out
