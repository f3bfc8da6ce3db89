"""`mnistkit parity`: prove exported files classify like their Keras source."""

from __future__ import annotations

import json
from pathlib import Path

import click

from mnistkit.runtime.guard import exit_failed

from mnistkit.export.modes import MODES


def threshold_options(fn):
    """Add the threshold override options shared by `parity` and `export`."""
    opts = [
        click.option("--min-agreement", type=click.FloatRange(0, 100), metavar="PCT",
                     help="Minimum top-1 agreement in percent for every artifact (default per mode: "
                          "none 100, float16 99.95, dynamic/int8/int16x8 99.5)."),
        click.option("--max-delta-p", type=click.FloatRange(min=0), metavar="X",
                     help="Maximum |delta probability| for every artifact (default: 1e-4 for none only)."),
        click.option("--max-accuracy-delta", type=click.FloatRange(min=0), metavar="PP",
                     help="Maximum |accuracy delta| in percentage points (default 0.2 for dynamic/int8/int16x8)."),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def overrides(min_agreement, max_delta_p, max_accuracy_delta) -> dict:
    """Threshold overrides from the CLI options (None: keep the mode's default)."""
    return {
        "min_agreement": None if min_agreement is None else min_agreement / 100,
        "max_delta_p": max_delta_p,
        "max_accuracy_delta_pp": max_accuracy_delta,
    }


def _gallery_writer(gallery: Path, count: int, force: bool):
    """A run_parity ``inspect`` callback drawing each artifact's flipped digits (``<stem>-<artifact>.png``
    when several artifacts are compared)."""
    from mnistkit.export.base import check_out_dir

    if gallery.exists() and not force:
        raise click.UsageError(f"{gallery} already exists; pass --force to overwrite or choose another --gallery")
    check_out_dir(gallery.parent, option="--gallery")

    def write(path, res, images, labels, source_pred, artifact_pred) -> None:
        from mnistkit.tools.report.plots import flipped_gallery

        out = gallery if count == 1 else gallery.with_name(f"{gallery.stem}-{path.stem}{gallery.suffix}")
        flipped_gallery(images, labels, source_pred, artifact_pred, res.disagreeing_indices, out,
                        title=f"{path.name}: {res.disagreements} of {res.count} labels flipped")
        click.echo(f"gallery of flipped digits written to {out}", err=True)

    return write


@click.command()
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.argument("artifacts", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--limit", type=click.IntRange(1, 10000), help="Use only the first N test images (default all 10,000).")
@click.option("--mode", type=click.Choice(MODES), help="Quantization mode for thresholds when no manifest or file name tells it.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON on stdout.")
@click.option("--report", type=click.Path(dir_okay=False, path_type=Path), help="Also write a Markdown report here (e.g. parity.md).")
@click.option("--force", is_flag=True, help="Overwrite an existing --report or --gallery file.")
@click.option("--backend", "-b", default=None, help="Runtime backend for the artifacts (e.g. tflm for the TFLite "
              "Micro interpreter; default: the best installed one).")
@click.option("--data-dir", type=click.Path(file_okay=False), help="Folder with the four MNIST IDX files.")
@click.option("--layers", is_flag=True, help="Also print where precision goes: each quantized TFLite file's "
              "intermediate tensors against float (relative RMS, SNR), worst first. Needs the train extra.")
@click.option("--gallery", type=click.Path(dir_okay=False, path_type=Path), metavar="PNG",
              help="Write a PNG of the test digits whose label flipped (true / Keras / exported label).")
@threshold_options
def parity(source, artifacts, limit, mode, as_json, report, force, backend, data_dir, layers, gallery, min_agreement,
           max_delta_p, max_accuracy_delta):
    """Compare SOURCE (.keras file or run folder) with each exported ARTIFACT on the MNIST test set.

    Artifacts run through the device runtime (mnistkit.runtime.Classifier). Prints accuracy, accuracy
    delta, top-1 agreement, max |delta p|, per-class recall deltas and the disagreeing test indices;
    exits 1 when any artifact misses its mode's thresholds.
    """
    from mnistkit.export.parity import run_parity
    from mnistkit.models.extras import require_train_stack

    require_train_stack("mnistkit parity")  # the source is a Keras model
    results = run_parity(
        source, list(artifacts), limit=limit, mode=mode, data_dir=data_dir, report=report, force=force, backend=backend,
        overrides=overrides(min_agreement, max_delta_p, max_accuracy_delta),
        echo=(lambda s: click.echo(s, err=True)) if as_json else click.echo,
        progress=lambda s: click.echo(s, err=True), layers=layers,
        inspect=_gallery_writer(gallery, len(artifacts), force) if gallery else None,
    )
    if as_json:
        click.echo(json.dumps([r.to_dict() for r in results], indent=2, default=str))
    failed = [r for r in results if not r.passed]
    if report:
        click.echo(f"report written to {report}", err=True)
    if failed:
        click.echo(f"{len(failed)} of {len(results)} artifact(s) failed parity: {', '.join(r.artifact for r in failed)}", err=True)
        exit_failed()
    click.echo(f"all {len(results)} artifact(s) pass parity. Next: mnistkit bench {' '.join(str(a) for a in artifacts)}", err=True)
