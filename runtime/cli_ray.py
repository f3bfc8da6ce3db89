"""``mnistkit classify --engine ray``: the same job on Ray Data (a local instance or a cluster).

Results are either streamed back to this machine (``--output x.jsonl`` / ``x.csv``, or stdout), in
the same record format as the local engine, or written by Ray Data itself where the cluster can
reach (``--output s3://bucket/results`` as JSON Lines files, or a ``.parquet`` folder).
"""

from __future__ import annotations

import json
import os
import sys
import time
import warnings
from pathlib import Path

import click

from mnistkit.runtime.errors import MnistkitError

LOCAL_FORMATS = (".jsonl", ".ndjson", ".csv")


def run_ray(inputs: tuple[str, ...], *, model: Path | None, top_k: int, output: Path | None,
            address: str | None, num_actors: int | None, cpus_per_actor: float, batch_size: int,
            as_json: bool, jsonl: bool = False) -> None:
    """Run the classify command on Ray Data; exits 0, 1 (some rows failed), 130 or 2 (usage)."""
    from mnistkit.runtime.cli import resolve_model
    from mnistkit.runtime.ray_data import classify_dataset, read_images, require_ray, to_record
    from mnistkit.runtime.sinks import RecordWriter, output_format

    if "-" in inputs:
        raise click.UsageError("--engine ray reads folders or URIs, not a list on stdin")
    for item in inputs:
        if "://" not in item and not os.path.exists(item):
            raise click.UsageError(f"{item}: no such file or folder; check the path")
    out = str(output) if output is not None else None
    streamed = out is None or ("://" not in out and Path(out).suffix.lower() in LOCAL_FORMATS)
    try:
        model_path = resolve_model(model)
        if out is not None and streamed:
            output_format(out)
            if Path(out).exists():
                raise click.UsageError(f"{out} exists; --resume is not supported with --engine ray, "
                                       "choose another file")
        ray = require_ray()
    except MnistkitError as exc:
        raise click.UsageError(str(exc)) from None

    start = time.perf_counter()
    _init(ray, address)
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True  # records in the order Ray lists the files
    ctx.enable_progress_bars = _isatty(sys.stderr)
    ctx.print_on_execution_start = False
    try:
        ds = classify_dataset(read_images(list(inputs)), model_path, column="bytes", top_k=top_k,
                              batch_size=batch_size,
                              num_actors=num_actors, cpus_per_actor=cpus_per_actor)
    except MnistkitError as exc:
        raise click.ClickException(str(exc)) from None

    ok = failed = 0
    interrupted = False
    try:
        if streamed:
            stream = open(out, "w", encoding="utf-8", newline="") if out else None
            writer = RecordWriter(stream, output_format(out)) if stream else None
            try:
                for batch in ds.iter_batches(batch_size=256, batch_format="pandas"):
                    records = [to_record(row) for row in batch.to_dict("records")]
                    for r in records:
                        if "error" in r:
                            failed += 1
                            click.echo(f"error: {r['error']}", err=True)
                        else:
                            ok += 1
                            if writer is None and not (as_json or jsonl):
                                top = ", ".join(f"{lab} {p:.1%}" for lab, p in r["top_k"])
                                click.echo(f"{r['source']}: {r['label']} ({r['confidence']:.1%})  top-{top_k}: {top}")
                    if writer is not None:
                        writer.write(records)
                    elif as_json or jsonl:  # without --output: JSON Lines on stdout
                        for r in records:
                            click.echo(json.dumps(r, separators=(",", ":")))
            finally:
                if stream:
                    stream.close()
        else:
            (ds.write_parquet if out.rstrip("/").endswith(".parquet") else ds.write_json)(out)
            counts = ray.data.read_parquet(out) if out.rstrip("/").endswith(".parquet") else ray.data.read_json(out)
            with warnings.catch_warnings():  # Ray suggests expressions for filters; this is one small pass
                warnings.simplefilter("ignore")
                failed = counts.filter(lambda r: bool(r["error"])).count()
            ok = counts.count() - failed
    except KeyboardInterrupt:
        interrupted = True
    wall = time.perf_counter() - start
    summary = {"images": ok + failed, "classified": ok, "failed": failed, "engine": "ray",
               "model": str(model_path), "wall_s": round(wall, 3),
               "images_per_s": round((ok + failed) / wall, 1) if wall > 0 else None,
               "actors": num_actors, "cpus_per_actor": cpus_per_actor, "output": out,
               "interrupted": interrupted}
    if as_json and out:
        click.echo(json.dumps({"summary": summary}, indent=2))
    else:
        click.echo(f"classified {ok} of {ok + failed} image(s) on Ray in {wall:.1f} s "
                   f"({summary['images_per_s']} images/s, model {model_path.name})"
                   + (f"; {failed} failed" if failed else "") + (f"; records in {out}" if out else ""),
                   err=as_json or jsonl)
    if interrupted:
        click.echo(f"interrupted: {ok + failed} record(s) kept" + (f" in {out}" if out else "")
                   + "; --engine ray cannot resume, rerun into a new file", err=True)
        click.get_current_context().exit(130)
    if failed:
        click.get_current_context().exit(1)


def _init(ray, address: str | None) -> None:
    """Join the cluster at ``address`` or start a local instance with this machine's cores."""
    import logging

    kwargs = {"logging_level": logging.ERROR, "log_to_driver": False, "include_dashboard": False,
              "configure_logging": True}
    for name in ("ray", "ray.data"):  # Ray Data logs every execution plan at INFO on stderr
        logging.getLogger(name).setLevel(logging.ERROR)
    if ray.is_initialized():
        return
    if address:
        ray.init(address=address, **{k: v for k, v in kwargs.items() if k != "include_dashboard"})
    else:
        ray.init(num_cpus=os.cpu_count() or 1, **kwargs)


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
