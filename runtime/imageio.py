"""Decode one image (path, bytes, PIL image or numpy array) to grayscale float32 in [0, 1].

Pillow is imported lazily, only when a file, bytes or a PIL image is given, so classifying numpy
arrays never pays for it. Every failure (missing file, not an image, truncated data, decompression
bomb, unsupported array) raises :class:`~mnistkit.runtime.errors.ImageError` with a one-line message;
no Pillow exception escapes. Pillow's ``LOAD_TRUNCATED_IMAGES`` is left alone (False), so a
truncated file fails instead of decoding to grey.
"""

from __future__ import annotations

import io
import math
import os
import warnings
from pathlib import Path
from typing import Any, Union

import numpy as np

from mnistkit.runtime.errors import ImageError, MnistkitError

MAX_PIXELS = 40_000_000
"""Largest image accepted (width x height); bigger ones are refused as possible decompression bombs."""

WORK_SIDE = 1024
"""Images whose longer side exceeds this are reduced while decoding (JPEG draft, Pillow reduce)."""

ImageInput = Union[str, os.PathLike, bytes, bytearray, memoryview, np.ndarray, Any]
"""A path, encoded bytes, a ``PIL.Image.Image`` or a numpy array (H, W), (H, W, 1|2|3|4)."""


def describe(image: Any) -> str:
    """Short name of an image input for error messages (the path, or its kind)."""
    if isinstance(image, (str, os.PathLike)):
        return str(image)
    if isinstance(image, (bytes, bytearray, memoryview)):
        return f"image bytes ({len(image)} B)"
    if isinstance(image, np.ndarray):
        return f"array {image.shape} {image.dtype}"
    return type(image).__name__


def read_gray(image: ImageInput) -> np.ndarray:
    """Decode ``image`` to a grayscale float32 array (H, W) in [0, 1], dark = 0, white = 1.

    See :func:`decode_gray`, which this scales to [0, 1].

    Raises:
        ImageError: the file is missing, unreadable, truncated, too large, or the array is unusable.
    """
    return unit_float(decode_gray(image))


def unit_float(gray: np.ndarray) -> np.ndarray:
    """``gray`` from :func:`decode_gray` as float32 in [0, 1] (uint8 is divided by 255)."""
    if gray.dtype == np.uint8:
        return gray.astype(np.float32) / np.float32(255.0)
    return gray


def decode_gray(image: ImageInput) -> np.ndarray:
    """Decode ``image`` to grayscale (H, W): uint8 (0-255) for 8-bit files, else float32 in [0, 1].

    An 8-bit image stays uint8 so that the preprocessing can reduce it before scaling it (two
    whole-image passes fewer); :func:`read_gray` gives float32 in every case.

    Transparent pixels are composited on white (on black for light ink); 16-bit data keeps its
    precision; GIFs and other multi-frame files give their first frame; very large images are
    reduced to about WORK_SIDE.

    Args:
        image: a path (str or PathLike), encoded bytes, a PIL image or a numpy array.

    Returns:
        array of shape (H, W): uint8 for an 8-bit grayscale or colour file without transparency,
        float32 otherwise (numpy inputs always, see :func:`array_to_gray`).

    Raises:
        ImageError: the file is missing, unreadable, truncated, too large, or the array is unusable.
    """
    if isinstance(image, np.ndarray):
        return array_to_gray(image)
    if isinstance(image, (str, os.PathLike)):
        from mnistkit.runtime.limits import MAX_IMAGE_BYTES
        from mnistkit.runtime.safeio import open_regular

        path = Path(image)
        # A regular file only, opened without blocking (a FIFO or device would hang the read).
        with open_regular(path, what="an image file", limit=MAX_IMAGE_BYTES, error=ImageError) as f:
            return _decode(lambda PIL: PIL.Image.open(f), str(path), owned=True)
    if isinstance(image, (bytes, bytearray, memoryview)):
        data = bytes(image)
        if not data:
            raise ImageError("image bytes are empty; pass the bytes of a PNG/JPEG/BMP/GIF file")
        return _decode(lambda PIL: PIL.Image.open(io.BytesIO(data)), describe(image), owned=True)
    if type(image).__module__.startswith("PIL."):
        return _decode(lambda PIL: image, "PIL image", owned=False)
    raise ImageError(
        f"cannot read an image from {type(image).__name__}; pass a path, bytes, a PIL image or a numpy array"
    )


def array_to_gray(array: np.ndarray) -> np.ndarray:
    """Convert a numpy image to grayscale float32 (H, W) in [0, 1].

    Pixel values follow ``mnistkit.runtime.pixels``: integers are 0-255 (uint16, or any value above
    255: 0-65535); floats are [0, 1] when their maximum is at most 1, else 0-255 (or 0-65535); NaN,
    inf, negative values and values above 65535 are refused. A last axis of 2 or 4 is an alpha channel, composited on white
    (on black instead when that shows the picture with at least twice the contrast: light ink).

    Raises:
        ImageError: wrong shape, empty, too large, non-finite or negative values.
    """
    a = np.asarray(array)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[-1] in (2, 3, 4))):
        raise ImageError(
            f"array of shape {a.shape} is not one image; pass (H, W), (H, W, 3) or (H, W, 4)"
        )
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ImageError(f"array of shape {a.shape} is empty; pass an image with pixels")
    _check_pixels(a.shape[1], a.shape[0], describe(a))
    from mnistkit.runtime import pixels
    from mnistkit.runtime.errors import UsageError

    try:
        div = pixels.scale(a, who="image")  # the one pixel-value rule (NaN, negative, range)
    except UsageError as exc:
        raise ImageError(str(exc)) from None
    f = a.astype(np.float32, copy=False)
    if div != 1.0:
        f = f / np.float32(div)  # divide, like training's x / 255
    f = np.clip(f, 0.0, 1.0)
    if f.ndim == 2:
        return np.ascontiguousarray(f, dtype=np.float32)
    alpha = f[..., -1] if f.shape[-1] in (2, 4) else None
    color = f[..., :3] if f.shape[-1] >= 3 else f[..., 0]
    gray = color @ np.array([0.299, 0.587, 0.114], np.float32) if color.ndim == 3 else color
    if alpha is not None:
        on_black = gray * alpha
        on_white = on_black + (1.0 - alpha)
        # Composite on white, unless the ink is light and only shows on black.
        gray = on_black if np.ptp(on_black) > 2 * np.ptp(on_white) else on_white
    return np.ascontiguousarray(gray, dtype=np.float32)


def _check_pixels(width: int, height: int, name: str) -> None:
    if width * height > MAX_PIXELS:
        raise ImageError(
            f"{name}: {width}x{height} is over the {MAX_PIXELS // 1_000_000} megapixel limit "
            "(possible decompression bomb); downscale the image first"
        )


def _decode(opener, name: str, *, owned: bool) -> np.ndarray:
    """Open, fully decode and convert an image with Pillow, mapping every failure to ImageError."""
    import PIL.Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", PIL.Image.DecompressionBombWarning)
            im = opener(PIL)
            try:
                _check_pixels(im.width, im.height, name)
                return _pil_to_gray(im, owned=owned)
            finally:
                if owned:
                    im.close()
    except MnistkitError:  # ours already (a bad image, or a usage error from the kernel choice)
        raise
    except (PIL.Image.DecompressionBombError, PIL.Image.DecompressionBombWarning):
        raise ImageError(
            f"{name}: too many pixels, over the {MAX_PIXELS // 1_000_000} megapixel limit "
            "(possible decompression bomb); downscale the image first"
        ) from None
    except PIL.UnidentifiedImageError:
        raise ImageError(f"{name} is not an image file; pass a PNG, JPEG, BMP or GIF image") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        if isinstance(exc, (FileNotFoundError, IsADirectoryError, PermissionError)):
            raise ImageError(
                f"{name}: cannot open ({exc.strerror}); check the path and permissions"
            ) from None
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ImageError(
            f"{name} is truncated or corrupt ({text}); re-save or re-export the image"
        ) from None
    except Exception as exc:  # any other decoder failure: never let Pillow's exception escape
        raise ImageError(
            f"{name} cannot be decoded ({type(exc).__name__}: {exc}); re-save it as PNG or JPEG"
        ) from None


def _pil_to_gray(im, owned: bool) -> np.ndarray:
    """Decode the first frame of ``im`` fully and return grayscale float32 in [0, 1].

    ``owned``: the image was opened here, so it may be decoded at a reduced scale (JPEG draft).
    """
    if not owned and getattr(im, "n_frames", 1) > 1:  # one opened here is at frame 0; counting scans a GIF
        im.seek(0)
    longer = max(im.size)
    if owned and im.format == "JPEG" and longer > WORK_SIDE and im.mode in ("L", "RGB", "YCbCr"):
        scale = WORK_SIDE / longer
        im.draft("L", (math.ceil(im.width * scale), math.ceil(im.height * scale)))
    im.load()  # full decode: truncated data raises here (LOAD_TRUNCATED_IMAGES stays False)
    # A phone photo stored sideways: apply the EXIF orientation. Only JPEG/PNG/WebP "exif" data and
    # TIFF tags can hold one, and parsing an absent block costs more than this check.
    if ("exif" in im.info or im.format == "TIFF") and im.getexif().get(0x0112, 1) != 1:
        from PIL import ImageOps

        im = ImageOps.exif_transpose(im)
    mode = im.mode
    if mode.startswith("I;16"):  # 16-bit grayscale: keep the precision, scale by 65535
        return _block_mean(np.asarray(im).astype(np.float32) / np.float32(65535.0))
    if mode in ("I", "F"):
        return array_to_gray(np.asarray(_reduce(im)))
    has_alpha = mode in ("LA", "La", "PA", "RGBA", "RGBa") or "transparency" in im.info
    if has_alpha:
        if mode not in ("LA", "RGBA"):  # palette transparency and premultiplied modes via RGBA
            im = im.convert("RGBA")
        im = im.convert("LA") if mode != "LA" else im
    elif mode != "L":
        im = im.convert("L")
    a = np.asarray(_reduce(im))
    if has_alpha:  # (H, W, 2): composited on white, by array_to_gray's rule
        from mnistkit.runtime.preprocess import kernels

        return kernels().gray_alpha(a)
    return a


def _reduce(im):
    """Shrink a decoded image by an integer factor so its longer side is at most about WORK_SIDE."""
    factor = math.ceil(max(im.size) / WORK_SIDE)
    return im.reduce(factor) if factor > 1 else im


def _block_mean(a: np.ndarray) -> np.ndarray:
    """Average ``a`` over square blocks so its longer side is at most about WORK_SIDE."""
    f = math.ceil(max(a.shape) / WORK_SIDE)
    if f <= 1:
        return a
    h, w = a.shape[0] // f * f, a.shape[1] // f * f
    return a[:h, :w].reshape(h // f, f, w // f, f).mean(axis=(1, 3), dtype=np.float32)
