"""`mnistkit export`: Keras model -> TFLite / ONNX in every quantization mode, with parity proof."""

from __future__ import annotations

import json
from pathlib import Path

import click

from mnistkit.runtime.guard import exit_failed

from mnistkit.export.modes import FORMATS, MODES
from mnistkit.tools.cli.parity import overrides, threshold_options


@click.command()
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option("--format", "fmt", type=click.Choice([*FORMATS, "all"]), default=["tflite"], show_default=True,
              multiple=True, help="Target format, or all (tflite and onnx; repeat for several). tflm: a batch-1 full-int8 "
                   ".tflite for TensorFlow Lite Micro plus C sources (model array, op resolver) and the measured "
                   "tensor arena; it implies --quantize int8.")
@click.option("--quantize", type=click.Choice([*MODES, "all"]), default=["none"], show_default=True, multiple=True,
              help="none (float32), float16, dynamic (int8 weights), int8 (calibrated; TFLite int8 I/O), "
                   "int16x8 (int16 activations), or all (repeat for several: --quantize none --quantize int8).")
@click.option("--calibration-samples", type=click.IntRange(1, 60000), default=200, show_default=True,
              help="Training images (stratified by digit, seeded) used to calibrate int8/int16x8.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the calibration draw.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("exports"), show_default=True,
              help="Output folder.")
@click.option("--force", is_flag=True, help="Overwrite existing output files.")
@click.option("--data-dir", type=click.Path(file_okay=False), help="Folder with the four MNIST IDX files.")
@click.option("--parity-limit", type=click.IntRange(1, 10000), help="Test images for the parity check (default all 10,000).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout (check lines go to stderr).")
@threshold_options
@click.pass_context
def export(ctx, source, fmt, quantize, calibration_samples, seed, out, force, data_dir, parity_limit, as_json,
           min_agreement, max_delta_p, max_accuracy_delta):
    """Export SOURCE (a .keras file or a training run folder) and prove each file against it.

    Writes OUT/<model>_<mode>.<tflite|onnx> plus a <file>.json manifest per file; --format tflm writes
    OUT/<model>_int8_tflm.tflite with <stem>_model_data.h/.cc and <stem>_op_resolver.h, proven on the
    TFLite Micro interpreter. Every file is run through the device runtime on the test set; one that
    misses its mode's parity thresholds is not written. Each conversion runs in a child process, so a converter crash fails only that file.
    Exits 1 if any requested file could not be delivered.
    """
    from mnistkit.export import export as run_export
    from mnistkit.models.extras import require_train_stack

    require_train_stack("mnistkit export")

    if "tflm" in fmt and ctx.get_parameter_source("quantize") is click.core.ParameterSource.DEFAULT:
        quantize = ("int8",)  # --format tflm is full int8 only; any other --quantize is refused by ExportConfig
    err = lambda s: click.echo(s, err=True)  # noqa: E731
    outcomes = run_export(
        source, fmt, quantize, out, calibration_samples=calibration_samples, seed=seed, force=force,
        data_dir=data_dir, parity_limit=parity_limit,
        overrides=overrides(min_agreement, max_delta_p, max_accuracy_delta),
        echo=err if as_json else click.echo, progress=err,
    )
    if as_json:
        click.echo(json.dumps([o.to_dict() for o in outcomes], indent=2, default=str))
    written = [o for o in outcomes if o.ok]
    failed = [o for o in outcomes if not o.ok]
    if written:
        err(f"wrote {len(written)} file(s) + manifests to {out}/: {', '.join(o.target.name for o in written)}")
        src = Path(source)
        err(f"Next: mnistkit parity {src} {' '.join(str(o.target) for o in written)}   |   mnistkit bench {out}/")
    if failed:
        err(f"{len(failed)} of {len(outcomes)} combination(s) not delivered: "
            + ", ".join(o.target.name for o in failed))
        exit_failed()
