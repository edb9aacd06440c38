"""Rebuild digits.npz, the 8x8 digits that `minigrad.data.load_digits` reads, from the CSV copy
that scikit-learn ships (sklearn/datasets/data/digits.csv.gz: 64 pixel columns, then the label).

The data is the test partition (optdigits.tes, 1,797 images) of the UCI "Optical Recognition of
Handwritten Digits" set by E. Alpaydin and C. Kaynak (1998), CC BY 4.0 (see README.md here).
Only this script needs scikit-learn, and only to find the CSV and to check the result:

    python minigrad/datasets/make_digits.py [--csv PATH]
"""
import argparse
import gzip
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def read_csv(path):
    """(images uint8 (1797, 8, 8), labels uint8 (1797,)) from scikit-learn's digits.csv.gz."""
    with gzip.open(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.int64)
    if table.shape != (1797, 65) or table.min() < 0 or table[:, :64].max() > 16:
        raise ValueError(f"{path}: expected 1797 rows of 64 pixels in 0..16 and a label, got a "
                         f"{table.shape} table with values {table.min()}..{table.max()}")
    images = table[:, :64].reshape(-1, 8, 8).astype(np.uint8)     # (1797, 64) -> (1797, 8, 8)
    return images, table[:, 64].astype(np.uint8)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", help="digits.csv.gz (default: the one inside the installed "
                                      "scikit-learn)")
    args = parser.parse_args(argv)
    if args.csv is None:
        import sklearn.datasets
        args.csv = Path(sklearn.datasets.__file__).parent / "data" / "digits.csv.gz"
    images, labels = read_csv(args.csv)

    # The file must hold exactly what scikit-learn's load_digits returns, in its order.
    from sklearn.datasets import load_digits
    bunch = load_digits()
    np.testing.assert_array_equal(images, bunch.images)
    np.testing.assert_array_equal(labels, bunch.target)

    out = HERE / "digits.npz"
    np.savez_compressed(out, images=images, labels=labels)
    print(f"wrote {out} ({out.stat().st_size:,} bytes): images {images.shape} {images.dtype}, "
          f"labels {labels.shape} {labels.dtype}")


if __name__ == "__main__":
    main()
