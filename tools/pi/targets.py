"""Where a probe runs: the host's Python, the tflite-runtime venv, or the emulated Pi."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from mnistkit.tools.pi import emu
from mnistkit.tools.pi.common import StepError

PROBE = Path(__file__).with_name("probe.py")


@dataclass(frozen=True)
class Target:
    """An interpreter to run ``probe.py`` in.

    Attributes:
        label: how tables name it, e.g. "aarch64 (emulated)".
        machine: "x86_64" or "aarch64".
        python: the host interpreter to use (None: the emulated aarch64 Python).
        sites: folders for ``PYTHONPATH`` (first wins).
        cpu: qemu CPU model (emulated targets only).
    """

    label: str
    machine: str
    python: Path | None = None
    sites: tuple[Path, ...] = field(default_factory=tuple)
    cpu: str = emu.DEFAULT_CPU

    @property
    def emulated(self) -> bool:
        """True for the qemu-emulated aarch64 Python."""
        return self.python is None

    def run(self, args: list[str], timeout: float = 3600) -> subprocess.CompletedProcess:
        """Run ``python -P ARGS`` in this target (output captured, exit code not checked)."""
        if self.emulated:
            return emu.run_python(["-P", *args], self.sites, cpu=self.cpu, timeout=timeout)
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
        env.pop("PYTHONPATH", None)
        if self.sites:
            env["PYTHONPATH"] = os.pathsep.join(map(str, self.sites))
        try:
            return subprocess.run([str(self.python), "-P", *args], env=env, capture_output=True, text=True,
                                  timeout=timeout)
        except subprocess.TimeoutExpired:
            raise StepError("run", f"{self.label}: no answer within {timeout:.0f} s") from None


def host(label: str = "x86_64") -> Target:
    """The Python running this tool (the project's own environment)."""
    return Target(label=label, machine=os.uname().machine, python=Path(sys.executable))


def probe_cli(target: Target, runtime_args: list[str], timeout: float = 3600) -> tuple[dict, float]:
    """Run ``python -m mnistkit.runtime RUNTIME_ARGS`` in ``target`` through the probe.

    Returns:
        ``(result, seconds)``: result holds ``exit``, ``stdout``, ``env``, ``tensorflow_imported``.

    Raises:
        StepError: the interpreter itself failed (crash, missing packages) so no result was written.
    """
    with tempfile.TemporaryDirectory(prefix="mnistkit-probe.") as tmp:
        job, result = Path(tmp) / "job.json", Path(tmp) / "result.json"
        job.write_text(json.dumps({"args": runtime_args, "result": str(result)}))
        start = time.perf_counter()
        proc = target.run([str(PROBE), "cli", str(job)], timeout=timeout)
        seconds = time.perf_counter() - start
        if not result.is_file():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [f"exit {proc.returncode}"]
            raise StepError("check", f"{target.label}: the runtime did not run (exit {proc.returncode}: {tail[0]})")
        out = json.loads(result.read_text())
        out["stderr"] = proc.stderr
        return out, seconds


def probe_predict(target: Target, backend: str, artifacts: list[Path], images: Path, out_dir: Path,
                  timeout: float = 3600) -> dict[str, dict]:
    """Load and run each artifact with ``backend`` in ``target`` on the .npy batch ``images``.

    Artifacts run in one process; if it dies (e.g. a segfault in a native runtime), the remaining
    ones are retried one process each, and the one that kills its process is recorded as a crash.
    If it died after loading, it is retried one image at a time; when that works the record runs
    and carries a ``note`` saying the batch crashed.

    Returns:
        ``{artifact path: record}`` with ``loads``, ``runs``, ``error``, ``describe``, ``proba``
        (path of the saved probabilities) and ``env``.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    records: dict[str, dict] = {}
    env: dict = {}

    def attempt(batch: list[Path], one_by_one: bool = False) -> subprocess.CompletedProcess:
        nonlocal env
        log = out_dir / f"log-{len(records)}-{time.monotonic_ns()}.jsonl"
        items = [{"path": str(a), "out": str(out_dir / f"{a.name}.npy")} for a in batch]
        job = out_dir / "job.json"
        job.write_text(json.dumps({"artifacts": items, "backend": backend, "images": str(images),
                                   "result": str(log), "batch": 1 if one_by_one else None}))
        proc = target.run([str(PROBE), "predict", str(job)], timeout=timeout)
        for line in log.read_text().splitlines() if log.is_file() else []:
            rec = json.loads(line)
            if "env" in rec:
                env = rec["env"]
            elif rec.get("event") == "loaded":
                loaded.add(rec["artifact"])
            else:
                if rec.get("runs"):
                    rec["proba"] = str(out_dir / f"{Path(rec['artifact']).name}.npy")
                records[rec["artifact"]] = rec
        return proc

    def died(proc: subprocess.CompletedProcess) -> str:
        tail = (proc.stderr or "").strip().splitlines()[-1:] or [""]
        return f"process died (exit {proc.returncode}) {tail[0]}".strip()

    loaded: set[str] = set()
    proc = attempt(artifacts)
    for art in [a for a in artifacts if str(a) not in records]:
        single = attempt([art]) if proc.returncode != 0 else proc
        if str(art) in records:
            continue
        crash = {"artifact": str(art), "loads": True if str(art) in loaded else None, "runs": False,
                 "error": died(single)}
        if str(art) in loaded:  # it loaded, then the batch run killed the process: try one image at a time
            again = attempt([art], one_by_one=True)
            rec = records.get(str(art))
            if rec and rec.get("runs"):
                rec["note"] = f"the whole batch killed the process ({crash['error']}); one image at a time works"
                continue
            crash["error"] += f"; one image at a time too ({died(again)})" if again.returncode else ""
        records[str(art)] = crash
    for rec in records.values():
        rec["env"] = env
    return records
