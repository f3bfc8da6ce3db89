"""Start ``mnistkit serve`` as a child process on a free loopback port and wait until it answers.

Used by the tests, the browser test and the load script, so all of them talk to a real server
process over real HTTP, the way a user's client does.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field

URL_RE = re.compile(r"(http://\S+?/)\s")


@dataclass
class Running:
    """A started server: its process, URL, and what it printed so far (read by a thread)."""

    proc: subprocess.Popen
    url: str
    startup_s: float
    output: list[str] = field(default_factory=list)
    startup_cpu_s: float | None = None  # CPU time (user + system) the process had used when it answered

    def stop(self, sig: int | None = None, timeout: float = 15.0) -> int:
        """Stop it (SIGINT, as Ctrl-C, unless ``sig``); return its exit code."""
        import signal

        if self.proc.poll() is None:
            self.proc.send_signal(sig or signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode

    def text(self) -> str:
        """Everything the server printed (stdout and stderr interleaved)."""
        time.sleep(0.05)
        return "".join(self.output)


def start(*args: str, prelude: str = "", timeout: float = 60.0, env: dict | None = None,
          python: list[str] | None = None) -> Running:
    """Run ``mnistkit serve --port 0 ARGS`` (in ``sys.executable``) and wait for /healthz.

    Args:
        args: extra ``mnistkit serve`` options.
        prelude: Python code run before the CLI in the child (e.g. to block a module).
        timeout: seconds to wait for the URL and the first /healthz answer.
        env: environment of the child (default: this one).
        python: the interpreter's argv (default ``[sys.executable]``; e.g. an emulated Pi's under qemu).

    Returns:
        The running server; ``startup_s`` is from spawning the process to the first /healthz answer.

    Raises:
        RuntimeError: it exited or did not answer in time (with what it printed).
    """
    code = (prelude + "\nimport sys\nfrom mnistkit.tools.cli import cli\n"
            "cli.main(args=['serve', '--port', '0', *sys.argv[1:]], prog_name='mnistkit')\n")
    t0 = time.perf_counter()
    proc = subprocess.Popen([*(python or [sys.executable]), "-u", "-c", code, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env or dict(os.environ))
    running = Running(proc, "", 0.0)
    found = threading.Event()

    def pump() -> None:
        for line in proc.stdout:
            running.output.append(line)
            m = URL_RE.search(line)
            if m and not running.url:
                running.url = m.group(1)
                found.set()

    threading.Thread(target=pump, daemon=True).start()
    deadline = t0 + timeout
    while not found.wait(0.02):
        if proc.poll() is not None or time.perf_counter() > deadline:
            running.stop()
            raise RuntimeError(f"mnistkit serve did not start: {running.text()[-2000:]}")
    while True:
        try:
            with urllib.request.urlopen(running.url + "healthz", timeout=5) as res:
                if res.status == 200:
                    break
        except OSError:
            if proc.poll() is not None or time.perf_counter() > deadline:
                running.stop()
                raise RuntimeError(f"mnistkit serve does not answer: {running.text()[-2000:]}") from None
            time.sleep(0.02)
    running.startup_s = time.perf_counter() - t0
    running.startup_cpu_s = cpu_seconds(proc.pid)
    return running


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) a process has used so far, from /proc (Linux; None elsewhere).

    Unlike wall time it barely depends on what else the machine runs, so start-up measured on a
    shared machine is best compared by it.
    """
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None
