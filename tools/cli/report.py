"""`mnistkit report`: regenerate REPORT.md and its charts from measured inputs."""

from __future__ import annotations

from pathlib import Path

import click

_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)
_DIR = click.Path(exists=True, file_okay=False, path_type=Path)


@click.command()
@click.option("--pretrained", type=_DIR, default=Path("models/pretrained"), show_default=True, help="Committed Keras sources + manifests.")
@click.option("--exports", type=_DIR, default=Path("exports/pretrained"), show_default=True, help="Export matrix with manifests.")
@click.option("--bench", "bench_json", type=_FILE, default=Path("reports/bench.json"), show_default=True, help="`mnistkit bench --json` output.")
@click.option("--default-model", type=_FILE, default=Path("runtime/assets/default.tflite"), show_default=True, help="The bundled device model.")
@click.option("--compat", type=click.Path(dir_okay=False, path_type=Path), default=Path("reports/compat.md"), show_default=True,
              help="Runtime compatibility matrix (Markdown), included when present.")
@click.option("--photos", type=click.Path(dir_okay=False, path_type=Path), default=Path("reports/photos.md"), show_default=True,
              help="Photo-like digit accuracy (Markdown), included when present.")
@click.option("--robustness", type=click.Path(dir_okay=False, path_type=Path), default=Path("reports/robustness.json"), show_default=True,
              help="Robustness figures (python -m mnistkit.tools.robustness.matrix), included when present.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=Path("REPORT.md"), show_default=True)
@click.option("--charts", type=click.Path(file_okay=False, path_type=Path), default=Path("reports"), show_default=True, help="Folder for the PNG charts.")
@click.option("--data-dir", type=click.Path(file_okay=False), help="Folder with the four MNIST IDX files.")
def report(pretrained, exports, bench_json, default_model, compat, photos, robustness, out, charts, data_dir):
    """Write REPORT.md: zoo accuracy, export-matrix parity, benchmark, goals, charts, compatibility."""
    from mnistkit.tools.report.build import build_report

    path = build_report(pretrained=pretrained, exports=exports, bench=bench_json, out=out, charts=charts,
                        default_model=default_model, compat=compat, photos=photos, data_dir=data_dir,
                        robustness=robustness)
    click.echo(f"wrote {path} (charts in {charts}/)")
