"""`mnistkit train` / `evaluate` end to end on real MNIST, and their refusals of bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from mnistkit.tools.cli import cli


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def assert_one_line_error(result, code: int, fragment: str) -> None:
    assert result.exit_code == code, result.output
    assert fragment in result.output
    assert "Traceback" not in result.output
    assert len([line for line in result.output.splitlines() if line.startswith("Error")]) == 1


@pytest.mark.slow
def test_train_then_evaluate(tmp_path):
    out = tmp_path / "run"
    result = run("train", "mlp", "--limit", "2000", "--epochs", "1", "--out", str(out))
    assert result.exit_code == 0, result.output
    for name in ("model.keras", "model.keras.json", "history.json", "metrics.json",
                 "training_curves.png", "confusion_matrix.png", "misclassified.png"):
        assert (out / name).stat().st_size > 0, name
    for png in out.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temporary files left behind"
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.5 < metrics["accuracy"] <= 1.0  # one epoch on 1,800 images: far above chance (10%)

    ev = run("evaluate", str(out), "--json")
    assert ev.exit_code == 0, ev.output
    evaluated = json.loads(ev.output)
    assert evaluated["accuracy"] == pytest.approx(metrics["accuracy"])
    assert evaluated["count"] == 10000
    assert sum(map(sum, evaluated["confusion_matrix"])) == 10000

    text = run("evaluate", str(out / "model.keras"), "--limit", "500")
    assert text.exit_code == 0 and "weighted avg" in text.output and "on 500 test images" in text.output


@pytest.mark.slow
def test_same_seed_same_model(tmp_path):
    accs = []
    for i in range(2):
        out = tmp_path / f"r{i}"
        assert run("train", "linear", "--limit", "1000", "--epochs", "1", "--seed", "7", "--out", str(out)).exit_code == 0
        accs.append(json.loads((out / "metrics.json").read_text())["confusion_matrix"])
    assert accs[0] == accs[1]


@pytest.mark.slow
def test_ctrl_c_keeps_best_checkpoint(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "mnistkit.tools.cli", "train", "mlp", "--limit", "30000", "--epochs", "15", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        # A CI runner may start us with SIGINT ignored (background job); Python then installs no
        # KeyboardInterrupt handler in the child. Restore the default, as in a terminal.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    lines = []
    deadline = time.time() + 240
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("epoch 2/") or time.time() > deadline:
            break
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=120)
    output = "".join(lines) + rest
    assert "Interrupted: kept the best checkpoint" in output, (proc.returncode, output[-2000:])
    assert "Traceback" not in output
    assert (out / "model.keras").is_file() and (out / "metrics.json").is_file()
    assert json.loads((out / "metrics.json").read_text())["interrupted"] is True


def test_unknown_augmentation_is_refused(tmp_path):
    assert_one_line_error(run("train", "mlp", "--augment", "heavy", "--out", str(tmp_path / "r")), 2, "'heavy' is not one of")
    assert not (tmp_path / "r").exists()


def test_unknown_model():
    assert_one_line_error(run("train", "resnet"), 2, "'resnet' is not one of")


@pytest.mark.parametrize("args, fragment", [
    (["--epochs", "0"], "--epochs must be at least 1"),
    (["--limit", "-5"], "--limit must be at least 100"),
    (["--learning-rate", "0"], "--learning-rate must be positive"),
    (["--validation-split", "0.9"], "--validation-split must be in"),
])
def test_impossible_values(tmp_path, args, fragment):
    out = tmp_path / "run"
    assert_one_line_error(run("train", "mlp", "--out", str(out), *args), 2, fragment)
    assert not out.exists()


def test_existing_output_is_refused(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert_one_line_error(run("train", "mlp", "--out", str(out)), 1, "already exists; choose another --out or pass --force")
    assert (out / "keep.txt").read_text() == "mine"


def test_missing_data(tmp_path):
    out = tmp_path / "run"
    result = run("train", "mlp", "--out", str(out), "--data-dir", str(tmp_path / "nope"))
    assert_one_line_error(result, 1, "does not exist; pass --data-dir or set MNISTKIT_DATA")
    assert not out.exists()


def test_corrupt_data(tmp_path, mnist_dir):
    import shutil

    for f in mnist_dir.glob("*.gz"):
        shutil.copy(f, tmp_path)
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(b"garbage")
    out = tmp_path / "run"
    result = run("train", "mlp", "--out", str(out), "--data-dir", str(tmp_path))
    assert_one_line_error(result, 1, "t10k-images-idx3-ubyte.gz is truncated or not gzip")
    assert not out.exists()


def test_evaluate_refuses_non_keras_file(tmp_path):
    bogus = tmp_path / "model.keras"
    bogus.write_text("not a zip")
    assert_one_line_error(run("evaluate", str(bogus)), 1, "is not a loadable Keras model")
    other = tmp_path / "notes.txt"
    other.write_text("hello")
    assert_one_line_error(run("evaluate", str(other)), 2, "is not a model")


def test_help_does_not_import_tensorflow():
    code = "import sys; from mnistkit.tools.cli import cli; cli(['--help'], standalone_mode=False); " \
           "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'heavy import'"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "train" in proc.stdout and "classify" in proc.stdout
