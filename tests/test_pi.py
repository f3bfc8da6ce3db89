"""The device runtime on an emulated Raspberry Pi (aarch64) classifies exactly as on x86.

Tests marked ``pi`` build (or reuse) the emulated Pi in .cache/pi: Debian bookworm arm64 CPython 3.11
under qemu-aarch64-static, mnistkit from its wheel plus aarch64 wheels of its dependencies. They
skip, saying what to install, when qemu is missing. The unmarked tests cover the comparison rule.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from _fixtures_runtime import rt_models  # noqa: F401
from mnistkit.tools.pi.common import StepError
from mnistkit.tools.pi.compare import artifact_mode, compare_runs, tolerance

QEMU = shutil.which("qemu-aarch64-static")
needs_qemu = pytest.mark.skipif(QEMU is None, reason="qemu-aarch64-static not found; install it with: "
                                                     "apt-get install qemu-user-static")


# -- the comparison rule (no emulation) ------------------------------------------------------------
def test_tolerance_per_kind_of_output():
    assert tolerance({"output_quantization": [1 / 256, -128]}, "int8", "tflite") == ("quantized", 3 / 256)
    assert tolerance({"output_quantization": None}, "dynamic") == ("quantized-float-out", 3 / 256)
    assert tolerance({"output_quantization": None}, "none") == ("float", 1e-5)
    assert tolerance({}, "float16", "tflite") == ("float", 1e-5)  # float16 weights, float32 compute
    assert tolerance({}, "float16", "onnx") == ("float16-compute", 3 * 2.0**-11)


def test_compare_requires_same_labels_and_close_probabilities():
    ref = np.array([[0.9, 0.1] + [0.0] * 8, [0.2, 0.8] + [0.0] * 8], np.float32)
    assert compare_runs(ref, ref + 5e-6, "float", 1e-5).ok
    far = compare_runs(ref, ref + 2e-5, "float", 1e-5)
    assert not far.ok and far.label_mismatches == 0 and far.max_abs_diff == pytest.approx(2e-5, rel=1e-2)
    flipped = ref[:, [1, 0, 2, 3, 4, 5, 6, 7, 8, 9]]
    res = compare_runs(ref, flipped, "quantized", 1.0)  # within tolerance but labels differ
    assert not res.ok and not res.labels_ok and res.within_tolerance and res.label_mismatches == 2


def test_mode_from_file_name_or_manifest(tmp_path):
    art = tmp_path / "lstm_dynamic.tflite"
    art.write_bytes(b"")
    assert artifact_mode(art) == "dynamic"
    other = tmp_path / "default.tflite"
    other.write_bytes(b"")
    assert artifact_mode(other) is None
    (tmp_path / "default.tflite.json").write_text(json.dumps({"mode": "int8"}))
    assert artifact_mode(other) == "int8"


def test_missing_qemu_names_the_package(monkeypatch, tmp_path):
    from mnistkit.tools.pi import sysroot

    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(StepError) as info:
        sysroot.find_qemu(install=False)
    assert "pi step 'qemu' failed" in str(info.value)
    assert "apt-get install qemu-user-static" in str(info.value)
    assert "\n" not in str(info.value)


# -- on the emulated Pi ---------------------------------------------------------------------------
def _mnist_available() -> bool:
    folder = Path(os.environ.get("MNISTKIT_DATA", ""))
    return folder.is_dir() and any(folder.glob("t10k-images*"))


@pytest.fixture(scope="module")
def summary():
    """The check of the bundled default model on the samples (+ 30 MNIST test PNGs if available)."""
    from mnistkit.tools.pi.check import DEFAULT_MODEL, run_check

    start = time.perf_counter()
    out = run_check([DEFAULT_MODEL], mnist=30 if _mnist_available() else 0)
    out["test_seconds"] = time.perf_counter() - start
    return out


@pytest.mark.pi
@needs_qemu
@pytest.mark.timeout(900)
def test_default_model_classifies_identically_on_the_emulated_pi(summary):
    from mnistkit.tools.pi.check import table

    assert summary["ok"], table(summary)
    (art,) = summary["artifacts"]
    assert art["images"] >= 10 and art["label_mismatches"] == 0 and art["max_abs_diff"] <= art["atol"]


@pytest.mark.pi
@needs_qemu
def test_bundled_samples_are_in_the_wheel_and_checked(summary):
    assert summary["images"]["samples"], "the mnistkit wheel ships no runtime/assets/samples images"


@pytest.mark.pi
@needs_qemu
def test_emulated_runtime_never_imports_tensorflow(summary):
    (art,) = summary["artifacts"]
    assert art["tensorflow_imported"] is False


@pytest.mark.pi
@needs_qemu
def test_base_install_resolves_from_aarch64_wheels(summary):
    from mnistkit.tools.pi import wheels
    from mnistkit.tools.pi.common import cache_dir

    resolved = wheels.resolved(cache_dir() / "resolve-base")
    names = {r["name"].lower().replace("_", "-") for r in resolved}
    assert {"numpy", "pillow", "click", "ai-edge-litert"} <= names
    assert "tensorflow" not in names and "tensorflow-cpu" not in names
    for r in resolved:
        assert "aarch64" in r["file"] or r["file"].endswith("-none-any.whl"), r


@pytest.mark.pi
@needs_qemu
def test_second_setup_reuses_the_cache(summary):
    from mnistkit.tools.pi import sysroot, wheels

    start = time.perf_counter()
    root = sysroot.build()
    wheels.install_all()
    assert time.perf_counter() - start < 30  # cached: no apt, no pip downloads
    assert (root / "proc" / "cpuinfo").read_text().count("CPU part\t: 0xd08") == 4


_BATCH_ON_TFLRT = """
import json, platform, sys, numpy as np
from mnistkit.runtime import Classifier
x = np.load(sys.argv[1] + "/x_eval.npy")[:16]
clf = Classifier.load(sys.argv[1] + "/lstm_int8.tflite", backend="tflite-runtime")
batch = clf.predict_proba(x)
single = np.concatenate([clf.predict_proba(x[i:i + 1]) for i in range(len(x))])
print(json.dumps({"machine": platform.machine(), "fixed_batch": clf.describe()["fixed_batch"],
                  "same": bool(np.array_equal(batch, single))}))
"""


@pytest.mark.pi
@needs_qemu
@pytest.mark.timeout(900)
def test_tflite_runtime_runs_int8_lstm_batches_on_the_emulated_pi(rt_models):
    """tflite-runtime 2.14 on aarch64 kills the process (SIGSEGV) on a batch through a full-int8
    LSTM graph (measured); the runtime must run such a graph one image at a time there."""
    proc = subprocess.run([sys.executable, "-m", "mnistkit.tools.pi", "run", "--tflrt", "--", "-c",
                           _BATCH_ON_TFLRT, str(rt_models)], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out == {"machine": "aarch64", "fixed_batch": 1, "same": True}


def test_matrix_cells_say_what_happened():
    from mnistkit.tools.pi.matrix import _cell_text

    ok = {"images": 500, "label_mismatches": 0, "max_abs_diff": 1e-7, "atol": 1e-5, "ok": True, "labels_ok": True}
    assert _cell_text({"loads": True, "runs": True, "parity": ok}, "b", "a") == "pass"
    assert _cell_text({"loads": True, "runs": True, "parity": ok}, "a", "a") == "reference"
    wide = ok | {"max_abs_diff": 0.03, "atol": 0.0117, "ok": False}
    assert _cell_text({"loads": True, "runs": True, "parity": wide}, "b", "a").startswith("pass (labels; max dp 3.0e-02")
    flip = wide | {"label_mismatches": 1, "labels_ok": False}
    assert _cell_text({"loads": True, "runs": True, "parity": flip}, "b", "a").startswith("parity FAIL: 499/500")
    no_load = {"loads": False, "runs": False, "error": "ModelError: Didn't find op for builtin opcode "
                                                      "'FULLY_CONNECTED' version '12'"}
    assert _cell_text(no_load, "b", "a") == "no load: FULLY_CONNECTED v12 unknown"
    died = {"loads": True, "runs": False, "error": "process died (exit -6) ...; one image at a time too (exit -6)"}
    assert _cell_text(died, "b", "a") == "loads, no run: the process died with SIGABRT (also one image at a time)"
