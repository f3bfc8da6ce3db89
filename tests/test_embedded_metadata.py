"""A model file copied without its .json still carries who it is and whether it is intact (issue 15).

``mnistkit export`` (and tools/scripts/bundle_default.py) embed the manifest's essentials and a content
digest in the file: a TFLite metadata buffer, an ONNX metadata_props entry.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from mnistkit.runtime import Classifier, embedded
from mnistkit.runtime.cli import DEFAULT_MODEL, classify as classify_cmd
from mnistkit.runtime.errors import IntegrityError

DAMAGED = Path(__file__).with_name("data") / "damaged"
SAMPLE = DEFAULT_MODEL.with_name("samples") / "7_handwritten.png"
FIELDS = {"model": "tiny", "format": "?", "mode": "none", "input": {"dtype": "float32", "shape": [-1, 28, 28]},
          "source_sha256": "ab" * 32, "parity": {"count": 10, "agreement": 1.0}, "exported_at": "2026-11-30"}


def test_bundled_default_model_carries_its_manifest(tmp_path):
    manifest = json.loads(DEFAULT_MODEL.with_name("default.tflite.json").read_text())
    copy = tmp_path / "copied.tflite"  # copied without its .json
    shutil.copy(DEFAULT_MODEL, copy)
    clf = Classifier.load(copy, require_manifest=True)
    assert clf.manifest is None and clf.describe()["verified_by"] == "embedded"
    meta = clf.metadata
    assert (meta["model"], meta["format"], meta["mode"]) == (manifest["model"], manifest["format"], manifest["mode"])
    assert meta["source_sha256"] == manifest["source"]["sha256"]
    assert meta["parity"]["agreement"] == manifest["parity"]["agreement"]
    assert meta["input"]["shape"] == manifest["input"]["shape"]


def _damage(src: Path, dst: Path, at: int) -> None:
    data = bytearray(src.read_bytes())
    data[at] ^= 0x01
    dst.write_bytes(bytes(data))


def test_damage_anywhere_is_caught_without_the_json(tmp_path):
    data = DEFAULT_MODEL.read_bytes()
    meta_at = data.find(embedded.PREFIX)
    positions = [len(data) // 3, len(data) // 2, meta_at + len(embedded.PREFIX) + 100, len(data) - 1]
    for i, at in enumerate(positions):  # weights, graph, the metadata's own fields, the end
        bad = tmp_path / f"bad{i}.tflite"
        _damage(DEFAULT_MODEL, bad, at)
        with pytest.raises((IntegrityError,)) as info:
            Classifier.load(bad)
        assert "\n" not in str(info.value) and "re-export" in str(info.value)


def test_strict_refuses_unverifiable_files(tmp_path):
    plain = DAMAGED / "tiny_ok.tflite"  # no .json, no embedded metadata
    assert Classifier.load(plain).metadata is None
    with pytest.raises(IntegrityError, match="cannot be verified"):
        Classifier.load(plain, require_manifest=True)
    runner = CliRunner()
    res = runner.invoke(classify_cmd, ["--strict", "--model", str(plain), str(SAMPLE)])
    assert res.exit_code == 1 and "cannot be verified" in res.output
    res = runner.invoke(classify_cmd, ["--strict", str(SAMPLE)])  # the bundled model verifies
    assert res.exit_code == 0, res.output


@pytest.mark.parametrize("name", ["tiny_ok.tflite", "tiny_ok.onnx"])
def test_embedding_keeps_answers_and_is_verified(tmp_path, name):
    pytest.importorskip("tensorflow" if name.endswith(".tflite") else "onnx")
    if name.endswith(".onnx"):
        pytest.importorskip("onnxruntime")
    from mnistkit.export import embed

    fmt = name.rsplit(".", 1)[1]
    src = DAMAGED / name
    out = tmp_path / name
    out.write_bytes(embed.embed(src.read_bytes(), fmt, {**FIELDS, "format": fmt}))
    x = np.random.default_rng(0).random((5, 28, 28)).astype(np.float32) * 0.2
    a, b = Classifier.load(src), Classifier.load(out, require_manifest=True)
    assert np.array_equal(a.predict_proba(x), b.predict_proba(x))
    assert b.metadata["format"] == fmt and b.metadata["source_sha256"] == "ab" * 32
    again = embed.embed(out.read_bytes(), fmt, {**FIELDS, "format": fmt, "mode": "int8"})
    assert again.count(embedded.PREFIX) == 1 and embedded.verify(again)["mode"] == "int8"  # replaced
    _damage(out, tmp_path / ("bad." + fmt), len(out.read_bytes()) // 2)
    with pytest.raises(IntegrityError, match="digest embedded"):
        Classifier.load(tmp_path / ("bad." + fmt))
