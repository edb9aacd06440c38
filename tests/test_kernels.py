"""The fast kernels compute what the reference ops compute: forward and every gradient.

Each row runs a function twice, once with the kernels on and once on the reference ops
(`kernels.reference()`), in float32 and float64, on every device, and for 4-D inputs on both
memory layouts (NCHW, and the channels-last view a convolution produces). Outputs, every input
gradient and updated running statistics must agree to rounding. A completeness test fails when a
kernel has no row, so speed can never change a result silently.
"""
from dataclasses import dataclass

import numpy as np
import pytest

from minigrad import Tensor, kernels, ops
from minigrad import functional as F
from minigrad.backend import to_numpy as host
from minigrad.kernels import cpu
from minigrad.testing import gradcheck


@dataclass(frozen=True)
class Row:
    id: str
    op: type                    # the reference Function whose kernel this row checks
    fn: object                  # function of Tensors (x first) -> Tensor
    shapes: tuple               # one shape per float input; x is inputs[0]
    const: tuple = ()           # extra constant arrays (labels, running stats), appended
    shift: float = 0.0          # added to x (BatchNorm with a large mean)
    constant_channel: bool = False


def bn(training, affine=True, bias=True):
    def fn(x, w=None, b=None, rm=None, rv=None):
        return F.batch_norm(x, rm, rv, w if affine else None, b if affine and bias else None,
                            training=training, momentum=0.1)
    return fn


STATS = (np.array([0.3, -0.2, 0.1]), np.array([0.8, 1.5, 1.2]))
LABELS5 = (np.array([0, 3, 3, 1, 2]),)

ROWS = [
    Row("relu-2d", ops.ReLU, lambda x: x.relu(), ((5, 7),)),
    Row("relu-4d", ops.ReLU, lambda x: x.relu(), ((2, 3, 4, 5),)),
    Row("reshape-flatten", ops.Reshape, lambda x: (x.flatten(1) * 1.5).relu(), ((2, 3, 4, 5),)),
    Row("reshape-3d", ops.Reshape, lambda x: x.reshape(2, 3, 20), ((2, 3, 4, 5),)),
    Row("conv-3x3-pad1-bias", F.Conv2d, lambda x, w, b: F.conv2d(x, w, b, padding=1),
        ((2, 3, 5, 6), (4, 3, 3, 3), (4,))),
    Row("conv-3x3-stride2", F.Conv2d, lambda x, w: F.conv2d(x, w, stride=2),
        ((2, 3, 7, 6), (4, 3, 3, 3))),
    Row("conv-2x3-stride21-pad10", F.Conv2d,
        lambda x, w, b: F.conv2d(x, w, b, stride=(2, 1), padding=(1, 0)),
        ((2, 2, 5, 6), (3, 2, 2, 3), (3,))),
    Row("conv-1x1", F.Conv2d, lambda x, w: F.conv2d(x, w), ((2, 4, 3, 3), (5, 4, 1, 1))),
    Row("conv-pad-stride2-3x3", F.Conv2d, lambda x, w: F.conv2d(x, w, stride=2, padding=1),
        ((3, 2, 6, 6), (4, 2, 3, 3))),
    # one input channel: the kernel builds these patch matrices tap by tap (cpu._im2col)
    Row("conv-1channel-3x3-pad1-bias", F.Conv2d, lambda x, w, b: F.conv2d(x, w, b, padding=1),
        ((3, 1, 5, 6), (4, 1, 3, 3), (4,))),
    Row("conv-1channel-2x3-stride2", F.Conv2d, lambda x, w: F.conv2d(x, w, stride=2),
        ((2, 1, 7, 6), (3, 1, 2, 3))),
    Row("ce-5x4", F.CrossEntropy, lambda x, t: F.cross_entropy(x, t), ((5, 4),), LABELS5),
    Row("ce-5x10", F.CrossEntropy, lambda x, t: F.cross_entropy(x * 30, t), ((5, 10),), LABELS5),
]
for _mode in ("train", "eval"):
    _t = _mode == "train"
    for _shape, _name in (((8, 3), "1d-NC"), ((4, 3, 5), "1d-NCL"), ((3, 3, 4, 2), "2d")):
        ROWS += [
            Row(f"bn-{_name}-{_mode}-affine", F.BatchNorm, bn(_t), (_shape, (3,), (3,)), STATS),
            Row(f"bn-{_name}-{_mode}-plain", F.BatchNorm, bn(_t, affine=False),
                (_shape, (3,), (3,)), STATS),
            Row(f"bn-{_name}-{_mode}-weight-only", F.BatchNorm, bn(_t, bias=False),
                (_shape, (3,), (3,)), STATS),
        ]
    ROWS += [
        Row(f"bn-2d-large-plane-{_mode}", F.BatchNorm, bn(_t), ((2, 3, 96, 180), (3,), (3,)),
            STATS),
        Row(f"bn-2d-constant-channel-{_mode}", F.BatchNorm, bn(_t), ((4, 3, 3, 3), (3,), (3,)),
            STATS, constant_channel=True),
        Row(f"bn-2d-mean-1e4-{_mode}", F.BatchNorm, bn(_t), ((16, 3, 4, 4), (3,), (3,)),
            STATS, shift=1e4),
    ]
ROWS += [Row("bn-no-running-stats", F.BatchNorm, lambda x, w, b: F.batch_norm(
    x, None, None, w, b, training=True), ((6, 3, 2, 2), (3,), (3,)))]


def _inputs(row, rng, kinks=True):
    arrays = [rng.standard_normal(s) for s in row.shapes]
    arrays[0] = arrays[0] + row.shift
    if row.constant_channel:
        arrays[0][:, 1] = 0.75
    if row.op is ops.ReLU and kinks:
        arrays[0][0, :2] = 0.0                  # the kink: both must give gradient 0 there
    return arrays


def _run(row, arrays, dtype, device, channels_last, dout):
    """Output, every float input's gradient and the (updated) constant arrays, on the host."""
    xs = []
    for i, a in enumerate(arrays):
        if i == 0 and channels_last:            # x as an (N, C, H, W) view of NHWC memory
            t = Tensor(a.transpose(0, 2, 3, 1), dtype=dtype, device=device, requires_grad=True)
            xs.append((t, t.permute(0, 3, 1, 2)))
        else:
            t = Tensor(a, dtype=dtype, device=device, requires_grad=True)
            xs.append((t, t))
    consts = [Tensor(c.copy(), dtype=dtype if c.dtype.kind == "f" else None, device=device)
              for c in row.const]
    out = row.fn(*[view for _, view in xs], *consts)
    out.backward(Tensor(dout(out.shape), dtype=dtype, device=device))
    grads = []
    for i, (leaf, _) in enumerate(xs):
        if leaf.grad is None:                   # an input the function ignores
            grads.append(np.zeros(0))
            continue
        g = host(leaf.grad)
        grads.append(g.transpose(0, 3, 1, 2) if i == 0 and channels_last else g)
    return [host(out.data), *grads, *[host(c.data) for c in consts]]


def _params():
    for row in ROWS:
        layouts = ["nchw", "channels-last"] if len(row.shapes[0]) == 4 else ["plain"]
        for layout in layouts:
            for dtype in ("float32", "float64"):
                yield pytest.param(row, layout, dtype, id=f"{row.id}-{layout}-{dtype}")


@pytest.mark.parametrize("row, layout, dtype", list(_params()))
def test_kernel_equals_reference(row, layout, dtype, device):
    rng = np.random.default_rng(7)
    arrays = _inputs(row, rng)
    douts = np.random.default_rng(8)
    cache = {}

    def dout(shape):
        if shape not in cache:
            cache[shape] = douts.standard_normal(shape)
        return cache[shape]

    dtype = np.dtype(dtype)
    assert kernels.fast_enabled()
    fast = _run(row, arrays, dtype, device, layout == "channels-last", dout)
    with kernels.reference():
        assert kernels.pick(row.op) is row.op
        ref = _run(row, arrays, dtype, device, layout == "channels-last", dout)
    assert kernels.fast_enabled()
    # float64 agrees to rounding; float32 to a few ulps of the values' scale (BatchNorm's
    # two reductions are ordered differently, so they round differently). With a mean of 1e4,
    # the reference holds mu as one float32, spaced 1e-3 apart there; the kernel as mu0 + dmean.
    rtol, atol = (1e-10, 1e-12) if dtype == np.float64 else (2e-4, 2e-5)
    if row.shift and dtype == np.float32:
        atol = float(np.spacing(np.float32(row.shift)))
    names = ["out"] + [f"grad {i}" for i in range(len(row.shapes))] + ["const"] * len(row.const)
    for name, f, r in zip(names, fast, ref):
        assert f.dtype == r.dtype and f.shape == r.shape, name
        scale = max(1.0, float(np.abs(r).max())) if r.size else 1.0
        np.testing.assert_allclose(f, r, rtol=rtol, atol=atol * scale, err_msg=name)


@pytest.mark.parametrize("row", [r for r in ROWS if r.op in (F.Conv2d, F.BatchNorm)
                                 and r.shapes[0][0] > 1], ids=lambda r: r.id)
def test_kernels_in_blocks_of_one_image(row, device, monkeypatch):
    # The conv and BatchNorm kernels work a block of images at a time (cpu._BLOCK_BYTES); with
    # blocks of one image their block loops run once per image, and the numbers must not change.
    monkeypatch.setattr(cpu, "_BLOCK_BYTES", 1)
    assert len(cpu._blocks(row.shapes[0][0], 100)) == row.shapes[0][0]
    layouts = ("nchw", "channels-last") if len(row.shapes[0]) == 4 else ("plain",)
    for layout in layouts:
        for dtype in ("float32", "float64"):
            test_kernel_equals_reference(row, layout, dtype, device)


def test_batch_norm_statistics_do_not_depend_on_the_blocks(monkeypatch):
    # float32 data with mean 1e4 whose first image lies 50 standard deviations from the rest:
    # whatever the blocks, the kernel's shift is the whole batch's mean estimate, so the variance
    # keeps float32 precision (a shift taken from the first block alone loses a factor ~30 here).
    rng = np.random.default_rng(4)
    x = 1e4 + rng.standard_normal((16, 3, 5, 5))
    x[0] += 50.0
    x32 = x.astype(np.float32).astype(np.float64)        # the values the kernel sees
    for block_bytes in (1, 1 << 21):
        monkeypatch.setattr(cpu, "_BLOCK_BYTES", block_bytes)
        rm, rv = Tensor(np.zeros(3)), Tensor(np.ones(3))
        F.batch_norm(Tensor(x), rm, rv, training=True, momentum=1.0)  # rv: the unbiased variance
        np.testing.assert_allclose(host(rv.data), x32.var(axis=(0, 2, 3), ddof=1), rtol=5e-7)
        np.testing.assert_allclose(host(rm.data), x32.mean(axis=(0, 2, 3)), rtol=1e-7)


def test_every_kernel_has_rows():
    covered = {row.op for row in ROWS}
    missing = [op.__name__ for op in kernels.KERNELS if op not in covered]
    assert not missing, f"kernels without an equality row: {missing}"
    assert set(kernels.KERNELS) == {ops.ReLU, ops.Reshape, F.Conv2d, F.BatchNorm,
                                    F.CrossEntropy}


@pytest.mark.parametrize("row", [r for r in ROWS if r.op is not ops.Reshape and
                                 int(np.prod(r.shapes[0])) < 2000], ids=lambda r: r.id)
def test_kernel_gradcheck(row, device):
    """The kernels' backward against finite differences too (float64), not only the reference."""
    rng = np.random.default_rng(3)
    arrays = [Tensor(a, dtype=np.float64, device=device) for a in _inputs(row, rng, kinks=False)]
    consts = [Tensor(c.copy(), dtype=np.float64 if c.dtype.kind == "f" else None, device=device)
              for c in row.const]
    if row.shift:
        return          # a mean of 1e4 leaves finite differences too few digits in float64
    assert gradcheck(lambda *xs: row.fn(*xs, *consts), arrays, atol=1e-5)


# ---- the switch ------------------------------------------------------------------------------
def test_switch_function_and_context_manager():
    assert kernels.pick(F.BatchNorm) is cpu.BatchNorm
    with kernels.reference():
        assert not kernels.fast_enabled() and kernels.pick(F.BatchNorm) is F.BatchNorm
        with kernels.reference():
            pass
        assert not kernels.fast_enabled()               # nesting restores the outer state
    assert kernels.fast_enabled()
    try:
        kernels.use_fast(False)
        assert kernels.pick(F.Conv2d) is F.Conv2d
        x = Tensor(np.ones((1, 1, 3, 3)), requires_grad=True)
        assert F.conv2d(x, Tensor(np.ones((1, 1, 2, 2)))).grad_fn == "Conv2d"
    finally:
        kernels.use_fast(True)
    assert kernels.pick(F.Conv2d) is cpu.Conv2d

    @kernels.reference()
    def inside():
        return kernels.fast_enabled()
    assert inside() is False and kernels.fast_enabled()


# ---- BatchNorm's layout and tiling paths -----------------------------------------------------
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("tiled", [True, False], ids=["tiled", "broadcast"])
def test_fast_batch_norm_paths_on_both_layouts(training, device, tiled, monkeypatch):
    # A convolution's output is an (N, C, H, W) view of (N, H, W, C) memory; the kernel then works
    # on an (N, H*W, C) view, with per-channel planes tiled (large planes) or the per-channel
    # vector broadcast (small ones; see cpu._tile). Same numbers as on NCHW memory, either way.
    monkeypatch.setattr(cpu, "_TILE_MIN", 0 if tiled else 1 << 30)
    rng = np.random.default_rng(5)
    x_nhwc = 0.5 + rng.standard_normal((4, 3, 5, 6))                   # (N, H, W, C)
    w_np, b_np = 1.0 + 0.5 * rng.standard_normal(6), rng.standard_normal(6)
    dout = rng.standard_normal((4, 6, 3, 5))
    results = []
    for channels_last in (True, False):
        if channels_last:
            x = Tensor(x_nhwc, dtype=np.float64, device=device, requires_grad=True)
            xv = x.permute(0, 3, 1, 2)                   # (N, C, H, W) view of NHWC memory
        else:                                            # Tensor() copies into C order: NCHW
            x = xv = Tensor(x_nhwc.transpose(0, 3, 1, 2), dtype=np.float64, device=device,
                            requires_grad=True)
        assert cpu._channel_axis(xv.data) == (2 if channels_last else 1)
        w = Tensor(w_np, dtype=np.float64, device=device, requires_grad=True)
        b = Tensor(b_np, dtype=np.float64, device=device, requires_grad=True)
        rm, rv = Tensor(np.zeros(6), dtype=np.float64, device=device), Tensor(
            np.full(6, 2.0), dtype=np.float64, device=device)
        y = F.batch_norm(xv, rm, rv, w, b, training=training)
        y.backward(dout)
        dx = host(x.grad).transpose(0, 3, 1, 2) if channels_last else host(x.grad)
        results.append([y.numpy(), dx, host(w.grad), host(b.grad), rm.numpy()])
    for got, want in zip(*results):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    inputs = [Tensor(a, dtype=np.float64, device=device) for a in (x_nhwc[:2, :2], w_np, b_np)]
    assert gradcheck(lambda x, w, b: F.batch_norm(x.permute(0, 3, 1, 2), weight=w, bias=b,
                                                  training=True), inputs)


def test_fast_reshape_gradient_keeps_the_input_layout():
    x = Tensor(np.ones((2, 3, 3, 4)), requires_grad=True)          # NHWC memory
    for fast in (True, False):
        kernels.use_fast(fast)
        try:
            xv = x.permute(0, 3, 1, 2)                              # an NCHW view of it
            xv.retain_grad()
            (xv.reshape(2, -1) * 2).sum().backward()
        finally:
            kernels.use_fast(True)
        # the kernel's gradient has xv's memory order; the plain reshape's is NCHW
        assert cpu._channels_last(xv.grad).flags.c_contiguous is fast
        assert xv.grad.flags.c_contiguous is not fast
        np.testing.assert_array_equal(xv.grad, np.full((2, 4, 3, 3), 2.0))
    np.testing.assert_array_equal(x.grad, np.full((2, 3, 3, 4), 4.0))     # two backwards
