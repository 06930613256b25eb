"""Tests for toolchain.data.datasets on the real digits and MNIST data and on broken idx files."""

from __future__ import annotations

import gzip
import re
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
from sklearn import datasets as sk_datasets

from toolchain.data import datasets
from toolchain.data.datasets import (
    CHECKOUT_MNIST_DIR,
    MNIST_DIR_VARIABLE,
    MNIST_FILES,
    Dataset,
    DatasetError,
    Split,
    hold_out,
    load_dataset,
    load_digits,
    load_mnist,
    mnist_dir,
    read_idx,
)

MNIST_DIR = mnist_dir()
# The published class counts and first labels of the standard MNIST files.
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
MNIST_TRAIN_FIRST = [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
MNIST_TEST_FIRST = [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]


def idx_bytes(array: np.ndarray) -> bytes:
    """Serialise a uint8 array in the idx format."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_synthetic_mnist(directory: Path, n_train: int = 3, n_test: int = 2) -> None:
    """Write the four MNIST files (gzip) with tiny deterministic contents."""
    rng = np.random.default_rng(0)
    contents = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": np.arange(n_train, dtype=np.uint8) % 10,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": np.arange(n_test, dtype=np.uint8)[::-1] % 10,
    }
    for name, array in contents.items():
        (directory / f"{name}.gz").write_bytes(gzip.compress(idx_bytes(array)))


# --- digits ---------------------------------------------------------------------------------


def test_digits_sizes_shapes_dtypes_and_range() -> None:
    ds = load_digits()
    assert ds.name == "digits"
    assert (len(ds.train), len(ds.test)) == (1347, 450)
    assert ds.train.images.shape == (1347, 1, 8, 8)
    assert ds.test.images.shape == (450, 1, 8, 8)
    assert ds.input_shape == (1, 8, 8)
    for split in (ds.train, ds.test):
        assert split.images.dtype == np.float32
        assert split.labels.dtype == np.int64
        assert split.images.min() == 0.0
        assert split.images.max() == 1.0  # 16/16: scale-only, full range used


def test_digits_pixels_are_sklearn_pixels_over_16() -> None:
    ds = load_digits()
    bunch = sk_datasets.load_digits()
    # Every split image must be some original image / 16 carrying one of its labels.
    originals: dict[bytes, set[int]] = {}
    for row, target in zip(bunch.data / 16.0, bunch.target, strict=True):
        originals.setdefault(row.tobytes(), set()).add(int(target))
    for split in (ds.train, ds.test):
        for image, label in zip(split.images, split.labels, strict=True):
            key = image.reshape(-1).astype(np.float64).tobytes()
            assert int(label) in originals[key]


def test_digits_split_is_stratified_and_disjoint() -> None:
    ds = load_digits()
    full = np.bincount(sk_datasets.load_digits().target, minlength=10)
    test = np.bincount(ds.test.labels, minlength=10)
    train = np.bincount(ds.train.labels, minlength=10)
    np.testing.assert_array_equal(train + test, full)
    assert np.all(np.abs(test - full * 450 / len(sk_datasets.load_digits().target)) <= 1)


def test_digits_is_deterministic() -> None:
    a, b = load_digits(), load_digits()
    for sa, sb in ((a.train, b.train), (a.test, b.test)):
        np.testing.assert_array_equal(sa.images, sb.images)
        np.testing.assert_array_equal(sa.labels, sb.labels)


# --- real MNIST -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mnist() -> Dataset:
    return load_mnist(MNIST_DIR)


def test_mnist_sizes_shapes_and_label_counts(mnist: Dataset) -> None:
    assert mnist.name == "mnist"
    assert (len(mnist.train), len(mnist.test)) == (60000, 10000)
    assert mnist.train.images.shape == (60000, 1, 28, 28)
    assert mnist.test.images.shape == (10000, 1, 28, 28)
    assert mnist.input_shape == (1, 28, 28)
    assert np.bincount(mnist.test.labels, minlength=10).tolist() == MNIST_TEST_COUNTS
    assert np.bincount(mnist.train.labels, minlength=10).tolist() == MNIST_TRAIN_COUNTS
    assert mnist.train.labels[:10].tolist() == MNIST_TRAIN_FIRST, "file order must be kept"
    assert mnist.test.labels[:10].tolist() == MNIST_TEST_FIRST
    for split in (mnist.train, mnist.test):
        assert split.images.dtype == np.float32
        assert split.labels.dtype == np.int64
        assert split.images.min() == 0.0
        assert split.images.max() == 1.0


def test_mnist_images_are_bytes_over_255(mnist: Dataset) -> None:
    raw = read_idx(MNIST_DIR / "t10k-images-idx3-ubyte.gz")
    assert raw.dtype == np.uint8 and raw.shape == (10000, 28, 28)
    np.testing.assert_array_equal(mnist.test.images[:, 0] * 255, raw.astype(np.float32))


def test_load_dataset_mnist_accepts_str_dir(tmp_path: Path) -> None:
    write_synthetic_mnist(tmp_path)
    ds = load_dataset("mnist", str(tmp_path))
    assert ds.name == "mnist" and (len(ds.train), len(ds.test)) == (3, 2)


def test_read_idx_raw_equals_gzip(tmp_path: Path) -> None:
    for name in ("t10k-labels-idx1-ubyte", "t10k-images-idx3-ubyte"):
        raw_path = tmp_path / name
        raw_path.write_bytes(gzip.decompress((MNIST_DIR / f"{name}.gz").read_bytes()))
        np.testing.assert_array_equal(read_idx(raw_path), read_idx(MNIST_DIR / f"{name}.gz"))


# --- synthetic MNIST directories ------------------------------------------------------------


def test_load_mnist_synthetic_gzip(tmp_path: Path) -> None:
    write_synthetic_mnist(tmp_path)
    ds = load_mnist(tmp_path)
    assert ds.train.images.shape == (3, 1, 28, 28)
    assert ds.test.images.shape == (2, 1, 28, 28)
    assert ds.train.labels.tolist() == [0, 1, 2]
    assert ds.test.labels.tolist() == [1, 0]
    expected = read_idx(tmp_path / "train-images-idx3-ubyte.gz").astype(np.float32) / 255
    np.testing.assert_allclose(ds.train.images[:, 0], expected, rtol=0, atol=1e-7)


def test_load_mnist_mixed_raw_and_gzip(tmp_path: Path) -> None:
    write_synthetic_mnist(tmp_path)
    for name in MNIST_FILES[2:]:
        gz = tmp_path / f"{name}.gz"
        (tmp_path / name).write_bytes(gzip.decompress(gz.read_bytes()))
        gz.unlink()
    ds = load_mnist(tmp_path)
    assert (len(ds.train), len(ds.test)) == (3, 2)
    assert ds.test.labels.tolist() == [1, 0]


def test_load_mnist_count_mismatch_names_both_files(tmp_path: Path) -> None:
    write_synthetic_mnist(tmp_path)
    labels = np.zeros(4, dtype=np.uint8)
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(labels)))
    with pytest.raises(DatasetError, match="train-images-idx3-ubyte.*train-labels-idx1-ubyte"):
        load_mnist(tmp_path)


def test_load_mnist_wrong_image_size(tmp_path: Path) -> None:
    write_synthetic_mnist(tmp_path)
    images = np.zeros((2, 8, 8), dtype=np.uint8)
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(images)))
    with pytest.raises(DatasetError, match=r"t10k-images-idx3-ubyte.*expected \(N, 28, 28\)"):
        load_mnist(tmp_path)


def test_load_mnist_missing_file_names_file_and_directory(tmp_path: Path) -> None:
    write_synthetic_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DatasetError) as info:
        load_mnist(tmp_path)
    message = str(info.value)
    assert "'t10k-labels-idx1-ubyte'" in message
    assert str(tmp_path) in message
    for name in MNIST_FILES:
        assert name in message


def test_load_mnist_missing_directory(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(DatasetError, match=re.escape(str(missing))):
        load_mnist(missing)


# --- broken idx files -----------------------------------------------------------------------


def test_truncated_gzip_names_file(tmp_path: Path) -> None:
    data = (MNIST_DIR / "t10k-labels-idx1-ubyte.gz").read_bytes()
    cut = tmp_path / "t10k-labels-idx1-ubyte.gz"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match=re.escape(str(cut)) + ".*truncated"):
        read_idx(cut)
    # load_mnist reports it too (the other files are intact copies).
    for name in MNIST_FILES[:3]:
        shutil.copy(MNIST_DIR / f"{name}.gz", tmp_path)
    with pytest.raises(DatasetError, match="t10k-labels-idx1-ubyte.gz.*truncated"):
        load_mnist(tmp_path)


def test_truncated_raw_says_expected_and_found_bytes(tmp_path: Path) -> None:
    data = gzip.decompress((MNIST_DIR / "t10k-labels-idx1-ubyte.gz").read_bytes())
    cut = tmp_path / "t10k-labels-idx1-ubyte"
    cut.write_bytes(data[:1008])  # 8-byte header + 1000 of 10000 labels
    with pytest.raises(DatasetError, match=re.escape(str(cut))) as info:
        read_idx(cut)
    message = str(info.value)
    assert "truncated" in message
    assert "10000" in message and "1000 bytes" in message


def test_truncated_header(tmp_path: Path) -> None:
    path = tmp_path / "short"
    path.write_bytes(bytes([0, 0, 8, 3, 0, 0]))
    with pytest.raises(DatasetError, match=re.escape(str(path)) + ".*truncated"):
        read_idx(path)


def test_corrupted_gzip_names_file(tmp_path: Path) -> None:
    good = gzip.compress(idx_bytes(np.arange(100, dtype=np.uint8)))
    bad = bytearray(good)
    bad[20:30] = bytes(10)  # damage the deflate stream / checksum
    path = tmp_path / "labels.gz"
    path.write_bytes(bytes(bad))
    with pytest.raises(DatasetError, match=re.escape(str(path)) + ".*(corrupted|truncated)"):
        read_idx(path)


def test_trailing_bytes_rejected(tmp_path: Path) -> None:
    path = tmp_path / "long"
    path.write_bytes(idx_bytes(np.zeros(5, dtype=np.uint8)) + b"\x00")
    with pytest.raises(DatasetError, match="5 data bytes, but 6 bytes"):
        read_idx(path)


def test_bad_magic_names_file(tmp_path: Path) -> None:
    path = tmp_path / "picture.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    with pytest.raises(DatasetError, match=re.escape(str(path)) + " is not an idx file"):
        read_idx(path)


def test_empty_file_is_not_idx(tmp_path: Path) -> None:
    path = tmp_path / "empty"
    path.write_bytes(b"")
    with pytest.raises(DatasetError, match="not an idx file.*empty file"):
        read_idx(path)


def test_unsupported_type_code(tmp_path: Path) -> None:
    path = tmp_path / "floats"
    path.write_bytes(bytes([0, 0, 0x0D, 1]) + struct.pack(">I", 1) + bytes(4))
    with pytest.raises(DatasetError, match=re.escape(str(path)) + ".*type code 0x0d"):
        read_idx(path)


def test_read_idx_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent-idx1-ubyte"
    with pytest.raises(DatasetError, match=re.escape(str(path)) + " not found"):
        read_idx(path)


def test_read_idx_raw_synthetic_roundtrip(tmp_path: Path) -> None:
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / "cube"
    path.write_bytes(idx_bytes(array))
    out = read_idx(path)
    np.testing.assert_array_equal(out, array)
    assert out.flags.writeable


# --- load_dataset and validation ------------------------------------------------------------


def test_load_dataset_digits() -> None:
    ds = load_dataset("digits")
    assert ds.name == "digits" and ds.input_shape == (1, 8, 8)


def test_load_dataset_unknown_name_lists_accepted() -> None:
    with pytest.raises(DatasetError, match="unknown dataset 'cifar10'.*'digits'.*'mnist'"):
        load_dataset("cifar10")


def test_mnist_folder_comes_from_the_argument_the_variable_or_the_checkout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(MNIST_DIR_VARIABLE, raising=False)
    assert mnist_dir() == CHECKOUT_MNIST_DIR and CHECKOUT_MNIST_DIR.is_dir()
    monkeypatch.setenv(MNIST_DIR_VARIABLE, str(tmp_path))
    assert mnist_dir() == tmp_path and mnist_dir("elsewhere") == Path("elsewhere")
    monkeypatch.setattr(datasets, "CHECKOUT_MNIST_DIR", tmp_path / "missing")
    monkeypatch.delenv(MNIST_DIR_VARIABLE)
    with pytest.raises(DatasetError, match=r"pass --data-dir or set \$SNN_DEPLOY_MNIST"):
        load_dataset("mnist")


def test_split_validation() -> None:
    images = np.zeros((3, 1, 2, 2), dtype=np.float32)
    labels = np.zeros(3, dtype=np.int64)
    assert len(Split(images, labels)) == 3
    with pytest.raises(DatasetError, match="float32"):
        Split(images.astype(np.float64), labels)
    with pytest.raises(DatasetError, match=r"\(N, C, H, W\)"):
        Split(images[:, 0], labels)
    with pytest.raises(DatasetError, match="int64"):
        Split(images, labels.astype(np.int32))
    with pytest.raises(DatasetError, match="3 images but 2 labels"):
        Split(images, labels[:2])
    with pytest.raises(DatasetError, match=r"\[0, 1\]"):
        Split(images + 2, labels)
    with pytest.raises(DatasetError, match=r"\[0, 1\]"):
        Split(np.full_like(images, np.nan), labels)


def test_dataset_rejects_mismatched_splits() -> None:
    a = Split(np.zeros((2, 1, 8, 8), np.float32), np.zeros(2, np.int64))
    b = Split(np.zeros((2, 1, 28, 28), np.float32), np.zeros(2, np.int64))
    with pytest.raises(DatasetError, match="train images have shape"):
        Dataset("mixed", a, b)


def test_hold_out_is_fixed_disjoint_and_complete() -> None:
    train = load_digits().train
    rest, held = hold_out(train, 300)
    assert (len(rest), len(held)) == (1047, 300)
    again_rest, again_held = hold_out(train, 300)
    np.testing.assert_array_equal(held.images, again_held.images)

    def keys(split: Split) -> list[bytes]:
        return [x.tobytes() + bytes([y]) for x, y in zip(split.images, split.labels, strict=True)]

    assert sorted(keys(rest) + keys(held)) == sorted(keys(train))
    assert np.bincount(held.labels, minlength=10).min() >= 10  # a spread, not one class


@pytest.mark.parametrize("count", [0, -1, 1347])
def test_hold_out_refuses_impossible_counts(count: int) -> None:
    with pytest.raises(DatasetError, match=f"cannot hold out {count} of 1347.*1 to 1346"):
        hold_out(load_digits().train, count)
