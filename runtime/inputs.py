"""Turn what a user passes to ``classify`` into a float32 batch (N, 28, 28) in [0, 1].

Rules:
- a ``str`` / ``os.PathLike`` is one image file; a list or tuple is a batch of files and/or arrays;
- a 2-D array is one grayscale image; a 3-D array is a batch of grayscale images (N, H, W) unless
  its last axis has 3 or 4 channels and it is not (N, 28, 28), then it is one colour image;
  a 4-D array is a batch of colour images;
- a 28x28 grayscale array is taken as MNIST-style (white digit on black, centred) and only scaled
  (uint8 / 255, floats above 1 also / 255); anything else goes through
  ``mnistkit.runtime.preprocess.prepare`` (decode, grayscale, invert, crop, centre, scale).
"""

from __future__ import annotations

import os

import numpy as np

from mnistkit.runtime.errors import ImageError, UsageError


def to_batch(images) -> tuple[np.ndarray, list]:
    """Return (float32 batch (N, 28, 28), per-image source: file path or batch index).

    Raises:
        ImageError: an image file cannot be decoded or holds no digit.
        UsageError: the input is not an image, a path or a batch of those.
    """
    if isinstance(images, (str, os.PathLike)):
        return _prepare(images)[None], [os.fspath(images)]
    if isinstance(images, np.ndarray):
        if images.ndim == 2 or (images.ndim == 3 and images.shape[-1] in (3, 4)
                                and images.shape[1:] != (28, 28)):
            return _one_array(images)[None], [0]
        if images.ndim in (3, 4):
            if images.shape[1:] == (28, 28):
                return _scale(images), list(range(len(images)))
            return _stack([_one_array(im) for im in images]), list(range(len(images)))
        raise UsageError(f"cannot classify an array of shape {images.shape}; pass an image "
                         "(H, W) or (H, W, C), or a batch (N, H, W)")
    if isinstance(images, (list, tuple)):
        if not images:
            return np.empty((0, 28, 28), np.float32), []
        out, sources = [], []
        for i, item in enumerate(images):
            if isinstance(item, (str, os.PathLike)):
                out.append(_prepare(item))
                sources.append(os.fspath(item))
            else:
                out.append(_one_array(np.asarray(item)))
                sources.append(i)
        return _stack(out), sources
    raise UsageError(f"cannot classify a {type(images).__name__}; pass an image file path, a numpy "
                     "image or a list of those")


def _one_array(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2 and image.shape == (28, 28):
        return _scale(image)
    if image.ndim not in (2, 3) or image.size == 0:
        raise ImageError(f"an array of shape {image.shape} is not an image; pass (H, W) or (H, W, C)")
    return _prepare(image)


def _scale(x: np.ndarray) -> np.ndarray:
    """Scale MNIST-style arrays (uint8 0-255 or float 0-1 / 0-255) to float32 in [0, 1]."""
    if x.dtype == np.bool_:
        return x.astype(np.float32)
    if x.dtype.kind in "iu":
        return x.astype(np.float32) * np.float32(1.0 / 255.0)
    if x.dtype.kind != "f":
        raise UsageError(f"cannot classify an array of dtype {x.dtype}; pass uint8 or float images")
    x = x.astype(np.float32, copy=False)
    if x.size and float(np.nanmax(x)) > 1.0:
        x = x * np.float32(1.0 / 255.0)
    return np.clip(np.nan_to_num(x), 0.0, 1.0)


def _prepare(image) -> np.ndarray:
    from mnistkit.runtime.preprocess import prepare  # lazy: Pillow only when a file/photo is given

    out = np.asarray(prepare(image), dtype=np.float32)
    if out.shape != (28, 28):
        raise ImageError(f"preprocessing returned shape {out.shape}, expected (28, 28)")
    return out


def _stack(items: list[np.ndarray]) -> np.ndarray:
    return np.ascontiguousarray(np.stack(items), dtype=np.float32)
