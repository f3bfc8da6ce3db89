"""Turn what a user passes to ``classify`` into a float32 batch (N, 28, 28) in [0, 1].

Rules:
- a path (``str`` / ``os.PathLike``), encoded bytes or a PIL image is one image;
  a list or tuple is a batch of any of those and/or numpy arrays;
- a 2-D array is one grayscale image; a 3-D array is a batch (N, H, W) unless its last axis has
  2-4 channels and it is not (N, 28, 28): then it is one colour image; a 4-D array is a batch of
  colour images;
- 28x28 grayscale arrays with a dark border (mean of the outer 2-pixel ring < 0.15) are taken as
  MNIST-style and only scaled (integers / 255, floats above 1 also / 255), vectorized over a batch;
  everything else goes through ``mnistkit.runtime.preprocess.prepare`` (decode, grayscale, invert,
  denoise, crop, fit in 20x20, centre by mass), which imports Pillow only when a file is decoded.
"""

from __future__ import annotations

import os

import numpy as np

from mnistkit.runtime.errors import ImageError, UsageError

SINGLE = (str, os.PathLike, bytes, bytearray, memoryview)


def to_batch(images) -> tuple[np.ndarray, list]:
    """Return (float32 batch (N, 28, 28), per-image source: file path or batch index).

    Raises:
        ImageError: an image cannot be decoded or holds no digit.
        UsageError: the input is not an image, a path or a batch of those.
    """
    if isinstance(images, SINGLE) or _is_pil(images):
        return _prepare(images)[None], [_source(images, 0)]
    if isinstance(images, np.ndarray):
        if images.ndim == 2 or (images.ndim == 3 and images.shape[-1] in (2, 3, 4)
                                and images.shape[1:] != (28, 28)):
            return _stack([_one_array(images)]), [0]
        if images.ndim == 3 and images.shape[1:] == (28, 28):
            return _mnist_batch(images), list(range(len(images)))
        if images.ndim in (3, 4):
            return _stack([_one_array(im) for im in images]), list(range(len(images)))
        raise UsageError(f"cannot classify an array of shape {images.shape}; pass an image "
                         "(H, W) or (H, W, C), or a batch (N, H, W)")
    if isinstance(images, (list, tuple)):
        if not images:
            return np.empty((0, 28, 28), np.float32), []
        out = [_one_array(np.asarray(item)) if isinstance(item, np.ndarray) else _prepare(item)
               for item in images]
        return _stack(out), [_source(item, i) for i, item in enumerate(images)]
    raise UsageError(f"cannot classify a {type(images).__name__}; pass an image file path, a numpy "
                     "image or a list of those")


def _source(item, index: int) -> str | int:
    return os.fspath(item) if isinstance(item, (str, os.PathLike)) else index


def _is_pil(obj) -> bool:
    return type(obj).__module__.startswith("PIL.")


def _one_array(image: np.ndarray) -> np.ndarray:
    if image.shape == (28, 28) and image.dtype.kind in "uifb":
        return _mnist_batch(image[None])[0]
    return _prepare(image)


def _mnist_batch(x: np.ndarray) -> np.ndarray:
    """Scale (N, 28, 28) arrays; images without a dark border go through ``prepare`` instead."""
    if x.dtype == np.bool_:
        f = x.astype(np.float32)
    elif x.dtype.kind in "iu":
        f = x.astype(np.float32) * np.float32(1.0 / 255.0)
    elif x.dtype.kind == "f":
        f = np.array(x, dtype=np.float32)
        if not np.isfinite(f).all():
            raise ImageError("image array holds NaN or infinite values; pass finite pixel values")
        if f.size and float(f.max()) > 1.0:
            f *= np.float32(1.0 / 255.0)
    else:
        raise UsageError(f"cannot classify an array of dtype {x.dtype}; pass uint8 or float images")
    f = np.clip(f, 0.0, 1.0, out=f if f is not x else None)
    ring = np.concatenate([f[:, :2].reshape(len(f), -1), f[:, -2:].reshape(len(f), -1),
                           f[:, 2:-2, :2].reshape(len(f), -1), f[:, 2:-2, -2:].reshape(len(f), -1)],
                          axis=1).mean(axis=1)
    for i in np.flatnonzero(ring >= 0.15):  # light background: not MNIST-style, preprocess it
        f[i] = _prepare(x[i])
    return np.ascontiguousarray(f)


def _prepare(image) -> np.ndarray:
    from mnistkit.runtime.preprocess import prepare  # lazy: only when an image needs it

    out = np.asarray(prepare(image), dtype=np.float32)
    if out.shape != (28, 28):
        raise ImageError(f"preprocessing returned shape {out.shape}, expected (28, 28)")
    return out


def _stack(items: list[np.ndarray]) -> np.ndarray:
    return np.ascontiguousarray(np.stack(items), dtype=np.float32)
