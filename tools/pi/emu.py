"""Run a Python command on the emulated Pi (aarch64 CPython 3.11 under qemu-aarch64-static)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Sequence

from mnistkit.tools.pi.common import StepError
from mnistkit.tools.pi.sysroot import find_qemu, python_path, sysroot_dir

#: Raspberry Pi 4. QEMU's default ("max") enables SME, with which XNNPACK computed a wrong class.
DEFAULT_CPU = "cortex-a72"


def command(args: Sequence[str | os.PathLike], sites: Sequence[Path], cpu: str = DEFAULT_CPU
            ) -> tuple[list[str], dict[str, str]]:
    """The argv and environment that run ``python3.11 ARGS`` on the emulated Pi.

    ``QEMU_LD_PREFIX=SYSROOT QEMU_CPU=cpu PYTHONPATH=SITES qemu-aarch64-static SYSROOT/usr/bin/python3.11 ARGS``

    Args:
        args: Arguments for the aarch64 ``python3.11``.
        sites: Folders to put on ``PYTHONPATH`` (first wins).
        cpu: qemu CPU model (``cortex-a72`` = Pi 4, ``cortex-a76`` = Pi 5).

    Raises:
        StepError: qemu or the sysroot is missing.
    """
    qemu = find_qemu()
    if not python_path().is_file():
        raise StepError("run", f"no emulated Python at {python_path()}; run `make pi-setup` first")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "LANG": "C.UTF-8",
        "QEMU_LD_PREFIX": str(sysroot_dir()),
        "QEMU_CPU": cpu,
        "PYTHONPATH": os.pathsep.join(str(s) for s in sites),
    }
    return [qemu, str(python_path()), *map(str, args)], env


def run_python(args: Sequence[str | os.PathLike], sites: Sequence[Path], cpu: str = DEFAULT_CPU,
               timeout: float = 1800, cwd: str | os.PathLike | None = None) -> subprocess.CompletedProcess:
    """Run ``python3.11 ARGS`` on the emulated Pi; return the completed process (never raises on exit code)."""
    argv, env = command(args, sites, cpu)
    try:
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, cwd=cwd)
    except subprocess.TimeoutExpired:
        raise StepError("run", f"the emulated Python did not finish within {timeout:.0f} s") from None
