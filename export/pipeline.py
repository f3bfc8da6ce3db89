"""The export pipeline (``mnistkit.export.export`` and ``mnistkit export``): plan, convert in
isolation, prove parity, publish.

For one source model and a set of (format, mode) pairs: refuse existing outputs before any work,
convert every pair in a child process (``mnistkit.export.worker``), run each staged file through
the device runtime against the Keras model, and publish the file and its manifest only when parity
holds. A combination that cannot be delivered fails with one line saying why and what to use
instead; the others go on. Staged files live in a hidden folder inside the output folder (same
file system, so publishing is an atomic rename) and are removed on any exit, Ctrl-C included.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from mnistkit.export import manifest as manifest_mod
from mnistkit.export import parity as parity_mod
from mnistkit.export.base import census_note, check_out_dir, exporter
from mnistkit.export.mode_rules import KNOWN_LIMITS, suggestion, thresholds_for
from mnistkit.export.modes import ALL_FORMATS, ExportConfig, Format, Mode, artifact_name, parse_format, parse_mode
from mnistkit.export.worker import SOURCE_PROBS, Job, JobResult, run_isolated
from mnistkit.models.artifacts import write_bytes_atomic
from mnistkit.models.source import SourceModel, resolve_source
from mnistkit.runtime.errors import MnistkitError, OutputExistsError
from mnistkit.runtime.manifest import manifest_path

Echo = Callable[[str], None]


@dataclass
class Outcome:
    """What happened to one (format, mode) pair."""

    job: Job
    target: Path
    ok: bool
    message: str
    seconds: float = 0.0
    result: parity_mod.ParityResult | None = None
    size_ratio: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {
            "format": self.job.format.value, "mode": self.job.mode.value, "file": str(self.target),
            "ok": self.ok, "message": self.message, "conversion_seconds": self.seconds,
            "size_ratio_vs_float32": self.size_ratio,
            "parity": self.result.to_dict() if self.result else None,
        }


def plan(source: SourceModel, formats: list[Format], modes: list[Mode], out_dir: Path, force: bool) -> list[tuple[Job, Path]]:
    """Targets of every pair; refuses existing outputs (artifact or manifest) unless ``force``.

    Raises:
        OutputExistsError: some target exists and ``force`` is False.
    """
    pairs = [(Job(f, m), out_dir / artifact_name(source.name, f, m)) for f in formats for m in modes]
    if not force:
        existing = [p for j, t in pairs for p in (t, manifest_path(t), *_companion_paths(j, t)) if p.exists()]
        if existing:
            more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
            raise OutputExistsError(f"{existing[0]} already exists{more}; pass --force to overwrite or choose another --out")
    return pairs


def _float_size(source: SourceModel, fmt: Format, out_dir: Path, sizes: dict[Format, int]) -> int | None:
    if fmt in sizes:
        return sizes[fmt]
    ref = out_dir / artifact_name(source.name, fmt, Mode.NONE)
    try:
        import json

        data = json.loads(manifest_path(ref).read_text())
        if data["source"]["sha256"] == source.sha256 and ref.is_file():
            from mnistkit.runtime import embedded

            return ref.stat().st_size - embedded.block_size(ref.read_bytes())
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def _companion_paths(job: Job, target: Path) -> list[Path]:
    """Files a format writes beside its artifact (TFLM: C sources), from ``companion_names``."""
    names = getattr(exporter(job.format), "companion_names", None)
    return [target.with_name(n) for n in names(target.name)] if names else []


def _publish(staged: Path, target: Path, manifest: dict, companions: dict[str, bytes] | None = None) -> None:
    """Move ``staged`` onto ``target`` and write its manifest (and companion files), with Ctrl-C
    held off in between."""
    blocked = hasattr(signal, "pthread_sigmask")
    if blocked:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        for name, data in (companions or {}).items():
            write_bytes_atomic(target.with_name(name), data)
        os.replace(staged, target)
        manifest_mod.write(manifest, target)
    finally:
        if blocked:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})


def _embed_metadata(path: Path, source: SourceModel, job: Job, info: dict, result) -> None:
    """Rewrite the staged file with the manifest essentials and its content digest inside."""
    import datetime as _dt

    from mnistkit.export import embed

    fields = embed.essentials({
        "model": source.name, "format": job.format.value, "mode": job.mode.value,
        "input": info["input"], "source": {"sha256": source.sha256}, "parity": result.to_dict(),
        "exported_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")})
    mode = path.stat().st_mode & 0o777
    write_bytes_atomic(path, embed.embed(path.read_bytes(), job.format.ext, fields))  # tflm files are .tflite
    os.chmod(path, mode)  # the atomic writer's temp file is 0600


def _why_failed(source: SourceModel, job: Job, problem: str) -> str:
    known = KNOWN_LIMITS.get((source.name, job.format, job.mode))
    why = f"{problem}: {known}" if known else problem
    return f"{why}; not written; {suggestion(source.name, job.format, job.mode)}"


def _where_precision_went(source: SourceModel, config: ExportConfig) -> str:
    """'; worst tensors: ...' for a quantized TFLite file that missed parity ('' when not applicable)."""
    if config.format is not Format.TFLITE or config.mode in (Mode.NONE, Mode.FLOAT16):
        return ""
    from mnistkit.export import diagnose

    try:  # the diagnosis rebuilds the graph (TensorFlow); it must never hide the parity verdict
        rows = diagnose.layer_errors(str(source.path), config.format.value, config.mode.value, count=64,
                                     calibration_samples=config.calibration_samples, seed=config.seed,
                                     data_dir=config.data_dir)
    except Exception:  # noqa: BLE001
        return ""
    return f"; {diagnose.worst_summary(rows)}; `mnistkit parity --layers` prints the table" if rows else ""


def _silent(_: str) -> None:
    pass


def expand(values: Iterable[str | Format | Mode], kind: type[Format] | type[Mode]) -> list:
    """Formats or modes as enum members in their canonical order; ``"all"`` means every mode, or the
    formats of ``ALL_FORMATS`` (tflm, int8-only, only when named).

    Raises:
        UsageError: an unknown name.
    """
    values = [values] if isinstance(values, str) else list(values)
    if "all" in values:
        if kind is Mode:
            return list(Mode)
        return [f for f in Format if f in ALL_FORMATS or (f is Format.TFLM and (f in values or f.value in values))]
    parse = parse_format if kind is Format else parse_mode
    wanted = {parse(v) for v in values}
    return [member for member in kind if member in wanted]


@dataclass
class _Run:
    """What every step of one export call shares: the source, the settings, the parity images."""

    source: SourceModel
    out: Path
    configs: dict[Job, ExportConfig]
    overrides: dict[str, float | None] | None
    x: np.ndarray
    labels: np.ndarray
    echo: Echo
    src_probs: np.ndarray | None = None
    float_sizes: dict[Format, int] = field(default_factory=dict)


def export(
    source_arg: str | os.PathLike, formats: Iterable[str | Format], modes: Iterable[str | Mode],
    out_dir: str | os.PathLike, *,
    calibration_samples: int = 200, seed: int = 0, force: bool = False, data_dir: str | None = None,
    parity_limit: int | None = None, overrides: dict[str, float | None] | None = None,
    echo: Echo = _silent, progress: Echo = _silent,
) -> list[Outcome]:
    """Export ``source_arg`` to every (format, mode) pair, proving parity for each.

    Args:
        source_arg: a ``.keras`` file or a training run folder holding ``model.keras``.
        formats: "tflite", "onnx" or "all" (names or ``Format`` members, one or several).
        modes: "none", "float16", "dynamic", "int8", "int16x8" or "all" (names or ``Mode`` members).
        out_dir: output folder (created if needed).
        calibration_samples, seed: calibration of int8/int16x8 (stratified draw from the train split).
        force: overwrite existing outputs (otherwise OutputExistsError before any work).
        data_dir: MNIST folder (None: MNISTKIT_DATA or the Keras cache).
        parity_limit: number of test images for parity (None: all 10,000).
        overrides: threshold overrides, field name -> value (see ``mode_rules.thresholds_for``).
        echo: receives one check or failure line per pair (default: silent).
        progress: receives progress lines (default: silent).

    Returns:
        One Outcome per pair, in order; ``ok`` is False for a pair that could not be delivered
        (``message`` says why and what to use instead), and nothing is written for it.

    Raises:
        MnistkitError: bad source, bad settings, unwritable or occupied output (before any work).
    """
    from mnistkit.export.base import mnist
    from mnistkit.models.data import to_float

    source = resolve_source(source_arg)
    formats, modes = expand(formats, Format), expand(modes, Mode)
    configs = {Job(f, m): ExportConfig(f, m, calibration_samples, seed, data_dir) for f in formats for m in modes}
    out = Path(out_dir).expanduser()
    created = not out.exists()
    pairs = plan(source, formats, modes, out, force)
    out = check_out_dir(out)
    data = mnist(data_dir)
    run = _Run(source, out, configs, overrides,
               to_float(data.x_test[:parity_limit]), data.y_test[:parity_limit], echo)
    staging = Path(tempfile.mkdtemp(prefix=".mnistkit-export-", dir=out))
    try:
        progress(f"exporting {source.name} ({source.path}) to {len(pairs)} format/mode pair(s); "
                 f"parity on {len(run.labels)} test images")
        return _convert_check_publish(run, pairs, staging, parity_limit, progress)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()


def _convert_check_publish(run: _Run, pairs: list[tuple[Job, Path]], staging: Path, parity_limit: int | None,
                           progress: Echo) -> list[Outcome]:
    """Follow the child's events: keep the source's probabilities, then check and publish each file."""
    if not pairs:
        return []
    targets = dict(pairs)
    outcomes: list[Outcome] = []
    settings = run.configs[pairs[0][0]]  # calibration and data settings are the same for every pair
    events = run_isolated(
        run.source.path, [j for j, _ in pairs], staging, calibration_samples=settings.calibration_samples,
        seed=settings.seed, data_dir=settings.data_dir, parity_limit=parity_limit,
    )
    try:
        for ev in events:
            if ev.kind == "source":
                run.src_probs = np.load(staging / SOURCE_PROBS)
            elif ev.kind == "start":
                progress(f"[{len(outcomes) + 1}/{len(pairs)}] converting {run.source.name} -> "
                         f"{ev.job.format.value} {ev.job.mode.value} ...")
            else:
                outcomes.append(_check_and_publish(run, ev.result, targets[ev.job]))
    finally:
        events.close()  # stops a still-running child (Ctrl-C, or an error here)
    return outcomes


def _check_and_publish(run: _Run, res: JobResult, target: Path) -> Outcome:
    """One converted file: refuse it (conversion failed, runtime cannot run it, parity missed), or
    embed its metadata, write its manifest and publish it."""
    job = res.job
    if not res.ok:
        return _refuse(run, res, target, res.error)
    try:
        result = _parity(run, res, target)
    except MnistkitError as exc:
        return _refuse(run, res, target, f"the runtime cannot run the converted file ({exc})")
    ratio = _size_ratio(run, job, res.file.stat().st_size)  # the model itself, before its ~0.5 KB metadata block
    if result.passed:  # the file carries who it is and a digest of itself (no computation changes)
        _embed_metadata(res.file, run.source, job, res.info, result)
    result.size_bytes = res.file.stat().st_size
    if "tflm" in res.info:  # the array a board flashes is the published file, metadata included
        res.info["tflm"]["flash_bytes"] = result.size_bytes
    run.echo(parity_mod.check_line(result, ratio) + _tflm_figures(res.info))
    notes = _notes(job, res, ratio)
    for note in notes:
        run.echo(f"  note: {note}")
    config = run.configs[job]
    if not result.passed:
        where = _where_precision_went(run.source, config)
        return _refuse(run, res, target, "parity failed (" + "; ".join(result.failures) + ")" + where, result, ratio)
    fmt_module = exporter(job.format)
    parity = result.to_dict() | {"size_ratio_vs_float32": ratio, "runtime": "mnistkit.runtime.Classifier",
                                 "backend": _parity_backend(job) or "default"}
    data = manifest_mod.build(artifact=res.file, final_name=target.name, source=run.source, config=config,
                              info=res.info, parity=parity, seconds=res.seconds, notes=notes)
    companions = None
    if hasattr(fmt_module, "companion_files"):
        companions = fmt_module.companion_files(res.file, target.name, res.info, f"{run.source.path.name} ({run.source.name})")
        data["companions"] = sorted(companions)
    _publish(res.file, target, data, companions)
    return Outcome(job, target, True, "exported", res.seconds, result, ratio)


def _refuse(run: _Run, res: JobResult, target: Path, problem: str,
            result: parity_mod.ParityResult | None = None, ratio: float | None = None) -> Outcome:
    """The Outcome of a pair that is not written, its one-line reason echoed."""
    message = _why_failed(run.source, res.job, problem)
    run.echo(f"{target.name}: FAIL {message}")
    return Outcome(res.job, target, False, message, res.seconds, result, ratio)


def _parity(run: _Run, res: JobResult, target: Path) -> parity_mod.ParityResult:
    """Run the staged file through the device runtime and compare it with the source.

    Raises:
        MnistkitError: the runtime cannot load or run the file.
    """
    art_probs = parity_mod.artifact_probabilities(res.file, run.x, backend=_parity_backend(res.job))
    mode = res.job.mode.value
    return parity_mod.compare(run.src_probs, art_probs, run.labels, artifact=target.name, mode=mode,
                              thresholds=thresholds_for(mode, run.overrides))


def _parity_backend(job: Job) -> str | None:
    """The runtime backend a format is proven on (TFLM files on the TFLM interpreter), or None for the default."""
    return getattr(exporter(job.format), "PARITY_BACKEND", None)


def _tflm_figures(info: dict) -> str:
    """Arena and flash figures appended to a TFLM file's check line."""
    t = info.get("tflm")
    if not t:
        return ""
    return (f"  arena {t['arena_min_bytes'] / 1024:.1f} KB min, {t['arena_recommended_bytes'] / 1024:.0f} KB "
            f"recommended  flash {t['flash_bytes'] / 1024:.1f} KB")


def _size_ratio(run: _Run, job: Job, size: int) -> float | None:
    """Size relative to the float32 file of the same format (this call's, or a matching one on disk)."""
    if job.mode is Mode.NONE:
        run.float_sizes[job.format] = size
    ref = _float_size(run.source, job.format, run.out, run.float_sizes)
    return round(size / ref, 3) if ref else None


def _notes(job: Job, res: JobResult, ratio: float | None) -> list[str]:
    """Plain-language remarks for the manifest: weighted ops left in float32, a quantized file larger than float32."""
    mode = job.mode.value
    notes = [n for n in [census_note(job.format, mode, res.info["ops"])] if n]
    if ratio and ratio > 1.0 and job.mode is not Mode.NONE:
        why = ("quantization parameters and nodes repeated per step of the unrolled graph outweigh the smaller "
               "weights" if res.info.get("graph") == "unrolled" else "quantization overhead outweighs the smaller weights")
        notes.append(f"this {mode} file is {ratio:.2f}x the size of the float32 one ({why})")
    return notes
