"""Bundle an exported model as the runtime's default device model (runtime/assets/default.tflite).

    python -m mnistkit.tools.scripts.bundle_default exports/pretrained/cnn_int8.tflite

Copies the artifact and its manifest (renamed to default.tflite / default.tflite.json) atomically;
the manifest's sha256 still matches, so the runtime verifies the bundled file on every load.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from mnistkit.models.artifacts import atomic_path, sha256_file, write_json_atomic
from mnistkit.runtime.cli import ASSETS
from mnistkit.runtime.errors import IntegrityError
from mnistkit.runtime.manifest import manifest_path



def bundle(artifact: Path, assets: Path = ASSETS) -> Path:
    """Copy ``artifact`` + manifest to ``assets/default.tflite`` (+ ``.json``) after checking its hash."""
    manifest = json.loads(manifest_path(artifact).read_text())
    if sha256_file(artifact) != manifest["artifact"]["sha256"]:
        raise IntegrityError(f"{artifact} does not match its manifest; re-export it")
    target = assets / "default.tflite"
    with atomic_path(target) as tmp:
        shutil.copyfile(artifact, tmp)
    manifest["artifact"]["file"] = target.name
    manifest["bundled_from"] = artifact.name
    write_json_atomic(manifest_path(target), manifest)
    return target


if __name__ == "__main__":
    print(bundle(Path(sys.argv[1])))
