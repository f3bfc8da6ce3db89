"""Affine (scale, zero point) conversion between float32 images/probabilities and int8/uint8 tensors.

These classes sit on the per-image hot path, where numpy's per-call overhead, not arithmetic, is
the cost (a small int8 model's invoke takes ~1.5 us; one ufunc call on 784 values ~0.4 us). So they
use a few ufuncs with ``out=`` buffers and 0-d array constants (a numpy scalar argument costs about
twice as much per call), and 256-entry tables wherever the input is 8-bit. A Quantizer keeps one
scratch buffer: use one instance per engine (engines are per thread).
"""

from __future__ import annotations

import numpy as np

from mnistkit.runtime.errors import ModelError


def qparams(detail: dict) -> tuple[float, int] | None:
    """Return (scale, zero_point) of an integer tensor from interpreter details, None if float.

    Raises:
        ModelError: an integer tensor of another type, or one without quantization parameters.
    """
    dtype = np.dtype(detail["dtype"])
    if dtype.kind == "f":
        return None
    if dtype not in (np.dtype(np.int8), np.dtype(np.uint8), np.dtype(np.int16)):
        raise ModelError(f"unsupported tensor type {dtype.name}; expected float32, int8 or uint8")
    scale, zero = detail.get("quantization", (0.0, 0))
    if not scale:
        raise ModelError(f"the model's {dtype.name} input/output has no quantization parameters; "
                         "re-export it with a representative dataset")
    return float(scale), int(zero)


class Quantizer:
    """float32 values -> integer tensor: ``clip(rint(x / scale + zero), min, max)``."""

    def __init__(self, scale: float, zero: int, dtype) -> None:
        self.scale, self.zero, self.dtype = scale, zero, np.dtype(dtype)
        info = np.iinfo(self.dtype)
        self._inv = np.array(1.0 / scale, np.float32)
        self._zero = np.array(zero, np.float32)
        self._lo, self._hi = np.array(info.min, np.float32), np.array(info.max, np.float32)
        self._buf: np.ndarray | None = None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        buf = self._buf
        if buf is None or buf.shape != x.shape:
            buf = self._buf = np.empty(x.shape, np.float32)
        np.multiply(x, self._inv, out=buf)
        np.add(buf, self._zero, out=buf)
        np.rint(buf, out=buf)
        np.maximum(buf, self._lo, out=buf)
        np.minimum(buf, self._hi, out=buf)
        return buf.astype(self.dtype)


class Dequantizer:
    """Integer tensor -> float32 values: ``(q - zero) * scale``.

    8-bit tensors use a 256-entry table of those values (one ``take`` per call instead of two
    arithmetic ufuncs); the table holds exactly what the arithmetic would give.
    """

    def __init__(self, scale: float, zero: int, dtype=np.int8) -> None:
        self.scale, self.zero, self.dtype = scale, zero, np.dtype(dtype)
        self._scale, self._zero = np.array(scale, np.float32), np.array(zero, np.float32)
        self._table = None
        if self.dtype.itemsize == 1:
            # Entry k holds the value of the byte k. An int8 code c < 0 reads entry 256 + c,
            # which np.take does by itself (negative indices count from the end).
            codes = np.arange(256, dtype=np.uint8).view(self.dtype)
            self._table = self._arith(codes)

    def _arith(self, q: np.ndarray) -> np.ndarray:
        out = np.subtract(q, self._zero, dtype=np.float32)
        np.multiply(out, self._scale, out=out)
        return out

    def __call__(self, q: np.ndarray) -> np.ndarray:
        if self._table is not None:
            return self._table.take(q)
        return self._arith(q)


#: The float value of each 8-bit pixel level: exactly ``models.data.to_float`` (pixel / 255).
PIXEL_LEVELS = np.arange(256, dtype=np.float32) / np.float32(255.0)


class PixelConverter:
    """uint8 pixels (0-255, meaning pixel / 255) -> a model's input tensor, by table lookup.

    The table holds what the float path gives for ``pixel / 255`` (``quantizer(PIXEL_LEVELS)``),
    so uint8 and float32 inputs of the same image reach the model as identical tensors.
    """

    def __init__(self, quantizer: Quantizer | None = None) -> None:
        self._table = PIXEL_LEVELS.copy() if quantizer is None else quantizer(PIXEL_LEVELS).copy()
        # The usual int8 input (scale 1/255, zero point -128) maps pixel p to p - 128, which is
        # p with its top bit flipped, read as int8: one xor instead of a gather.
        flipped = np.arange(256, dtype=np.uint8) ^ np.uint8(0x80)
        self._flip = self._table.dtype == np.int8 and np.array_equal(self._table.view(np.uint8), flipped)
        self._top_bit = np.array(0x80, np.uint8)

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        if self._flip:
            return np.bitwise_xor(pixels, self._top_bit).view(np.int8)
        return self._table.take(pixels)
