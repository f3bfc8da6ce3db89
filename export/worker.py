"""Run conversions in a child process so a native converter crash cannot take the caller down.

Parent side: :func:`run_isolated` starts ``python -m mnistkit.export.worker SPEC`` for one source
model and a list of (format, mode) jobs, and yields events as the child writes them to a JSON-lines
file. If the child dies (a signal such as SIGSEGV, or a non-zero exit), the job it was on becomes a
failed :class:`JobResult` naming the signal, and the remaining jobs continue in a fresh child.

Child side: :func:`main` loads the Keras model once, computes its test-set probabilities (the
reference for parity), then converts each job into the staging folder and describes the file.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from mnistkit.export.modes import ExportConfig, Format, Mode, artifact_name

SOURCE_PROBS = "source_probs.npy"
#: Test hook: "<format>:<mode>" makes the child kill itself with SIGSEGV when it starts that job.
CRASH_HOOK = "MNISTKIT_EXPORT_CRASH_AT"
_POLL_S = 0.1


@dataclass(frozen=True)
class Job:
    """One conversion: a format and a mode."""

    format: Format
    mode: Mode


@dataclass
class JobResult:
    """Outcome of one job: the staged file and its description, or a one-line error."""

    job: Job
    file: Path | None = None
    info: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Whether the conversion produced a file."""
        return self.error is None and self.file is not None


@dataclass(frozen=True)
class Event:
    """A progress event from the child: kind is 'source', 'start' or 'result'."""

    kind: str
    job: Job | None = None
    result: JobResult | None = None
    data: dict[str, Any] = field(default_factory=dict)


def exit_reason(code: int) -> str:
    """Human name of a child's exit status, e.g. 'SIGSEGV' or 'exit code 3'."""
    if code < 0:
        try:
            return signal.Signals(-code).name
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


def run_isolated(
    source: Path, jobs: list[Job], staging: Path, *, calibration_samples: int, seed: int,
    data_dir: str | None, parity_limit: int | None, timeout_s: float = 1800.0,
) -> Iterator[Event]:
    """Convert ``jobs`` of one source model in child processes, yielding events as they happen.

    Args:
        source: the ``.keras`` file.
        jobs: conversions to run, in order.
        staging: folder where the child writes artifacts (caller removes it).
        calibration_samples, seed, data_dir: see ExportConfig.
        parity_limit: test images for the source probabilities (None: all 10,000).
        timeout_s: a job with no progress for this long is killed and reported as failed.

    Yields:
        Event('source') once the reference probabilities are in ``staging/source_probs.npy``,
        Event('start', job) and Event('result', result=JobResult) per job.
    """
    pending = list(jobs)
    settings = {"calibration_samples": calibration_samples, "seed": seed, "data_dir": data_dir,
                "parity_limit": parity_limit}
    attempt, need_probs = 0, True
    while pending:
        attempt += 1
        child = _Child.start(source, pending, staging, attempt, settings, need_probs)
        try:
            yield from _follow(child, pending, timeout_s)
        finally:
            child.stop()  # Ctrl-C or an error in the caller: never leave the child behind
        need_probs = need_probs and not child.sent_probs
        if not pending:
            return
        yield from _blame_the_crash(child, pending, timeout_s)


@dataclass
class _Child:
    """One worker process and what it has reported so far."""

    proc: subprocess.Popen
    events: Path
    log: Path
    staging: Path
    offset: int = 0
    current: Job | None = None
    started_any: bool = False
    sent_probs: bool = False
    timed_out: bool = False
    code: int | None = None
    started_at: float = field(default_factory=time.monotonic)

    @classmethod
    def start(cls, source: Path, pending: list[Job], staging: Path, attempt: int, settings: dict[str, Any],
              need_probs: bool) -> _Child:
        """Write the job spec and start ``python -m mnistkit.export.worker SPEC``."""
        events_path, log_path = staging / f"events-{attempt}.jsonl", staging / f"child-{attempt}.log"
        spec = {
            "source": str(source), "jobs": [[j.format.value, j.mode.value] for j in pending],
            "calibration_samples": settings["calibration_samples"], "seed": settings["seed"],
            "data_dir": settings["data_dir"], "staging": str(staging), "events": str(events_path),
            "parity_limit": settings["parity_limit"] if need_probs else None, "source_probs": need_probs,
        }
        spec_path = staging / f"spec-{attempt}.json"
        spec_path.write_text(json.dumps(spec))
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"))
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-X", "faulthandler", "-m", "mnistkit.export.worker", str(spec_path)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            )
        return cls(proc, events_path, log_path, staging)

    def new_events(self) -> list[Event]:
        """Events the child wrote since the last call."""
        lines, self.offset = _read_new(self.events, self.offset)
        return [_event(rec, self.staging) for rec in lines]

    def stop(self) -> None:
        """Kill the child if it still runs."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _follow(child: _Child, pending: list[Job], timeout_s: float) -> Iterator[Event]:
    """Yield the child's events until it exits (or stalls for ``timeout_s``); finished jobs leave ``pending``."""
    last_progress = time.monotonic()
    while True:
        code = child.proc.poll()
        for ev in child.new_events():
            last_progress = time.monotonic()
            if ev.kind == "source":
                child.sent_probs = True
            elif ev.kind == "start":
                child.current, child.started_any, child.started_at = ev.job, True, time.monotonic()
            elif ev.kind == "result":
                pending.remove(ev.result.job)
                child.current = None
            elif ev.kind == "fatal":  # setup failed (unreadable model, missing data): every job fails with it
                for job in list(pending):
                    pending.remove(job)
                    yield Event("result", job, JobResult(job, error=ev.data["error"]))
                continue
            yield ev
        if code is not None:
            child.code = code
            return
        if time.monotonic() - last_progress > timeout_s:
            child.proc.kill()
            child.code, child.timed_out = child.proc.wait(), True
            return
        time.sleep(_POLL_S)


def _blame_the_crash(child: _Child, pending: list[Job], timeout_s: float) -> Iterator[Event]:
    """The child died with jobs left: fail the job it was on (the rest go to a fresh child), or
    every job when it died before starting any (a retry would die the same way)."""
    why = exit_reason(child.code)
    victim = child.current if child.current is not None else (pending[0] if child.started_any else None)
    if victim is None:
        tail = _log_tail(child.log)
        for job in list(pending):
            pending.remove(job)
            yield Event("result", job, JobResult(job, error=f"export worker died during setup ({why}){tail}"))
        return
    pending.remove(victim)
    crashed = f"made no progress for {timeout_s:.0f} s and was stopped" if child.timed_out else f"crashed with {why}"
    yield Event("result", victim, JobResult(
        victim, error=f"converter {crashed} (native crash, isolated in a child process)",
        seconds=round(time.monotonic() - child.started_at, 2)))


def _read_new(path: Path, offset: int) -> tuple[list[dict], int]:
    if not path.exists():
        return [], offset
    with open(path, "rb") as f:
        f.seek(offset)
        chunk = f.read()
    end = chunk.rfind(b"\n")
    if end < 0:
        return [], offset
    lines = [json.loads(ln) for ln in chunk[: end + 1].splitlines() if ln.strip()]
    return lines, offset + end + 1


def _event(rec: dict, staging: Path) -> Event:
    job = Job(Format(rec["format"]), Mode(rec["mode"])) if "format" in rec else None
    if rec["event"] == "result":
        res = JobResult(job, file=staging / rec["file"] if rec.get("file") else None, info=rec.get("info", {}),
                        error=rec.get("error"), seconds=rec.get("seconds", 0.0))
        return Event("result", job, res)
    return Event(rec["event"], job, data=rec)


def _log_tail(log_path: Path) -> str:
    try:
        lines = [ln for ln in log_path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return f": {lines[-1][:200]}" if lines else ""


# ----------------------------------------------------------------------------------------- child side


def _emit(path: str, **rec: Any) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(rec, default=str) + "\n")


def _first_line(exc: BaseException) -> str:
    text = next((ln for ln in str(exc).splitlines() if ln.strip()), "")
    return f"{type(exc).__name__}: {text}"[:300] if text else type(exc).__name__


def main(spec_path: str) -> int:
    """Child entry point: run the jobs in ``spec_path`` and report each as an event."""
    import numpy as np

    from mnistkit.export import base, diagnose
    from mnistkit.models.source import load_keras
    from mnistkit.runtime.errors import MnistkitError

    spec = json.loads(Path(spec_path).read_text())
    events, staging = spec["events"], Path(spec["staging"])
    try:
        model = load_keras(spec["source"])
        if spec["source_probs"]:
            from mnistkit.models.data import to_float

            t0 = time.monotonic()
            data = base.mnist(spec["data_dir"])
            x = to_float(data.x_test[: spec["parity_limit"]])
            np.save(staging / SOURCE_PROBS, model.predict(x, batch_size=500, verbose=0).astype(np.float32))
            _emit(events, event="source", file=SOURCE_PROBS, seconds=round(time.monotonic() - t0, 2))
    except MnistkitError as exc:
        _emit(events, event="fatal", error=str(exc))
        return 1
    crash_at = os.environ.get(CRASH_HOOK)
    for fmt, mode in spec["jobs"]:
        _emit(events, event="start", format=fmt, mode=mode)
        if crash_at == f"{fmt}:{mode}":  # fault injection for tests: a real native-style crash
            os.kill(os.getpid(), signal.SIGSEGV)
        t0 = time.monotonic()
        try:
            config = ExportConfig(fmt, mode, spec["calibration_samples"], spec["seed"], spec["data_dir"])
            module = base.exporter(config.format)
            blob, calibration = module.convert(model, config)
            name = artifact_name(model.name, config.format, config.mode)
            (staging / name).write_bytes(blob)
            info = module.inspect_file(staging / name)
            info["calibration"] = calibration
            info["graph"] = base.graph_kind(model.name, config.format, config.mode)
            errors = diagnose.manifest_errors(model, config)
            if errors is not None:
                info["layer_errors"] = errors
            _emit(events, event="result", format=fmt, mode=mode, file=name, info=info,
                  seconds=round(time.monotonic() - t0, 2))
        except MnistkitError as exc:
            _emit(events, event="result", format=fmt, mode=mode, error=str(exc))
        except Exception as exc:  # a converter bug must not stop the other jobs
            _emit(events, event="result", format=fmt, mode=mode,
                  error=f"{fmt} {mode} conversion failed: {_first_line(exc)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
