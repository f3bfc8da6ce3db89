"""The fuzzing child process: reads cases (JSON lines) on stdin, runs each, reports each on stdout.

For every case it prints ``{"start": id}`` before the work and ``{"id":..., "outcome":...}`` after,
so the parent knows which case was in flight when the process dies or stops answering. It imports
only the runtime (never TensorFlow), like a device would.

Outcome classes:
    ok           loaded/decoded and every answer finite, labels 0-9, strict JSON
    error        a typed mnistkit error with a one-line message (the expected way to fail)
    multiline    a typed error whose message spans several lines
    traceback    any other exception (what the user would see as a traceback)
    nan          a non-finite score or non-strict JSON reached the caller
    memory       MemoryError, or peak RSS above the cap (set by the parent)
"""

from __future__ import annotations

import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _digits() -> np.ndarray:
    """Three MNIST-style uint8 inputs (bars and a ring), fixed."""
    x = np.zeros((3, 28, 28), np.uint8)
    x[0, 5:23, 12:16] = 255
    x[1, 8:20, 8:20] = 200
    x[1, 11:17, 11:17] = 0
    x[2, 6:10, 6:22] = 180
    x[2, 6:22, 18:22] = 180
    return x


def run_case(case: dict, bases: dict[str, bytes], workdir: Path) -> tuple[str, str]:
    from mnistkit.runtime import Classifier
    from mnistkit.runtime.errors import MnistkitError
    from mnistkit.tools.fuzz.mutators import mutant

    kind, base = case["kind"], case["base"]
    data = mutant(kind, bases[base], case["seed"])
    suffix = Path(base).suffix
    path = workdir / f"case{suffix}"
    path.write_bytes(data)
    try:
        if kind == "image":
            preds = _classifier().classify(path if case["seed"] % 2 else data)
            proba = np.array([p.probabilities for p in preds], np.float32)
        else:
            clf = Classifier.load(path)
            x = _digits()
            proba = np.concatenate([clf.predict_proba(x), clf.predict_proba(x.astype(np.float32) / 255)])
            preds = clf.classify(x)
        if not np.isfinite(proba).all():
            return "nan", "non-finite probabilities reached the caller"
        json.dumps([p.to_dict() for p in preds], allow_nan=False)  # ValueError on NaN/inf
        if not all(0 <= p.label <= 9 for p in preds):
            return "traceback", "label out of range"
        return "ok", ""
    except MnistkitError as exc:
        text = str(exc)
        return ("multiline" if "\n" in text else "error"), f"{type(exc).__name__}: {text[:200]}"
    except MemoryError:
        return "memory", "MemoryError"
    except ValueError as exc:
        if "Out of range float values are not JSON compliant" in str(exc):
            return "nan", str(exc)[:200]
        return "traceback", f"{type(exc).__name__}: {str(exc)[:200]}"
    except Exception as exc:  # noqa: BLE001 - this is what the fuzzer looks for
        return "traceback", f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"


_CLF = None


def _classifier():
    global _CLF
    if _CLF is None:
        from mnistkit.runtime import Classifier
        from mnistkit.runtime.cli import DEFAULT_MODEL

        _CLF = Classifier.load(DEFAULT_MODEL)
    return _CLF


def peak_rss_mb() -> float:
    """This process's own peak resident memory in MB.

    Linux keeps ``ru_maxrss`` across fork and exec, so a worker started by a large parent (a pytest
    process holding TensorFlow, ~1.7 GB) would inherit the parent's peak; ``VmHWM`` belongs to this
    process's own address space. ``ru_maxrss`` is the fallback where /proc is missing.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    bases = {name: Path(name).read_bytes() for name in json.loads(sys.argv[1])}
    cap_mb = float(sys.argv[2])
    # The protocol gets a private copy of stdout; native libraries that print to fd 1 (some
    # interpreters do, for damaged files) write to stderr instead and cannot corrupt it.
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    with tempfile.TemporaryDirectory(prefix="mnistkit-fuzz-") as tmp:
        for line in sys.stdin:
            case = json.loads(line)
            out.write(json.dumps({"start": case["id"]}) + "\n")
            out.flush()
            t0 = time.perf_counter()
            outcome, detail = run_case(case, bases, Path(tmp))
            rss = peak_rss_mb()
            if rss > cap_mb and outcome != "memory":
                outcome, detail = "memory", f"peak RSS {rss:.0f} MB over the {cap_mb:.0f} MB cap ({outcome})"
            out.write(json.dumps({"id": case["id"], "outcome": outcome, "detail": detail,
                                  "ms": round((time.perf_counter() - t0) * 1e3, 2), "rss_mb": round(rss, 1)}) + "\n")
            out.flush()
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # The in-process loader is what is fuzzed (the harness rechecks crashed cases with the probe on).
    os.environ.setdefault("MNISTKIT_PROBE", "0")
    sys.exit(main())
