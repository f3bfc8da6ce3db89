"""CI keeps the report honest: re-export every committed pretrained model (full matrix), run parity on
all 10,000 test images, and compare with the figures REPORT.md quotes (reports/parity.json)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mnistkit.models.artifacts import sha256_file
from mnistkit.models.zoo import MODEL_NAMES

ROOT = Path(__file__).resolve().parents[1]
PRETRAINED = ROOT / "models" / "pretrained"
SUMMARY = ROOT / "reports" / "parity.json"


def committed_rows(name: str) -> list[dict]:
    if not SUMMARY.is_file():
        pytest.fail(f"{SUMMARY} is missing: run `make report` and commit it")
    return [r for r in json.loads(SUMMARY.read_text()) if r["model"] == name]


@pytest.mark.slow
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_pretrained_matrix_matches_report(name, tmp_path, mnist_dir):
    source = PRETRAINED / f"{name}.keras"
    manifest = json.loads((PRETRAINED / f"{name}.keras.json").read_text())
    assert sha256_file(source) == manifest["artifact"]["sha256"], "committed model differs from its manifest"
    rows = committed_rows(name)
    assert rows, f"reports/parity.json has no row for {name}"
    assert {r["source_sha256"] for r in rows} == {manifest["artifact"]["sha256"]}, "report made from another model"

    proc = subprocess.run(
        [sys.executable, "-m", "mnistkit.tools.cli", "export", str(source), "--format", "all", "--quantize", "all",
         "--out", str(tmp_path), "--json", "--data-dir", str(mnist_dir)],
        capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, timeout=1200,
    )
    outcomes = {(o["format"], o["mode"]): o for o in json.loads(proc.stdout)}
    for row in rows:
        o = outcomes.get((row["format"], row["mode"]))
        assert o is not None and o["ok"], f"{name} {row['format']} {row['mode']} no longer exports: {o and o['message']}"
        p = o["parity"]
        where = f"{name} {row['format']} {row['mode']}"
        assert p["count"] == 10000 and p["passed"], f"{where}: {p['failures']}"
        assert p["source_accuracy"] == pytest.approx(manifest["test_accuracy"], abs=1e-4), where
        assert p["artifact_accuracy"] == pytest.approx(row["artifact_accuracy"], abs=2e-4), where
        assert p["agreement"] == pytest.approx(row["agreement"], abs=2e-4), where
        size = (tmp_path / Path(o["file"]).name).stat().st_size
        assert size == pytest.approx(row["size_bytes"], rel=0.02), where
    delivered = {k for k, o in outcomes.items() if o["ok"]}
    assert delivered == {(r["format"], r["mode"]) for r in rows}, "the set of exportable combinations changed"
