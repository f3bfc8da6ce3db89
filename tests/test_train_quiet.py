"""`mnistkit train` for a person: no TensorFlow chatter, a progress bar at a terminal, one line per
epoch elsewhere, and one line naming the extra when the training stack is missing."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from mnistkit.tools.training.quiet import is_noise

ROOT = Path(__file__).resolve().parents[1]
NOISE_MARKERS = ("oneDNN custom operations", "absl::InitializeLog", "use_unbounded_threadpool")
TRAIN = [sys.executable, "-m", "mnistkit.tools.cli", "train", "mlp", "--limit", "1200", "--epochs", "2"]


def test_noise_patterns():
    assert is_noise("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n")
    assert is_noise("I0000 00:00:1796028092.335286    9636 port.cc:153] oneDNN custom operations are on. ...\n")
    assert is_noise("E0000 00:00:1796028190.817037   10851 node_def_util.cc:682] NodeDef mentions attribute "
                    "use_unbounded_threadpool which is not in the op definition\n")
    assert not is_noise("E0000 00:00:1796028190.817037   10851 some_kernel.cc:12] Out of memory\n")
    assert not is_noise("Error: something the user must see\n")
    assert not is_noise("Training mlp on 1200 images (seed 42, up to 2 epochs)...\n")


def test_filter_drops_native_noise_and_keeps_the_rest():
    code = (
        "import os, sys\n"
        "from mnistkit.tools.training.quiet import filtered_stderr\n"
        "with filtered_stderr():\n"
        "    import tensorflow\n"  # the real start-up chatter, written by C++ at import time
        "    os.write(2, b'W0000 00:00:1.2   1 some.cc:3] chatter\\nkeep me\\n')\n"
        "    print('python line', file=sys.stderr)\n"
        "print('after', file=sys.stderr)\n"
    )
    quiet = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr.splitlines() == ["keep me", "python line", "after"]
    loud = subprocess.run([sys.executable, "-c", "import tensorflow"], capture_output=True, text=True, timeout=120)
    if not any(m in loud.stderr for m in NOISE_MARKERS):
        pytest.skip("this TensorFlow build prints nothing at import: nothing to filter")


@pytest.mark.slow
def test_train_not_at_a_terminal_prints_one_line_per_epoch(tmp_path):
    proc = subprocess.run([*TRAIN, "--out", str(tmp_path / "run")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    for marker in NOISE_MARKERS:
        assert marker not in proc.stderr + proc.stdout
    lines = proc.stderr.splitlines()
    assert lines[0].startswith("Training mlp on 1200 images") and "augmentation light" in lines[0]
    epochs = [line for line in lines if line.startswith("epoch ")]
    assert [e.split(":")[0] for e in epochs] == ["epoch 1/2", "epoch 2/2"]
    assert all("val_accuracy" in e and "img/s" in e for e in epochs)
    assert len(lines) == 3, lines  # nothing else on stderr
    assert "mlp: test accuracy" in proc.stdout


@pytest.mark.slow
def test_train_at_a_terminal_shows_a_progress_bar(tmp_path):
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen([*TRAIN, "--out", str(tmp_path / "run")], stdin=follower, stdout=follower,
                            stderr=follower, close_fds=True)
    os.close(follower)
    chunks, deadline = [], time.time() + 300
    while time.time() < deadline:
        try:
            data = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=60)
    os.close(leader)
    screen = b"".join(chunks).decode(errors="replace")
    assert proc.returncode == 0, screen[-2000:]
    for marker in NOISE_MARKERS:
        assert marker not in screen
    bars = [s for s in screen.replace("\r", "\n").splitlines() if s.startswith("epoch 1/2 ") and "img/s" in s]
    assert bars, screen[-2000:]
    assert any("█" in b and "loss" in b and "accuracy" in b and "<" in b for b in bars)  # bar, metrics, ETA
    assert "epoch 2/2: loss" in screen and "mlp: test accuracy" in screen


@pytest.mark.slow
def test_verbose_brings_keras_output_back(tmp_path):
    proc = subprocess.run([*TRAIN, "--epochs", "1", "--verbose", "--augment", "full", "--out", str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "ms/step - accuracy" in proc.stdout  # Keras' own per-epoch line
    assert "epoch 1/1:" not in proc.stderr
    assert any(m in proc.stderr for m in NOISE_MARKERS)  # TensorFlow's messages are not filtered
    manifest = json.loads((tmp_path / "run" / "model.keras.json").read_text())
    assert manifest["recipe"]["augment"] == "full" and manifest["recipe"]["augmentation"]["affine"] > 0


BLOCK_TRAIN_STACK = "import sys; sys.modules['tensorflow'] = None; sys.modules['keras'] = None; "


@pytest.mark.parametrize("args", [
    ["train", "mlp"],
    ["train-all"],
    ["export", "models/pretrained/mlp.keras", "--format", "tflite"],
    ["evaluate", "models/pretrained/mlp.keras"],
    ["parity", "models/pretrained/cnn.keras", "runtime/assets/default.tflite"],
])
def test_missing_training_stack_names_the_extra(tmp_path, args):
    """As on a device install without [train]: the modules are made unimportable before mnistkit runs
    (checked for real in a base-only venv as well, see the issue 16 report)."""
    code = BLOCK_TRAIN_STACK + "from mnistkit.tools.cli import main; sys.argv = ['mnistkit', *sys.argv[1:]]; main()"
    env = {k: v for k, v in os.environ.items() if k != "MNISTKIT_DATA"}  # the old message came from here
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path if args[0] == "train" else ROOT, env=env)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), proc.stderr
    assert 'pip install "mnistkit[train]"' in lines[0]
