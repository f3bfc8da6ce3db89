"""Parity: does an exported file classify like its Keras source?

Figures per artifact: accuracy of both, accuracy delta, top-1 agreement, max |delta p|, per-class
recall deltas and the indices of the test images where the two disagree. Exported files run through
``mnistkit.runtime.Classifier`` (the code path a device runs), the source through Keras.

The thresholds per mode are in ``mode_rules``. :func:`compare` is the core the export pipeline
runs before publishing a file; :func:`run_parity` is ``mnistkit parity`` (verify manifests, run the
source and each existing file, compare, optionally write a Markdown report).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from mnistkit.export.mode_rules import Thresholds, thresholds_for
from mnistkit.export.modes import identify
from mnistkit.models.artifacts import write_bytes_atomic
from mnistkit.models.source import resolve_source
from mnistkit.runtime import manifest as rt_manifest
from mnistkit.runtime.errors import ModelError, OutputExistsError, UsageError

MAX_LISTED_INDICES = 200
_EPS = 1e-9  # 4 of 2,000 images is exactly 0.2 pp, which passes a 0.2 pp limit


@dataclass
class ParityResult:
    """Parity figures of one artifact against its source."""

    artifact: str
    mode: str
    count: int
    source_accuracy: float
    artifact_accuracy: float
    accuracy_delta_pp: float
    agreement: float
    max_delta_p: float
    recall_delta_pp: list[float]
    disagreements: int
    disagreeing_indices: list[int]
    thresholds: Thresholds
    failures: list[str] = field(default_factory=list)
    size_bytes: int | None = None

    @property
    def passed(self) -> bool:
        """True when every threshold holds."""
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready figures (indices capped at MAX_LISTED_INDICES)."""
        out = asdict(self)
        out["disagreeing_indices"] = self.disagreeing_indices[:MAX_LISTED_INDICES]
        out["passed"] = self.passed
        return out


def _recall(pred: np.ndarray, labels: np.ndarray) -> np.ndarray:
    return np.array([(pred[labels == c] == c).mean() if (labels == c).any() else np.nan for c in range(10)])


def compare(
    source_probs: np.ndarray, artifact_probs: np.ndarray, labels: np.ndarray, *, artifact: str, mode: str,
    thresholds: Thresholds | None = None,
) -> ParityResult:
    """Compare an artifact's probabilities with the source's on the same images.

    Args:
        source_probs: (N, 10) probabilities of the Keras model.
        artifact_probs: (N, 10) probabilities of the exported file.
        labels: (N,) true digits.
        artifact: display name of the artifact.
        mode: its quantization mode (selects the default thresholds).
        thresholds: criteria (default: the mode's).

    Returns:
        The figures, with one line per failed threshold in ``failures``.
    """
    if source_probs.shape != artifact_probs.shape or source_probs.shape[0] != labels.shape[0]:
        raise ModelError(
            f"{artifact} returned probabilities of shape {artifact_probs.shape}, expected {source_probs.shape}"
        )
    th = thresholds or thresholds_for(mode)
    sp, ap = source_probs.argmax(1), artifact_probs.argmax(1)
    src_acc, art_acc = float((sp == labels).mean()), float((ap == labels).mean())
    disagree = np.flatnonzero(sp != ap)
    agreement = 1.0 - len(disagree) / len(labels)
    max_dp = float(np.abs(artifact_probs.astype(np.float64) - source_probs).max())
    delta_pp = (art_acc - src_acc) * 100
    recall = (_recall(ap, labels) - _recall(sp, labels)) * 100
    failures = []
    if th.min_agreement is not None and agreement < th.min_agreement - _EPS:
        failures.append(f"agreement {agreement:.2%} < {th.min_agreement:.2%}")
    if th.max_delta_p is not None and max_dp > th.max_delta_p:
        failures.append(f"max |delta p| {max_dp:.2g} > {th.max_delta_p:.2g}")
    if th.max_accuracy_delta_pp is not None and abs(delta_pp) > th.max_accuracy_delta_pp + _EPS:
        failures.append(f"|delta accuracy| {abs(delta_pp):.2f} pp > {th.max_accuracy_delta_pp:.2f} pp")
    return ParityResult(
        artifact=artifact, mode=mode, count=int(len(labels)), source_accuracy=src_acc, artifact_accuracy=art_acc,
        accuracy_delta_pp=round(delta_pp, 4), agreement=agreement, max_delta_p=max_dp,
        recall_delta_pp=[round(float(r), 3) for r in recall], disagreements=int(len(disagree)),
        disagreeing_indices=[int(i) for i in disagree], thresholds=th, failures=failures,
    )


def human_size(n: int) -> str:
    """Bytes as '12.3 KB' / '1.2 MB'."""
    return f"{n / 1024:.1f} KB" if n < 1024 * 1024 else f"{n / 1024 / 1024:.2f} MB"


def check_line(r: ParityResult, size_ratio: float | None = None) -> str:
    """One line per artifact: accuracies, agreement, max |delta p|, size, PASS/FAIL (and why)."""
    size = ""
    if r.size_bytes is not None:
        size = f"  {human_size(r.size_bytes)}" + (f" ({size_ratio:.2f}x float32)" if size_ratio else "")
    verdict = "PASS" if r.passed else "FAIL (" + "; ".join(r.failures) + ")"
    return (
        f"{r.artifact}: acc {r.source_accuracy:.2%} -> {r.artifact_accuracy:.2%} ({r.accuracy_delta_pp:+.2f} pp)"
        f"  agree {r.agreement:.2%}  max|dp| {r.max_delta_p:.2g}{size}  n={r.count}  {verdict}"
    )


def artifact_mode(path: Path, manifest: dict | None) -> str:
    """The quantization mode of an artifact: from its manifest, else from its file name.

    Raises:
        UsageError: neither tells the mode.
    """
    ident = identify(path, manifest or {})
    if ident is None:
        raise UsageError(
            f"cannot tell the quantization mode of {path.name} (no manifest, name not <model>_<mode>.<ext>); "
            "pass --mode"
        )
    return ident.mode.value


def source_probabilities(source_path: str | os.PathLike, x: np.ndarray) -> np.ndarray:
    """Probabilities of the Keras source model on ``x`` (imports Keras)."""
    from mnistkit.models.source import load_keras

    return load_keras(source_path).predict(x, batch_size=500, verbose=0).astype(np.float32)


def artifact_probabilities(path: str | os.PathLike, x: np.ndarray) -> np.ndarray:
    """Probabilities of an exported file through the device runtime (``Classifier``)."""
    from mnistkit.runtime import Classifier

    return Classifier.load(path).predict_proba(x)


def markdown_report(results: list[ParityResult], source: str) -> str:
    """A Markdown parity report: one summary table, then per-class recall deltas and disagreements."""
    lines = [
        f"# Parity report\n\nSource: `{source}`; test images: {results[0].count if results else 0}.\n",
        "| artifact | mode | source acc | export acc | delta (pp) | agreement | max abs dp | size | result |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        size = human_size(r.size_bytes) if r.size_bytes else ""
        verdict = "PASS" if r.passed else "FAIL: " + "; ".join(r.failures)
        lines.append(
            f"| {r.artifact} | {r.mode} | {r.source_accuracy:.2%} | {r.artifact_accuracy:.2%} | "
            f"{r.accuracy_delta_pp:+.2f} | {r.agreement:.2%} | {r.max_delta_p:.2g} | {size} | {verdict} |"
        )
    lines += ["", "## Per-class recall delta (pp, export minus source)", "",
              "| artifact | " + " | ".join(str(d) for d in range(10)) + " |", "|---|" + "---|" * 10]
    for r in results:
        lines.append(f"| {r.artifact} | " + " | ".join(f"{v:+.2f}" for v in r.recall_delta_pp) + " |")
    lines += ["", "## Disagreeing test indices", ""]
    for r in results:
        shown = r.disagreeing_indices[:MAX_LISTED_INDICES]
        more = f" ... (+{r.disagreements - len(shown)} more)" if r.disagreements > len(shown) else ""
        lines.append(f"- {r.artifact}: {r.disagreements} — {', '.join(map(str, shown)) or 'none'}{more}")
    return "\n".join(lines) + "\n"


def run_parity(
    source_arg: str | os.PathLike, artifacts: list[Path], *, limit: int | None = None, mode: str | None = None,
    data_dir: str | None = None, report: Path | None = None, force: bool = False,
    overrides: dict | None = None, echo: Callable[[str], None] = print, progress: Callable[[str], None] = print,
    layers: bool = False, inspect: Callable[..., None] | None = None,
) -> list[ParityResult]:
    """Compare a Keras source with exported files on the test set.

    Every artifact's manifest hash is checked before any model runs. ``layers`` also prints each
    quantized TFLite file's per-tensor errors against float (export/diagnose.py). ``inspect``, when
    given, is called per artifact as ``inspect(path, result, images, labels, source_pred, artifact_pred)``
    (the CLI draws its gallery of flipped digits there).

    Returns:
        One ParityResult per artifact, in order.

    Raises:
        ModelError: the source is not a Keras zoo model, or an artifact cannot be loaded.
        IntegrityError: an artifact does not match its manifest.
        OutputExistsError: ``report`` exists and ``force`` is False.
        UsageError: an artifact's mode cannot be told.
    """
    from mnistkit.export.base import check_out_dir, mnist
    from mnistkit.models.data import to_float

    source = resolve_source(source_arg)
    if report is not None:
        if report.exists() and not force:
            raise OutputExistsError(f"{report} already exists; pass --force to overwrite or choose another --report")
        check_out_dir(report.parent, option="--report")
    modes, manifests = [], []
    for path in artifacts:
        data = rt_manifest.load_manifest(path)
        rt_manifest.verify(path, rt_manifest.read_model(path), data)
        manifests.append(data)
        modes.append(mode or artifact_mode(path, data))
    for path, data in zip(artifacts, manifests):
        recorded = ((data or {}).get("source") or {}).get("sha256")
        if recorded and recorded != source.sha256:
            progress(f"warning: {path.name} was exported from a different source (sha256 {recorded[:12]}...)")
    mn = mnist(data_dir)
    x, labels = to_float(mn.x_test[:limit]), mn.y_test[:limit]
    progress(f"running the Keras source {source.path.name} ({source.name}) on {len(labels)} test images ...")
    src_probs = source_probabilities(source.path, x)
    results = []
    for path, m in zip(artifacts, modes):
        progress(f"running {path.name} through the runtime ...")
        probs = artifact_probabilities(path, x)
        res = compare(src_probs, probs, labels, artifact=path.name, mode=m,
                                 thresholds=thresholds_for(m, overrides))
        res.size_bytes = path.stat().st_size
        echo(check_line(res))
        moved = sorted((c for c in range(10) if res.recall_delta_pp[c]), key=lambda c: -abs(res.recall_delta_pp[c]))
        recall = ", ".join(f"{c}: {res.recall_delta_pp[c]:+.2f}" for c in moved[:5]) or "none changed"
        shown = ", ".join(map(str, res.disagreeing_indices[:10])) or "none"
        echo(f"  recall delta by digit (pp): {recall}; disagreeing test indices: {shown}"
             + (f" (+{res.disagreements - 10} more)" if res.disagreements > 10 else ""))
        results.append(res)
        if layers:
            _print_layers(source, path, data_dir, echo, progress)
        if inspect is not None:
            inspect(path, res, mn.x_test[:limit], labels, src_probs.argmax(1), probs.argmax(1))
    if report is not None:
        write_bytes_atomic(report, markdown_report(results, str(source.path)).encode())
    return results


def _print_layers(source, path: Path, data_dir: str | None, echo: Callable[[str], None],
                  progress: Callable[[str], None]) -> None:
    """Print the per-tensor error table of one artifact (rebuilt from the source with its settings)."""
    from mnistkit.export import diagnose
    from mnistkit.runtime.errors import MnistkitError

    data = rt_manifest.load_manifest(path) or {}
    fmt = data.get("format") or ("tflite" if path.suffix == ".tflite" else "onnx")
    mode = data.get("mode") or artifact_mode(path, data)
    cal = data.get("calibration") or {}
    progress(f"per-layer errors of {path.name}: rebuilding its graph from the source ...")
    try:
        rows = diagnose.layer_errors(str(source.path), fmt, mode, calibration_samples=cal.get("count") or 200,
                                     seed=cal.get("seed") or 0, data_dir=data_dir)
    except MnistkitError as exc:
        echo(f"  per-layer table: {exc}")
        return
    echo("  per-tensor error against float (worst first, pooled over time steps):")
    for line in diagnose.table(rows).splitlines():
        echo("    " + line)
