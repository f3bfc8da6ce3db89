"""mnistkit.runtime: classify handwritten digits with an exported model, without TensorFlow.

    from mnistkit.runtime import Classifier
    clf = Classifier.load("exports/lstm_int8.tflite")
    clf.classify("digit.png")[0].label

Importing this package is cheap: numpy, the backends and Pillow load only when first needed.
"""

from __future__ import annotations

from mnistkit.runtime.errors import (
    BackendUnavailableError,
    ImageError,
    IntegrityError,
    MnistkitError,
    ModelError,
    UsageError,
)

__all__ = [
    "Classifier", "Prediction", "load", "MnistkitError", "ModelError", "IntegrityError",
    "BackendUnavailableError", "ImageError", "UsageError",
]

_LAZY = {"Classifier": "mnistkit.runtime.classifier", "Prediction": "mnistkit.runtime.prediction"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'mnistkit.runtime' has no attribute {name!r}")


def load(path, backend: str | None = None, threads: int | None = None, **options) -> "Classifier":
    """Shortcut for ``Classifier.load(path, backend, threads, **options)``."""
    from mnistkit.runtime.classifier import Classifier

    return Classifier.load(path, backend=backend, threads=threads, **options)
