"""Datasets that need no download, a DataLoader that batches them into Tensors, and an IDX reader.

`load_digits` splits the 8x8 digits that ship inside this package (minigrad/datasets/digits.npz);
`load_mnist` reads MNIST / Fashion-MNIST files that you downloaded yourself (minigrad never
fetches data). Arrays stay NumPy until the DataLoader wraps each batch in a `Tensor` on the
device you ask for; the loader's shuffling state can be saved and restored (`state_dict`).
"""
import gzip
import json
import math
import struct
from pathlib import Path

import numpy as np

from . import backend
from .tensor import Tensor

# ---- the 8x8 digits (ship inside this package) -----------------------------------------------

DIGITS_SPLITS = ("train", "test", "all")
DIGITS_FILE = Path(__file__).resolve().parent / "datasets" / "digits.npz"
DIGITS_DESCRIPTION = """\
The 8x8 digits are the test partition (1,797 images) of the UCI "Optical Recognition of
Handwritten Digits" data set by E. Alpaydin and C. Kaynak (1998), CC BY 4.0,
https://doi.org/10.24432/C50P49. 43 people filled in preprinted forms; NIST's preprocessing
programs extracted normalized 32x32 bitmaps, and each non-overlapping 4x4 block was replaced by
its count of "on" pixels: an 8x8 image of integers 0..16, smaller and less sensitive to small
distortions. minigrad ships them as minigrad/datasets/digits.npz (see the README.md there)."""


def load_digits(split="train", seed=0, test_fraction=0.2):
    """The 1,797 8x8 handwritten digits as `(images, labels)` NumPy arrays (DIGITS_DESCRIPTION
    says where they come from).

    images: float32 (N, 1, 8, 8). The file stores pixels as integers 0..16; we divide by 16
            so every pixel lies in [0, 1]. The same fixed rule scales train and test, so nothing
            about the test set can leak into training.
    labels: int64 (N,), the digit 0..9.

    The split is stratified (each digit keeps the same share in both parts) and fixed by `seed`:
    the defaults seed=0, test_fraction=0.2 give 1,438 train and 359 test images, identical on
    every call and machine. split="all" returns all 1,797 in the file's order (which is
    scikit-learn's load_digits order).
    """
    if split not in DIGITS_SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {DIGITS_SPLITS}")
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction}")
    with np.load(DIGITS_FILE, allow_pickle=False) as f:
        raw_images, raw_labels = f["images"], f["labels"]
    images = (raw_images / 16.0).astype(np.float32)
    images = images.reshape(-1, 1, 8, 8)                   # (N, 8, 8) -> (N, 1, 8, 8): one channel
    labels = raw_labels.astype(np.int64)
    if split == "all":
        return images, labels

    # Pick each class's test members separately: that is what makes the split stratified.
    rng = np.random.default_rng(seed)
    is_test = np.zeros(len(labels), dtype=bool)
    for digit in np.unique(labels):
        members = np.flatnonzero(labels == digit)
        # At least one in each part, so even an extreme fraction leaves every class in both.
        n_test = min(max(round(len(members) * test_fraction), 1), len(members) - 1)
        is_test[rng.permutation(members)[:n_test]] = True
    keep = is_test if split == "test" else ~is_test
    return images[keep], labels[keep]


# ---- datasets and batching -------------------------------------------------------------------

class ArrayDataset:
    """Equal-length arrays seen as one dataset: `ds[i]` is the tuple `(a[i], b[i], ...)`.

    `i` may also be an array of indices, which returns whole batches with one fancy index per
    array; the DataLoader relies on that to batch without a Python loop over samples.
    """

    def __init__(self, *arrays):
        if not arrays:
            raise ValueError("ArrayDataset needs at least one array")
        self.arrays = tuple(a if backend.is_array(a) else np.asarray(a) for a in arrays)
        lengths = [len(a) for a in self.arrays]
        if len(set(lengths)) != 1:
            raise ValueError(f"all arrays must have the same length (first axis), got lengths "
                             f"{lengths}")

    def __len__(self):
        return len(self.arrays[0])

    def __getitem__(self, index):
        return tuple(a[index] for a in self.arrays)


class DataLoader:
    """Iterate over a dataset in batches of Tensors, optionally shuffled each epoch.

    DataLoader(dataset, batch_size=1, shuffle=False, *, drop_last=False, seed=None, device=None)

    dataset:   a tuple of equal-length arrays `(X, y)`, an ArrayDataset, or any object with
               `__len__` and a `__getitem__` that returns one tuple per sample.
    drop_last: skip the final batch when it is smaller than batch_size.
    seed:      shuffle with a generator made from this seed. Each epoch draws the next
               permutation from it, so epochs differ but two loaders with the same seed repeat
               each other. With seed=None the order comes from minigrad.manual_seed's generator.
    device:    'cpu' or 'cuda'; every batch is moved there.

    Each batch is a tuple of `Tensor(array, device=device)`: float arrays become float32 and
    integer labels keep their dtype (int64 from the loaders in this module).

    To stop and resume training exactly, save `state_dict()` after a step and give it to
    `load_state_dict` of a loader over the same dataset: its next `for` loop hands out the rest
    of the interrupted epoch in the same order, and later epochs draw the same permutations as
    an uninterrupted loader would. With seed=None the order comes from minigrad's global
    generator; save that with minigrad.checkpoint.rng_state() as well.
    """

    def __init__(self, dataset, batch_size=1, shuffle=False, *, drop_last=False, seed=None,
                 device=None):
        if isinstance(dataset, (tuple, list)):
            dataset = ArrayDataset(*dataset)
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.device = backend.check_device(device)
        # One generator for the loader's whole life: epoch k continues where epoch k-1 stopped.
        self._rng = np.random.default_rng(seed) if seed is not None else None
        self._order = None         # the sample order of the epoch being handed out
        self._position = 0         # how many of its batches have been handed out
        self._resume = None        # (order, position) from load_state_dict, for the next loop

    def __len__(self):
        """The number of batches in one epoch."""
        if self.drop_last:
            return len(self.dataset) // self.batch_size
        return math.ceil(len(self.dataset) / self.batch_size)

    def __iter__(self):
        if self._resume is not None:
            order, start = self._resume
            self._resume = None
        else:
            order, start = self._new_order(), 0
        self._order = order
        for b in range(start, len(self)):
            index = order[b * self.batch_size:(b + 1) * self.batch_size]
            self._position = b + 1         # counted before the yield: the batch is handed out
            yield tuple(Tensor(a, device=self.device) for a in self._fetch(index))

    def _new_order(self):
        n = len(self.dataset)
        if not self.shuffle:
            return np.arange(n)
        # backend.rng() is looked up per epoch because manual_seed replaces that generator.
        rng = self._rng if self._rng is not None else backend.rng()
        return rng.permutation(n)

    def state_dict(self):
        """Where the loader stands, as a dict minigrad.save can store:

        batch_size: int; order: the current epoch's sample order (int64, empty before the first
        epoch); position: how many of its batches were handed out; rng: the state of the loader's
        own shuffling generator as JSON text ("" with seed=None).
        """
        order = self._order if self._order is not None else np.zeros(0, dtype=np.int64)
        rng = json.dumps(self._rng.bit_generator.state) if self._rng is not None else ""
        return {"batch_size": self.batch_size, "order": np.asarray(order, dtype=np.int64),
                "position": self._position, "rng": rng}

    def load_state_dict(self, state):
        """Continue from a state_dict() of a loader with the same dataset, batch size and seed
        kind: the next `for` loop finishes the saved epoch (a finished one starts the next)."""
        batch_size, position = int(_plain(state["batch_size"])), int(_plain(state["position"]))
        order, rng = np.asarray(_plain(state["order"]), dtype=np.int64), state["rng"]
        if batch_size != self.batch_size:
            raise ValueError(f"loader state is for batch_size {batch_size}, this loader has "
                             f"batch_size {self.batch_size}")
        if len(order) not in (0, len(self.dataset)):
            raise ValueError(f"loader state orders {len(order)} samples, this dataset has "
                             f"{len(self.dataset)}")
        if bool(rng) != (self._rng is not None):
            raise ValueError("loader state and this loader disagree on seed: one was made with "
                             "seed=None, the other with a seed")
        if rng:
            self._rng.bit_generator.state = json.loads(rng)
        self._order, self._position = (order if len(order) else None), position
        unfinished = len(order) > 0 and position < len(self)
        self._resume = (order, position) if unfinished else None

    def _fetch(self, index):
        """The arrays of one batch: a single fancy index for ArrayDataset, else stack samples."""
        if isinstance(self.dataset, ArrayDataset):
            return self.dataset[index]
        samples = [self.dataset[int(i)] for i in index]
        samples = [s if isinstance(s, tuple) else (s,) for s in samples]
        return tuple(np.stack(column) for column in zip(*samples))


def _plain(value):
    """A number or array from a state dict, also when minigrad.load made it a Tensor."""
    return backend.to_numpy(value.data) if isinstance(value, Tensor) else value


# ---- IDX files (the MNIST format) ------------------------------------------------------------

# The third magic byte names the element type; IDX stores every multi-byte value big-endian.
IDX_DTYPES = {0x08: np.dtype(">u1"), 0x09: np.dtype(">i1"), 0x0B: np.dtype(">i2"),
              0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def read_idx(path):
    """Read an IDX file, raw or gzip-compressed, into a NumPy array in native byte order.

    Layout: 2 zero bytes, a dtype code (see IDX_DTYPES), the number of dimensions, one
    big-endian uint32 per dimension, then the data, big-endian, in C order.
    """
    path = Path(path)
    raw = path.read_bytes()
    # Decide by content, not by name: browsers often unpack a download but keep its ".gz".
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise ValueError(f"{path}: damaged gzip data ({exc})") from None
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] not in IDX_DTYPES:
        codes = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise ValueError(f"{path} is not an IDX file: bad magic number {raw[:4].hex(' ')!r}; "
                         f"expected 00 00, a type code in ({codes}), then the number of dims")
    dtype, ndim = IDX_DTYPES[raw[2]], raw[3]
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise ValueError(f"{path} is truncated: its header needs {header_size} bytes for {ndim} "
                         f"dimensions but the file has {len(raw)}")
    shape = struct.unpack(f">{ndim}I", raw[4:header_size])
    expected = math.prod(shape) * dtype.itemsize
    found = len(raw) - header_size
    if found != expected:
        problem = "is truncated" if found < expected else "has extra bytes at the end"
        raise ValueError(f"{path} {problem}: shape {shape} of {dtype.name} needs {expected} "
                         f"data bytes but the file holds {found}")
    data = np.frombuffer(raw, dtype=dtype, offset=header_size).reshape(shape)
    return data.astype(dtype.newbyteorder("="))           # big-endian -> native, and writable


def idx_shape(path):
    """The shape an IDX file declares in its header, without reading the data."""
    path = Path(path)
    with open(path, "rb") as raw:
        gzipped = raw.read(2) == b"\x1f\x8b"
    try:
        with (gzip.open(path, "rb") if gzipped else open(path, "rb")) as f:
            head = f.read(4)
            if len(head) < 4 or head[:2] != b"\x00\x00" or head[2] not in IDX_DTYPES:
                raise ValueError(f"{path} is not an IDX file: bad magic number "
                                 f"{head.hex(' ')!r}")
            dims = f.read(4 * head[3])
    except (OSError, EOFError) as exc:
        raise ValueError(f"{path}: damaged gzip data ({exc})") from None
    if len(dims) < 4 * head[3]:
        raise ValueError(f"{path} is truncated: its header declares {head[3]} dimensions")
    return struct.unpack(f">{head[3]}I", dims)


def write_idx(path, array):
    """Write `array` as an IDX file (gzip-compressed when `path` ends in .gz).

    The inverse of read_idx; the tests use it to build small MNIST-like files.
    """
    array = np.asarray(array)
    codes = {dtype.newbyteorder("="): code for code, dtype in IDX_DTYPES.items()}
    native = array.dtype.newbyteorder("=")
    if native not in codes:
        names = ", ".join(d.name for d in codes)
        raise ValueError(f"IDX cannot store dtype {array.dtype}; convert to one of: {names}")
    header = struct.pack(">BBBB", 0, 0, codes[native], array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    if str(path).endswith(".gz"):
        payload = gzip.compress(payload)
    Path(path).write_bytes(payload)


# ---- MNIST and Fashion-MNIST (you download them; we only read) -------------------------------

MNIST_SOURCES = {
    "mnist": "http://yann.lecun.com/exdb/mnist/ "
             "(or its mirror https://ossci-datasets.s3.amazonaws.com/mnist/)",
    "fashion-mnist": "https://github.com/zalandoresearch/fashion-mnist",
}
MNIST_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
               "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def _find_file(data_dir, name, kind):
    """`data_dir/name` or `data_dir/name.gz`, or a FileNotFoundError saying what to fetch."""
    for candidate in (data_dir / name, data_dir / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"{kind}: found neither {name} nor {name}.gz in {data_dir}. minigrad does not download "
        f"data; fetch the four files ({', '.join(n for pair in MNIST_FILES.values() for n in pair)}"
        f", each with or without .gz) from {MNIST_SOURCES[kind]} into that folder.")


def mnist_size(data_dir, split="train", kind="mnist"):
    """How many images `load_mnist(data_dir, split, kind)` would return, from the labels file's
    header alone (a FileNotFoundError says which files to fetch, as load_mnist does)."""
    if split not in MNIST_FILES:
        raise ValueError(f"unknown split {split!r}; expected one of {tuple(MNIST_FILES)}")
    data_dir = Path(data_dir)
    image_name, label_name = MNIST_FILES[split]
    _find_file(data_dir, image_name, kind)
    return idx_shape(_find_file(data_dir, label_name, kind))[0]


def load_mnist(data_dir, split="train", kind="mnist"):
    """MNIST or Fashion-MNIST from the standard IDX files in `data_dir`, as `(images, labels)`.

    images: float32 (N, 1, 28, 28), the 0..255 pixels divided by 255 so they lie in [0, 1].
    labels: int64 (N,).
    Both kinds use the same file names; `kind` only picks the download hint in error messages.
    """
    if split not in MNIST_FILES:
        raise ValueError(f"unknown split {split!r}; expected one of {tuple(MNIST_FILES)}")
    if kind not in MNIST_SOURCES:
        raise ValueError(f"unknown kind {kind!r}; expected one of {tuple(MNIST_SOURCES)}")
    data_dir = Path(data_dir)
    image_name, label_name = MNIST_FILES[split]
    image_path = _find_file(data_dir, image_name, kind)
    label_path = _find_file(data_dir, label_name, kind)
    images, labels = read_idx(image_path), read_idx(label_path)
    if images.dtype != np.uint8 or images.ndim != 3:
        raise ValueError(f"{image_path}: expected uint8 images of shape (N, H, W), got "
                         f"{images.dtype} {images.shape}")
    if labels.ndim != 1 or len(labels) != len(images):
        raise ValueError(f"{label_path}: expected {len(images)} labels to match {image_path}, "
                         f"got shape {labels.shape}")
    images = (images / 255.0).astype(np.float32)
    images = images[:, None, :, :]                         # (N, 28, 28) -> (N, 1, 28, 28)
    return images, labels.astype(np.int64)
