"""Fast tests of `mnistkit export` / `mnistkit parity` bad input: one line, non-zero exit, nothing written."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from mnistkit.tools.cli import cli


FIXTURE = Path(__file__).parent / "fixtures" / "linear_untrained.keras"


@pytest.fixture(scope="module")
def linear_keras() -> Path:
    """A real (untrained) zoo model saved by Keras 3 (checked in, so these tests never import TF)."""
    assert FIXTURE.is_file()
    return FIXTURE


def _run(args: list[str]):
    result = CliRunner().invoke(cli, args)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def _one_line_error(result, code: int = 1) -> str:
    assert result.exit_code == code, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert "Traceback" not in result.output
    err = [ln for ln in lines if ln.startswith("Error:")]
    assert len(err) == 1, result.output
    return err[0]


def test_not_a_keras_file(tmp_path):
    bogus = tmp_path / "model.keras"
    bogus.write_text("not a model")
    out = tmp_path / "exports"
    msg = _one_line_error(_run(["export", str(bogus), "--out", str(out)]))
    assert "not a Keras model" in msg
    assert not out.exists()


def test_zip_without_config_and_foreign_model(tmp_path):
    empty_zip = tmp_path / "a.keras"
    with zipfile.ZipFile(empty_zip, "w") as zf:
        zf.writestr("hello.txt", "hi")
    assert "not a Keras model" in _one_line_error(_run(["export", str(empty_zip), "--out", str(tmp_path / "o")]))
    foreign = tmp_path / "b.keras"
    with zipfile.ZipFile(foreign, "w") as zf:
        zf.writestr("config.json", json.dumps({"class_name": "Functional", "config": {"name": "resnet"}}))
    assert "not a zoo model" in _one_line_error(_run(["export", str(foreign), "--out", str(tmp_path / "o")]))
    assert not (tmp_path / "o").exists()


def test_run_dir_without_model(tmp_path):
    assert "without model.keras" in _one_line_error(_run(["export", str(tmp_path), "--out", str(tmp_path / "o")]))


@pytest.mark.parametrize("args", [["--format", "coreml"], ["--quantize", "int4"]])
def test_unknown_format_or_mode(linear_keras, tmp_path, args):
    result = _run(["export", str(linear_keras), "--out", str(tmp_path / "o"), *args])
    assert result.exit_code == 2
    assert "Invalid value" in result.output
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("n", ["0", "-5"])
def test_calibration_samples_must_be_positive(linear_keras, tmp_path, n):
    result = _run(["export", str(linear_keras), "--quantize", "int8", "--calibration-samples", n,
                   "--out", str(tmp_path / "o")])
    assert "calibration-samples" in _one_line_error(result, code=2)
    assert not (tmp_path / "o").exists()


def test_unwritable_output_folder(linear_keras, tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    msg = _one_line_error(_run(["export", str(linear_keras), "--out", str(blocker / "exports")]))
    assert "not writable" in msg and "--out" in msg


def test_existing_output_refused_before_any_work(linear_keras, tmp_path):
    out = tmp_path / "exports"
    out.mkdir()
    existing = out / "linear_int8.tflite"
    existing.write_bytes(b"keep me")
    msg = _one_line_error(_run(["export", str(linear_keras), "--format", "all", "--quantize", "all", "--out", str(out)]))
    assert "linear_int8.tflite already exists" in msg and "--force" in msg
    assert existing.read_bytes() == b"keep me"
    assert sorted(p.name for p in out.iterdir()) == ["linear_int8.tflite"]  # no staging folder left


def test_existing_manifest_also_refused(linear_keras, tmp_path):
    out = tmp_path / "exports"
    out.mkdir()
    (out / "linear_none.onnx.json").write_text("{}")
    assert "already exists" in _one_line_error(_run(["export", str(linear_keras), "--format", "onnx", "--out", str(out)]))


def _fake_artifact(tmp_path: Path, sha: str) -> Path:
    art = tmp_path / "linear_none.tflite"
    art.write_bytes(b"TFL3 pretend model bytes")
    (tmp_path / "linear_none.tflite.json").write_text(json.dumps({"artifact": {"file": art.name, "sha256": sha}}))
    return art


def test_parity_manifest_hash_mismatch(linear_keras, tmp_path):
    art = _fake_artifact(tmp_path, "0" * 64)
    report = tmp_path / "parity.md"
    msg = _one_line_error(_run(["parity", str(linear_keras), str(art), "--report", str(report)]))
    assert "does not match its manifest" in msg
    assert not report.exists()


def test_parity_refuses_existing_report(linear_keras, tmp_path):
    import hashlib

    art = tmp_path / "linear_none.tflite"
    art.write_bytes(b"x")
    report = tmp_path / "parity.md"
    report.write_text("old")
    msg = _one_line_error(_run(["parity", str(linear_keras), str(art), "--report", str(report)]))
    assert "already exists" in msg and report.read_text() == "old"
    assert hashlib.sha256(b"x").hexdigest()  # the artifact itself was never touched
    assert art.read_bytes() == b"x"


def test_parity_unwritable_report_folder(linear_keras, tmp_path):
    art = tmp_path / "linear_none.tflite"
    art.write_bytes(b"x")
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    msg = _one_line_error(_run(["parity", str(linear_keras), str(art), "--report", str(blocker / "r.md")]))
    assert "not writable" in msg and "--report" in msg


def test_parity_unknown_mode_name(linear_keras, tmp_path):
    art = tmp_path / "mystery.tflite"
    art.write_bytes(b"x")
    assert "--mode" in _one_line_error(_run(["parity", str(linear_keras), str(art)]), code=2)


def test_parity_source_not_keras(tmp_path):
    src = tmp_path / "src.keras"
    src.write_text("nope")
    art = tmp_path / "linear_none.tflite"
    art.write_bytes(b"x")
    assert "not a Keras model" in _one_line_error(_run(["parity", str(src), str(art)]))


def test_help_does_not_import_tensorflow():
    import subprocess
    import sys

    code = ("import sys; from click.testing import CliRunner; from mnistkit.tools.cli import cli; "
            "r = CliRunner().invoke(cli, ['export', '--help']); assert r.exit_code == 0, r.output; "
            "r = CliRunner().invoke(cli, ['parity', '--help']); assert r.exit_code == 0, r.output; "
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
