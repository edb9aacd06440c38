"""minigrad.save / minigrad.load: bit-exact round trips of nested state, files numpy reads
without pickle, nothing written for unsaveable values, and an old checkpoint that survives a
failed save unchanged."""
import os

import numpy as np
import pytest

import minigrad
from minigrad import Tensor, nn, optim
from minigrad import functional as F
from minigrad.backend import to_numpy as host


def trained_model_and_optimizer():
    minigrad.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.BatchNorm2d(2), nn.ReLU(),
                          nn.Flatten(), nn.Linear(2 * 4 * 4, 3))
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    rng = np.random.default_rng(0)
    for _ in range(2):
        opt.zero_grad()
        F.cross_entropy(model(Tensor(rng.standard_normal((4, 1, 4, 4)))),
                        rng.integers(0, 3, 4)).backward()
        opt.step()
    return model, opt


def as_array(value):
    return host(value.data) if isinstance(value, Tensor) else np.asarray(value)


def assert_bit_exact(loaded, original, where=""):
    """Same keys, dtypes, shapes and bytes, recursively through nested dicts."""
    assert isinstance(loaded, dict) and sorted(loaded) == sorted(str(k) for k in original), where
    for key, value in original.items():
        got = loaded[str(key)]
        if isinstance(value, dict):
            assert_bit_exact(got, value, f"{where}/{key}")
        elif isinstance(value, str):
            assert got == value, f"{where}/{key}"
        else:
            want = as_array(value)
            assert isinstance(got, Tensor), f"{where}/{key}: {type(got).__name__}"
            assert got.dtype == want.dtype, f"{where}/{key}: {got.dtype} vs {want.dtype}"
            assert got.shape == want.shape, f"{where}/{key}: {got.shape} vs {want.shape}"
            assert host(got.data).tobytes() == want.tobytes(), f"{where}/{key}"


def test_round_trip_is_bit_exact(tmp_path):
    model, opt = trained_model_and_optimizer()
    rng = np.random.default_rng(1)
    state = {
        "f32": rng.standard_normal((3, 4)).astype(np.float32),
        "f64": rng.standard_normal(5) * 1e-300,              # subnormal-range values survive
        "i64": np.array([-(2 ** 62), 0, 2 ** 62 + 1], dtype=np.int64),
        "count": np.array(7, dtype=np.int64),                # 0-d, like num_batches_tracked
        "special": np.array([np.nan, np.inf, -np.inf, -0.0], dtype=np.float32),
        "tensor": Tensor(rng.standard_normal((2, 2)), dtype=np.float64),
        "name": "cnn",
        "model": model.state_dict(),
        "optim": opt.state_dict(),
        "epoch": 12,
        "nested": {"deeper": {"lr": 0.05}},
    }
    path = tmp_path / "ckpt.npz"
    minigrad.save(state, path)
    loaded = minigrad.load(path)
    assert_bit_exact(loaded, state)
    assert loaded["model"]["1.num_batches_tracked"].shape == ()
    assert loaded["model"]["1.num_batches_tracked"].dtype == np.int64
    assert int(loaded["model"]["1.num_batches_tracked"].item()) == 2
    assert loaded["epoch"].item() == 12 and loaded["epoch"].dtype == np.int64
    assert loaded["nested"]["deeper"]["lr"].item() == 0.05
    assert loaded["model"]["0.weight"].dtype == np.float32
    assert os.listdir(tmp_path) == ["ckpt.npz"]               # no temporary file left behind


def test_loaded_checkpoint_restores_model_and_optimizer(tmp_path):
    model, opt = trained_model_and_optimizer()
    minigrad.save({"model": model.state_dict(), "optim": opt.state_dict()}, tmp_path / "c.npz")
    ckpt = minigrad.load(str(tmp_path / "c.npz"))            # a str path works as well
    minigrad.manual_seed(5)
    fresh = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.BatchNorm2d(2), nn.ReLU(),
                          nn.Flatten(), nn.Linear(2 * 4 * 4, 3))
    fresh.load_state_dict(ckpt["model"], strict=True)
    for (k, a), (_, b) in zip(fresh.state_dict().items(), model.state_dict().items()):
        assert a.dtype == b.dtype and np.array_equal(a.data, b.data), k
    fresh_opt = optim.SGD(fresh.parameters(), lr=1.0)
    fresh_opt.load_state_dict(ckpt["optim"])
    assert fresh_opt.param_groups[0]["nesterov"] is True
    assert fresh_opt.param_groups[0]["lr"] == 0.1
    for p, q in zip(fresh.parameters(), model.parameters()):
        np.testing.assert_array_equal(fresh_opt.state[p]["momentum_buffer"],
                                      opt.state[q]["momentum_buffer"])


def test_model_on_device_round_trip(tmp_path, device):
    model, _ = trained_model_and_optimizer()
    model.to(device)
    minigrad.save(model.state_dict(), tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz", allow_pickle=False) as f:
        assert f["0.weight"].dtype == np.float32          # stored as host arrays
    loaded = minigrad.load(tmp_path / "m.npz")
    minigrad.manual_seed(9)
    other = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.BatchNorm2d(2), nn.ReLU(),
                          nn.Flatten(), nn.Linear(2 * 4 * 4, 3)).to(device)
    other.load_state_dict(loaded)
    assert {p.device for p in other.parameters()} == {device}
    for (k, a), (_, b) in zip(other.state_dict().items(), model.state_dict().items()):
        assert np.array_equal(host(a.data), host(b.data)), k


def test_file_is_a_plain_npz_readable_without_pickle(tmp_path):
    model, opt = trained_model_and_optimizer()
    minigrad.save({"model": model.state_dict(), "optim": opt.state_dict(), "epoch": 3,
                   "note": "hello"}, tmp_path / "c.npz")
    with np.load(tmp_path / "c.npz", allow_pickle=False) as f:
        files = set(f.files)
        assert {"model/0.weight", "model/1.running_mean", "model/1.num_batches_tracked",
                "optim/state/0/momentum_buffer", "optim/param_groups/0/lr", "epoch",
                "note"} <= files
        np.testing.assert_array_equal(f["model/4.bias"], model[4].bias.data)
        assert f["epoch"].dtype == np.int64 and f["epoch"] == 3
        assert str(f["note"]) == "hello"
        assert all(f[k].dtype != object for k in f.files)


@pytest.mark.parametrize("bad", [
    {"fn": lambda x: x},
    {"model": {"ok": np.ones(2), "objects": np.array([{"a": 1}, None], dtype=object)}},
    {"epoch": 3, "nothing": None},
], ids=["function", "object_array", "none"])
def test_unsaveable_values_raise_and_leave_no_file(tmp_path, bad):
    path = tmp_path / "ckpt.npz"
    with pytest.raises(TypeError, match="cannot save"):
        minigrad.save(bad, path)
    assert os.listdir(tmp_path) == []                        # neither the file nor a temp file


def test_ragged_list_raises_the_same_error_naming_its_key(tmp_path):
    """np.asarray of a ragged list raises NumPy's ValueError, which does not say which entry."""
    with pytest.raises(TypeError, match="cannot save 'items'"):
        minigrad.save({"epoch": 1, "items": [np.ones(2), np.ones(3)]}, tmp_path / "c.npz")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("bad, message", [
    ({"a/b": np.ones(2)}, "may not be empty or contain '/'"),
    ({"a": {"": 1}}, "may not be empty or contain '/'"),
], ids=["slash_in_key", "empty_key"])
def test_keys_that_cannot_round_trip_are_rejected(tmp_path, bad, message):
    with pytest.raises(ValueError, match=message):
        minigrad.save(bad, tmp_path / "c.npz")
    assert os.listdir(tmp_path) == []


def failing_savez(file, **arrays):
    """Write part of a real archive, then fail as a full disk would."""
    file.write(b"PK\x03\x04 a partial zip archive")
    raise OSError(28, "No space left on device")


def test_failed_save_leaves_the_old_checkpoint_intact(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.npz"
    minigrad.save({"w": np.arange(4.0), "step": 1}, path)
    old_bytes = path.read_bytes()
    old_mtime = os.stat(path).st_mtime_ns
    monkeypatch.setattr(np, "savez", failing_savez)
    with pytest.raises(OSError, match="No space left"):
        minigrad.save({"w": np.zeros(4), "step": 2}, path)
    assert os.listdir(tmp_path) == ["ckpt.npz"]              # the temp file was removed
    assert path.read_bytes() == old_bytes and os.stat(path).st_mtime_ns == old_mtime
    monkeypatch.undo()
    loaded = minigrad.load(path)
    np.testing.assert_array_equal(loaded["w"].data, np.arange(4.0))
    assert loaded["step"].item() == 1


def test_failed_first_save_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(np, "savez", failing_savez)
    with pytest.raises(OSError):
        minigrad.save({"w": np.zeros(4)}, tmp_path / "new.npz")
    assert os.listdir(tmp_path) == []


def test_save_replaces_an_existing_checkpoint(tmp_path):
    path = tmp_path / "ckpt.npz"
    minigrad.save({"w": np.arange(4.0)}, path)
    minigrad.save({"v": np.ones(2, dtype=np.float32)}, path)
    loaded = minigrad.load(path)
    assert list(loaded) == ["v"] and loaded["v"].dtype == np.float32
    assert os.listdir(tmp_path) == ["ckpt.npz"]


def test_loading_into_a_model_with_a_wrong_shape_raises_the_strict_error(tmp_path):
    minigrad.save(nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)).state_dict(),
                  tmp_path / "m.npz")
    other = nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 2))
    before = {k: v.data.copy() for k, v in other.state_dict().items()}
    with pytest.raises(KeyError) as info:
        other.load_state_dict(minigrad.load(tmp_path / "m.npz"))
    message = str(info.value)
    assert "0.weight: checkpoint (4, 3) vs model (5, 3)" in message
    assert "0.bias: checkpoint (4,) vs model (5,)" in message
    assert "2.weight: checkpoint (2, 4) vs model (2, 5)" in message
    assert "2.bias" not in message                           # that one matches
    for k, v in other.state_dict().items():
        np.testing.assert_array_equal(v.data, before[k], err_msg=k)


def test_load_of_a_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        minigrad.load(tmp_path / "nope.npz")


def test_empty_dicts_round_trip(tmp_path):
    """An optimizer without momentum has an empty "state"; it must save and load as {}."""
    state = {"a": {}, "b": {"c": {}, "d": np.arange(3)}, "e": 1.5}
    minigrad.save(state, tmp_path / "c.npz")
    loaded = minigrad.load(tmp_path / "c.npz")
    assert loaded["a"] == {} and loaded["b"]["c"] == {}
    np.testing.assert_array_equal(loaded["b"]["d"].data, np.arange(3))
    assert loaded["e"].item() == 1.5 and sorted(loaded) == ["a", "b", "e"]


def test_plain_sgd_state_dict_saves_and_restores(tmp_path):
    model = nn.Linear(3, 2)
    opt = optim.SGD(model.parameters(), lr=0.1)
    assert opt.state_dict()["state"] == {}
    minigrad.save(opt.state_dict(), tmp_path / "o.npz")
    again = optim.SGD(model.parameters(), lr=0.5)
    again.load_state_dict(minigrad.load(tmp_path / "o.npz"))
    assert again.param_groups[0]["lr"] == 0.1 and again.state == {}


def test_rng_state_round_trip_repeats_the_random_numbers(tmp_path):
    from minigrad.checkpoint import rng_state, set_rng_state
    minigrad.manual_seed(4)
    minigrad.randn(5)                              # move both generators away from the seed
    np.random.rand(3)
    minigrad.save({"rng": rng_state()}, tmp_path / "r.npz")
    def draw():
        return (minigrad.randn(6).numpy(), np.random.rand(4),
                minigrad.backend.rng().integers(9, size=5))
    expected = draw()
    minigrad.manual_seed(123)
    set_rng_state(minigrad.load(tmp_path / "r.npz")["rng"])
    got = draw()
    for a, b in zip(got, expected):
        np.testing.assert_array_equal(a, b)


def test_saved_files_get_the_usual_permissions(tmp_path):
    """Written through mkstemp (0600), a checkpoint is then given what open() would give."""
    umask = os.umask(0o022)
    try:
        minigrad.save({"a": np.ones(2)}, tmp_path / "c.npz")
    finally:
        os.umask(umask)
    assert (tmp_path / "c.npz").stat().st_mode & 0o777 == 0o644


def test_notebook_style_resume_is_bit_exact(tmp_path):
    """README's recipe: model, optimizer, DataLoader and random state saved after step k and
    loaded into freshly built objects continue exactly like the uninterrupted loop."""
    from minigrad.checkpoint import rng_state, set_rng_state
    from minigrad.data import DataLoader
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((50, 1, 4, 4)), rng.integers(0, 3, 50)

    def build():
        minigrad.manual_seed(0)
        model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, bias=False), nn.BatchNorm2d(2),
                              nn.ReLU(), nn.Flatten(), nn.Linear(2 * 4 * 4, 3))
        opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
        loader = DataLoader((X, y), batch_size=8, shuffle=True)   # shuffles with backend.rng()
        return model, opt, loader

    def steps(model, opt, loader, epochs, stop_after=None):
        done = 0
        for _ in range(epochs):
            for xb, yb in loader:
                opt.zero_grad()
                F.cross_entropy(model(xb), yb).backward()
                opt.step()
                done += 1
                if done == stop_after:
                    return

    whole = build()
    steps(*whole, epochs=3)

    first = build()
    steps(*first, epochs=3, stop_after=9)              # epoch 2 (6 batches an epoch), step 3
    model, opt, loader = first
    minigrad.save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                   "loader": loader.state_dict(), "rng": rng_state()}, tmp_path / "c.npz")

    model, opt, loader = build()
    minigrad.manual_seed(7)                            # as in a new session
    state = minigrad.load(tmp_path / "c.npz")
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    loader.load_state_dict(state["loader"])
    set_rng_state(state["rng"])
    steps(model, opt, loader, epochs=2)                # the rest of epoch 2, then epoch 3
    expected = whole[0].state_dict()
    for key, value in model.state_dict().items():
        assert host(value.data).tobytes() == host(expected[key].data).tobytes(), key
