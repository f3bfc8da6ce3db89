"""Load the standard MNIST split (60,000 train / 10,000 test) and verify it.

Lookup order: an explicit ``data_dir``, the ``MNISTKIT_DATA`` environment variable, the Keras cache
(``~/.keras/datasets/mnist.npz``), then the normal Keras download. Only the last step imports Keras.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mnistkit.runtime.errors import DataError

ENV_VAR = "MNISTKIT_DATA"

# Canonical md5 of each uncompressed IDX file, with the expected IDX header shape.
FILES: dict[str, tuple[str, tuple[int, ...]]] = {
    "train-images-idx3-ubyte": ("6bbc9ace898e44ae57da46a324031adb", (60000, 28, 28)),
    "train-labels-idx1-ubyte": ("a25bea736e30d166cdddb491f175f624", (60000,)),
    "t10k-images-idx3-ubyte": ("2646ac647ad5339dbf082846283269ea", (10000, 28, 28)),
    "t10k-labels-idx1-ubyte": ("27ae3e4e09519cfbb04c329615203637", (10000,)),
}


@dataclass(frozen=True)
class Mnist:
    """The MNIST split as uint8 arrays: images (N, 28, 28), labels (N,)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str
    checksums: dict[str, str]


def to_float(images: np.ndarray) -> np.ndarray:
    """Scale uint8 images to float32 in [0, 1]."""
    return images.astype(np.float32) / np.float32(255.0)


def _read_member(folder: Path, stem: str) -> bytes:
    raw, gz = folder / stem, folder / f"{stem}.gz"
    if raw.is_file():
        return raw.read_bytes()
    if gz.is_file():
        try:
            return gzip.decompress(gz.read_bytes())
        except (EOFError, OSError, zlib.error) as exc:
            raise DataError(
                f"{gz} is truncated or not gzip ({exc}); replace it with the canonical MNIST file"
            ) from None
    raise DataError(f"missing MNIST file {stem}(.gz) in {folder}; put the four IDX files there")


def parse_idx(data: bytes, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """Parse one IDX file (uint8 payload) and check its header against ``shape``.

    Raises:
        DataError: wrong magic number, dimensions or payload size.
    """
    ndim = len(shape)
    header = 4 + 4 * ndim
    if len(data) < header or data[:3] != b"\x00\x00\x08" or data[3] != ndim:
        raise DataError(f"{name} is not a {ndim}-d uint8 IDX file; replace it with the canonical MNIST file")
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape))
    if dims != shape or len(data) != expected:
        raise DataError(
            f"{name} has shape {dims} and {len(data)} bytes, expected {shape} and {expected} bytes "
            "(truncated or wrong file); replace it with the canonical MNIST file"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def load_idx_folder(folder: Path) -> Mnist:
    """Load and verify the four IDX files (raw or .gz) in ``folder``."""
    if not folder.is_dir():
        raise DataError(f"MNIST folder {folder} does not exist; pass --data-dir or set {ENV_VAR}")
    arrays, sums = {}, {}
    for stem, (md5, shape) in FILES.items():
        data = _read_member(folder, stem)
        arrays[stem] = parse_idx(data, stem, shape)
        digest = hashlib.md5(data).hexdigest()
        if digest != md5:
            raise DataError(f"{stem} has md5 {digest}, expected {md5}; the file is corrupt, replace it")
        sums[stem] = md5
    return Mnist(
        arrays["train-images-idx3-ubyte"], arrays["train-labels-idx1-ubyte"],
        arrays["t10k-images-idx3-ubyte"], arrays["t10k-labels-idx1-ubyte"],
        source=str(folder.resolve()), checksums=sums,
    )


def _load_npz(path: Path) -> Mnist:
    try:
        with np.load(path) as npz:
            parts = [npz[k] for k in ("x_train", "y_train", "x_test", "y_test")]
    except Exception as exc:  # np.load raises many types on a corrupt zip
        raise DataError(f"{path} is not a readable MNIST npz ({exc}); delete it to download again") from None
    expected = [(60000, 28, 28), (60000,), (10000, 28, 28), (10000,)]
    if [p.shape for p in parts] != expected:
        raise DataError(f"{path} does not hold the 60,000/10,000 MNIST split; delete it to download again")
    sums = {stem: hashlib.md5(p.astype(np.uint8).tobytes()).hexdigest() for stem, p in zip(FILES, parts)}
    return Mnist(*[p.astype(np.uint8) for p in parts], source=str(path), checksums=sums)


def load_mnist(data_dir: str | os.PathLike | None = None) -> Mnist:
    """Load MNIST from the first available source (see module docstring).

    Args:
        data_dir: folder of the four IDX files; overrides ``MNISTKIT_DATA``.

    Raises:
        DataError: a source was named but is missing or corrupt, or nothing could be found.
    """
    folder = data_dir or os.environ.get(ENV_VAR)
    if folder:
        return load_idx_folder(Path(folder).expanduser())
    cache = Path.home() / ".keras" / "datasets" / "mnist.npz"
    if cache.is_file():
        return _load_npz(cache)
    from mnistkit.models.extras import missing

    if missing(("keras",)):
        raise DataError(
            f"MNIST not found: pass --data-dir or set {ENV_VAR} to a folder with the four IDX files "
            '(downloading it needs Keras: pip install "mnistkit[train]")'
        )
    try:
        import keras

        keras.datasets.mnist.load_data()
    except Exception as exc:
        raise DataError(
            f"MNIST not found and the download failed ({type(exc).__name__}); "
            f"pass --data-dir or set {ENV_VAR} to a folder with the four IDX files"
        ) from None
    return _load_npz(cache)
