"""Bundle an exported model as the runtime's default device model (runtime/assets/default.tflite).

    python -m mnistkit.tools.scripts.bundle_default exports/pretrained/cnn_int8.tflite

Copies the artifact and its manifest (renamed to default.tflite / default.tflite.json) atomically.
An artifact exported before files carried their own metadata gets it embedded here (from its
manifest; no computation changes) and the manifest's sha256 and size are updated, so the runtime
verifies the bundled file on every load, with or without the .json beside it.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

from mnistkit.models.artifacts import sha256_file, write_bytes_atomic, write_json_atomic
from mnistkit.runtime.cli import ASSETS
from mnistkit.runtime.errors import IntegrityError
from mnistkit.runtime.manifest import manifest_path


def bundle(artifact: Path, assets: Path = ASSETS) -> Path:
    """Copy ``artifact`` + manifest to ``assets/default.tflite`` (+ ``.json``) after checking its hash."""
    from mnistkit.export import embed
    from mnistkit.runtime import embedded

    manifest = json.loads(manifest_path(artifact).read_text())
    if sha256_file(artifact) != manifest["artifact"]["sha256"]:
        raise IntegrityError(f"{artifact} does not match its manifest; re-export it")
    data = artifact.read_bytes()
    if embedded.locate(data, str(artifact)) is None:
        data = embed.embed(data, "tflite", embed.essentials(manifest))
    embedded.verify(data, artifact)
    target = assets / "default.tflite"
    write_bytes_atomic(target, data)
    manifest["artifact"].update(file=target.name, sha256=hashlib.sha256(data).hexdigest(),
                                size_bytes=len(data))
    manifest["bundled_from"] = artifact.name
    write_json_atomic(manifest_path(target), manifest)
    return target


if __name__ == "__main__":
    print(bundle(Path(sys.argv[1])))
