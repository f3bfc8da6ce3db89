"""Regression tests for the classes of bad input the fuzzing pass found (issue 15).

Each damaged model in tests/data/damaged/ is a minimal reproducer made by
tests/data/make_damaged.py. Every failure must be a typed, one-line mnistkit error: no traceback,
no hang, no NaN reaching the user, no memory growing with the input.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from mnistkit.runtime import Classifier
from mnistkit.runtime.cli import DEFAULT_MODEL, classify as classify_cmd
from mnistkit.runtime.errors import ImageError, ModelError, UsageError

DAMAGED = Path(__file__).with_name("data") / "damaged"
SAMPLES = DEFAULT_MODEL.with_name("samples")
SAMPLE = SAMPLES / "7_handwritten.png"


def _digits(n: int) -> np.ndarray:
    """n MNIST-style float images (a bright bar on black) that need no preprocessing."""
    x = np.zeros((n, 28, 28), np.float32)
    x[:, 6:22, 12:16] = np.linspace(0.5, 1.0, n, dtype=np.float32)[:, None, None]
    return x


def _one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text and ";" in text, text  # one line: what is wrong; what to do
    return text


# --- damaged model files --------------------------------------------------------------------------

@pytest.mark.parametrize("name, words", [
    ("name_not_utf8.tflite", "not UTF-8"),
    ("empty_input_shape.tflite", "not 28x28"),
    ("dim_param_not_utf8.onnx", "not UTF-8"),
    ("huge_tensor.tflite", "MiB limit"),
    ("unknown_op.tflite", "does not know"),
])
def test_damaged_model_gives_one_line_model_error(name, words):
    if name.endswith(".onnx"):
        pytest.importorskip("onnxruntime")
    with pytest.raises(ModelError) as info:
        Classifier.load(DAMAGED / name)
    text = _one_line(info)
    assert name in text and words in text, text


def test_graph_computing_another_shape_than_declared_is_a_model_error():
    """Found by the fuzzer (onnx mutant seed 555): declares (N, 10), computes (16, 10) for 3 images."""
    pytest.importorskip("onnxruntime")
    clf = Classifier.load(DAMAGED / "output_shape_lies.onnx")
    with pytest.raises(ModelError, match="not 10 scores each") as info:
        clf.predict_proba(_digits(3))
    _one_line(info)


def test_unknown_op_on_litert_does_not_advise_installing_litert():
    with pytest.raises(ModelError) as info:
        Classifier.load(DAMAGED / "unknown_op.tflite", backend="litert")
    assert "pip install ai-edge-litert" not in str(info.value)


@pytest.mark.parametrize("name", ["nan_bias.tflite", "nan_weights.onnx"])
def test_nan_scores_are_a_model_error_never_a_label(name):
    if name.endswith(".onnx"):
        pytest.importorskip("onnxruntime")
    clf = Classifier.load(DAMAGED / name)
    x = _digits(3)
    for call in (lambda: clf.predict_proba(x), lambda: clf.classify(x), lambda: clf.classify(SAMPLE)):
        with pytest.raises(ModelError, match="NaN or infinite") as info:
            call()
        _one_line(info)
    ok = Classifier.load(DAMAGED / name.replace("nan_bias", "tiny_ok").replace("nan_weights", "tiny_ok"))
    assert np.isfinite(ok.predict_proba(x)).all()  # the undamaged twin gives numbers


def test_cli_json_is_strict_and_nan_models_fail(tmp_path):
    runner = CliRunner()
    res = runner.invoke(classify_cmd, ["--model", str(DAMAGED / "nan_bias.tflite"), "--json", str(SAMPLE)])
    assert res.exit_code == 1 and "NaN" in res.output and "Traceback" not in res.output
    res = runner.invoke(classify_cmd, ["--model", str(DAMAGED / "tiny_ok.tflite"), "--json", str(SAMPLE)])
    assert res.exit_code == 0, res.output

    def refuse(token):
        raise AssertionError(f"non-standard JSON constant {token}")

    doc = json.loads(res.output, parse_constant=refuse)
    assert doc["results"][0]["label"] in range(10)


# --- one rule for pixel values ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def clf():
    return Classifier.load(DEFAULT_MODEL)


@pytest.mark.parametrize("bad, words", [
    (np.nan, "NaN"), (np.inf, "infinite"), (-np.inf, "infinite"), (-0.5, "negative"),
])
def test_non_finite_and_negative_refused_by_both_calls(clf, bad, words):
    x = np.zeros((2, 28, 28), np.float32)
    x[1, 5, 5] = bad
    for call in (clf.predict_proba, clf.classify):
        with pytest.raises(UsageError, match=words) as info:
            call(x)
        _one_line(info)
    big = np.zeros((40, 30), np.float32)  # the same values at another size: the same answer
    big[3, 3] = bad
    with pytest.raises(UsageError, match=words):
        clf.classify(big)
    with pytest.raises(UsageError, match=words):
        clf.classify([big])


def test_integer_and_out_of_range_arrays_follow_one_rule(clf):
    wrapped = np.full((1, 28, 28), -5, np.int8)  # int8 values that used to be clipped to 0
    with pytest.raises(UsageError, match="negative"):
        clf.classify(wrapped)
    with pytest.raises(UsageError, match="negative"):
        clf.classify(np.full((30, 30), -5, np.int8))
    with pytest.raises(UsageError, match="65535"):
        clf.classify(np.full((30, 30), 70_000, np.int32))
    with pytest.raises(UsageError, match="divide 0-255 pixels by 255"):
        clf.predict_proba(np.full((1, 28, 28), 2.0, np.float32))  # > 1: refused, not clipped
    with pytest.raises(UsageError, match="float"):
        clf.predict_proba(np.zeros((1, 28, 28), np.int16))
    # classify documents 0-255 floats and 0-255 integers of any type as the same pixels
    digit = np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(SAMPLE).convert("L").resize((28, 28)))
    digit = 255 - digit  # white on black, MNIST-style
    labels = {clf.classify(digit.astype(t))[0].label for t in (np.uint8, np.int16, np.int64, np.float64)}
    labels.add(clf.classify(digit / 255.0)[0].label)
    assert len(labels) == 1


def test_empty_batches_and_empty_images(clf):
    assert clf.classify(np.zeros((0, 28, 28))) == []
    assert clf.classify(np.zeros((0, 200, 200))) == []
    assert clf.classify([]) == []
    assert clf.predict_proba(np.zeros((0, 28, 28), np.float32)).shape == (0, 10)
    with pytest.raises(ImageError, match="no pixels|empty") as info:
        clf.classify(np.zeros((3, 0, 0)))
    _one_line(info)
    with pytest.raises(UsageError, match="item 1"):
        clf.classify([SAMPLE, 42])


def test_absurd_shapes_refused_before_allocation(clf):
    import tracemalloc

    huge = np.broadcast_to(np.uint8(0), (3, 7000, 7000))  # 49 MP per image, no memory behind it
    tracemalloc.start()
    try:
        with pytest.raises(ImageError, match="megapixel limit") as info:
            clf.classify(huge)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    _one_line(info)
    assert peak < 1_000_000, peak
    with pytest.raises(ImageError, match="megapixel limit"):
        clf.classify(huge[0])


# --- memory bounded by design ------------------------------------------------------------------

_RSS = textwrap.dedent("""
    import sys, numpy as np
    from mnistkit.runtime import Classifier
    def peak_kb():  # VmHWM: ru_maxrss would carry over the (large) pytest parent's peak across fork/exec
        return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
    clf = Classifier.load(sys.argv[1])
    rng = np.random.default_rng(0)
    x = (rng.random((20_000, 28, 28)) * 255).astype(np.uint8)
    x[:, :3] = x[:, -3:] = x[:, :, :3] = x[:, :, -3:] = 0  # dark border: MNIST-style, no preprocessing
    small = clf.predict_proba(x[:300])
    before = peak_kb()
    y = clf.predict_proba(x)
    z = clf.classify(x[:3000])
    after = peak_kb()
    assert np.array_equal(y[:300], small) and [p.label for p in z] == list(y[:3000].argmax(1))
    print((after - before) / 1024)
""")


def test_large_batches_run_in_chunks_with_bounded_memory():
    """20,000 images after 300: peak RSS grows by the output, not ~40 KB per image (800 MB before)."""
    proc = subprocess.run([sys.executable, "-c", _RSS, str(DEFAULT_MODEL)], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    growth_mb = float(proc.stdout.split()[-1])
    print(f"peak RSS growth for 20,000 images: {growth_mb:.1f} MB")
    assert growth_mb < 40, growth_mb


def test_model_memory_limit(tmp_path):
    with pytest.raises(ModelError, match="MiB limit"):
        Classifier.load(DEFAULT_MODEL, max_memory_mb=1)
    assert Classifier.load(DEFAULT_MODEL, max_memory_mb=64).predict_proba(np.zeros((1, 28, 28), np.uint8)).shape == (1, 10)
    with pytest.raises(UsageError, match="max_memory_mb"):
        Classifier.load(DEFAULT_MODEL, max_memory_mb=-1)


def test_model_file_size_limit(monkeypatch):
    monkeypatch.setenv("MNISTKIT_MAX_MODEL_MB", "0.01")
    with pytest.raises(ModelError, match="over the 0 MiB limit|MiB limit") as info:
        Classifier.load(DEFAULT_MODEL)
    _one_line(info)
    monkeypatch.setenv("MNISTKIT_MAX_MODEL_MB", "many")
    with pytest.raises(UsageError, match="MNISTKIT_MAX_MODEL_MB"):
        Classifier.load(DEFAULT_MODEL)


# --- no read blocks: FIFOs, devices, sockets; permissions ---------------------------------------

_SPECIAL = textwrap.dedent("""
    import sys
    from mnistkit.runtime import Classifier
    from mnistkit.runtime.errors import MnistkitError
    for kind, path in (("model", sys.argv[1]), ("image", sys.argv[1]), ("model", "/dev/zero"),
                       ("image", "/dev/zero"), ("image", sys.argv[2]), ("model", sys.argv[2])):
        try:
            if kind == "model":
                Classifier.load(path)
            else:
                Classifier.load(sys.argv[3]).classify(path)
            print("loaded?!", kind, path)
        except MnistkitError as exc:
            print(type(exc).__name__, exc)
""")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX FIFOs")
def test_fifo_device_and_socket_never_block(tmp_path):
    fifo = tmp_path / "pipe.tflite"
    os.mkfifo(fifo)
    sock_path = tmp_path / "s.png"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(sock_path))
    try:
        proc = subprocess.run([sys.executable, "-c", _SPECIAL, str(fifo), str(sock_path), str(DEFAULT_MODEL)],
                              capture_output=True, text=True, timeout=120)
    finally:
        sock.close()
    lines = proc.stdout.splitlines()
    assert proc.returncode == 0 and len(lines) == 6, (proc.stdout, proc.stderr[-2000:])
    assert [ln.split()[0] for ln in lines] == ["ModelError", "ImageError", "ModelError", "ImageError",
                                               "ImageError", "ModelError"], lines
    assert "FIFO" in lines[0] and "character device" in lines[2] and "socket" in lines[4]


def test_cli_with_fifo_model_and_image_exits_promptly(tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    cmd = [sys.executable, "-m", "mnistkit.runtime"]
    proc = subprocess.run([*cmd, str(fifo)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "FIFO" in proc.stderr and "Traceback" not in proc.stderr
    proc = subprocess.run([*cmd, "--model", str(fifo), str(SAMPLE)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1 and "FIFO" in proc.stderr and "Traceback" not in proc.stderr


_PERM = textwrap.dedent("""
    import sys
    from mnistkit.runtime import Classifier
    from mnistkit.runtime.errors import MnistkitError
    for call in (lambda: Classifier.load(sys.argv[1]), lambda: Classifier.load(sys.argv[3]).classify(sys.argv[2])):
        try:
            call()
            print("opened?!")
        except MnistkitError as exc:
            print(type(exc).__name__, exc)
""")


def test_unreadable_paths_give_permission_errors():
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="mnistkit-perm-"))  # /tmp is searchable by everyone
    try:
        _check_permissions(base)
    finally:
        for p in base.rglob("*"):
            p.chmod(0o700)
        shutil.rmtree(base)


def _check_permissions(base: Path) -> None:
    base.chmod(0o755)
    locked = base / "locked"
    locked.mkdir()
    shutil.copy(DEFAULT_MODEL, locked / "m.tflite")
    shutil.copy(SAMPLE, locked / "d.png")
    open_model = base / "open.tflite"
    shutil.copy(DEFAULT_MODEL, open_model)
    open_model.chmod(0o644)
    locked.chmod(0o700)  # others cannot enter
    cmd = [sys.executable, "-c", _PERM, str(locked / "m.tflite"), str(locked / "d.png"), str(open_model)]
    if os.geteuid() == 0:  # root enters anything: run as nobody
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv")
        cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *cmd]
        for parent in [*base.parents, Path(sys.prefix), Path(__file__).parent]:
            if not os.stat(parent).st_mode & stat.S_IXOTH:
                pytest.skip(f"{parent} is not searchable by other users")
    else:
        locked.chmod(0o000)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    lines = proc.stdout.splitlines()
    assert proc.returncode == 0 and len(lines) == 2, (proc.stdout, proc.stderr[-2000:])
    assert lines[0].startswith("ModelError") and "permission denied" in lines[0]
    assert lines[1].startswith("ImageError") and "permission denied" in lines[1]


# --- damaged files that crash the native interpreter (fuzzer finds) ------------------------------

_PROBE = textwrap.dedent("""
    import sys
    from mnistkit.runtime import Classifier
    from mnistkit.runtime.errors import ModelError
    for name in sys.argv[1:]:
        try:
            Classifier.load(name, probe=True)
            print("loaded?!", name)
        except ModelError as exc:
            print("ModelError", exc)
""")


def test_files_that_crash_the_interpreter_are_refused_not_fatal():
    """tflite mutants (fused_lstm16 seed 4946: an op input index set to -1, SIGSEGV in
    allocate_tensors; tiny_ok seed 5969: an op input pointing at another tensor, SIGSEGV at invoke)
    are tried in a child process first: a ModelError here, and this process lives."""
    names = [str(DAMAGED / n) for n in ("crash_alloc_fused_lstm.tflite", "crash_invoke_tiny.tflite")]
    env = {**os.environ, "MNISTKIT_PROBE": "1"}
    proc = subprocess.run([sys.executable, "-c", _PROBE, *names], capture_output=True, text=True,
                          timeout=300, env=env)
    lines = proc.stdout.splitlines()
    assert proc.returncode == 0 and len(lines) == 2, (proc.returncode, proc.stdout, proc.stderr[-1500:])
    assert all(ln.startswith("ModelError") and "crashed the litert interpreter (SIGSEGV)" in ln for ln in lines), lines
    # without the probe the same file kills the process: the guard is what stands in between
    unguarded = ("import sys, numpy as np\nfrom mnistkit.runtime import Classifier\n"
                 "x = np.zeros((3, 28, 28), np.uint8); x[:, 5:23, 12:16] = 255\n"
                 "Classifier.load(sys.argv[1], probe=False).predict_proba(x)\nprint('survived')")
    crash = subprocess.run([sys.executable, "-c", unguarded, names[1]], capture_output=True, text=True,
                           timeout=300, env=env)
    assert crash.returncode < 0, crash.stdout


def test_shape_disagreeing_with_signature_is_a_model_error():
    """tiny_ok seed 11445: an empty input shape with a full signature (was an IndexError)."""
    with pytest.raises(ModelError, match="disagrees with its signature") as info:
        Classifier.load(DAMAGED / "shape_vs_signature.tflite")
    _one_line(info)
