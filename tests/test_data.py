"""Tests for minigrad.data: the digits split, the DataLoader, the IDX reader and the MNIST loader.

Every file these tests read is written first into pytest's tmp_path, so nothing is downloaded.
The `device` fixture comes from conftest.py.
"""
import collections
import gzip
import hashlib
import json

import numpy as np
import pytest

import minigrad
from minigrad.data import (DIGITS_DESCRIPTION, DIGITS_FILE, ArrayDataset, DataLoader, idx_shape,
                           load_digits, load_mnist, mnist_size, read_idx, write_idx)

DIGIT_COUNTS = [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]   # images of each digit


# ---- digits ----------------------------------------------------------------------------------

def test_digits_shapes_dtypes_and_range():
    for split, n in [("train", 1438), ("test", 359), ("all", 1797)]:
        images, labels = load_digits(split)
        assert images.shape == (n, 1, 8, 8) and images.dtype == np.float32
        assert labels.shape == (n,) and labels.dtype == np.int64
        assert images.min() == 0.0 and images.max() == 1.0
        # Pixels were integers 0..16 divided by 16, so 16 * pixel is a whole number.
        np.testing.assert_array_equal(images * 16, np.round(images * 16))
        assert set(labels.tolist()) == set(range(10))


# sha256 of the shipped file's arrays (images bytes, then labels bytes), uint8: any change to
# minigrad/datasets/digits.npz must be deliberate.
DIGITS_SHA256 = "87ff0c9e40dc7e2c0e34e7257799c2e3f3aec1a016363bb11cad869ec428a826"
# The default split as load_digits computed it from scikit-learn's copy, before the digits moved
# into the package: the move must not change a single image or label.
TEST_IMAGES_SHA256 = "ba1df66f2044f85a3917fc9b55b11f55a16eb16b7552c9cc3a40e6b798c5f593"
TRAIN_LABELS_SHA256 = "623f476e17fdfbd83fa261cb3fa9d9f911a880784baf9cbc5bd06580e6f356ca"


def test_digits_file_is_the_recorded_one_and_small():
    with np.load(DIGITS_FILE, allow_pickle=False) as f:
        assert sorted(f.files) == ["images", "labels"]
        images, labels = f["images"], f["labels"]
    assert images.shape == (1797, 8, 8) and images.dtype == np.uint8
    assert labels.shape == (1797,) and labels.dtype == np.uint8
    assert hashlib.sha256(images.tobytes() + labels.tobytes()).hexdigest() == DIGITS_SHA256
    assert images.max() == 16 and labels.max() == 9
    assert DIGITS_FILE.stat().st_size < 120_000                # compressed: about 45 KB
    np.testing.assert_array_equal(load_digits("all")[0][:, 0] * 16, images)
    np.testing.assert_array_equal(load_digits("all")[1], labels)


def test_digits_source_and_licence_are_stated():
    readme = (DIGITS_FILE.parent / "README.md").read_text()
    for text in (readme, DIGITS_DESCRIPTION):
        assert "Alpaydin" in text and "Kaynak" in text and "CC BY 4.0" in text
        assert "10.24432/C50P49" in text
    assert "1,797" in DIGITS_DESCRIPTION and "make_digits.py" in readme


def test_digits_all_matches_scikit_learn_when_installed():
    """scikit-learn is no dependency; where it is installed, the shipped copy must equal it."""
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    bunch = sklearn_datasets.load_digits()
    images, labels = load_digits("all")
    np.testing.assert_array_equal(images[:, 0] * 16, bunch.images)
    np.testing.assert_array_equal(labels, bunch.target)


def test_digit_class_counts():
    np.testing.assert_array_equal(np.bincount(load_digits("all")[1]), DIGIT_COUNTS)


def test_digits_split_is_the_one_minigrad_always_had():
    """The split computed on the shipped file equals the one from scikit-learn's copy: the
    first and last test and train labels and a checksum of the test images, recorded before
    the move."""
    x_test, y_test = load_digits("test")
    x_train, y_train = load_digits("train")
    assert (len(y_train), len(y_test)) == (1438, 359)
    assert hashlib.sha256(x_test.tobytes()).hexdigest() == TEST_IMAGES_SHA256
    assert hashlib.sha256(y_train.tobytes()).hexdigest() == TRAIN_LABELS_SHA256


def _sample_keys(images, labels):
    """One hashable key per (image, label) sample, to compare splits as multisets."""
    return collections.Counter(img.tobytes() + bytes([lab]) for img, lab in zip(images, labels))


def test_digits_split_is_a_partition_of_all_samples():
    train, test = load_digits("train"), load_digits("test")
    assert len(train[1]) + len(test[1]) == 1797
    # Sizes summing to 1797 and the union equalling the full set (with multiplicity)
    # means every sample lands in exactly one split: disjoint and complete.
    assert _sample_keys(*train) + _sample_keys(*test) == _sample_keys(*load_digits("all"))


def test_digits_split_is_reproducible_and_seed_dependent():
    a, b = load_digits("test"), load_digits("test", seed=0)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    c = load_digits("test", seed=1)
    assert c[0].shape == a[0].shape and not np.array_equal(c[0], a[0])


def test_digits_split_is_stratified():
    _, train_labels = load_digits("train")
    _, test_labels = load_digits("test")
    test_counts = np.bincount(test_labels, minlength=10)
    np.testing.assert_array_equal(test_counts, [36, 36, 35, 37, 36, 36, 36, 36, 35, 36])
    np.testing.assert_array_equal(np.bincount(train_labels, minlength=10) + test_counts,
                                  DIGIT_COUNTS)
    # Even a tiny fraction keeps at least one of every digit in the test split.
    _, tiny = load_digits("test", test_fraction=0.001)
    np.testing.assert_array_equal(np.bincount(tiny, minlength=10), np.ones(10))


def test_digits_bad_arguments():
    with pytest.raises(ValueError, match="'valid'.*'train', 'test', 'all'"):
        load_digits("valid")
    with pytest.raises(ValueError, match="test_fraction"):
        load_digits("train", test_fraction=1.0)


# ---- DataLoader ------------------------------------------------------------------------------

def _toy(n=10):
    """X[i] = [i, -i] as float64 (to check the float32 conversion), y[i] = i."""
    X = np.stack([np.arange(n), -np.arange(n)], axis=1).astype(np.float64)
    return X, np.arange(n, dtype=np.int64)


def _epoch_labels(loader):
    return [yb.numpy().tolist() for _, yb in loader]


def test_loader_batch_sizes_and_len():
    loader = DataLoader(_toy(10), batch_size=3)
    assert len(loader) == 4
    assert [len(yb) for _, yb in loader] == [3, 3, 3, 1]
    dropped = DataLoader(_toy(10), batch_size=3, drop_last=True)
    assert len(dropped) == 3
    assert [len(yb) for _, yb in dropped] == [3, 3, 3]
    assert len(DataLoader(_toy(9), batch_size=3, drop_last=True)) == 3
    assert len(DataLoader(_toy(9), batch_size=3)) == 3
    assert len(DataLoader(_toy(2), batch_size=5, drop_last=True)) == 0
    assert list(DataLoader(_toy(2), batch_size=5, drop_last=True)) == []


def test_loader_without_shuffle_keeps_order_and_yields_tensors():
    X, y = _toy(7)
    batches = list(DataLoader((X, y), batch_size=4))
    for xb, yb in batches:
        assert isinstance(xb, minigrad.Tensor) and isinstance(yb, minigrad.Tensor)
        assert xb.dtype == np.float32 and yb.dtype == np.int64
        assert not xb.requires_grad
    assert batches[0][0].shape == (4, 2) and batches[1][0].shape == (3, 2)
    np.testing.assert_array_equal(np.concatenate([xb.numpy() for xb, _ in batches]), X)
    assert _epoch_labels(batches) == [[0, 1, 2, 3], [4, 5, 6]]


def test_loader_shuffle_covers_each_sample_once_and_keeps_pairs():
    loader = DataLoader(_toy(23), batch_size=5, shuffle=True, seed=7)
    for _ in range(3):
        xs, ys = zip(*[(xb.numpy(), yb.numpy()) for xb, yb in loader])
        X, y = np.concatenate(xs), np.concatenate(ys)
        np.testing.assert_array_equal(np.sort(y), np.arange(23))   # every sample exactly once
        np.testing.assert_array_equal(X[:, 0], y)                  # X rows still match labels
        np.testing.assert_array_equal(X[:, 1], -y)
        assert not np.array_equal(y, np.arange(23))                # and it really shuffled


def test_loader_seed_repeats_runs_and_epochs_differ():
    def three_epochs(seed):
        loader = DataLoader(_toy(20), batch_size=6, shuffle=True, seed=seed)
        return [_epoch_labels(loader) for _ in range(3)]
    run_a, run_b = three_epochs(123), three_epochs(123)
    assert run_a == run_b
    assert run_a[0] != run_a[1] and run_a[1] != run_a[2]
    assert three_epochs(124) != run_a


def test_loader_without_seed_follows_manual_seed():
    loader = DataLoader(_toy(20), batch_size=20, shuffle=True)
    minigrad.manual_seed(5)
    first = _epoch_labels(loader)
    second = _epoch_labels(loader)
    minigrad.manual_seed(5)
    assert _epoch_labels(loader) == first
    assert _epoch_labels(loader) == second
    assert first != second


def test_loader_accepts_array_dataset_and_any_indexable():
    class Squares:
        """A dataset that builds each sample on request, like one reading files from disk."""
        def __len__(self):
            return 5

        def __getitem__(self, i):
            return np.array([i, i * i], dtype=np.float32), np.int64(i)

    X = np.array([[i, i * i] for i in range(5)], dtype=np.float32)
    y = np.arange(5, dtype=np.int64)
    expected = [(xb.numpy(), yb.numpy()) for xb, yb in DataLoader((X, y), batch_size=2)]
    assert len(ArrayDataset(X, y)) == 5
    for dataset in (ArrayDataset(X, y), Squares()):
        got = [(xb.numpy(), yb.numpy()) for xb, yb in DataLoader(dataset, batch_size=2)]
        assert len(got) == 3
        for (xe, ye), (xg, yg) in zip(expected, got):
            np.testing.assert_array_equal(xg, xe)
            np.testing.assert_array_equal(yg, ye)
            assert yg.dtype == np.int64


def test_loader_moves_batches_to_device(device):
    xb, yb = next(iter(DataLoader(_toy(6), batch_size=4, device=device)))
    assert xb.device == device and yb.device == device
    np.testing.assert_array_equal(xb.numpy()[:, 0], [0, 1, 2, 3])


def test_loader_over_digits_covers_the_train_split():
    images, labels = load_digits("train")
    loader = DataLoader((images, labels), batch_size=64, shuffle=True, seed=0)
    assert len(loader) == 23                                       # ceil(1438 / 64)
    seen = np.concatenate([yb.numpy() for _, yb in loader])
    np.testing.assert_array_equal(np.bincount(seen), np.bincount(labels))
    xb, _ = next(iter(loader))
    assert xb.shape == (64, 1, 8, 8) and xb.dtype == np.float32


def test_loader_bad_arguments():
    with pytest.raises(ValueError, match="batch_size"):
        DataLoader(_toy(4), batch_size=0)
    with pytest.raises(ValueError, match=r"\[10, 9\]"):
        DataLoader((np.zeros((10, 2)), np.zeros(9)), batch_size=2)


def _labels_of_epochs(loader, epochs):
    return [[yb.numpy().tolist() for _, yb in loader] for _ in range(epochs)]


@pytest.mark.parametrize("seed", [11, None], ids=["own_seed", "global_generator"])
@pytest.mark.parametrize("stop_after", [0, 2, 4, 5], ids=["before", "mid", "last", "next"])
def test_loader_state_dict_resumes_the_same_order(seed, stop_after, tmp_path):
    """Stopping after `stop_after` batches of epoch 2 (of 5 per epoch), saving the state with
    minigrad.save and loading it into a new loader continues exactly like an uninterrupted
    loader: the rest of epoch 2, then epochs 3 and 4."""
    from minigrad.checkpoint import rng_state, set_rng_state
    minigrad.manual_seed(3)
    reference = DataLoader(_toy(23), batch_size=4, shuffle=True, drop_last=True, seed=seed)
    expected = _labels_of_epochs(reference, 4)
    assert len(reference) == 5

    minigrad.manual_seed(3)
    first = DataLoader(_toy(23), batch_size=4, shuffle=True, drop_last=True, seed=seed)
    got = _labels_of_epochs(first, 1)
    epoch2 = []
    if stop_after:
        for _, yb in first:
            epoch2.append(yb.numpy().tolist())
            if len(epoch2) == stop_after:
                break
    minigrad.save({"loader": first.state_dict(), "rng": rng_state()}, tmp_path / "s.npz")

    minigrad.manual_seed(99)                       # a fresh process would start elsewhere
    second = DataLoader(_toy(23), batch_size=4, shuffle=True, drop_last=True, seed=seed)
    state = minigrad.load(tmp_path / "s.npz")
    second.load_state_dict(state["loader"])
    set_rng_state(state["rng"])
    if stop_after < 5:
        epoch2 += [yb.numpy().tolist() for _, yb in second]
        got.append(epoch2)
    else:                                          # epoch 2 was finished: go on with epoch 3
        got.append(epoch2)
    got += _labels_of_epochs(second, 4 - len(got))
    assert got == expected


def test_loader_state_dict_contents_and_mismatches():
    loader = DataLoader(_toy(10), batch_size=3, shuffle=True, seed=0)
    state = loader.state_dict()
    assert state["position"] == 0 and state["order"].shape == (0,) and state["batch_size"] == 3
    assert json.loads(state["rng"])["bit_generator"] == "PCG64"
    it = iter(loader)
    next(it)
    state = loader.state_dict()
    assert state["position"] == 1 and sorted(state["order"].tolist()) == list(range(10))
    with pytest.raises(ValueError, match="batch_size 3, this loader has batch_size 2"):
        DataLoader(_toy(10), batch_size=2, shuffle=True, seed=0).load_state_dict(state)
    with pytest.raises(ValueError, match="orders 10 samples, this dataset has 12"):
        DataLoader(_toy(12), batch_size=3, shuffle=True, seed=0).load_state_dict(state)
    with pytest.raises(ValueError, match="seed=None"):
        DataLoader(_toy(10), batch_size=3, shuffle=True).load_state_dict(state)


def test_breaking_out_of_an_epoch_does_not_carry_over():
    """As in PyTorch, a new `for` loop starts a new epoch; only load_state_dict resumes one."""
    loader = DataLoader(_toy(9), batch_size=3)
    for _ in loader:
        break
    assert _epoch_labels(loader) == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]


# ---- IDX ------------------------------------------------------------------------------------

IDX_CASES = [
    np.arange(24, dtype=np.uint8).reshape(2, 3, 4) * 10,
    np.array([-128, -1, 0, 1, 127], dtype=np.int8),
    np.array([[-30000, 258], [-2, 7]], dtype=np.int16),
    np.array([-(2 ** 31), 2 ** 31 - 1, 65536, -5], dtype=np.int32),
    np.array([[0.5, -1.25e-3], [3.0e30, -0.0]], dtype=np.float32),
    np.array([np.pi, -np.e, 1e-300], dtype=np.float64),
]


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("array", IDX_CASES, ids=lambda a: a.dtype.name)
def test_idx_round_trip(tmp_path, array, suffix):
    path = tmp_path / f"data.idx{suffix}"
    write_idx(path, array)
    back = read_idx(path)
    assert back.dtype == array.dtype and back.shape == array.shape
    np.testing.assert_array_equal(back, array)
    back[...] = 0                                                  # the result is writable


def test_idx_reads_hand_written_big_endian_bytes(tmp_path):
    # int16 vector [1, -2, 258]: magic 00 00 0B 01, one dimension of 3, big-endian values.
    raw = b"\x00\x00\x0b\x01" + b"\x00\x00\x00\x03" + b"\x00\x01" + b"\xff\xfe" + b"\x01\x02"
    (tmp_path / "v.idx").write_bytes(raw)
    (tmp_path / "v.idx.gz").write_bytes(gzip.compress(raw))
    np.testing.assert_array_equal(read_idx(tmp_path / "v.idx"), [1, -2, 258])
    np.testing.assert_array_equal(read_idx(tmp_path / "v.idx.gz"), [1, -2, 258])
    # And the writer produces exactly those bytes.
    write_idx(tmp_path / "w.idx", np.array([1, -2, 258], dtype=np.int16))
    assert (tmp_path / "w.idx").read_bytes() == raw


def test_idx_gzip_detected_by_content_not_name(tmp_path):
    array = np.arange(6, dtype=np.uint8).reshape(2, 3)
    write_idx(tmp_path / "a.gz", array)
    (tmp_path / "plain_name").write_bytes((tmp_path / "a.gz").read_bytes())
    np.testing.assert_array_equal(read_idx(tmp_path / "plain_name"), array)


def test_idx_bad_magic(tmp_path):
    path = tmp_path / "bad.idx"
    path.write_bytes(b"\x01\x02\x08\x01\x00\x00\x00\x01\x05")
    with pytest.raises(ValueError, match=r"bad\.idx.*magic number '01 02 08 01'"):
        read_idx(path)
    path.write_bytes(b"\x00\x00\x07\x01\x00\x00\x00\x01\x05")       # 0x07 is no IDX type
    with pytest.raises(ValueError, match="magic"):
        read_idx(path)


def test_idx_truncated_and_oversized(tmp_path):
    path = tmp_path / "cut.idx"
    write_idx(path, np.arange(10, dtype=np.int32))
    raw = path.read_bytes()
    path.write_bytes(raw[:-3])
    with pytest.raises(ValueError, match=r"cut\.idx is truncated.*needs 40 data bytes.*holds 37"):
        read_idx(path)
    path.write_bytes(raw[:6])                                      # cut inside the header
    with pytest.raises(ValueError, match="truncated: its header needs 8 bytes"):
        read_idx(path)
    path.write_bytes(raw + b"\x00")
    with pytest.raises(ValueError, match="extra bytes"):
        read_idx(path)


def test_write_idx_rejects_unsupported_dtype(tmp_path):
    with pytest.raises(ValueError, match="int64"):
        write_idx(tmp_path / "x.idx", np.arange(3, dtype=np.int64))


# ---- MNIST ----------------------------------------------------------------------------------

def _fake_mnist(folder, split, n, gz, seed):
    """Write n random 28x28 uint8 images and labels under the standard MNIST names."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    images[0, 0, 0], images[0, 0, 1] = 0, 255                     # make both ends present
    labels = rng.integers(0, 10, size=n).astype(np.uint8)
    prefix = "train" if split == "train" else "t10k"
    suffix = ".gz" if gz else ""
    write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", images)
    write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", labels)
    return images, labels


@pytest.mark.parametrize("kind", ["mnist", "fashion-mnist"])
def test_load_mnist_reads_raw_and_gz_files(tmp_path, kind):
    train_raw = _fake_mnist(tmp_path, "train", 5, gz=False, seed=0)
    test_raw = _fake_mnist(tmp_path, "test", 3, gz=True, seed=1)
    for split, (raw_images, raw_labels) in [("train", train_raw), ("test", test_raw)]:
        images, labels = load_mnist(tmp_path, split=split, kind=kind)
        assert images.shape == (len(raw_labels), 1, 28, 28) and images.dtype == np.float32
        assert labels.dtype == np.int64
        np.testing.assert_allclose(images[:, 0], raw_images / 255.0, rtol=1e-6)
        assert images.min() == 0.0 and images.max() == 1.0
        np.testing.assert_array_equal(labels, raw_labels)


def test_load_mnist_missing_file_says_what_and_where(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        load_mnist(tmp_path, split="test")
    message = str(info.value)
    for expected in [str(tmp_path), "t10k-images-idx3-ubyte", "t10k-images-idx3-ubyte.gz",
                     "train-labels-idx1-ubyte", "yann.lecun.com/exdb/mnist"]:
        assert expected in message
    with pytest.raises(FileNotFoundError, match="zalandoresearch/fashion-mnist"):
        load_mnist(tmp_path, kind="fashion-mnist")
    # Images present but labels missing: the error names the labels file.
    _fake_mnist(tmp_path, "train", 2, gz=False, seed=0)
    (tmp_path / "train-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match="neither train-labels-idx1-ubyte nor"):
        load_mnist(tmp_path)


def test_load_mnist_bad_arguments_and_mismatched_files(tmp_path):
    with pytest.raises(ValueError, match="'val'.*'train', 'test'"):
        load_mnist(tmp_path, split="val")
    with pytest.raises(ValueError, match="'kmnist'.*'mnist', 'fashion-mnist'"):
        load_mnist(tmp_path, kind="kmnist")
    _fake_mnist(tmp_path, "train", 4, gz=False, seed=0)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(3, dtype=np.uint8))
    with pytest.raises(ValueError, match="expected 4 labels"):
        load_mnist(tmp_path)


def test_idx_shape_reads_only_the_header(tmp_path):
    write_idx(tmp_path / "a-idx3-ubyte", np.zeros((5, 3, 4), dtype=np.uint8))
    write_idx(tmp_path / "b.gz", np.zeros(7, dtype=np.int16))
    assert idx_shape(tmp_path / "a-idx3-ubyte") == (5, 3, 4)
    assert idx_shape(tmp_path / "b.gz") == (7,)
    (tmp_path / "c").write_bytes(b"\x00\x00\x08\x02\x00\x00")        # dims cut short
    with pytest.raises(ValueError, match="truncated"):
        idx_shape(tmp_path / "c")
    (tmp_path / "d").write_bytes(b"PK\x03\x04")
    with pytest.raises(ValueError, match="not an IDX file"):
        idx_shape(tmp_path / "d")


def test_mnist_size_counts_without_loading(tmp_path):
    _fake_mnist(tmp_path, "train", 12, gz=False, seed=0)
    _fake_mnist(tmp_path, "test", 5, gz=True, seed=1)
    assert mnist_size(tmp_path, "train") == 12
    assert mnist_size(tmp_path, "test", "fashion-mnist") == 5
    (tmp_path / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte"):
        mnist_size(tmp_path, "test")
