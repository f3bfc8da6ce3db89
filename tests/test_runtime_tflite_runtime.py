"""The legacy tflite-runtime backend against the real tflite-runtime 2.14 (numpy<2, own venv).

tflite-runtime cannot live in the project's environment (it crashes on numpy 2), so these tests run
a child process in a venv that has it: ``$MNISTKIT_TFLRT_PYTHON`` or the one ``make pi-setup``
builds (.cache/pi/venv-tflrt). Without such a venv they skip and say so. The child imports this
checkout's runtime/ (copied to a temporary ``mnistkit/runtime`` on PYTHONPATH).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from _fixtures_runtime import rt_models  # noqa: F401

RUNTIME = Path(__file__).resolve().parents[1] / "runtime"

CHILD = r"""
import json, sys
import numpy as np
from mnistkit.runtime import Classifier
from mnistkit.runtime.errors import MnistkitError
d = sys.argv[1]
x = np.load(d + "/x_eval.npy").astype(np.float32) / 255
out = {}
for name in ["mlp_none.tflite", "mlp_int8.tflite", "mlp_uint8.tflite", "mlp_fixed1.tflite",
             "lstm_none.tflite", "fused_lstm16.tflite", "mlp_dynamic.tflite", "mlp_truncated.tflite",
             "garbage.tflite"]:
    try:
        clf = Classifier.load(d + "/" + name, backend="tflite-runtime")
        p = clf.predict_proba(x)
        one = np.concatenate([clf.predict_proba(x[i:i + 1]) for i in range(len(x))])
        out[name] = {"backend": clf.backend, "p": p.tolist(), "batch_vs_one": float(np.abs(p - one).max())}
    except MnistkitError as exc:
        out[name] = {"error": type(exc).__name__, "message": str(exc)}
print(json.dumps(out))
"""


def _python() -> str:
    env = os.environ.get("MNISTKIT_TFLRT_PYTHON")
    if env:
        return env
    try:
        from mnistkit.tools.pi import tflrt
    except ImportError:
        tflrt = None
    py = tflrt.available() if tflrt else None
    if py is None:
        pytest.skip("no tflite-runtime 2.14 venv: set MNISTKIT_TFLRT_PYTHON or run `make pi-setup`")
    return str(py)


def test_tflite_runtime_backend(rt_models, tmp_path):
    python = _python()
    shutil.copytree(RUNTIME, tmp_path / "mnistkit" / "runtime",
                    ignore=shutil.ignore_patterns("__pycache__", "assets"))
    proc = subprocess.run([python, "-c", CHILD, str(rt_models)], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr[-2000:]  # no crash, even on the damaged files
    out = json.loads(proc.stdout.strip().splitlines()[-1])

    import numpy as np

    from mnistkit.runtime import Classifier

    x = np.load(rt_models / "x_eval.npy").astype(np.float32) / 255
    for name in ("mlp_none.tflite", "mlp_int8.tflite", "mlp_uint8.tflite", "mlp_fixed1.tflite",
                 "lstm_none.tflite", "fused_lstm16.tflite"):
        got = out[name]
        assert got.get("backend") == "tflite-runtime", got
        assert got["batch_vs_one"] < 1e-5
        ref = Classifier.load(rt_models / name).predict_proba(x)
        assert (np.array(got["p"]).argmax(1) == ref.argmax(1)).mean() >= 0.98, name
    assert out["mlp_dynamic.tflite"]["error"] == "ModelError"  # FULLY_CONNECTED v12 is too new
    assert "pip install ai-edge-litert" in out["mlp_dynamic.tflite"]["message"]
    for name in ("mlp_truncated.tflite", "garbage.tflite"):
        assert out[name]["error"] == "ModelError" and "not a valid TFLite model" in out[name]["message"]
