"""Try an unverifiable model in a child process before loading it in this one.

LiteRT verifies a file's flatbuffer structure, and ``tflite_check`` checks offsets and indices, but
a damaged file can still be well-formed and wrong: an operator input pointing at a tensor of
another type or shape, or at "no tensor" (-1) where the kernel needs one. The native kernel then
reads out of bounds and the process dies by SIGSEGV, which no Python code can catch (the fuzzing
harness found 5 in 20,000 model mutants). So a file that can be verified neither by its manifest
nor by its embedded digest is first loaded and run once in a child process: if the child dies or
hangs, loading raises ``ModelError`` here instead of killing the caller. Files ``mnistkit export``
wrote (verified) skip this; ``MNISTKIT_PROBE=0`` (or ``Classifier.load(..., probe=False)``) turns
it off.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from mnistkit.runtime.errors import ModelError

_CHILD = r"""
import sys
import numpy as np
from mnistkit.runtime import backends
from mnistkit.runtime.errors import MnistkitError
content = sys.stdin.buffer.read()
try:
    engine = backends.module(sys.argv[1]).load(content, name=sys.argv[2], threads=1)
    x = np.zeros((3, 28, 28), np.uint8)
    x[:, 5:23, 12:16] = 255
    engine.run(x)
    engine.run(x[:1])
    engine.run(x.astype(np.float32) / 255)
except MnistkitError:
    pass  # the caller raises the same typed error in its own process
except Exception:
    pass
print("survived")
"""


def enabled(flag: bool | None) -> bool:
    """Whether to probe: the explicit flag, else ``MNISTKIT_PROBE`` (default on)."""
    if flag is not None:
        return flag
    return os.environ.get("MNISTKIT_PROBE", "1").strip().lower() not in ("0", "false", "no", "off")


def probe(content: bytes, backend: str, name: str, timeout_s: float = 120.0) -> None:
    """Load and run ``content`` once on ``backend`` in a child process.

    Raises:
        ModelError: the child died by a signal or did not finish within ``timeout_s``.
    """
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
           "TF_CPP_MIN_LOG_LEVEL": "3"}
    try:
        proc = subprocess.run([sys.executable, "-c", _CHILD, backend, name], input=content,
                              capture_output=True, timeout=timeout_s, env=env)
    except subprocess.TimeoutExpired:
        raise ModelError(f"{name} did not finish a test run on {backend} within {timeout_s:.0f} s; "
                         "the file is damaged: re-export it") from None
    except OSError as exc:  # no child process possible (e.g. an emulated interpreter that cannot
        # exec itself): loading goes ahead in-process, as it would with the probe off
        import logging

        logging.getLogger("mnistkit.runtime").debug("load probe skipped for %s: %s", name, exc)
        return
    if proc.returncode < 0:
        try:
            sig = signal.Signals(-proc.returncode).name
        except ValueError:
            sig = f"signal {-proc.returncode}"
        raise ModelError(f"{name} crashed the {backend} interpreter ({sig}) in a test run in a child "
                         "process; the file is damaged: re-export it")
