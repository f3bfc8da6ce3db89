"""Keep TensorFlow's native start-up chatter off a person's terminal.

TensorFlow's C++ side writes straight to file descriptor 2, some of it while ``import tensorflow``
runs (the oneDNN notice, absl's "All log messages before absl::InitializeLog()" warning), some of it
later (the "NodeDef mentions attribute use_unbounded_threadpool" error that every tf.data map
prints). Environment variables alone cannot silence all of it, so :func:`filtered_stderr` puts a
pipe on fd 2 and forwards every line except the known noise; anything else (a real error) still
reaches the terminal.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
from typing import Iterator, TextIO

NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|[IW]\d{4} [\d:. ]+\d+ [\w.]+:\d+\]"  # absl/glog INFO and WARNING lines from C++
    r"|E\d{4} [\d:. ]+\d+ node_def_util\.cc:\d+\] NodeDef mentions attribute use_unbounded_threadpool"
    r"|.*oneDNN custom operations are on"
    r"|.*This TensorFlow binary is optimized to use available CPU instructions"
    r"|To enable the following instructions: .* in other operations, rebuild TensorFlow"
    r")"
)
"""Lines dropped from stderr (matched at the start of each line)."""


def is_noise(line: str) -> bool:
    """True if ``line`` is TensorFlow start-up or tf.data chatter that :func:`filtered_stderr` drops."""
    return NOISE.match(line) is not None


@contextlib.contextmanager
def filtered_stderr(enabled: bool = True) -> Iterator[TextIO]:
    """Drop TensorFlow's noise lines from fd 2 while the block runs.

    Args:
        enabled: False changes nothing (``--verbose``).

    Yields:
        The stream for progress output: the original stderr, unfiltered, when it is a terminal (for
        a progress bar: ``sys.stderr`` is a pipe inside the block), else ``sys.stderr``.
    """
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no fd 2 (embedded interpreter)
        yield sys.stderr
        return
    real = os.fdopen(saved, "w", buffering=1, closefd=True)
    progress = real if real.isatty() else sys.stderr
    if not enabled:
        try:
            yield progress
        finally:
            real.flush()
            real.close()
        return
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    pump = threading.Thread(target=_pump, args=(read_end, real), daemon=True, name="stderr-filter")
    pump.start()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")  # what respects it need not be filtered
    try:
        yield progress
    finally:
        sys.stderr.flush()
        os.dup2(real.fileno(), 2)  # closes the pipe's last write end: the pump reads EOF
        pump.join(timeout=5)
        real.flush()
        real.close()


def _pump(read_end: int, out: TextIO) -> None:
    """Copy lines from ``read_end`` to ``out``, dropping noise, until EOF."""
    with os.fdopen(read_end, "r", errors="replace", newline="") as pipe:
        for line in pipe:
            if not is_noise(line):
                out.write(line)
                out.flush()
