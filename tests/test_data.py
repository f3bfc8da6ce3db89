"""The MNIST loader: canonical files load; missing, truncated, resized or corrupt files are refused."""

from __future__ import annotations

import gzip
import shutil

import numpy as np
import pytest

from mnistkit.models.data import FILES, load_mnist, parse_idx, to_float
from mnistkit.runtime.errors import DataError


def test_canonical_files_load(mnist):
    assert mnist.x_train.shape == (60000, 28, 28) and mnist.x_train.dtype == np.uint8
    assert mnist.x_test.shape == (10000, 28, 28)
    # Label counts published with the data set (shared/data/mnist/README.md).
    assert np.bincount(mnist.y_test).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert np.bincount(mnist.y_train).tolist()[:3] == [5923, 6742, 5958]
    x = to_float(mnist.x_test[:5])
    assert x.dtype == np.float32 and 0.0 <= x.min() and x.max() == pytest.approx(1.0)


def _copy_raw(mnist_dir, tmp_path):
    """Uncompressed copies of the four files (the loader accepts raw or .gz)."""
    for stem in FILES:
        (tmp_path / stem).write_bytes(gzip.decompress((mnist_dir / f"{stem}.gz").read_bytes()))
    return tmp_path


def test_raw_files_load(mnist_dir, tmp_path, mnist):
    loaded = load_mnist(_copy_raw(mnist_dir, tmp_path))
    assert np.array_equal(loaded.x_test, mnist.x_test)


def test_env_var_is_used(mnist_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("MNISTKIT_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match="does not exist"):
        load_mnist()


def test_missing_file_is_named(mnist_dir, tmp_path):
    for stem in list(FILES)[1:]:
        shutil.copy(mnist_dir / f"{stem}.gz", tmp_path)
    with pytest.raises(DataError, match="missing MNIST file train-images-idx3-ubyte"):
        load_mnist(tmp_path)


def test_truncated_gzip_is_refused(mnist_dir, tmp_path):
    for stem in FILES:
        shutil.copy(mnist_dir / f"{stem}.gz", tmp_path)
    target = tmp_path / "t10k-labels-idx1-ubyte.gz"
    target.write_bytes(target.read_bytes()[:-100])
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz is truncated"):
        load_mnist(tmp_path)


def test_truncated_raw_file_is_refused(mnist_dir, tmp_path):
    folder = _copy_raw(mnist_dir, tmp_path)
    target = folder / "t10k-images-idx3-ubyte"
    target.write_bytes(target.read_bytes()[:-784])
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte has shape .* expected \(10000, 28, 28\)"):
        load_mnist(folder)


def test_wrong_checksum_is_refused(mnist_dir, tmp_path):
    folder = _copy_raw(mnist_dir, tmp_path)
    target = folder / "train-labels-idx1-ubyte"
    data = bytearray(target.read_bytes())
    data[100] = (data[100] + 1) % 10  # still a valid label: only the checksum can tell
    target.write_bytes(bytes(data))
    with pytest.raises(DataError, match="train-labels-idx1-ubyte has md5 .*, expected a25bea736e30d166cdddb491f175f624"):
        load_mnist(folder)


def test_parse_idx_rejects_wrong_magic():
    with pytest.raises(DataError, match="not a 1-d uint8 IDX file"):
        parse_idx(b"\x00\x00\x09\x01" + b"\x00" * 8, "x", (4,))
