"""`mnistkit classify` / `python -m mnistkit.runtime`: output, JSON, per-image errors, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from _fixtures_runtime import eval_images, model_copy, rt_models, write_manifest  # noqa: F401
from mnistkit.runtime.cli import DEFAULT_MODEL, classify


@pytest.fixture
def images(tmp_path, eval_images):
    """A folder of 4 MNIST digits as PNG plus the labels; a second folder with bad files."""
    pil = pytest.importorskip("PIL.Image")
    good = tmp_path / "good"
    good.mkdir()
    for i in range(4):
        pil.fromarray(eval_images[0][i]).save(good / f"{i}.png")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "text.png").write_bytes(b"this is not a png")
    (bad / "cut.png").write_bytes((good / "0.png").read_bytes()[:70])
    pil.fromarray(np.full((40, 40), 255, np.uint8)).save(bad / "white.png")
    (bad / "bomb.png").write_bytes(_png_header(60_000, 60_000))  # 3.6 gigapixels, 60 bytes
    return good, bad, [int(v) for v in eval_images[1][:4]]


def _png_header(width: int, height: int) -> bytes:
    """A PNG that claims a huge size: only the header, the way decompression bombs start."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def invoke(*args: str):
    return CliRunner().invoke(classify, list(args))


def test_classify_folder_text_output(rt_models, images):
    good, _, labels = images
    res = invoke("--model", str(rt_models / "mlp_int8.tflite"), str(good))
    assert res.exit_code == 0, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 5 and "top-3:" in lines[0] and "ms]" in lines[0]
    assert "classified 4 of 4 image(s)" in lines[-1] and "on litert" in lines[-1]
    assert sum(line.split(": ")[1].startswith(str(lab)) for line, lab in zip(lines, labels)) >= 3


def test_classify_json_and_options(rt_models, images):
    good, _, labels = images
    res = invoke("--model", str(rt_models / "mlp_none.onnx"), "--json", "--top-k", "5",
                 "--threads", "1", str(good / "0.png"), str(good / "1.png"))
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["summary"]["classified"] == 2 and doc["summary"]["backend"] == "onnxruntime"
    first = doc["results"][0]
    assert len(first["top_k"]) == 5 and len(first["probabilities"]) == 10 and first["time_ms"] > 0
    assert first["label"] == first["top_k"][0][0]


def test_model_folder(rt_models, model_copy, images):
    good, _, _ = images
    path = model_copy("mlp_int8.tflite")
    assert invoke("--model", str(path.parent), str(good / "0.png")).exit_code == 0
    model_copy("mlp_none.onnx")
    res = invoke("--model", str(path.parent), str(good / "0.png"))
    assert res.exit_code == 2 and "2 models" in res.output


def test_per_image_errors_keep_going(rt_models, images, tmp_path):
    good, bad, _ = images
    empty = tmp_path / "empty"
    empty.mkdir()
    res = invoke("--model", str(rt_models / "mlp_int8.tflite"), str(good / "0.png"), str(bad),
                 str(tmp_path / "missing.png"), str(empty), str(good / "1.png"))
    assert res.exit_code == 1
    errors = [ln for ln in res.output.splitlines() if ln.startswith("error:")]
    assert len(errors) == 6, res.output  # 4 bad files, the missing one, the empty folder
    assert "Traceback" not in res.output
    for needle in ("not an image", "truncated", "no digit", "megapixel", "no such file",
                   "holds no images"):
        assert sum(needle in e for e in errors) == 1, (needle, errors)
    assert "classified 2 of 8 image(s)" in res.output and "6 failed" in res.output


@pytest.mark.parametrize("args, code, needle", [
    (["--backend", "pytorch"], 2, "unknown backend"),
    (["--top-k", "11"], 2, "--top-k"),
    (["--threads", "0"], 2, "--threads"),
])
def test_usage_errors(rt_models, images, args, code, needle):
    good, _, _ = images
    res = invoke("--model", str(rt_models / "mlp_int8.tflite"), *args, str(good / "0.png"))
    assert res.exit_code == code and needle in res.output and "Traceback" not in res.output


def test_model_errors_are_one_line(rt_models, model_copy, images):
    good, _, _ = images
    for name, needle in (("mlp_truncated.tflite", "not a valid TFLite model"),
                         ("wide32_none.tflite", "not 28x28")):
        res = invoke("--model", str(rt_models / name), str(good / "0.png"))
        assert res.exit_code == 1 and needle in res.output
        assert len(res.output.strip().splitlines()) == 1
    path = model_copy("mlp_int8.tflite")
    write_manifest(path, sha256="f" * 64)
    res = invoke("--model", str(path), str(good / "0.png"))
    assert res.exit_code == 1 and "does not match its manifest" in res.output


def test_default_model_and_module_entry_point(images):
    """`python -m mnistkit.runtime IMAGE` works on the bundled model, in a fresh process."""
    if not DEFAULT_MODEL.exists():
        pytest.skip("no bundled default model")
    good, bad, labels = images
    proc = subprocess.run([sys.executable, "-m", "mnistkit.runtime", str(good), str(bad / "text.png")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.count("top-3") == 4 and "default.tflite" in proc.stdout
    err = proc.stderr.strip().splitlines()  # one line, no LiteRT INFO noise, no traceback
    assert len(err) == 1 and err[0].startswith(f"error: {bad / 'text.png'}") and "not an image" in err[0]


def test_mnistkit_classify_is_registered(images):
    from mnistkit.tools.cli import cli

    good, _, _ = images
    res = CliRunner().invoke(cli, ["classify", "--help"])
    assert res.exit_code == 0 and "--top-k" in res.output
    if DEFAULT_MODEL.exists():
        res = CliRunner().invoke(cli, ["classify", "--json", str(good / "0.png")])
        assert res.exit_code == 0 and json.loads(res.output)["summary"]["classified"] == 1


def test_bench_script_runs(capsys):
    """tools/bench/runtime_overhead.py stays runnable (tiny counts; the figures themselves are not checked)."""
    if not DEFAULT_MODEL.exists():
        pytest.skip("no bundled default model")
    from mnistkit.tools.bench import runtime_overhead as bench_runtime

    assert bench_runtime.main(["--skip", "a", "--calls", "20", "--rounds", "1"]) == 0
    out = capsys.readouterr().out
    assert "Classifier.predict_proba" in out and "per-thread" in out and "lock" in out
