"""The one rule for pixel values in numpy arrays, shared by ``predict_proba`` and ``classify``.

- bool arrays are 0/1; integer arrays hold 0-255, or 0-65535 when uint16 or when a value is above
  255 (16-bit scans); float arrays hold [0, 1], or 0-255 when their maximum is above 1 (or 0-65535
  above 255).
- NaN, +-inf, negative values and values above 65535 are refused with ``UsageError``: never
  clipped, wrapped round or silently turned into an answer.
- ``predict_proba`` (the low-level call on ready 28x28 inputs) takes only float [0, 1] and uint8,
  the two forms with one meaning; ``classify`` takes everything above.

The checks use ``min``/``max`` reductions (NaN propagates through both), so a valid array costs
two passes and no temporary array; the precise problem is worked out only when one fails.
"""

from __future__ import annotations

import numpy as np

from mnistkit.runtime.errors import UsageError

_SCALES = (1.0, 255.0, 65535.0)


def _bounds(a: np.ndarray) -> tuple[float, float]:
    if a.size == 0:
        return 0.0, 0.0
    return float(a.min()), float(a.max())


def _problem(a: np.ndarray, lo: float, hi: float) -> str:
    if a.dtype.kind == "f" and (lo != lo or hi != hi or lo in (-np.inf, np.inf) or hi in (-np.inf, np.inf)):
        return "holds NaN or infinite values; pass finite pixel values"
    if lo < 0:
        return f"holds negative values (min {lo:g}); pixel values start at 0"
    return f"holds values up to {hi:g}, above the largest pixel scale (65535)"


def scale(a: np.ndarray, who: str = "classify") -> float:
    """Return what to divide ``a`` by to get [0, 1] (1, 255 or 65535) under the rule above.

    Raises:
        UsageError: non-finite, negative or too large values, or a dtype that holds no pixels.
    """
    kind = a.dtype.kind
    if kind == "b":
        return 1.0
    if kind not in "uif":
        raise UsageError(f"{who} cannot use an array of dtype {a.dtype}; pass uint8 or float pixels")
    lo, hi = _bounds(a)
    if not (lo >= 0.0 and hi <= 65535.0):  # also catches NaN (every comparison is False)
        raise UsageError(f"{who}: the image array {_problem(a, lo, hi)}")
    if kind == "f":
        return 1.0 if hi <= 1.0 else 255.0 if hi <= 255.0 else 65535.0
    return 65535.0 if a.dtype == np.uint16 or hi > 255.0 else 255.0


def check_ready(x: np.ndarray) -> None:
    """Check a float batch for ``predict_proba``: finite values in [0, 1] (uint8 needs no check).

    Raises:
        UsageError: NaN/inf, negative or above 1 (with what to do about it).
    """
    if x.dtype.kind != "f" or x.size == 0:
        return
    lo, hi = float(x.min()), float(x.max())
    if lo >= 0.0 and hi <= 1.0:
        return
    if lo >= 0.0 and hi <= 255.0:
        raise UsageError(f"predict_proba takes float pixels in [0, 1], and this batch goes up to {hi:g}; "
                         "divide 0-255 pixels by 255, pass uint8, or use classify()")
    raise UsageError(f"predict_proba: the image array {_problem(x, lo, hi)}")
