"""Bind the listening socket, run uvicorn on it, and stop cleanly on Ctrl-C.

The socket is bound and listening before uvicorn starts, so the printed URL answers at once (early
connections wait in the backlog) and a port in use is a one-line error instead of a log entry.
"""

from __future__ import annotations

import errno
import os
import socket
import threading
from concurrent.futures import ThreadPoolExecutor

from mnistkit.runtime.errors import MnistkitError
from mnistkit.tools.serve import api

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def default_threads() -> int:
    """Worker threads classifying at once: the cores, at most 4 (a Raspberry Pi 4/5 has 4)."""
    return max(1, min(4, os.cpu_count() or 1))


def bind(host: str, port: int) -> socket.socket:
    """Return a listening TCP socket on ``host``:``port`` (port 0: any free port).

    Raises:
        MnistkitError: the address is unknown or the port is in use or not allowed.
    """
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                          flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        raise MnistkitError(f"cannot listen on --host {host} ({exc.strerror}); use 127.0.0.1, 0.0.0.0 "
                            "or an address of this machine") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise MnistkitError(f"port {port} on {host} is in use (another server?); pass another "
                                "--port, or --port 0 for any free one") from None
        raise MnistkitError(f"cannot listen on {host}:{port} ({exc.strerror}); ports below 1024 need "
                            "root: pass --port 8000") from None
    return sock


def url_of(sock: socket.socket, host: str) -> str:
    """The URL to print for a bound socket."""
    port = sock.getsockname()[1]
    shown = "127.0.0.1" if host in ("0.0.0.0", "localhost") else "[::1]" if host == "::" else host
    shown = f"[{shown}]" if ":" in shown and not shown.startswith("[") else shown
    return f"http://{shown}:{port}/"


def serve(state: api.ServeState, sock: socket.socket, access_log: bool = False) -> None:
    """Run the app on ``sock`` until Ctrl-C or SIGTERM; return after a clean shutdown.

    In-flight requests finish first (uvicorn's graceful shutdown, at most 5 s), then the worker pool stops.
    """
    import uvicorn

    from mnistkit.tools.serve.app import create_app

    config = uvicorn.Config(
        create_app(state), log_level="warning", access_log=access_log, lifespan="off",
        timeout_keep_alive=5, timeout_graceful_shutdown=5, server_header=False,
        limit_concurrency=256,  # a backstop; /api/classify refuses with JSON 503 well before this
    )
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it caught once it has shut down
        pass
    finally:
        state.pool.shutdown(wait=False, cancel_futures=True)
        sock.close()


def make_pool(threads: int) -> ThreadPoolExecutor:
    """The fixed pool of classifying threads (each keeps its own interpreter for its lifetime)."""
    return ThreadPoolExecutor(max_workers=threads, thread_name_prefix="mnistkit-classify")


def warm_up(clf, pool: ThreadPoolExecutor, threads: int) -> None:
    """Start every worker thread's interpreter now (a barrier puts one warm-up on each thread).

    So the first requests are as fast as the others, and LiteRT's start-up lines are printed while
    the caller silences them.
    """
    barrier = threading.Barrier(threads)

    def one() -> None:
        barrier.wait(timeout=30)
        clf.warm_up()

    for future in [pool.submit(one) for _ in range(threads)]:
        future.result()


def prime_decoder(clf) -> None:
    """Decode and classify one bundled photo (run on a worker once the URL is printed).

    Pillow and the preprocessing load on first use; doing it here, off the start-up path, spares
    the first client that wait. A failure here is ignored: the first request would meet it anyway.
    """
    try:
        from mnistkit.runtime.cli import ASSETS

        clf.classify((ASSETS / "samples" / "1_handwritten.png").read_bytes())
    except Exception:  # noqa: BLE001,S110 - best effort only
        pass
