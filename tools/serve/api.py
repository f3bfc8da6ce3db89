"""The JSON API's work: parse a classify request, check and classify its images, describe the model.

Classification runs on a fixed pool of worker threads sharing one ``Classifier`` (which gives each
thread its own interpreter), so the event loop stays free and the number of interpreters, hence
memory, stays bounded. Each image is decoded, preprocessed and classified exactly as
``Classifier.classify`` does, one at a time, so its record and ``time_ms`` mean what
``mnistkit classify --json`` means by them.
"""

from __future__ import annotations

import asyncio
import base64
import io
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from mnistkit.runtime.errors import ImageError, MnistkitError
from mnistkit.runtime.imageio import MAX_PIXELS, describe
from mnistkit.tools.serve.errors import ApiError
from mnistkit.tools.serve.images import check_image

TOP_K_DEFAULT = 3
TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")


@dataclass(frozen=True)
class Limits:
    """What one request may ask for."""

    max_upload_bytes: int = 10 * 1024 * 1024
    max_images: int = 16
    max_pixels: int = MAX_PIXELS
    request_timeout_s: float = 30.0
    max_pending: int = 32

    def to_dict(self) -> dict:
        """JSON-ready form, as ``GET /api/model`` shows it."""
        return {"max_upload_bytes": self.max_upload_bytes, "max_images": self.max_images,
                "max_pixels": self.max_pixels, "request_timeout_s": self.request_timeout_s,
                "max_pending": self.max_pending,
                "top_k": [1, 10]}


@dataclass
class ServeState:
    """What every request shares: the classifier, the worker pool, the limits, the model's description."""

    classifier: object
    pool: ThreadPoolExecutor
    limits: Limits
    model: dict = field(default_factory=dict)
    pending: int = 0  # classify requests in progress (touched only on the event loop's thread)


def model_info(clf, limits: Limits) -> dict:
    """What ``GET /api/model`` answers: ``Classifier.describe()`` plus the manifest's figures.

    The server's file-system path is left out; the file name identifies the model.
    """
    desc = {k: v for k, v in clf.describe().items() if k != "path"}
    man = clf.manifest or {}
    parity = man.get("parity") if isinstance(man.get("parity"), dict) else {}
    artifact = man.get("artifact") if isinstance(man.get("artifact"), dict) else {}
    keep = ("count", "source_accuracy", "artifact_accuracy", "accuracy_delta_pp", "agreement", "passed")
    return {
        "file": clf.path.name,
        "model": man.get("model"),
        "format": clf.format,
        "mode": man.get("mode"),
        "backend": clf.backend,
        "sha256": artifact.get("sha256"),
        "size_bytes": artifact.get("size_bytes", clf.path.stat().st_size if clf.path.exists() else None),
        "test_accuracy": parity.get("artifact_accuracy"),
        "parity": {k: parity[k] for k in keep if k in parity} or None,
        "manifest": bool(man),
        "describe": desc,
        "limits": limits.to_dict(),
    }


def parse_top_k(raw: str | None) -> int:
    """``top_k`` from a query or form value (default 3).

    Raises:
        ApiError: 422, not an integer from 1 to 10.
    """
    if raw is None:
        return TOP_K_DEFAULT
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= 10:
        raise ApiError(422, f"top_k must be an integer from 1 to 10, not {raw[:40]!r}")
    return value


def parse_flag(name: str, raw: str | None) -> bool:
    """A boolean query parameter (1/0, true/false, yes/no, on/off).

    Raises:
        ApiError: 422, another value.
    """
    if raw is None:
        return False
    low = raw.strip().lower()
    if low in TRUE or low in FALSE:
        return low in TRUE
    raise ApiError(422, f"{name} must be 1 or 0 (true/false), not {raw[:40]!r}")


def classify_images(clf, items: list[tuple[str | int, str, bytes]], top_k: int, debug: bool,
                    max_pixels: int) -> list[dict]:
    """Check every image, then classify each one (runs on a worker thread).

    Args:
        clf: the shared Classifier.
        items: (source for the record, name for messages, encoded bytes) per image.
        top_k: how many likely digits per record.
        debug: add the 28x28 input the model saw as a PNG data URL (``input_png``).
        max_pixels: the largest width x height accepted.

    Returns:
        One record per image: source, label, confidence, top_k, probabilities, time_ms (+ input_png).

    Raises:
        ApiError: the first image that is refused (all are checked before any is classified).
    """
    from mnistkit.runtime.inputs import to_batch
    from mnistkit.runtime.prediction import predictions

    for _, name, data in items:
        check_image(data, name, max_pixels)
    records = []
    for source, name, data in items:
        t0 = time.perf_counter()
        try:
            x, _ = to_batch([data])
            pred = predictions(clf.predict_proba(x), top_k, [source])[0]
        except ImageError as exc:
            message = str(exc).replace(describe(data), name, 1)
            raise ApiError(400, message if message.startswith(name) else f"{name}: {message}") from None
        except MnistkitError as exc:
            raise ApiError(400, f"{name}: {exc}") from None
        record = {**pred.to_dict(), "time_ms": round((time.perf_counter() - t0) * 1e3, 3)}
        if debug:
            record["input_png"] = png_data_url(x[0])
        records.append(record)
    return records


def png_data_url(image: np.ndarray) -> str:
    """A float (28, 28) image in [0, 1] as a ``data:image/png;base64,...`` URL."""
    import PIL.Image

    buf = io.BytesIO()
    pixels = np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)
    PIL.Image.fromarray(pixels, mode="L").save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


async def read_images(request, limits: Limits) -> tuple[list[tuple[str | int, str, bytes]], dict]:
    """The request's images (multipart field ``image``, repeatable, or the raw body) and form fields.

    Raises:
        ApiError: 422 no image or a non-file ``image`` field; 413 too many images.
    """
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media == "multipart/form-data":
        from starlette.exceptions import HTTPException

        try:
            form = await request.form(max_files=limits.max_images, max_fields=16)
        except HTTPException as exc:  # Starlette's multipart limits and parse errors
            status = 413 if exc.status_code == 400 and "Too many files" in str(exc.detail) else exc.status_code
            raise ApiError(status, _form_error(str(exc.detail), limits)) from None
        try:
            uploads = form.getlist("image")
            fields = {k: v for k, v in form.multi_items() if isinstance(v, str)}
            items = []
            for i, up in enumerate(uploads, 1):
                if isinstance(up, str):
                    raise ApiError(422, "field `image` must be a file upload (curl -F image=@digit.png), "
                                        "not text")
                name = up.filename or f"image {i}"
                items.append((up.filename or i - 1, name, await up.read()))
        finally:
            await form.close()
        if not items:
            raise ApiError(422, "no image in the form: send the file in the multipart field `image` "
                                "(curl -F image=@digit.png)")
        return items, fields
    body = await request.body()
    if not body:
        raise ApiError(422, "no image: send a multipart field `image` or the image itself as the "
                            "request body with its Content-Type (e.g. image/png)")
    return [(0, "request body", body)], {}


def _form_error(detail: str, limits: Limits) -> str:
    if "Too many files" in detail:
        return f"too many images in one request; send at most {limits.max_images}"
    if "Content Too Large" in detail:
        return upload_too_large(limits)
    return f"the multipart form cannot be parsed ({detail.rstrip('.')}); send field `image` as a file"


def upload_too_large(limits: Limits) -> str:
    """The 413 message for a body over the upload limit."""
    return (f"the upload is over the {limits.max_upload_bytes / 2**20:g} MB limit (refused before decoding); "
            "send a smaller image (a digit needs far less), or start the server with a larger --max-upload-mb")


async def classify_endpoint(request) -> dict:
    """``POST /api/classify``: the JSON document answered for a good request.

    Raises:
        ApiError: a refused request (its status and message go to the client as JSON).
    """
    state: ServeState = request.app.state.serve
    if state.pending >= state.limits.max_pending:
        raise ApiError(503, f"server busy ({state.pending} requests in progress); retry in a moment")
    state.pending += 1
    try:
        return await _classify(request, state)
    finally:
        state.pending -= 1


async def _classify(request, state: ServeState) -> dict:
    limits = state.limits
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limits.request_timeout_s
    debug = parse_flag("debug", request.query_params.get("debug"))
    top_k_raw = request.query_params.get("top_k")
    try:  # asyncio.wait_for rather than asyncio.timeout: the package supports Python 3.10
        items, fields = await asyncio.wait_for(read_images(request, limits), limits.request_timeout_s)
    except asyncio.TimeoutError:
        raise ApiError(408, f"the upload took over {limits.request_timeout_s:g} s; "
                            "send a smaller image or retry on a faster network") from None
    top_k = parse_top_k(top_k_raw if top_k_raw is not None else fields.get("top_k"))
    if len(items) > limits.max_images:
        raise ApiError(413, f"{len(items)} images in one request; send at most {limits.max_images}")
    t0 = time.perf_counter()
    work = loop.run_in_executor(state.pool, classify_images, state.classifier, items, top_k, debug,
                                limits.max_pixels)
    try:
        records = await asyncio.wait_for(work, max(0.001, deadline - loop.time()))
    except asyncio.TimeoutError:
        raise ApiError(503, f"classification took over {limits.request_timeout_s:g} s (server busy); "
                            "retry later or send fewer images") from None
    total_ms = sum(r["time_ms"] for r in records)
    return {"results": records,
            "summary": {"images": len(records), "classified": len(records), "model": state.model["file"],
                        "backend": state.model["backend"], "classify_ms": round(total_ms, 3),
                        "ms_per_image": round(total_ms / len(records), 3),
                        "wall_ms": round((time.perf_counter() - t0) * 1e3, 3)}}
