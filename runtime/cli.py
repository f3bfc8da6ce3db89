"""``mnistkit classify`` / ``python -m mnistkit.runtime``: the on-device script.

Classifies image files (or every image in a folder) with an exported model, the bundled default
model when ``--model`` is not given. Each image gets one line (digit, confidence, top-k, time) or
one error line; the others are still classified, and the exit code is 1 if anything failed. Library
errors become one-line messages through ``runtime.guard``: exit 2 for usage errors, 1 for failures.
"""

from __future__ import annotations

import json
import os
import time
from contextlib import contextmanager
from pathlib import Path

import click

from mnistkit.runtime.errors import MnistkitError, ModelError, UsageError
from mnistkit.runtime.guard import click_guarded, exit_failed

ASSETS = Path(__file__).with_name("assets")
DEFAULT_MODEL = ASSETS / "default.tflite"
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp",
                            ".pgm", ".ppm", ".pbm", ".pnm"})
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


def expand_inputs(items: tuple[Path, ...]) -> list[tuple[Path, str | None]]:
    """Expand folders into their image files; return (path, error or None) per input."""
    out: list[tuple[Path, str | None]] = []
    for item in items:
        if item.is_dir():
            images = sorted(p for p in item.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not images:
                out.append((item, f"folder holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})"))
            out.extend((p, None) for p in images)
        elif not item.exists():
            out.append((item, "no such file; check the path"))
        else:
            out.append((item, None))
    return out


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


def _fmt_line(src: str, pred, ms: float) -> str:
    top = ", ".join(f"{label} {p:.1%}" for label, p in pred.top_k)
    return f"{src}: {pred.label} ({pred.confidence:.1%})  top-{len(pred.top_k)}: {top}  [{ms:.1f} ms]"


@click.command("classify", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("inputs", nargs=-1, type=click.Path(path_type=Path), metavar="IMAGE|DIR...")
@click.option("--samples", is_flag=True, help="Also classify the sample digit photos bundled with mnistkit.")
@click.option("--model", "-m", "model", type=click.Path(path_type=Path, exists=True),
              help="Model file (.tflite/.onnx) or a folder holding one. Default: the bundled model.")
@click.option("--top-k", "-k", "top_k", type=click.IntRange(1, 10), default=3, show_default=True,
              help="How many likely digits to show per image.")
@click.option("--backend", "-b", default=None,
              help="litert, tflite-runtime, tensorflow or onnxruntime. Default: the best installed.")
@click.option("--threads", "-t", type=click.IntRange(min=1), default=None,
              help="CPU threads for inference. Default: 1 for .tflite, all cores for .onnx.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of text.")
def classify(inputs: tuple[Path, ...], samples: bool, model: Path | None, top_k: int, backend: str | None,
             threads: int | None, as_json: bool) -> None:
    """Classify digit images (files or folders of images) with an exported model.

    \b
    Examples:
      mnistkit classify digit.png
      mnistkit classify --model exports/lstm_int8.tflite --json scans/
      python -m mnistkit.runtime digit.png
      mnistkit classify --samples          (the bundled sample photos)
    """
    if samples:
        inputs = (*inputs, ASSETS / "samples")
    if not inputs:
        raise click.UsageError("give at least one IMAGE or DIR (or --samples for the bundled sample photos)")

    start = time.perf_counter()
    clf = click_guarded(_load, model, backend, threads)
    load_ms = (time.perf_counter() - start) * 1e3

    records = [_classify_one(clf, item, error, top_k, as_json) for item, error in expand_inputs(inputs)]
    failed = sum("error" in r for r in records)
    ok = len(records) - failed
    total_ms = sum(r.get("time_ms", 0.0) for r in records)
    summary = {"images": len(records), "classified": ok, "failed": failed,
               "model": str(clf.path), "backend": clf.backend, "load_ms": round(load_ms, 3),
               "classify_ms": round(total_ms, 3),
               "ms_per_image": round(total_ms / ok, 3) if ok else None}
    if as_json:
        click.echo(json.dumps({"results": records, "summary": summary}, indent=2))
    else:
        per = f" ({summary['ms_per_image']:.1f} ms/image)" if ok else ""
        click.echo(f"classified {ok} of {len(records)} image(s) in {total_ms:.1f} ms{per} with "
                   f"{clf.path.name} on {clf.backend} (model loaded in {load_ms:.1f} ms)"
                   + (f"; {failed} failed" if failed else ""))
    if failed:
        exit_failed()


def _load(model: Path | None, backend: str | None, threads: int | None):
    """Load and warm up the classifier (the first invoke starts delegates, which print)."""
    from mnistkit.runtime.classifier import Classifier

    if model is None and not DEFAULT_MODEL.exists():
        raise ModelError(f"the bundled default model is missing ({DEFAULT_MODEL}); reinstall mnistkit or pass --model")
    with quiet_native_stderr():
        clf = Classifier.load(resolve_model(model), backend=backend, threads=threads)
        clf.warm_up()
    return clf


def _classify_one(clf, item: Path, error: str | None, top_k: int, as_json: bool) -> dict:
    """Classify one file; print its line (text mode) and return its JSON record."""
    src = str(item)
    t0 = time.perf_counter()
    if error is None:
        try:
            pred = clf.classify(item, top_k=top_k)[0]
        except MnistkitError as exc:
            error = str(exc)
        except Exception as exc:  # noqa: BLE001 - one bad image must never stop the batch
            error = f"unexpected {type(exc).__name__}: {exc}".splitlines()[0]
    ms = (time.perf_counter() - t0) * 1e3
    if error is not None:
        error = error if error.startswith(src) else f"{src}: {error}"
        if not as_json:
            click.echo(f"error: {error}", err=True)
        return {"source": src, "error": error}
    if not as_json:
        click.echo(_fmt_line(src, pred, ms))
    return {**pred.to_dict(), "source": src, "time_ms": round(ms, 3)}


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``python -m mnistkit.runtime``."""
    classify.main(args=argv, prog_name="python -m mnistkit.runtime")
