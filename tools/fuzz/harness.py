"""Run fuzz cases in child processes with a timeout and a memory cap, batching many cases per child.

A child (``tools/fuzz/worker.py``) takes a list of cases; if it dies by a signal, stops answering
(hang) or exceeds the memory cap, the case in flight is counted under that outcome and a fresh child
takes the rest of the batch. Nothing a mutant does can stop the run.

Outcome classes: ok, error (typed one-line mnistkit error), and the failures: multiline, traceback,
nan, memory, hang, signal. ``FAILURES`` lists the ones CI refuses.
"""

from __future__ import annotations

import json
import os
import resource
import select
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

FAILURES = ("multiline", "traceback", "nan", "memory", "hang", "signal")
ROOT = Path(__file__).resolve().parents[2]


def default_bases() -> dict[str, list[Path]]:
    """The committed files the mutants are made from: kind -> paths."""
    assets = ROOT / "runtime" / "assets"
    damaged = ROOT / "tests" / "data" / "damaged"
    return {
        "tflite": [assets / "default.tflite", damaged / "tiny_ok.tflite", ROOT / "tests" / "data" / "fused_lstm16.tflite"],
        "onnx": [damaged / "tiny_ok.onnx"],
        "image": sorted((assets / "samples").iterdir()),
    }


@dataclass
class Result:
    """Counts per kind and outcome, with the first few failing cases of each class."""

    counts: dict[str, Counter] = field(default_factory=dict)
    error_types: dict[str, Counter] = field(default_factory=dict)
    crashed: list[dict] = field(default_factory=list)
    peak_rss_mb: float = 0.0
    examples: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    children: int = 0

    def add(self, case: dict, outcome: str, detail: str) -> None:
        self.counts.setdefault(case["kind"], Counter())[outcome] += 1
        if outcome == "signal":
            self.crashed.append(case)
        if outcome == "error":  # which typed error: "ModelError: ..." -> ModelError
            self.error_types.setdefault(case["kind"], Counter())[detail.split(":", 1)[0]] += 1
        if outcome in FAILURES and sum(e["outcome"] == outcome for e in self.examples) < 5:
            self.examples.append({**case, "outcome": outcome, "detail": detail})

    @property
    def failures(self) -> int:
        return sum(c[o] for c in self.counts.values() for o in FAILURES)

    def to_dict(self) -> dict:
        return {"counts": {k: dict(sorted(v.items())) for k, v in self.counts.items()},
                "error_types": {k: dict(v.most_common()) for k, v in self.error_types.items()},
                "cases": sum(sum(v.values()) for v in self.counts.values()),
                "failures": self.failures, "examples": self.examples,
                "seconds": round(self.seconds, 1), "child_processes": self.children,
                "peak_rss_mb": round(self.peak_rss_mb, 1)}


def make_cases(kind: str, bases: list[Path], count: int, seed0: int) -> list[dict]:
    """``count`` cases of one kind, cycling through ``bases`` (kind 'model' splits by suffix)."""
    return [{"id": f"{kind}-{seed0 + i}", "kind": _kind(kind, bases[i % len(bases)]),
             "base": str(bases[i % len(bases)]), "seed": seed0 + i} for i in range(count)]


def _kind(kind: str, base: Path) -> str:
    return {".tflite": "tflite", ".onnx": "onnx"}.get(base.suffix, "image") if kind != "image" else "image"


def _limits(as_mb: int):
    def apply() -> None:
        os.setsid()  # own process group: a hang is killed with everything it started
        cap = as_mb * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    return apply


def run(cases: list[dict], *, timeout_s: float = 30.0, rss_cap_mb: float = 1024, as_cap_mb: int = 4096,
        python: list[str] | None = None, env: dict | None = None, progress=None,
        per_child: int | None = None) -> Result:
    """Run ``cases`` and classify each outcome.

    Args:
        cases: from ``make_cases``.
        timeout_s: longest a single case may take before it counts as a hang.
        rss_cap_mb: peak resident memory above which a case counts as "memory".
        as_cap_mb: address-space limit of the child (stops a runaway allocation early).
        python: the interpreter command (e.g. an emulated aarch64 Python); default this one.
        env: environment of the child.
        progress: called with (done, total) after each case.
        per_child: most cases per child process (None: no limit). Under qemu the emulator's own
            translation cache grows with every case run (measured: ~1 GB after ~500 cases, while
            each case alone peaks at ~150 MB), so the Pi run starts a fresh child every 100.
    """
    result = Result()
    t0 = time.monotonic()
    bases = sorted({c["base"] for c in cases})
    cmd = [*(python or [sys.executable]), "-m", "mnistkit.tools.fuzz.worker", json.dumps(bases), str(rss_cap_mb)]
    todo = list(cases)
    done = 0
    while todo:
        result.children += 1
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                preexec_fn=_limits(as_cap_mb), env=env, cwd=str(ROOT))
        batch = todo[:per_child] if per_child else todo
        feed = "".join(json.dumps(c) + "\n" for c in batch).encode()
        _feed(proc, feed)
        by_id = {c["id"]: c for c in batch}
        finished: set[str] = set()
        in_flight, restart = None, False
        buf = b""
        while len(finished) < len(batch):
            line, buf, state = _readline(proc, buf, timeout_s)
            if state != "line":
                if in_flight is not None:
                    outcome = "hang" if state == "timeout" else "signal"
                    detail = f"no answer within {timeout_s:.0f} s" if state == "timeout" else _exit_text(proc)
                    result.add(by_id[in_flight], outcome, detail)
                    finished.add(in_flight)
                    done += 1
                _kill(proc)
                restart = True
                break
            try:
                rec = json.loads(line)
            except ValueError:  # not the protocol: stray output, ignore it
                continue
            if not isinstance(rec, dict):
                continue
            if "start" in rec:
                in_flight = rec["start"]
                continue
            case = by_id[rec["id"]]
            result.peak_rss_mb = max(result.peak_rss_mb, float(rec.get("rss_mb", 0.0)))
            result.add(case, rec["outcome"], rec["detail"])
            finished.add(rec["id"])
            in_flight = None
            done += 1
            if progress:
                progress(done, len(cases))
            if rec["outcome"] == "memory":  # its high-water mark stays: start afresh
                _kill(proc)
                restart = True
                break
        todo = [c for c in todo if c["id"] not in finished]
        if not restart:
            _kill(proc)
    result.seconds = time.monotonic() - t0
    return result


def _feed(proc: subprocess.Popen, data: bytes) -> None:
    """Write all cases to the child's stdin from a thread (the pipe may be smaller than the list)."""
    import threading

    def write() -> None:
        try:
            proc.stdin.write(data)
            proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass

    threading.Thread(target=write, daemon=True).start()


def _readline(proc: subprocess.Popen, buf: bytes, timeout_s: float) -> tuple[str, bytes, str]:
    deadline = time.monotonic() + timeout_s
    fd = proc.stdout.fileno()
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            return "", buf, "timeout"
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            proc.wait()
            return "", buf, "exit"
        buf += chunk
    line, _, rest = buf.partition(b"\n")
    return line.decode(), rest, "line"


def _exit_text(proc: subprocess.Popen) -> str:
    code = proc.wait()
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()
    for f in (proc.stdin, proc.stdout):
        try:
            f.close()
        except OSError:
            pass
