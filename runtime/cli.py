"""``mnistkit classify`` / ``python -m mnistkit.runtime``: the on-device script.

Classifies image files, folders, globs or a list of paths on stdin with an exported model, the
bundled default model when ``--model`` is not given. Each image gets one line (digit, confidence,
top-k, time) or one error line; the others are still classified, and the exit code is 1 if anything
failed, 130 if interrupted. Big jobs stream through ``mnistkit.runtime.bulk`` (records to a file as
they arrive, parallel preprocessing, progress, resume). Library errors become one-line messages
through ``runtime.guard``: exit 2 for usage errors, 1 for failures.
"""

from __future__ import annotations

import json
import os
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import click

from mnistkit.runtime.errors import MnistkitError, ModelError, UsageError
from mnistkit.runtime.guard import EXIT_INTERRUPTED, click_guarded, exit_failed
from mnistkit.runtime.sources import IMAGE_SUFFIXES  # noqa: F401 - importable from here as before

ASSETS = Path(__file__).with_name("assets")
DEFAULT_MODEL = ASSETS / "default.tflite"
MODEL_SUFFIXES = (".tflite", ".onnx")


def resolve_model(model: Path | None) -> Path:
    """Return the model file to load: ``model``, the single model in a folder, or the default.

    Raises:
        UsageError: a folder holding no model or several.
    """
    if model is None:
        return DEFAULT_MODEL
    if model.is_dir():
        found = sorted(p for p in model.iterdir() if p.suffix.lower() in MODEL_SUFFIXES and p.is_file())
        if len(found) != 1:
            what = "no .tflite/.onnx model" if not found else \
                f"{len(found)} models ({', '.join(p.name for p in found[:5])})"
            raise UsageError(f"{model} holds {what}; pass one model file with --model")
        return found[0]
    return model


@contextmanager
def quiet_native_stderr():
    """Silence stderr at the file-descriptor level (LiteRT prints an INFO line when XNNPACK starts)."""
    try:
        saved = os.dup(2)
    except OSError:  # no file descriptor 2 (embedded interpreter): nothing to silence
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _fmt_line(record: dict) -> str:
    top = ", ".join(f"{label} {p:.1%}" for label, p in record["top_k"])
    return (f"{record['source']}: {record['label']} ({record['confidence']:.1%})  "
            f"top-{len(record['top_k'])}: {top}  [{record['time_ms']:.1f} ms]")


@click.command("classify", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("inputs", nargs=-1, metavar="IMAGE|DIR|GLOB|-...")
@click.option("--samples", is_flag=True, help="Also classify the sample digit photos bundled with mnistkit.")
@click.option("--model", "-m", "model", type=click.Path(path_type=Path, exists=True),
              help="Model file (.tflite/.onnx) or a folder holding one. Default: the bundled model.")
@click.option("--top-k", "-k", "top_k", type=click.IntRange(1, 10), default=3, show_default=True,
              help="How many likely digits to show per image.")
@click.option("--backend", "-b", default=None,
              help="litert, tflite-runtime, tensorflow or onnxruntime. Default: the best installed.")
@click.option("--threads", "-t", type=click.IntRange(min=1), default=None,
              help="CPU threads for inference. Default: 1 for .tflite, all cores for .onnx.")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON document instead of text (only the summary with --output).")
@click.option("--recursive", "-r", is_flag=True, help="Also search the subfolders of the folders given.")
@click.option("--output", "-o", type=click.Path(path_type=Path, dir_okay=False),
              help="Write one record per image to this file as results arrive: .jsonl (JSON Lines) or .csv.")
@click.option("--jsonl", is_flag=True, help="Print one JSON record per image on stdout (JSON Lines).")
@click.option("--resume", is_flag=True, help="Continue an interrupted --output file: skip the images already in it.")
@click.option("--jobs", "-j", type=click.IntRange(min=0), default=1, show_default=True,
              help="Parallel decode+preprocess workers (0: one per CPU core). Same answers, same order.")
@click.option("--executor", type=click.Choice(["process", "thread"]), default="process", show_default=True,
              help="Worker kind for --jobs: processes scale with the cores; threads use less memory but share the GIL.")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, hidden=True,
              help="Images per model call.")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local: this machine. ray: Ray Data, on a local instance or a cluster (mnistkit[ray]).")
@click.option("--address", default=None,
              help="Ray cluster to join with --engine ray: auto, ray://HOST:10001, ... Default: a local instance.")
@click.option("--num-actors", type=click.IntRange(min=1), default=None,
              help="Ray actors, one model each (--engine ray). Default: one per CPU of the cluster.")
@click.option("--cpus-per-actor", type=click.FloatRange(min=0.01), default=0.5, show_default=True,
              help="CPUs reserved by each Ray actor; below 1 leaves room for Ray's read tasks on small machines.")
@click.option("--strict", is_flag=True,
              help="Refuse a model that can be verified neither by its .json manifest nor by the "
                   "metadata `mnistkit export` embeds in it.")
def classify(inputs: tuple[str, ...], samples: bool, model: Path | None, top_k: int, backend: str | None,
             threads: int | None, as_json: bool, recursive: bool, output: Path | None, jsonl: bool,
             resume: bool, jobs: int, executor: str, batch_size: int, engine: str, address: str | None,
             num_actors: int | None, cpus_per_actor: float, strict: bool) -> None:
    """Classify digit images (files, folders, globs) with an exported model.

    Small jobs print a line per image. Big jobs stream: --output writes a JSON Lines or CSV record
    per image as results arrive (memory stays flat), --jobs decodes in parallel, a progress bar
    shows on a terminal, and Ctrl-C stops cleanly, keeping every finished record; --resume then
    continues. Exit code 0: all classified, 1: some images failed (each is reported),
    130: interrupted, 2: usage error.

    \b
    Examples:
      mnistkit classify digit.png
      mnistkit classify --model exports/lstm_int8.tflite --json scans/
      mnistkit classify -r --jobs 2 --output results.jsonl scans/      (then --resume after Ctrl-C)
      find scans -name '*.jpg' | mnistkit classify - --jsonl > results.jsonl
      mnistkit classify --engine ray --address auto s3://bucket/scans --output results.jsonl
      python -m mnistkit.runtime digit.png
      mnistkit classify --samples          (the bundled sample photos)
    """
    if samples:
        inputs = (*inputs, str(ASSETS / "samples"))
    if not inputs:
        raise click.UsageError("give at least one IMAGE or DIR (or --samples for the bundled sample photos)")
    if as_json and jsonl:
        raise click.UsageError("--json and --jsonl are two output formats; pick one")
    if resume and output is None:
        raise click.UsageError("--resume continues an --output file; pass --output FILE too")
    if inputs.count("-") > 1:
        raise click.UsageError("'-' (paths on stdin) may be given once")
    if engine == "ray":
        from mnistkit.runtime.cli_ray import run_ray

        refused = [flag for flag, used in (("--resume", resume), ("--jobs", jobs != 1), ("--backend", backend),
                                           ("--threads", threads), ("--strict", strict)) if used]
        if refused:
            raise click.UsageError(f"{', '.join(refused)} cannot be used with --engine ray "
                                   "(Ray reads folders recursively; size the job with --num-actors and --cpus-per-actor)")
        run_ray(inputs, model=model, top_k=top_k, output=output, address=address, num_actors=num_actors,
                cpus_per_actor=cpus_per_actor, batch_size=batch_size, as_json=as_json, jsonl=jsonl)
        return
    if address is not None or num_actors is not None:
        raise click.UsageError("--address and --num-actors need --engine ray")
    jobs = jobs or (os.cpu_count() or 1)
    big = bool(output or jsonl or resume or jobs > 1 or recursive or "-" in inputs)

    from mnistkit.runtime.bulk import BulkJob, stop_on_sigint
    from mnistkit.runtime.progress import Progress
    from mnistkit.runtime.sinks import RecordWriter, open_output
    from mnistkit.runtime.sources import Census, iter_sources

    writer = done = None
    if output is not None:
        try:
            writer, done = open_output(output, resume=resume)
        except MnistkitError as exc:
            raise click.UsageError(str(exc)) from None
    job = None
    try:
        clf, load_ms = click_guarded(_load, model, backend, threads, strict)
        job = BulkJob(clf, top_k=top_k, jobs=jobs, executor=executor, batch_size=batch_size)
        job.start()  # worker processes get ready while this one loads the kernels
        kernels_name = click_guarded(_load_kernels)
    except BaseException:
        if job is not None:
            job.close()
        if writer is not None:
            writer.stream.close()
            if not done:  # nothing was in it: leave no empty file behind
                output.unlink(missing_ok=True)
        raise

    stdout = click.get_text_stream("stdout")
    stderr = click.get_text_stream("stderr")
    progress = Progress(stderr, enabled=_isatty(stderr) and (output is not None or not _isatty(stdout)))
    if "-" not in inputs:
        progress.count_in_background(lambda: iter_sources(inputs, recursive=recursive), len(done or ()))
    out_jsonl = RecordWriter(stdout, "jsonl") if jsonl else None
    json_doc = _JsonDoc(stdout) if as_json and output is None else None
    totals = {"ms": 0.0}

    def report_error(record: dict) -> None:
        if as_json and output is None:
            return
        progress.write(f"error: {record['error']}") if progress.enabled else click.echo(
            f"error: {record['error']}", err=True)

    def emit(records: list[dict]) -> None:
        totals["ms"] += sum(r.get("time_ms", 0.0) for r in records)
        if writer is not None:
            writer.write(records)
        if out_jsonl is not None:
            out_jsonl.write(records)
        if json_doc is not None:
            json_doc.write(records)
        for r in records:
            if "error" in r:
                report_error(r)
            elif writer is None and out_jsonl is None and json_doc is None:
                click.echo(_fmt_line(r))

    census = Census()
    sources = iter_sources(inputs, recursive=recursive, stdin=click.get_text_stream("stdin"), census=census)
    first = lambda: progress.write("stopping after the current batch (Ctrl-C again to abort)")  # noqa: E731
    try:
        with stop_on_sigint(job, first if progress.enabled else None):
            stats = job.run(sources, emit, skip=done.__contains__ if done else None,
                            progress=lambda s: progress.update(s.images, s.failed))
    except BrokenPipeError:  # the reader of stdout went away (`... --jsonl | head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), stdout.fileno())
        exit_failed()
    finally:
        progress.close()
        if writer is not None:
            writer.stream.close()

    ok, failed = stats.classified, stats.failed
    summary = {"images": stats.images, "classified": ok, "failed": failed,
               "model": str(clf.path), "backend": clf.backend, "load_ms": round(load_ms, 3),
               "classify_ms": round(totals["ms"], 3),
               "ms_per_image": round(totals["ms"] / ok, 3) if ok else None,
               "images_per_s": round(stats.images_per_s, 1), "wall_s": round(stats.wall_s, 3),
               "stages_s": {"decode": round(stats.decode_s, 3), "preprocess": round(stats.preprocess_s, 3),
                            "model": round(stats.model_s, 3)},
               "preprocess_kernels": kernels_name,
               "jobs": jobs, "skipped_done": stats.skipped, "skipped_not_images": census.not_images,
               "unsearched_subfolders": census.subfolders, "interrupted": stats.interrupted}
    if output is not None:
        summary["output"] = str(output)
    if json_doc is not None:
        json_doc.close(summary)
    elif as_json:
        click.echo(json.dumps({"summary": summary}, indent=2))
    else:
        per = f" ({summary['ms_per_image']:.1f} ms/image)" if ok else ""
        # With several workers the per-image times overlap: their sum is work, not elapsed time.
        took = (f"in {totals['ms']:.1f} ms{per}" if jobs == 1
                else f"({totals['ms']:.1f} ms of work over {jobs} workers, {summary['ms_per_image'] or 0:.1f} ms/image)")
        line = (f"classified {ok} of {stats.images} image(s) {took} with "
                f"{clf.path.name} on {clf.backend} (model loaded in {load_ms:.1f} ms)"
                + (f"; {failed} failed" if failed else ""))
        click.echo(line, err=jsonl)
        if big:
            click.echo(_stage_line(stats, jobs, census, output, kernels_name), err=jsonl)
    if stats.interrupted:
        click.echo(_resume_hint(stats, output), err=True)
        click.get_current_context().exit(EXIT_INTERRUPTED)
    if failed:
        exit_failed()


def _load(model: Path | None, backend: str | None, threads: int | None, strict: bool = False):
    """Load and warm up the classifier (the first invoke starts delegates, which print); return
    it and the load time in ms."""
    from mnistkit.runtime.classifier import Classifier

    start = time.perf_counter()
    if model is None and not DEFAULT_MODEL.exists():
        raise ModelError(f"the bundled default model is missing ({DEFAULT_MODEL}); reinstall mnistkit or pass --model")
    with quiet_native_stderr():
        clf = Classifier.load(resolve_model(model), backend=backend, threads=threads,
                              require_manifest=strict)
        clf.warm_up()
    return clf, (time.perf_counter() - start) * 1e3


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class _JsonDoc:
    """``{"results": [...], "summary": {...}}`` written record by record (flat memory, and an
    interrupted run still ends with a complete document holding every finished record)."""

    def __init__(self, stream):
        self.stream = stream
        self.first = True
        stream.write('{\n  "results": [')

    def write(self, records: list[dict]) -> None:
        for r in records:
            self.stream.write(("\n    " if self.first else ",\n    ") + json.dumps(r, allow_nan=False))
            self.first = False
        self.stream.flush()

    def close(self, summary: dict) -> None:
        self.stream.write(("" if self.first else "\n  ") + '],\n  "summary": '
                          + json.dumps(summary, indent=2).replace("\n", "\n  ") + "\n}\n")
        self.stream.flush()


def _load_kernels() -> str:
    """Load the preprocessing kernels before the job and return their name (numba or numpy): one
    clear error for a bad MNISTKIT_PREPROCESS, a notice on stderr while numba compiles them (once
    after an install)."""
    from mnistkit.runtime.preprocess import kernels

    notice = threading.Timer(1.0, lambda: click.echo(
        "loading the compiled preprocessing (the first run after an install compiles it: ~15 s here, "
        "a few minutes on a Pi) ...", err=True))
    notice.daemon = True
    notice.start()
    try:
        return kernels().name
    finally:
        notice.cancel()


def _stage_line(stats, jobs: int, census, output: Path | None, kernels_name: str) -> str:
    parts = [f"{stats.images_per_s:,.0f} images/s over {stats.wall_s:.1f} s with {jobs} job(s); "
             f"stage time decode {stats.decode_s:.2f} s, preprocess {stats.preprocess_s:.2f} s "
             f"({kernels_name} kernels), "
             f"model {stats.model_s:.2f} s" + (" (decode/preprocess summed over workers)" if jobs > 1 else "")]
    if stats.skipped:
        parts.append(f"{stats.skipped:,} already in {output} (skipped)")
    if census.not_images:
        parts.append(f"{census.not_images:,} file(s) without an image suffix ignored")
    if census.subfolders:
        parts.append(f"{census.subfolders:,} subfolder(s) not searched (pass --recursive)")
    if output is not None:
        parts.append(f"records in {output}")
    return "; ".join(parts)


def _resume_hint(stats, output: Path | None) -> str:
    import shlex
    import sys

    if output is None:
        return (f"interrupted after {stats.images:,} image(s); every finished record was printed. "
                "Use --output FILE to be able to resume a long job")
    # The command as it was typed: `mnistkit classify ...` or `python -m mnistkit.runtime ...`.
    ctx = click.get_current_context()
    argv = sys.argv[1:]
    if ctx.parent is not None and ctx.info_name in argv:  # drop the group's part: `classify` and before
        argv = argv[argv.index(ctx.info_name) + 1 :]
    cmd = " ".join([ctx.command_path, *(shlex.quote(a) for a in argv if a != "--resume"), "--resume"])
    return (f"interrupted: {stats.images:,} finished record(s) kept in {output}. Resume with:\n  {cmd}")


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``python -m mnistkit.runtime``."""
    classify.main(args=argv, prog_name="python -m mnistkit.runtime")
