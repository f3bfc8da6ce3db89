"""Affine (scale, zero point) conversion between float32 images/probabilities and int8/uint8 tensors.

Both classes sit on the per-image hot path, so they use a handful of numpy ufuncs with ``out=``
buffers instead of ``np.clip`` (a Python-level wrapper that costs more than a small model's invoke).
A Quantizer keeps one scratch buffer: use one instance per engine (engines are per thread).
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
        self._inv = np.float32(1.0 / scale)
        self._zero = np.float32(zero)
        self._lo, self._hi = np.float32(info.min), np.float32(info.max)
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
        self._scale, self._zero = np.float32(scale), np.float32(zero)
        self._table = None
        if self.dtype.itemsize == 1:
            codes = np.arange(256, dtype=np.uint8).view(self.dtype)  # table index = raw byte
            self._table = self._arith(codes)

    def _arith(self, q: np.ndarray) -> np.ndarray:
        out = np.subtract(q, self._zero, dtype=np.float32)
        np.multiply(out, self._scale, out=out)
        return out

    def __call__(self, q: np.ndarray) -> np.ndarray:
        if self._table is not None:
            return self._table.take(q.view(np.uint8))
        return self._arith(q)
