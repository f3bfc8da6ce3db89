"""A cached x86_64 virtual environment with tflite-runtime 2.14 (the last release) and numpy<2.

tflite-runtime 2.14 crashes on numpy 2 (``_ARRAY_API not found``), so it cannot share the project's
environment. mnistkit itself comes from ``site-mnistkit`` on ``PYTHONPATH`` (the same wheel the
emulated Pi runs).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from mnistkit.tools.pi.common import Stamp, StepError, cache_dir, log, run

REQUIREMENTS = ["tflite-runtime==2.14.0", "numpy<2", "pillow>=10.0,<14", "click>=8.1,<9"]


def venv_dir() -> Path:
    """``$MNISTKIT_TFLRT_VENV`` or ``<cache>/venv-tflrt``."""
    env = os.environ.get("MNISTKIT_TFLRT_VENV")
    return Path(env) if env else cache_dir() / "venv-tflrt"


def venv_python() -> Path:
    """The venv's interpreter (may not exist yet)."""
    return venv_dir() / "bin" / "python"


def base_python() -> str:
    """A CPython 3.11 to create the venv from (tflite-runtime 2.14 has cp311 wheels)."""
    exe = getattr(sys, "_base_executable", None) or sys.executable
    if sys.version_info[:2] != (3, 11):
        exe = shutil.which("python3.11") or ""
        if not exe:
            raise StepError("tflrt-venv", "tflite-runtime 2.14 needs CPython 3.11 (no python3.11 found)")
    return exe


def ensure_venv() -> Path:
    """Create (or reuse) the venv; return its python.

    Raises:
        StepError: the venv or the install failed.
    """
    step = "tflrt-venv"
    target = venv_dir()
    stamp = Stamp(step, {"requirements": REQUIREMENTS, "path": str(target)})
    if stamp.done() and venv_python().is_file():
        return venv_python()
    log(f"creating {target} with {' '.join(REQUIREMENTS)}")
    if target.exists():
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    run(step, [base_python(), "-m", "venv", str(target)], timeout=300)
    try:
        run(step, [str(venv_python()), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                   "--only-binary=:all:", *REQUIREMENTS], timeout=1200)
        run(step, [str(venv_python()), "-c", "import tflite_runtime.interpreter, numpy"], timeout=120)
    except StepError:
        shutil.rmtree(target, ignore_errors=True)
        raise
    stamp.mark()
    return venv_python()


def available() -> Path | None:
    """The venv's python if the venv was built and imports tflite-runtime, else None (no building)."""
    py = venv_python()
    if not py.is_file() or not Stamp("tflrt-venv", {"requirements": REQUIREMENTS, "path": str(venv_dir())}).done():
        return None
    return py


