"""Runs INSIDE the interpreter under test (emulated aarch64, tflite-runtime venv, or the host).

Only the standard library, numpy and ``mnistkit.runtime`` may be imported here: this file is
executed by path (``python -P probe.py MODE JOB.json``) in environments without the rest of mnistkit.

Modes:
- ``cli``: run ``python -m mnistkit.runtime ARGS...`` in this process (``runpy``, exactly what ``-m``
  does), capture its stdout, then record its exit code and whether ``tensorflow`` got imported.
- ``predict``: load each artifact with ``Classifier.load(path, backend=...)`` and run
  ``predict_proba`` on an .npy batch; one JSON line per artifact (load/run status, errors,
  ``describe()``), probabilities saved as .npy. Lines are appended as they finish, so a crash in
  one artifact loses nothing that came before it. ``"batch": 1`` in the job runs the images one
  at a time instead of as one batch.
"""

from __future__ import annotations

import contextlib
import io
import json
import platform
import runpy
import sys
import traceback


def _env() -> dict:
    import numpy

    info = {"machine": platform.machine(), "python": platform.python_version(), "numpy": numpy.__version__}
    from importlib import metadata

    for dist in ("ai-edge-litert", "tflite-runtime", "onnxruntime", "mnistkit"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            info[dist] = metadata.version(dist)
    return info


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return f"{type(exc).__name__}: {text.splitlines()[0]}"


def cli(job: dict) -> None:
    out = io.StringIO()
    code = 0
    sys.argv = ["mnistkit.runtime", *job["args"]]
    with contextlib.redirect_stdout(out):
        try:
            runpy.run_module("mnistkit.runtime", run_name="__main__", alter_sys=True)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:  # noqa: BLE001 - report, do not hide
            code = 99
            print(traceback.format_exc(), file=sys.stderr)
    result = {
        "exit": code, "stdout": out.getvalue(), "env": _env(),
        "tensorflow_imported": any(m == "tensorflow" or m.startswith("tensorflow.") for m in sys.modules),
    }
    with open(job["result"], "w") as f:
        json.dump(result, f)


def predict(job: dict) -> None:
    import numpy as np

    from mnistkit.runtime import Classifier

    x = np.load(job["images"])
    with open(job["result"], "a") as log:
        log.write(json.dumps({"env": _env()}) + "\n")
        log.flush()
        for item in job["artifacts"]:
            rec = {"artifact": item["path"], "loads": False, "runs": False, "batch": job.get("batch") or len(x)}
            try:
                clf = Classifier.load(item["path"], backend=job["backend"])
                rec["loads"] = True
                rec["describe"] = clf.describe()
                # progress line: if the run kills the process, the caller still knows it loaded
                log.write(json.dumps({"artifact": item["path"], "event": "loaded"}) + "\n")
                log.flush()
                if job.get("batch") == 1:
                    proba = np.concatenate([clf.predict_proba(x[i:i + 1]) for i in range(len(x))])
                else:
                    proba = clf.predict_proba(x)
                np.save(item["out"], proba)
                rec["runs"] = True
            except Exception as exc:  # noqa: BLE001 - each cell records what happened
                rec["error"] = _first_line(exc)
            rec["tensorflow_imported"] = "tensorflow" in sys.modules
            log.write(json.dumps(rec) + "\n")
            log.flush()


def main() -> None:
    mode, job_path = sys.argv[1], sys.argv[2]
    with open(job_path) as f:
        job = json.load(f)
    {"cli": cli, "predict": predict}[mode](job)


if __name__ == "__main__":
    main()
