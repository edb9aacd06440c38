"""Reading the stored PyTorch reference values (tests/fixtures/*.npz, each written by the
generator script next to it) and comparing minigrad's results with them."""
import functools
import os

import numpy as np

from minigrad import Tensor, backend

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
REF = {np.float64: "f64", np.float32: "f32"}    # which PyTorch run a dtype is compared with
# float64 against PyTorch's float64 run, float32 against its float32 run, both relative to the
# array's largest entry: |a - e| <= tol * |e| + tol * max|e|
TOL = {np.float64: 1e-10, np.float32: 1e-5}


@functools.lru_cache(maxsize=None)
def load(name):
    """The arrays of tests/fixtures/<name>.npz, read once."""
    with np.load(os.path.join(FIXTURES, f"{name}.npz")) as z:
        return {k: z[k] for k in z.files}


def check(actual, expected, dtype, what, tol=TOL):
    """actual (a Tensor or array on any device) has dtype `dtype`, expected's shape and values:
    integers exactly, floats within tol[dtype] (see TOL)."""
    actual = backend.to_numpy(actual.data if isinstance(actual, Tensor) else actual)
    assert actual.dtype == dtype, f"{what}: dtype {actual.dtype}, expected {np.dtype(dtype)}"
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} vs {expected.shape}"
    if np.dtype(dtype).kind != "f":
        np.testing.assert_array_equal(actual, expected, err_msg=what)
        return
    scale = np.abs(expected).max() if expected.size else 0.0
    np.testing.assert_allclose(actual.astype(np.float64), expected, rtol=tol[dtype],
                               atol=tol[dtype] * scale, err_msg=f"[{np.dtype(dtype).name}] {what}")
