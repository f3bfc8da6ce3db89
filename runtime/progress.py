"""A one-line progress bar for bulk jobs on stderr: done, images/s, ETA. Only on a terminal.

The total is counted in a background thread while the job already runs (listing a million files
takes a while), so the bar starts at once and gains its percentage and ETA when the count is in.
"""

from __future__ import annotations

import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import TextIO


class Progress:
    """Redraws one status line at most ``interval`` seconds apart; ``write`` prints above it."""

    def __init__(self, stream: TextIO | None = None, *, enabled: bool | None = None, interval: float = 0.2):
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.interval = interval
        self.total: int | None = None
        self._start = time.perf_counter()
        self._last = 0.0
        self._shown = False
        self._base = 0  # images done before this run (resume), not counted in the rate

    def count_in_background(self, counter: Callable[[], Iterable], already_done: int = 0) -> None:
        """Count the job's sources in a daemon thread; ``already_done`` are skipped ones."""
        if not self.enabled:
            return

        def work() -> None:
            n = sum(1 for _ in counter())
            self.total = max(0, n - already_done)

        threading.Thread(target=work, name="mnistkit-count", daemon=True).start()

    def update(self, done: int, failed: int, *, force: bool = False) -> None:
        """Redraw the line for ``done`` images handled (``failed`` of them failed)."""
        if not self.enabled:
            return
        now = time.perf_counter()
        if not force and now - self._last < self.interval:
            return
        self._last = now
        elapsed = now - self._start
        rate = done / elapsed if elapsed > 0 else 0.0
        total = self.total
        parts = [f"{done:,}" + (f"/{total:,}" if total else "") + " images"]
        if total:
            frac = min(1.0, done / total)
            width = 20
            fill = int(frac * width)
            parts.insert(0, "[" + "#" * fill + "-" * (width - fill) + f"] {frac:4.0%}")
        parts.append(f"{rate:,.0f} img/s")
        if total and rate > 0:
            parts.append("ETA " + _clock(max(0.0, (total - done) / rate)))
        if failed:
            parts.append(f"{failed:,} failed")
        line = "  ".join(parts)
        cols = shutil.get_terminal_size((100, 20)).columns
        self.stream.write("\r" + line[: cols - 1].ljust(min(cols - 1, 79)))
        self.stream.flush()
        self._shown = True

    def write(self, text: str) -> None:
        """Print ``text`` on its own line(s), above the bar."""
        if self._shown:
            self.stream.write("\r\x1b[K")
        self.stream.write(text + "\n")
        self.stream.flush()
        self._last = 0.0  # redraw at the next update

    def close(self) -> None:
        """Clear the bar (the summary follows on a clean line)."""
        if self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._shown = False


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    return f"{h}:{rem // 60:02d}:{rem % 60:02d}" if h else f"{rem // 60}:{rem % 60:02d}"
