"""`mnistkit bench`: size, load time, latency, throughput, accuracy and memory per model."""

from __future__ import annotations

import json
from pathlib import Path

import click

from mnistkit.runtime.manifest import manifest_path


def _batch_sizes(ctx, param, value: str) -> list[int]:
    try:
        sizes = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of integers, e.g. 1,32,256") from None
    if not sizes or min(sizes) < 1:
        raise click.BadParameter("batch sizes must be positive integers, e.g. 1,32,256")
    return sizes


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True, help="Inference threads.")
@click.option("--batch-sizes", default="1,32,256", show_default=True, callback=_batch_sizes, help="Batch sizes for throughput.")
@click.option("--runs", type=click.IntRange(min=10), default=500, show_default=True, help="Timed single-image runs (after warm-up).")
@click.option("--limit", type=click.IntRange(min=256), help="Test images used for accuracy (default all 10,000).")
@click.option("--keras/--no-keras", "with_keras", default=True, show_default=True,
              help="Add each artifact's Keras source (from its manifest) as the baseline row.")
@click.option("--no-rss", is_flag=True, help="Skip the fresh-process peak-RSS measurement.")
@click.option("--backend", "-b", default=None, help="Runtime backend for the exported files (e.g. tflm for the "
              "TFLite Micro interpreter; default: the best installed one).")
@click.option("--data-dir", type=click.Path(file_okay=False), help="Folder with the four MNIST IDX files.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path), help="Write a size-vs-latency chart (PNG).")
def bench(paths, threads, batch_sizes, runs, limit, with_keras, no_rss, backend, data_dir, as_json, plot_path):
    """Benchmark exported models (files or folders) through the runtime, with Keras as the baseline.

    Single-image latency is the median (p50) of --runs calls, made in 5 rounds interleaved across
    all models (each keeps its fastest round, so a slow spell of a shared machine hits none more
    than another), fed the test image as uint8 pixels (the runtime's fastest input; the
    float32-input p50 is in --json as float_input_p50_us); throughput is images/s at each batch
    size; RSS is the peak of a fresh process that loads the model and classifies one image.
    """
    from mnistkit.models.data import load_mnist, to_float
    from mnistkit.tools.bench import measure as lib

    files = lib.collect(list(paths))
    if with_keras:
        files = _with_sources(files, lib)
    mnist = load_mnist(data_dir)
    x, y = to_float(mnist.x_test[:limit]), mnist.y_test[:limit]
    rows, measured = [], []
    with click.progressbar(files, label="benchmarking", file=click.get_text_stream("stderr"),
                           item_show_func=lambda p: p.name if p else "") as bar:
        for path in bar:
            if path.suffix == ".keras":
                rows.append(lib.bench_keras(path, x, y, batch_sizes=batch_sizes, runs=runs, rss=not no_rss))
            else:
                row, clf = lib.bench_artifact(path, mnist.x_test[:limit], y, threads=threads,
                                              batch_sizes=batch_sizes, rss=not no_rss, backend=backend)
                rows.append(row)
                measured.append((row, clf))
    click.echo(f"single-image latency: {len(measured)} model(s), {runs} calls each in 5 interleaved rounds ...",
               err=True)
    lib.measure_latency(measured, mnist.x_test[0], runs)
    if plot_path:
        lib.plot(rows, plot_path)
    if as_json:
        click.echo(json.dumps({"threads": threads, "runs": runs, "rows": [r.to_dict() for r in rows]}, indent=2))
    else:
        click.echo(lib.format_table(rows, max(batch_sizes)))
        if plot_path:
            click.echo(f"chart: {plot_path}")
    if any(r.status != "ok" for r in rows):
        raise click.exceptions.Exit(1)


def _with_sources(files: list[Path], lib) -> list[Path]:
    """Prepend the Keras source of each artifact (from its manifest) when that file exists."""
    sources = []
    for path in files:
        manifest = manifest_path(path)
        if path.suffix == ".keras" or not manifest.is_file():
            continue
        try:
            src = json.loads(manifest.read_text()).get("source", {}).get("file")
        except ValueError:
            continue
        if src and Path(src).is_file():
            sources.append(Path(src))
    unique: dict[Path, Path] = {}
    for path in sources + files:  # the same file may be named by a relative and an absolute path
        unique.setdefault(path.resolve(), path)
    return list(unique.values())
