"""The per-image work of a bulk job: read, decode and preprocess one source (runs in workers).

Everything here is a plain function of picklable values, so it runs the same in the main process,
in a thread pool or in a process pool. Each stage is timed so the job can report where time went.
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass

import numpy as np

from mnistkit.runtime.errors import MnistkitError
from mnistkit.runtime.sources import Source, read_image_file


@dataclass
class Prepared:
    """One source after preprocessing: a (28, 28) float32 image, or the reason there is none."""

    source: str
    image: np.ndarray | None
    error: str | None
    decode_s: float = 0.0
    preprocess_s: float = 0.0


def prepare_source(source: Source) -> Prepared:
    """Read, decode and preprocess one source; every failure becomes ``Prepared.error``."""
    name = source.name
    if source.error is not None:
        return Prepared(name, None, _named(name, source.error))
    t0 = time.perf_counter()
    try:
        data = read_image_file(name)
        return prepare_bytes(name, data, t0)
    except MnistkitError as exc:
        return Prepared(name, None, _named(name, str(exc)), time.perf_counter() - t0)
    except Exception as exc:  # noqa: BLE001 - one bad image must never stop the job
        text = f"unexpected {type(exc).__name__}: {exc}".splitlines()[0]
        return Prepared(name, None, _named(name, text), time.perf_counter() - t0)


def prepare_bytes(name: str, data: bytes, t0: float | None = None) -> Prepared:
    """Decode and preprocess the encoded bytes of the image called ``name``.

    Raises:
        MnistkitError: never; failures are returned in ``Prepared.error``.
    """
    from mnistkit.runtime.imageio import decode_gray, describe
    from mnistkit.runtime.preprocess import prepare_gray

    t0 = time.perf_counter() if t0 is None else t0
    try:
        gray = decode_gray(data)
    except MnistkitError as exc:
        text = str(exc).replace(describe(data), name, 1)
        return Prepared(name, None, _named(name, text), time.perf_counter() - t0)
    except Exception as exc:  # noqa: BLE001
        text = f"unexpected {type(exc).__name__}: {exc}".splitlines()[0]
        return Prepared(name, None, _named(name, text), time.perf_counter() - t0)
    t1 = time.perf_counter()
    try:
        image = np.ascontiguousarray(prepare_gray(gray), dtype=np.float32)
    except MnistkitError as exc:
        return Prepared(name, None, _named(name, str(exc)), t1 - t0, time.perf_counter() - t1)
    except Exception as exc:  # noqa: BLE001
        text = f"unexpected {type(exc).__name__}: {exc}".splitlines()[0]
        return Prepared(name, None, _named(name, text), t1 - t0, time.perf_counter() - t1)
    return Prepared(name, image, None, t1 - t0, time.perf_counter() - t1)


def prepare_many(sources: list[Source]) -> list[Prepared]:
    """``prepare_source`` over a chunk (one task per chunk keeps inter-process traffic low)."""
    return [prepare_source(s) for s in sources]


def start_worker() -> None:
    """Worker-process initializer: Ctrl-C is the main process's to handle (it stops the pool), and
    the preprocessing kernels load now, while the main process gets ready, not in the first task."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        from mnistkit.runtime.preprocess import kernels_for_worker

        kernels_for_worker()
    except Exception:  # noqa: BLE001,S110 - a bad MNISTKIT_PREPROCESS is reported by every task instead
        pass


def _named(name: str, message: str) -> str:
    return message if message.startswith(name) else f"{name}: {message}"
