"""A Keras source model: find it (a ``.keras`` file or a training run folder), identify it, load it.

The one place that knows a training run folder holds ``model.keras`` and how a source is loaded;
the exporter, parity, ``evaluate`` and ``bench`` all come through here. Identifying a source reads
the file's ``config.json`` and never imports TensorFlow; loading imports Keras.
"""

from __future__ import annotations

import functools
import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

from mnistkit.models.artifacts import sha256_file
from mnistkit.models.zoo import MODEL_NAMES, RECURRENT
from mnistkit.runtime.errors import ModelError

RUN_MODEL = "model.keras"


@dataclass(frozen=True)
class SourceModel:
    """A Keras source model identified without importing TensorFlow."""

    path: Path
    name: str
    sha256: str

    @property
    def recurrent(self) -> bool:
        """Whether the model has a recurrent layer (exported through an unrolled clone)."""
        return self.name in RECURRENT


def resolve_model_path(path: str | os.PathLike, *, what: str = "a .keras file or a training run folder") -> Path:
    """Return the model file for ``path``: the file itself, or ``model.keras`` inside a run folder.

    Args:
        path: a model file or a training run folder.
        what: what the caller accepts, named in the error message.

    Raises:
        ModelError: nothing usable at ``path``.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        if not (path / RUN_MODEL).is_file():
            raise ModelError(f"{path} is a folder without {RUN_MODEL}; pass {what}")
        return path / RUN_MODEL
    if not path.is_file():
        raise ModelError(f"{path} does not exist; pass {what}")
    return path


def resolve_source(source: str | os.PathLike) -> SourceModel:
    """Find and identify a Keras source model.

    Args:
        source: a ``.keras`` file, or a training run directory holding ``model.keras``.

    Returns:
        The resolved file, its zoo model name (read from the file's config) and sha256.

    Raises:
        ModelError: missing, not a Keras 3 ``.keras`` file, or not a zoo model.
    """
    path = resolve_model_path(source)
    try:
        with zipfile.ZipFile(path) as zf:
            config = json.loads(zf.read("config.json"))
    except (zipfile.BadZipFile, KeyError, ValueError, OSError):
        raise ModelError(
            f"{path} is not a Keras model (.keras zip with config.json); pass a file saved by model.save()"
        ) from None
    name = (config.get("config") or {}).get("name") if isinstance(config, dict) else None
    if name not in MODEL_NAMES:
        raise ModelError(
            f"{path} holds model {name!r}, not a zoo model ({', '.join(MODEL_NAMES)}); "
            "export models built with mnistkit.models.zoo"
        )
    return SourceModel(path=path.resolve(), name=name, sha256=sha256_file(path))


@functools.lru_cache(maxsize=4)
def _load(path: str):
    import keras

    try:
        return keras.models.load_model(path, compile=False)
    except Exception as exc:  # Keras raises many types for a bad zip / config
        reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise ModelError(f"{path} is not a loadable Keras model ({reason}); pass a model saved by mnistkit train") from None


def load_keras(path: str | os.PathLike):
    """Load a Keras source (a ``.keras`` file or a run folder), once per process, compile=False.

    Raises:
        ModelError: missing, not a ``.keras`` file, or Keras cannot load it.
        MissingExtraError: Keras (the ``train`` extra) is not installed.
    """
    path = resolve_model_path(path)
    if path.suffix != ".keras":
        raise ModelError(f"{path} is not a Keras model (.keras); pass a .keras file or a run directory")
    from mnistkit.models.extras import require_train_stack

    require_train_stack(f"reading the Keras model {path}")
    return _load(str(path))
