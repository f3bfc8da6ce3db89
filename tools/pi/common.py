"""Paths of the emulation cache, the step error, and a subprocess helper that fails in one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Mapping, Sequence

from mnistkit.runtime.errors import MnistkitError



class StepError(MnistkitError):
    """A step of the emulated-Pi setup or check failed; the message names the step and why."""

    def __init__(self, step: str, why: str) -> None:
        self.step = step
        self.why = " ".join(str(why).split())  # always one line
        super().__init__(f"pi step '{step}' failed: {self.why}")


def checkout_root() -> Path:
    """The mnistkit source checkout this tooling runs from.

    The Pi tooling builds the mnistkit wheel it installs on the emulated Pi from the sources, so it
    runs from a checkout (``pip install -e .``), not from an installed wheel.

    Raises:
        StepError: mnistkit is not imported from a source checkout.
    """
    root = Path(__file__).resolve().parents[2]  # tools/pi/common.py -> tools -> checkout
    if not ((root / "pyproject.toml").is_file() and (root / "runtime").is_dir() and (root / "tools").is_dir()):
        raise StepError("checkout", f"python -m mnistkit.tools.pi runs from a source checkout of mnistkit (it builds "
                                    f"the wheel it installs on the emulated Pi from the sources) and {root} is not "
                                    "one; clone the repository and run `pip install -e .` there")
    return root


def cache_dir() -> Path:
    """The cache folder: ``$MNISTKIT_PI_CACHE`` or ``<checkout>/.cache/pi``."""
    env = os.environ.get("MNISTKIT_PI_CACHE")
    return Path(env).resolve() if env else checkout_root() / ".cache" / "pi"


def log(msg: str) -> None:
    """Progress line on stderr (stdout stays for tables and JSON)."""
    print(f"[pi] {msg}", file=sys.stderr, flush=True)


def last_line(text: str) -> str:
    """The line of a tool's output that names the problem: its first error line, else its last line."""
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith(("E:", "ERROR:", "error:"))]
    return errors[0] if errors else (lines or ["(no output)"])[-1]


def run(
    step: str,
    cmd: Sequence[str],
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    cwd: str | os.PathLike | None = None,
) -> subprocess.CompletedProcess:
    """Run ``cmd`` capturing output; raise :class:`StepError` naming ``step`` if it fails.

    Args:
        step: Name of the step, used in the error message.
        cmd: The command and its arguments.
        env: Full environment for the child (default: inherit).
        timeout: Seconds before the command is killed.
        cwd: Working directory.

    Returns:
        The completed process (stdout/stderr as text).

    Raises:
        StepError: The command is missing, timed out or exited non-zero.
    """
    try:
        proc = subprocess.run(
            list(map(str, cmd)), capture_output=True, text=True, env=dict(env) if env else None,
            timeout=timeout, cwd=cwd,
        )
    except FileNotFoundError:
        raise StepError(step, f"command not found: {cmd[0]}") from None
    except subprocess.TimeoutExpired:
        raise StepError(step, f"timed out after {timeout:.0f} s: {' '.join(map(str, cmd[:3]))} ...") from None
    if proc.returncode != 0:
        raise StepError(step, f"exit {proc.returncode}: {last_line(proc.stderr or proc.stdout)}")
    return proc


class Stamp:
    """A 'step done' marker holding the step's inputs, so a step reruns only when they change."""

    def __init__(self, name: str, inputs: Mapping[str, object]) -> None:
        self.path = cache_dir() / "stamps" / f"{name}.json"
        self.inputs = dict(inputs)

    def done(self) -> bool:
        """True if the step already ran with the same inputs."""
        try:
            return json.loads(self.path.read_text())["inputs"] == json.loads(json.dumps(self.inputs))
        except (OSError, ValueError, KeyError):
            return False

    def mark(self, **result: object) -> None:
        """Record the step as done (with optional result details)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"inputs": self.inputs, "result": result, "time": time.time()}, indent=2))
        os.replace(tmp, self.path)

    def result(self) -> dict:
        """The result recorded by :meth:`mark` (empty if none)."""
        try:
            return json.loads(self.path.read_text()).get("result", {})
        except (OSError, ValueError):
            return {}
