"""The `mnistkit parity` run: verify manifests, run the source and each artifact, compare."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from mnistkit.export.base import check_out_dir, resolve_source
from mnistkit.models.artifacts import write_bytes_atomic
from mnistkit.runtime import manifest as rt_manifest
from mnistkit.runtime.errors import OutputExistsError
from mnistkit.tools import parity as parity_mod


def run_parity(
    source_arg: str | os.PathLike, artifacts: list[Path], *, limit: int | None = None, mode: str | None = None,
    data_dir: str | None = None, report: Path | None = None, force: bool = False,
    overrides: dict | None = None, echo: Callable[[str], None] = print, progress: Callable[[str], None] = print,
    layers: bool = False, gallery: Path | None = None,
) -> list[parity_mod.ParityResult]:
    """Compare a Keras source with exported files on the test set.

    Every artifact's manifest hash is checked before any model runs. ``layers`` also prints each
    quantized TFLite file's per-tensor errors against float (export/diagnose.py); ``gallery`` writes a
    PNG of the test digits whose label flipped (one file per artifact: ``<stem>-<artifact>.png`` when
    several are compared).

    Returns:
        One ParityResult per artifact, in order.

    Raises:
        ModelError: the source is not a Keras zoo model, or an artifact cannot be loaded.
        IntegrityError: an artifact does not match its manifest.
        OutputExistsError: ``report`` exists and ``force`` is False.
        UsageError: an artifact's mode cannot be told.
    """
    from mnistkit.export.base import mnist
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
        modes.append(mode or parity_mod.artifact_mode(path, data))
    if gallery is not None:
        if gallery.exists() and not force:
            raise OutputExistsError(f"{gallery} already exists; pass --force to overwrite or choose another --gallery")
        check_out_dir(gallery.parent, option="--gallery")
    for path, data in zip(artifacts, manifests):
        recorded = ((data or {}).get("source") or {}).get("sha256")
        if recorded and recorded != source.sha256:
            progress(f"warning: {path.name} was exported from a different source (sha256 {recorded[:12]}...)")
    mn = mnist(data_dir)
    x, labels = to_float(mn.x_test[:limit]), mn.y_test[:limit]
    progress(f"running the Keras source {source.path.name} ({source.name}) on {len(labels)} test images ...")
    src_probs = parity_mod.source_probabilities(source.path, x)
    results = []
    for path, m in zip(artifacts, modes):
        progress(f"running {path.name} through the runtime ...")
        probs = parity_mod.artifact_probabilities(path, x)
        res = parity_mod.compare(src_probs, probs, labels, artifact=path.name, mode=m,
                                 thresholds=parity_mod.thresholds_for(m, overrides))
        res.size_bytes = path.stat().st_size
        echo(parity_mod.check_line(res))
        moved = sorted((c for c in range(10) if res.recall_delta_pp[c]), key=lambda c: -abs(res.recall_delta_pp[c]))
        recall = ", ".join(f"{c}: {res.recall_delta_pp[c]:+.2f}" for c in moved[:5]) or "none changed"
        shown = ", ".join(map(str, res.disagreeing_indices[:10])) or "none"
        echo(f"  recall delta by digit (pp): {recall}; disagreeing test indices: {shown}"
             + (f" (+{res.disagreements - 10} more)" if res.disagreements > 10 else ""))
        results.append(res)
        if layers:
            _print_layers(source, path, data_dir, echo, progress)
        if gallery is not None:
            from mnistkit.tools.plots import flipped_gallery

            out = gallery if len(artifacts) == 1 else gallery.with_name(f"{gallery.stem}-{path.stem}{gallery.suffix}")
            flipped_gallery(mn.x_test[:limit], labels, src_probs.argmax(1), probs.argmax(1), res.disagreeing_indices,
                            out, title=f"{path.name}: {res.disagreements} of {res.count} labels flipped")
            progress(f"gallery of flipped digits written to {out}")
    if report is not None:
        write_bytes_atomic(report, parity_mod.markdown_report(results, str(source.path)).encode())
    return results


def _print_layers(source, path: Path, data_dir: str | None, echo: Callable[[str], None],
                  progress: Callable[[str], None]) -> None:
    """Print the per-tensor error table of one artifact (rebuilt from the source with its settings)."""
    from mnistkit.export import diagnose
    from mnistkit.runtime.errors import MnistkitError

    data = rt_manifest.load_manifest(path) or {}
    fmt = data.get("format") or ("tflite" if path.suffix == ".tflite" else "onnx")
    mode = data.get("mode") or parity_mod.artifact_mode(path, data)
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
