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
  denoise, crop, fit in 20x20, centre by mass), which imports Pillow only when a file is decoded;
- pixel values follow ``mnistkit.runtime.pixels`` (NaN/inf, negative or too large values are refused
  with UsageError, never clipped); shapes are checked against the image pixel limit before any work;
- ``batches`` yields a large input in chunks, so memory does not grow with the batch size; an empty
  batch gives an empty result.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np

from mnistkit.runtime import pixels
from mnistkit.runtime.errors import ImageError, UsageError

SINGLE = (str, os.PathLike, bytes, bytearray, memoryview)


def to_batch(images) -> tuple[np.ndarray, list]:
    """Return (float32 batch (N, 28, 28), per-image source: file path or batch index).

    Raises:
        ImageError: an image cannot be decoded or holds no digit.
        UsageError: the input is not an image, a path or a batch of those, or its pixel values
            break the rule of ``mnistkit.runtime.pixels``.
    """
    parts = list(batches(images, chunk=None))
    if len(parts) == 1:
        return parts[0]
    return np.concatenate([p[0] for p in parts]), [s for p in parts for s in p[1]]


def batches(images, chunk: int | None) -> Iterator[tuple[np.ndarray, list]]:
    """Yield (float32 batch (n, 28, 28), sources) for ``images``, ``chunk`` images at a time.

    Everything that can be checked without decoding (types, shapes, pixel values of arrays) is
    checked before the first chunk is yielded. ``chunk=None`` yields everything at once.

    Raises:
        ImageError, UsageError: as ``to_batch``.
    """
    if isinstance(images, SINGLE) or _is_pil(images):
        yield _prepare(images)[None], [_source(images, 0)]
        return
    if isinstance(images, np.ndarray):
        yield from _array_batches(images, chunk)
        return
    if isinstance(images, (list, tuple)):
        if not images:
            yield np.empty((0, 28, 28), np.float32), []
            return
        for i, item in enumerate(images):
            if isinstance(item, np.ndarray):
                _check_array(item, single=True)
            elif not (isinstance(item, SINGLE) or _is_pil(item)):
                raise UsageError(f"cannot classify item {i}, a {type(item).__name__}; pass image file "
                                 "paths, bytes, PIL images or numpy images")
        step = chunk or len(images)
        for start in range(0, len(images), step):
            part = images[start:start + step]
            out = [_one_array(item) if isinstance(item, np.ndarray) else _prepare(item) for item in part]
            yield _stack(out), [_source(item, start + i) for i, item in enumerate(part)]
        return
    raise UsageError(f"cannot classify a {type(images).__name__}; pass an image file path, a numpy "
                     "image or a list of those")


def _array_batches(images: np.ndarray, chunk: int | None) -> Iterator[tuple[np.ndarray, list]]:
    if images.ndim == 2 or (images.ndim == 3 and images.shape[-1] in (2, 3, 4)
                            and images.shape[1:] != (28, 28)):
        _check_array(images, single=True)
        yield _stack([_one_array(images)]), [0]
        return
    if images.ndim not in (3, 4):
        raise UsageError(f"cannot classify an array of shape {images.shape}; pass an image "
                         "(H, W) or (H, W, C), or a batch (N, H, W)")
    _check_array(images, single=False)
    n = len(images)
    if n == 0:
        yield np.empty((0, 28, 28), np.float32), []
        return
    step = chunk or n
    mnist = images.ndim == 3 and images.shape[1:] == (28, 28)
    div = pixels.scale(images) if mnist else None
    for start in range(0, n, step):
        part = images[start:start + step]
        x = _mnist_batch(part, div) if mnist else _stack([_one_array(im) for im in part])
        yield x, list(range(start, start + len(part)))


def _check_array(a: np.ndarray, single: bool) -> None:
    """Check an array's shape (pixel limit, before any allocation) and its pixel values.

    Raises:
        ImageError: an image with no pixels or over the pixel limit of image files.
        UsageError: pixel values the rule of ``mnistkit.runtime.pixels`` refuses.
    """
    from mnistkit.runtime.imageio import MAX_PIXELS

    shape = a.shape if single else a.shape[1:]
    h, w = (shape[0], shape[1]) if len(shape) >= 2 else (shape[0] if shape else 0, 1)
    if h * w > MAX_PIXELS:
        raise ImageError(f"an image of {w}x{h} pixels is over the {MAX_PIXELS // 1_000_000} megapixel "
                         "limit of image files; downscale it first")
    if h == 0 or w == 0:
        if single or len(a):
            raise ImageError(f"array of shape {a.shape} holds images with no pixels; pass images "
                             "with pixels")
        return
    pixels.scale(a)


def _source(item, index: int) -> str | int:
    return os.fspath(item) if isinstance(item, (str, os.PathLike)) else index


def _is_pil(obj) -> bool:
    return type(obj).__module__.startswith("PIL.")


def _one_array(image: np.ndarray) -> np.ndarray:
    if image.shape == (28, 28) and image.dtype.kind in "uifb":
        return _mnist_batch(image[None], pixels.scale(image))[0]
    return _prepare(image)


def _mnist_batch(x: np.ndarray, div: float) -> np.ndarray:
    """Scale (N, 28, 28) arrays by ``1 / div`` (values already checked); images without a dark
    border go through ``prepare`` instead."""
    f = x.astype(np.float32)  # a copy, never a view of the caller's array
    if div != 1.0:
        f *= np.float32(1.0 / div)
    np.clip(f, 0.0, 1.0, out=f)  # only rounding can leave [0, 1] here
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
