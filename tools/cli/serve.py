"""``mnistkit serve``: the click command (a thin adapter; the work is in ``mnistkit.tools.serve``)."""

from __future__ import annotations

import importlib.util
import socket
import sys
import time
from pathlib import Path

import click

EXTRA_MODULES = {"starlette": "starlette", "uvicorn": "uvicorn", "python_multipart": "python-multipart"}


@click.command("serve", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--model", "-m", "model", type=click.Path(path_type=Path, exists=True),
              help="Model file (.tflite/.onnx) or a folder holding one. Default: the bundled model.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. 0.0.0.0 makes it reachable from the network (e.g. a phone).")
@click.option("--port", "-p", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="TCP port (0: any free port; the URL printed says which).")
@click.option("--threads", "-t", type=click.IntRange(1, 64), default=None,
              help="Images classified at once, one interpreter each. Default: the cores, at most 4.")
@click.option("--max-upload-mb", type=click.FloatRange(0.01, 1024), default=10.0, show_default=True,
              help="Largest request body accepted; bigger ones get 413 before anything is decoded.")
@click.option("--max-images", type=click.IntRange(1, 256), default=16, show_default=True,
              help="Most images in one request.")
@click.option("--timeout", "timeout_s", type=click.FloatRange(1, 3600), default=30.0, show_default=True,
              help="Seconds one request may take (upload plus classification).")
@click.option("--backend", "-b", default=None,
              help="litert, tflite-runtime, tensorflow or onnxruntime. Default: the best installed.")
@click.option("--access-log", is_flag=True, help="Log every request to stderr.")
def serve(model: Path | None, host: str, port: int, threads: int | None, max_upload_mb: float,
          max_images: int, timeout_s: float, backend: str | None, access_log: bool) -> None:
    """Serve a web page and a JSON API that classify digits (draw, photograph or upload one).

    \b
    Examples:
      mnistkit serve                      then open http://127.0.0.1:8000/
      mnistkit serve --host 0.0.0.0       on a Pi: open http://<pi's name>.local:8000/ on a phone
      curl -F image=@digit.png http://127.0.0.1:8000/api/classify
    API: POST /api/classify, GET /api/model, GET /healthz, GET /openapi.json.
    """
    start = time.perf_counter()
    missing = [pkg for mod, pkg in EXTRA_MODULES.items() if importlib.util.find_spec(mod) is None]
    if missing:
        raise click.ClickException(f"`mnistkit serve` needs packages that are not installed "
                                   f"({', '.join(missing)}); install them with: pip install \"mnistkit[serve]\"")
    from mnistkit.runtime.classifier import Classifier
    from mnistkit.runtime.cli import quiet_native_stderr, resolve_model
    from mnistkit.tools.serve import api, server

    threads = threads or server.default_threads()
    pool = server.make_pool(threads)
    try:
        with quiet_native_stderr():  # LiteRT prints an INFO line per interpreter it starts
            clf = Classifier.load(resolve_model(model), backend=backend, threads=1)
            server.warm_up(clf, pool, threads)
    except BaseException:
        pool.shutdown(wait=False)
        raise
    limits = api.Limits(max_upload_bytes=int(max_upload_mb * 2**20), max_images=max_images,
                        request_timeout_s=timeout_s)
    state = api.ServeState(classifier=clf, pool=pool, limits=limits,
                           model=api.model_info(clf, limits))
    try:
        sock = server.bind(host, port)
    except Exception:
        state.pool.shutdown(wait=False)
        raise
    url = server.url_of(sock, host)
    info = state.model
    acc = f", {info['test_accuracy']:.2%} on MNIST test" if isinstance(info["test_accuracy"], float) else ""
    click.echo(f"mnistkit serve: {url}  ({info['file']}: {info['model'] or 'model'} {info['format']} "
               f"{info['mode'] or ''}{acc}; {info['backend']}, {threads} thread(s); ready in "
               f"{time.perf_counter() - start:.2f} s; Ctrl-C to stop)")
    click.echo(f"  API: POST {url}api/classify  GET {url}api/model  {url}healthz  {url}openapi.json")
    if host not in server.LOOPBACK:
        click.echo(f"warning: listening on {host}: anyone who can reach this machine on the network can "
                   f"use it (no password, no TLS); from another device open "
                   f"http://{socket.gethostname()}.local:{sock.getsockname()[1]}/ or this machine's IP",
                   err=True)
    sys.stdout.flush()
    pool.submit(server.prime_decoder, clf)
    server.serve(state, sock, access_log=access_log)
    click.echo("mnistkit serve: stopped")
