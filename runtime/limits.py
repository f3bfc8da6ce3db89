"""Resource limits of the runtime, each overridable by an environment variable.

They keep a damaged or hostile input from taking a small device's memory: a model file is read only
up to ``max_model_bytes()``, a TFLite model whose declared tensors need more than
``max_model_memory()`` is refused before the interpreter allocates them, and batches run through a
model ``CHUNK`` images at a time so peak memory does not grow with the batch.
"""

from __future__ import annotations

import os

from mnistkit.runtime.errors import UsageError

#: Images per model call when a batch is larger: peak memory stays that of CHUNK images.
CHUNK = 256
#: Largest image file read from disk (the decoded size is capped by imageio.MAX_PIXELS).
MAX_IMAGE_BYTES = 256 * 2**20

_MODEL_BYTES_ENV = "MNISTKIT_MAX_MODEL_MB"
_MODEL_MEMORY_ENV = "MNISTKIT_MAX_MODEL_MEMORY_MB"
_DEFAULT_MODEL_MB = 256
_DEFAULT_MEMORY_MB = 512


def _env_mb(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default * 2**20
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise UsageError(f"{name}={raw!r} is not a positive number of MiB; unset it or give e.g. 512")
    return int(value * 2**20)


def max_model_bytes() -> int:
    """Largest model file read, in bytes (``MNISTKIT_MAX_MODEL_MB``, default 256 MiB)."""
    return _env_mb(_MODEL_BYTES_ENV, _DEFAULT_MODEL_MB)


def max_model_memory() -> int:
    """Largest tensor memory a model may declare, in bytes (``MNISTKIT_MAX_MODEL_MEMORY_MB``,
    default 512 MiB), counted for a batch of CHUNK images."""
    return _env_mb(_MODEL_MEMORY_ENV, _DEFAULT_MEMORY_MB)
