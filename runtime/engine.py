"""The small base every inference backend implements: an ``Engine`` runs one loaded model.

An engine takes float32 images (N, 28, 28) in [0, 1], or uint8 pixels (N, 28, 28) meaning pixel / 255,
and returns float32 probabilities (N, 10).
Everything format-specific (quantized tensors, resizing, delegates, state) lives in the engine; the
``Classifier`` only adds locking, input checks and predictions. Engines are not thread-safe.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np

from mnistkit.runtime.errors import ModelError

#: Per-sample input layouts accepted, all holding one 28x28 image (784 values).
IMAGE_LAYOUTS: tuple[tuple[int, ...], ...] = ((28, 28), (28, 28, 1), (1, 28, 28), (784,))
NUM_CLASSES = 10


def check_io(name: str, input_shape: Sequence, output_shape: Sequence) -> tuple[int, ...]:
    """Check a model's per-sample input/output shapes and return the per-sample input layout.

    Args:
        name: model file name, for the message.
        input_shape: the full input shape; dimension 0 is the batch (any value or None).
        output_shape: the full output shape.

    Returns:
        The per-sample input layout, one of IMAGE_LAYOUTS.

    Raises:
        ModelError: the model does not take one 28x28 image per sample or give 10 scores.
    """
    sample = tuple(int(d) if isinstance(d, (int, np.integer)) and d > 0 else -1 for d in input_shape[1:])
    if sample not in IMAGE_LAYOUTS:
        raise ModelError(
            f"{name} takes inputs of shape {_fmt(input_shape)}, not 28x28 images; "
            "use a model exported from the mnistkit zoo (input (N, 28, 28))"
        )
    out = tuple(int(d) if isinstance(d, (int, np.integer)) and d > 0 else -1 for d in output_shape[1:])
    if int(np.prod(out)) != NUM_CLASSES or -1 in out:
        raise ModelError(
            f"{name} gives outputs of shape {_fmt(output_shape)}, not 10 digit scores; "
            "use a model exported from the mnistkit zoo (output (N, 10))"
        )
    return sample


def _fmt(shape: Sequence) -> str:
    return "(" + ", ".join(str(int(d)) if isinstance(d, (int, np.integer)) and d > 0 else "N"
                           for d in shape) + ")"


def fixed_batch(dim0) -> int | None:
    """Return the batch size a model is fixed to, or None if its batch dimension is free."""
    if isinstance(dim0, (int, np.integer)) and dim0 > 0:
        return int(dim0)
    return None


def io_description(backend: str, in_dtype: np.dtype, out_dtype: np.dtype, in_q, out_q) -> dict:
    """The part of ``Engine.describe()`` every TFLite-file engine shares: backend, dtypes, quantization."""
    return {
        "backend": backend,
        "input_dtype": in_dtype.name,
        "output_dtype": out_dtype.name,
        "input_quantization": None if in_q is None else [float(v) for v in in_q],
        "output_quantization": None if out_q is None else [float(v) for v in out_q],
    }


class Engine(ABC):
    """One loaded model on one backend. Not thread-safe: callers serialize ``run``."""

    #: Backend name, e.g. "litert" or "onnxruntime".
    backend: str = ""
    #: True if ``run`` may be called from several threads at once (onnxruntime sessions are).
    thread_safe: bool = False

    @abstractmethod
    def run(self, x: np.ndarray) -> np.ndarray:
        """Run the model.

        Args:
            x: C-contiguous array (N, 28, 28), N >= 1: float32 values in [0, 1], or uint8
                pixels (0-255) standing for pixel / 255 (the same tensor reaches the model).

        Returns:
            float32 array (N, 10) of class probabilities (dequantized if the model is quantized).
        """

    @abstractmethod
    def clone(self) -> "Engine":
        """Return an independent engine on the same model (same backend, options)."""

    def describe(self) -> dict:
        """Return a small dict describing the loaded model (dtypes, quantization, delegate)."""
        return {"backend": self.backend}

    def close(self) -> None:
        """Release native resources (optional)."""
