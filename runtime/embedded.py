"""The manifest essentials a model file carries inside itself, so a copy without its ``.json`` still
says what it is and whether it is intact.

``mnistkit export`` writes one compact ASCII JSON object into the file: in a .tflite file as a
metadata entry named ``mnistkit`` (a standard TFLite metadata buffer, ignored by interpreters), in
an .onnx file as the ``metadata_props`` entry ``mnistkit``. It starts with ``{"mnistkit":1,`` and
holds the model, format, mode, input contract, source sha256, parity figures and
``"content_sha256":"<64 hex>"``: the sha256 of the whole file with those 64 characters written as
``0``. Any changed byte outside them (weights, graph, the other metadata fields) changes the
digest. The JSON is found by its prefix, so reading needs neither flatbuffers nor protobuf.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from mnistkit.runtime.errors import IntegrityError

KEY = "mnistkit"
PREFIX = b'{"mnistkit":1,'
DIGEST_FIELD = b'"content_sha256":"'
PLACEHOLDER = b"0" * 64
_MAX_JSON = 64 * 1024


def digest(content: bytes, at: int) -> str:
    """sha256 of ``content`` with the 64 digest characters at ``at`` read as ``0``."""
    h = hashlib.sha256()
    h.update(memoryview(content)[:at])
    h.update(PLACEHOLDER)
    h.update(memoryview(content)[at + 64:])
    return h.hexdigest()


def locate(content: bytes, name: str = "model") -> tuple[dict, int] | None:
    """Find the embedded metadata: (its dict, offset of the digest's 64 characters), or None.

    Raises:
        IntegrityError: metadata is present but damaged (not JSON, no digest, or twice).
    """
    start = content.find(PREFIX)
    if start < 0:
        return None
    if content.find(PREFIX, start + 1) >= 0:
        raise IntegrityError(f"{name} holds two embedded mnistkit metadata blocks; re-export it")
    text = bytes(content[start:start + _MAX_JSON]).decode("latin-1")
    try:
        data, end = json.JSONDecoder().raw_decode(text)
    except (json.JSONDecodeError, RecursionError):
        raise IntegrityError(f"{name}: its embedded mnistkit metadata is damaged (not JSON); the file "
                             "was changed: re-export it") from None
    field = content.find(DIGEST_FIELD, start, start + end)
    value = content[field + len(DIGEST_FIELD):field + len(DIGEST_FIELD) + 64] if field >= 0 else b""
    if not isinstance(data, dict) or field < 0 or data.get("content_sha256") != value.decode("latin-1"):
        raise IntegrityError(f"{name}: its embedded mnistkit metadata has no usable content digest; "
                             "re-export it")
    return data, field + len(DIGEST_FIELD)


def block_size(content: bytes) -> int:
    """Bytes of the embedded metadata JSON (0 if none): what size ratios between files leave out."""
    start = content.find(PREFIX)
    if start < 0:
        return 0
    try:
        return json.JSONDecoder().raw_decode(bytes(content[start:start + _MAX_JSON]).decode("latin-1"))[1]
    except (json.JSONDecodeError, RecursionError):
        return 0


def verify(content: bytes, name: str | Path = "model") -> dict | None:
    """Check ``content`` against its embedded digest; return the embedded metadata (None if none).

    Raises:
        IntegrityError: the file's bytes do not match the digest it carries, or the metadata is
            damaged.
    """
    found = locate(content, str(name))
    if found is None:
        return None
    data, at = found
    actual = digest(content, at)
    if actual != data["content_sha256"]:
        raise IntegrityError(
            f"{name} does not match the digest embedded in it (sha256 {actual[:12]}... != "
            f"{data['content_sha256'][:12]}...): the file was damaged or changed; re-export it")
    return data
