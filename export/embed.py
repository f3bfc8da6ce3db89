"""Write the manifest's essentials into an exported file (see ``mnistkit.runtime.embedded``).

    data = embed.embed(data, fmt, essentials(manifest))

TFLite: a metadata entry ``mnistkit`` pointing to a new buffer holding the JSON (the file is
re-serialized through the schema's object API, as the other flatbuffer passes do; no computation
changes). ONNX: the ``metadata_props`` entry ``mnistkit``. Then the content digest is computed over
the finished file with the placeholder in place and written over it (same length, so no offset
moves).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from mnistkit.runtime import embedded
from mnistkit.runtime.errors import ExportError

#: Parity figures worth carrying inside the file (the rest stays in the sidecar manifest).
PARITY_KEYS = ("count", "agreement", "source_accuracy", "artifact_accuracy", "accuracy_delta_pp",
               "max_delta_p", "passed")


def essentials(manifest: dict[str, Any]) -> dict[str, Any]:
    """The fields of a full manifest that travel inside the file (without the digest)."""
    parity = manifest.get("parity") or {}
    inp = manifest.get("input") or {}
    return {
        "model": manifest.get("model"),
        "format": manifest.get("format"),
        "mode": manifest.get("mode"),
        "input": {k: inp.get(k) for k in ("dtype", "shape", "quantization") if k in inp},
        "source_sha256": (manifest.get("source") or {}).get("sha256"),
        "parity": {k: parity[k] for k in PARITY_KEYS if k in parity},
        "exported_at": manifest.get("exported_at"),
    }


def _json(fields: dict[str, Any]) -> bytes:
    body = json.dumps({k: v for k, v in fields.items() if k not in ("mnistkit", "content_sha256")},
                      separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    out = (embedded.PREFIX + embedded.DIGEST_FIELD + embedded.PLACEHOLDER + b'",' + body[1:].encode())
    json.loads(out)  # well-formed by construction; cheap to make sure
    return out


def embed(data: bytes, fmt: str, fields: dict[str, Any]) -> bytes:
    """Return ``data`` (a .tflite or .onnx file) carrying ``fields`` and its content digest.

    An earlier mnistkit block is replaced.

    Raises:
        ExportError: unknown format, or a file the metadata cannot be added to.
    """
    blob = _json(fields)
    if fmt == "tflite":
        out = _tflite(data, blob)
    elif fmt == "onnx":
        out = _onnx(data, blob)
    else:
        raise ExportError(f"cannot embed metadata in a {fmt!r} file; use tflite or onnx")
    found = embedded.locate(out, "the exported file")
    if found is None:
        raise ExportError("embedding the mnistkit metadata failed (not found after writing); re-run the export")
    _, at = found
    return out[:at] + embedded.digest(out, at).encode() + out[at + 64:]


def _tflite(data: bytes, blob: bytes) -> bytes:
    from mnistkit.export.tflite_fixups import _dump, _load, _schema

    _, schema = _schema()
    model = _load(data)
    metas = []
    for m in model.metadata or []:
        if _name(m.name) == embedded.KEY:
            model.buffers[m.buffer].data = None  # the old block's bytes go too
        else:
            metas.append(m)
    entry = schema.MetadataT()
    entry.name = embedded.KEY
    buf = schema.BufferT()
    buf.data = np.frombuffer(blob, np.uint8)
    model.buffers.append(buf)
    entry.buffer = len(model.buffers) - 1
    model.metadata = [*metas, entry]
    return _dump(model, len(data) + len(blob))


def _name(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _onnx(data: bytes, blob: bytes) -> bytes:
    import onnx

    model = onnx.load_from_string(data)
    keep = [p for p in model.metadata_props if p.key != embedded.KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)
    model.metadata_props.add(key=embedded.KEY, value=blob.decode("ascii"))
    return model.SerializeToString()
