"""Read a model file and check it against the manifest beside it (``<file>.json``)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from mnistkit.runtime.errors import IntegrityError, ModelError


def manifest_path(model: Path) -> Path:
    """Return the manifest path of a model file: the same name with ``.json`` appended."""
    return model.with_name(model.name + ".json")


def read_model(path: Path, limit: int | None = None) -> bytes:
    """Return the bytes of a model file.

    Only a regular file is read (a FIFO, device or socket is refused without blocking), and only up
    to ``limit`` bytes (default ``limits.max_model_bytes()``).

    Raises:
        ModelError: missing, a directory or other non-regular file, unreadable, too large or empty.
    """
    from mnistkit.runtime import limits, safeio

    content = safeio.read_regular(path, what="a .tflite or .onnx model file", error=ModelError,
                                  limit=limits.max_model_bytes() if limit is None else limit)
    if not content:
        raise ModelError(f"model file {path} is empty; re-export it")
    return content


def load_manifest(path: Path) -> dict | None:
    """Return the manifest beside ``path`` as a dict, or None if there is none.

    Raises:
        IntegrityError: the manifest exists but is not valid JSON.
    """
    from mnistkit.runtime import safeio

    mpath = manifest_path(path)
    try:
        if not mpath.is_file():
            return None
    except OSError:
        return None
    try:
        data = json.loads(safeio.read_regular(mpath, what="a JSON manifest", limit=16 * 2**20,
                                              error=IntegrityError).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise IntegrityError(f"manifest {mpath} is unreadable ({exc}); re-export the model or "
                             "delete the manifest") from None
    if not isinstance(data, dict):
        raise IntegrityError(f"manifest {mpath} is not a JSON object; re-export the model")
    return data


def verify(path: Path, content: bytes, manifest: dict | None) -> None:
    """Check ``content`` against the manifest's ``artifact.sha256`` (no-op without a manifest).

    Raises:
        IntegrityError: the recorded sha256 differs from the file's.
    """
    if manifest is None:
        return
    artifact = manifest.get("artifact")
    expected = artifact.get("sha256") if isinstance(artifact, dict) else None
    if not isinstance(expected, str):
        raise IntegrityError(f"manifest {manifest_path(path)} has no artifact.sha256; re-export the model")
    actual = hashlib.sha256(content).hexdigest()
    if actual != expected.lower():
        raise IntegrityError(
            f"{path} does not match its manifest (sha256 {actual[:12]}... != {expected[:12]}...): "
            f"the file was changed or the manifest is stale; re-export the model or delete "
            f"{manifest_path(path).name}")
