"""PyTorch habits that are minigrad's own behaviour (not numbers): errors named as PyTorch names
them, NumPy interoperability, grad modes, the top-level namespace and module conveniences.
Numbers that mirror PyTorch are checked against stored PyTorch values in the conformance tests.
"""
import numpy as np
import pytest

import minigrad as mg
from minigrad import Tensor, nn
from minigrad import functional as F
from minigrad.backend import to_numpy as host


def test_matmul_shape_mismatch_names_both_shapes(device):
    a, b = mg.randn(3, 4, device=device), mg.randn(5, 2, device=device)
    with pytest.raises(ValueError, match=r"\(3, 4\) @ \(5, 2\) cannot be multiplied.*\(4\).*\(5\)"):
        a @ b
    with pytest.raises(ValueError, match=r"\(3, 4\) @ \(5,\)"):
        a @ mg.randn(5, device=device)


@pytest.mark.parametrize("damage", ["truncated", "not-a-zip", "empty"])
def test_corrupt_checkpoint_names_the_file(tmp_path, damage):
    path = tmp_path / "model.npz"
    mg.save(nn.Linear(3, 2).state_dict(), path)
    data = path.read_bytes()
    path.write_bytes({"truncated": data[:len(data) // 2], "not-a-zip": b"hello world",
                      "empty": b""}[damage])
    with pytest.raises(ValueError, match="is not a valid minigrad checkpoint") as info:
        mg.load(path)
    assert str(path) in str(info.value) and info.value.__cause__ is None
    with pytest.raises(FileNotFoundError):
        mg.load(tmp_path / "missing.npz")


def test_numpy_and_matplotlib_read_cpu_tensors_and_device_tensors_refuse():
    t = Tensor([1.0, 2.0, 6.0])
    assert np.asarray(t).tolist() == [1.0, 2.0, 6.0] and np.asarray(t).dtype == np.float32
    m = np.mean(t)                            # NumPy calls t.mean(axis=None, dtype=None, out=None)
    assert isinstance(m, Tensor) and float(m) == 3.0
    assert float(np.sum(t)) == 9.0 and np.asarray(t, dtype=np.float64).dtype == np.float64
    counts, _ = np.histogram(t, bins=3)
    assert counts.sum() == 3
    with pytest.raises(TypeError, match="out="):
        t.sum(out=np.zeros(()))
    with pytest.raises(TypeError, match="unexpected keyword"):
        t.sum(dims=0)
    with pytest.raises(TypeError, match="cannot become a NumPy array implicitly"):
        np.asarray(Tensor([1.0], device="strict"))


def test_one_element_conversions_and_their_errors():
    assert float(Tensor([[2.5]])) == 2.5 and int(Tensor(7)) == 7
    with pytest.raises(ValueError, match=r"exactly one element, got shape \(2,\)"):
        float(Tensor([1.0, 2.0]))
    values, _ = Tensor([[1.0, 3.0], [4.0, 2.0]]).max(1)
    assert values.numpy().tolist() == [3.0, 4.0]


def test_view_refuses_a_non_contiguous_tensor_as_pytorch():
    x = mg.randn(2, 3)
    assert x.view(3, 2).shape == (3, 2) and x.view(-1).shape == (6,)
    with pytest.raises(RuntimeError, match=r"Use \.reshape"):
        x.t().view(6)
    assert x.t().reshape(6).shape == (6,)


def test_enable_grad_inside_no_grad():
    x = Tensor([1.0], requires_grad=True)
    with mg.no_grad():
        assert not (x * 2).requires_grad
        with mg.enable_grad():
            assert (x * 2).requires_grad
        assert not (x * 2).requires_grad
    assert mg.is_grad_enabled()


def test_top_level_namespace_has_pytorch_names():
    x = Tensor([[1.0, -2.0], [3.0, 4.0]])
    assert mg.cat([x, x], 0).shape == (4, 2) and mg.stack([x, x], dim=1).shape == (2, 2, 2)
    assert mg.matmul(x, x).numpy().tolist() == [[-5.0, -10.0], [15.0, 10.0]]
    assert float(mg.exp(Tensor(0.0))) == 1.0 and mg.abs(x).numpy().min() == 1.0
    from minigrad.tensor import Function
    assert mg.Function is Function
    assert mg.gradcheck(lambda a: (a * a).sum(), [Tensor([1.0, 2.0], dtype=np.float64)])
    assert mg.zeros_like(x).dtype == np.float32 and mg.arange(3).dtype == np.int64


def test_module_conveniences():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2))
    seen = []
    assert model.apply(lambda m: seen.append(type(m).__name__)) is model
    assert seen == ["Linear", "BatchNorm1d", "ReLU", "Linear", "Sequential"]   # children first
    model.requires_grad_(False)
    assert not any(p.requires_grad for p in model.parameters())
    model.requires_grad_()
    out = model(mg.randn(5, 3)).sum()
    out.backward()
    model.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.any() for p in model.parameters())
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())
    bn = model[1]
    assert int(bn.num_batches_tracked.item()) == 1 and bn.running_mean.numpy().any()
    bn.reset_running_stats()
    assert int(bn.num_batches_tracked.item()) == 0 and not bn.running_mean.numpy().any()
    assert (bn.running_var.numpy() == 1).all()
    mg.manual_seed(1)
    first = nn.Linear(3, 4).weight.numpy()
    lin = nn.Linear(3, 4)
    mg.manual_seed(1)
    lin.reset_parameters()
    np.testing.assert_array_equal(lin.weight.numpy(), first)
    assert [n for n, _ in model.named_children()] == ["0", "1", "2", "3"]


def test_register_buffer_is_in_the_state_dict():
    m = nn.Module()
    m.register_buffer("scale", Tensor([2.0]))
    m.register_parameter("w", nn.Parameter([1.0]))
    assert list(m.state_dict()) == ["scale", "w"] and [p for p in m.parameters()] == [m.w]
    with pytest.raises(ValueError, match="persistent=False"):
        m.register_buffer("tmp", Tensor([1.0]), persistent=False)


def test_layers_take_device_and_dtype():
    lin = nn.Linear(2, 3, dtype=np.float64, device="strict")
    assert lin.weight.dtype == np.float64 and lin.weight.device == "strict"
    conv = nn.Conv2d(2, 4, 3, 1, 1, 1, 2, False, "zeros", dtype=np.float64)
    assert conv.weight.shape == (4, 1, 3, 3) and conv.bias is None
    assert conv.weight.dtype == np.float64


def test_conv2d_sixth_positional_argument_is_dilation():
    conv = nn.Conv2d(3, 6, 3, 1, 2, 2)                 # PyTorch: dilation=2, not bias
    assert conv.dilation == (2, 2) and conv.bias is not None
    assert conv(mg.randn(1, 3, 8, 8)).shape == (1, 6, 8, 8)
    assert "dilation=(2, 2)" in repr(conv)


def test_batch_norm_in_eval_without_running_statistics_raises_as_pytorch():
    x = mg.randn(4, 3)
    with pytest.raises(RuntimeError, match="running_mean must be defined in evaluation mode"):
        F.batch_norm(x, None, None)
    with pytest.raises(RuntimeError, match="running_mean must be defined in evaluation mode"):
        F.batch_norm_composite(x, None, None, training=False)
    assert F.batch_norm(x, None, None, training=True).shape == (4, 3)


def test_batch_norm_checks_every_argument_before_changing_anything():
    x, rm = mg.randn(4, 3), Tensor(np.zeros(3))
    with pytest.raises(ValueError, match="either both be None or neither be None"):
        F.batch_norm(x, rm, None, training=True)
    assert not rm.numpy().any()                       # nothing was updated before the error
    for name, kwargs in (("bias", dict(bias=Tensor([1.0]))),
                         ("running_var", dict(running_var=Tensor([1.0])))):
        with pytest.raises(ValueError, match=f"{name} has shape \\(1,\\); it must have 3"):
            F.batch_norm(x, rm, kwargs.get("running_var", Tensor(np.ones(3))),
                         bias=kwargs.get("bias"), training=True)
        assert not rm.numpy().any()


@pytest.mark.parametrize("cls, shape", [(nn.BatchNorm1d, (0, 3)), (nn.BatchNorm2d, (0, 3, 2, 2))])
def test_batch_norm_on_an_empty_batch_returns_an_empty_output(cls, shape):
    bn = cls(3)
    x = Tensor(np.zeros(shape), requires_grad=True)
    y = bn(x)
    assert y.shape == shape and y.dtype == np.float32
    assert not bn.running_mean.numpy().any() and (bn.running_var.numpy() == 1).all()
    assert int(bn.num_batches_tracked.item()) == 1    # PyTorch counts it too
    y.sum().backward()
    assert x.grad.shape == shape


def test_embedding_reset_parameters_draws_again_and_keeps_the_padding_row_zero():
    mg.manual_seed(3)
    emb = nn.Embedding(5, 4, padding_idx=2)
    first = emb.weight.numpy().copy()
    assert not first[2].any() and first[[0, 1, 3, 4]].std() > 0.5
    emb.weight.data[...] = 7.0
    mg.manual_seed(3)
    emb.reset_parameters()
    np.testing.assert_array_equal(emb.weight.numpy(), first)      # same draw, same seed
