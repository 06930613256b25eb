"""Image classification datasets for training spiking networks.

Two datasets are supported:

* ``digits``: scikit-learn's 8x8 handwritten digits (shipped with scikit-learn, no download),
  split 75/25 into a fixed, stratified train/test split.
* ``mnist``: the 28x28 MNIST digits, read from the four standard idx files (gzip-compressed or
  raw) in a local directory.

Images are float32 arrays of shape (N, C, H, W) with values in [0, 1]; labels are int64 arrays of
shape (N,). Normalisation is scale-only: the network is deployed on Loihi, whose input spikes
cannot express a constant offset, so no mean is subtracted.
"""

from __future__ import annotations

import gzip
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn import datasets as sk_datasets
from sklearn.model_selection import train_test_split

from toolchain.errors import UserError

DATASET_NAMES: tuple[str, ...] = ("digits", "mnist")
INPUT_LEVELS = {"digits": 16, "mnist": 255}  # the data sets' own integer pixel ranges
INPUT_SHAPES = {"digits": (1, 8, 8), "mnist": (1, 28, 28)}  # (C, H, W) of one image
MNIST_DIR_VARIABLE = "SNN_DEPLOY_MNIST"
# Without --data-dir or $SNN_DEPLOY_MNIST: the source checkout's sibling shared/datasets/mnist.
CHECKOUT_MNIST_DIR = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "mnist"

MNIST_FILES: tuple[str, ...] = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)

_GZIP_MAGIC = b"\x1f\x8b"
_IDX_UINT8 = 0x08


class DatasetError(UserError, ValueError):
    """A dataset could not be loaded: missing, malformed or inconsistent files, or a bad name."""


@dataclass(frozen=True, eq=False)
class Split:
    """One split of a dataset: float32 images (N, C, H, W) in [0, 1] and int64 labels (N,).

    ``eq=False``: equality is identity, since comparing arrays element-wise is ambiguous.
    """

    images: np.ndarray
    labels: np.ndarray

    def __post_init__(self) -> None:
        images, labels = self.images, self.labels
        if not isinstance(images, np.ndarray) or not isinstance(labels, np.ndarray):
            raise DatasetError(
                f"Split expects numpy arrays, got images={type(images).__name__}, "
                f"labels={type(labels).__name__}"
            )
        if images.dtype != np.float32 or images.ndim != 4:
            raise DatasetError(
                "Split images must be a float32 array of shape (N, C, H, W), "
                f"got dtype {images.dtype} with shape {images.shape}"
            )
        if labels.dtype != np.int64 or labels.ndim != 1:
            raise DatasetError(
                "Split labels must be an int64 array of shape (N,), "
                f"got dtype {labels.dtype} with shape {labels.shape}"
            )
        if len(images) != len(labels):
            raise DatasetError(
                f"Split has {len(images)} images but {len(labels)} labels; counts must agree"
            )
        # Written so that NaN fails too.
        if images.size and not (images.min() >= 0.0 and images.max() <= 1.0):
            raise DatasetError(
                f"Split images must lie in [0, 1], found values in [{images.min()}, {images.max()}]"
            )

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class Dataset:
    """A named dataset with a train and a test split of the same image shape."""

    name: str
    train: Split
    test: Split

    def __post_init__(self) -> None:
        if self.train.images.shape[1:] != self.test.images.shape[1:]:
            raise DatasetError(
                f"Dataset {self.name!r}: train images have shape (C, H, W) = "
                f"{self.train.images.shape[1:]} but test images have {self.test.images.shape[1:]}"
            )

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """Shape (C, H, W) of one input image."""
        c, h, w = self.train.images.shape[1:]
        return int(c), int(h), int(w)


def load_digits() -> Dataset:
    """scikit-learn's 8x8 digits as (N, 1, 8, 8) images in [0, 1], fixed stratified 75/25 split."""
    bunch = sk_datasets.load_digits()
    # Pixels are integers 0..16; scale only, no offset (see module docstring).
    images = (np.asarray(bunch.data, dtype=np.float64) / 16.0).astype(np.float32)
    images = images.reshape(-1, 1, 8, 8)
    labels = np.asarray(bunch.target, dtype=np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        images, labels, test_size=0.25, stratify=labels, random_state=0
    )
    return Dataset("digits", Split(x_train, y_train), Split(x_test, y_test))


def _read_bytes(path: Path) -> bytes:
    """The contents of ``path``, gunzipped if it starts with the gzip magic bytes."""
    if not path.is_file():
        raise DatasetError(f"idx file {path} not found (expected an existing file)")
    raw = path.read_bytes()
    if not raw.startswith(_GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except EOFError as exc:
        raise DatasetError(
            f"idx file {path} is a truncated gzip file ({len(raw)} bytes): the compressed "
            f"stream ends before its end marker ({exc}); the download is probably incomplete"
        ) from exc
    except (OSError, zlib.error) as exc:
        raise DatasetError(
            f"idx file {path} is a corrupted gzip file ({exc}); expected a valid "
            "gzip-compressed idx file"
        ) from exc


def read_idx(path: Path) -> np.ndarray:
    """Read one uint8 idx file (gzip-compressed or raw) into an array of the declared shape."""
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4 or data[0:2] != b"\x00\x00":
        raise DatasetError(
            f"{path} is not an idx file: expected magic bytes 00 00 <type> <ndims> "
            f"(or gzip 1f 8b), found {data[:4].hex(' ') or 'an empty file'}"
        )
    type_code, ndim = data[2], data[3]
    if type_code != _IDX_UINT8:
        raise DatasetError(
            f"idx file {path} has unsupported type code 0x{type_code:02x}; "
            f"only 0x{_IDX_UINT8:02x} (unsigned byte) is supported"
        )
    if ndim == 0:
        raise DatasetError(f"idx file {path} declares 0 dimensions; expected at least 1")
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise DatasetError(
            f"idx file {path} is truncated: its header declares {ndim} dimensions and needs "
            f"{header_len} bytes, found {len(data)}"
        )
    shape = tuple(int(s) for s in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(shape, dtype=np.int64))
    found = len(data) - header_len
    if found < expected:
        raise DatasetError(
            f"idx file {path} is truncated: header declares shape {shape}, i.e. {expected} data "
            f"bytes, but only {found} bytes follow the header"
        )
    if found > expected:
        raise DatasetError(
            f"idx file {path} is malformed: header declares shape {shape}, i.e. {expected} data "
            f"bytes, but {found} bytes follow the header"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header_len).reshape(shape).copy()


def _find_mnist_file(data_dir: Path, name: str) -> Path:
    """``data_dir/name.gz`` if it exists, else ``data_dir/name``; error if neither does."""
    for candidate in (data_dir / f"{name}.gz", data_dir / name):
        if candidate.is_file():
            return candidate
    raise DatasetError(
        f"MNIST file {name!r} (or {name}.gz) not found in directory {data_dir}; "
        f"expected the four files {', '.join(MNIST_FILES)} (each raw or with .gz)"
    )


def _load_mnist_split(images_path: Path, labels_path: Path) -> Split:
    """Read one pair of MNIST image/label idx files into a Split."""
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DatasetError(
            f"MNIST images file {images_path} has shape {images.shape}; expected (N, 28, 28)"
        )
    if labels.ndim != 1:
        raise DatasetError(
            f"MNIST labels file {labels_path} has shape {labels.shape}; expected (N,)"
        )
    if len(images) != len(labels):
        raise DatasetError(
            f"MNIST image and label counts disagree: {images_path} holds {len(images)} images "
            f"but {labels_path} holds {len(labels)} labels"
        )
    if labels.size and labels.max() > 9:
        raise DatasetError(
            f"MNIST labels file {labels_path} holds label {labels.max()}; expected 0..9"
        )
    # Scale only, no offset (see module docstring).
    scaled = (images.astype(np.float32) / np.float32(255.0))[:, None, :, :]
    return Split(scaled, labels.astype(np.int64))


def load_mnist(data_dir: Path | str) -> Dataset:
    """MNIST from the four standard idx files (raw or .gz) in ``data_dir``, (N, 1, 28, 28)."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DatasetError(
            f"MNIST directory {data_dir} not found; expected a directory holding "
            f"{', '.join(MNIST_FILES)} (each raw or with .gz)"
        )
    train_images, train_labels, test_images, test_labels = (
        _find_mnist_file(data_dir, name) for name in MNIST_FILES
    )
    return Dataset(
        "mnist",
        _load_mnist_split(train_images, train_labels),
        _load_mnist_split(test_images, test_labels),
    )


def mnist_dir(data_dir: Path | str | None = None) -> Path:
    """`data_dir`, else $SNN_DEPLOY_MNIST, else the checkout's ../shared/datasets/mnist."""
    if data_dir is not None:
        return Path(data_dir)
    if os.environ.get(MNIST_DIR_VARIABLE):
        return Path(os.environ[MNIST_DIR_VARIABLE])
    if CHECKOUT_MNIST_DIR.is_dir():
        return CHECKOUT_MNIST_DIR
    raise DatasetError(
        f"dataset 'mnist' needs its folder: pass --data-dir or set ${MNIST_DIR_VARIABLE} to a "
        f"directory holding the four MNIST idx files ({', '.join(MNIST_FILES)}, raw or .gz)"
    )


def load_dataset(name: str, data_dir: Path | str | None = None) -> Dataset:
    """Load a dataset by name: ``digits`` or ``mnist`` (from `mnist_dir(data_dir)`)."""
    if name == "digits":
        return load_digits()
    if name == "mnist":
        return load_mnist(mnist_dir(data_dir))
    raise DatasetError(
        f"unknown dataset {name!r}; accepted names: {', '.join(repr(n) for n in DATASET_NAMES)}"
    )


def hold_out(split: Split, count: int) -> tuple[Split, Split]:
    """(rest, held out): `count` samples chosen by a fixed permutation, the same on every run."""
    if not 0 < count < len(split):
        raise DatasetError(
            f"cannot hold out {count} of {len(split)} training samples for validation; "
            f"accepted: 1 to {len(split) - 1}"
        )
    order = np.random.default_rng(0).permutation(len(split))
    kept, held = np.sort(order[count:]), np.sort(order[:count])
    return (
        Split(split.images[kept], split.labels[kept]),
        Split(split.images[held], split.labels[held]),
    )
