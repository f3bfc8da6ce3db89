"""Check an uploaded image before anything decodes it: its format, and its size from the header alone.

Pillow reads only the header in ``Image.open``; the pixels are decoded later, by the runtime. So a
file that claims more pixels than allowed (a decompression bomb: a few KB that would decode to GBs)
is refused here without being decoded. Only the formats below are tried, so no other Pillow plugin
(e.g. EPS, which runs Ghostscript) ever sees client data.
"""

from __future__ import annotations

import io
import warnings

from mnistkit.runtime.imageio import MAX_PIXELS
from mnistkit.tools.serve.errors import ApiError

#: Pillow plugins tried (JPEG also opens phone-camera MPO files; PPM covers PBM/PGM/PNM).
FORMATS = ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP", "PPM")
FORMAT_NAMES = "PNG, JPEG, GIF, BMP, TIFF, WebP or PBM/PGM/PPM"


def check_image(data: bytes, name: str, max_pixels: int = MAX_PIXELS) -> str:
    """Return the format of an encoded image after checking it can be decoded safely.

    Args:
        data: the uploaded bytes.
        name: how to call the image in messages (its file name or position).
        max_pixels: the largest width x height accepted.

    Returns:
        The Pillow format name (e.g. "PNG").

    Raises:
        ApiError: 400 empty or unreadable header, 413 too many pixels, 415 not an image of a
            supported format.
    """
    import PIL.Image

    if not data:
        raise ApiError(400, f"{name} is empty; send the bytes of a {FORMAT_NAMES} file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", PIL.Image.DecompressionBombWarning)
            with PIL.Image.open(io.BytesIO(data), formats=FORMATS) as im:
                fmt, width, height = im.format, im.width, im.height
    except PIL.UnidentifiedImageError:
        raise ApiError(415, f"{name} is not an image of a supported format; send {FORMAT_NAMES}") from None
    except (PIL.Image.DecompressionBombError, PIL.Image.DecompressionBombWarning):
        raise ApiError(413, _too_many(name, max_pixels)) from None
    except Exception as exc:  # noqa: BLE001 - a corrupt header must become a message, never a traceback
        raise ApiError(400, f"{name} has a corrupt image header ({type(exc).__name__}); "
                            "re-save it as PNG or JPEG") from None
    if width * height > max_pixels:
        raise ApiError(413, _too_many(name, max_pixels, f"{width}x{height}"))
    return fmt


def _too_many(name: str, max_pixels: int, size: str = "") -> str:
    what = f"{size} pixels" if size else "too many pixels"
    return (f"{name}: {what} is over the {max_pixels / 1e6:g} megapixel limit (possible decompression "
            "bomb); refused without decoding: downscale the image first")
