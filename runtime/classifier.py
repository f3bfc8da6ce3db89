"""``Classifier``: load an exported model once, then classify images with it.

    from mnistkit.runtime import Classifier
    clf = Classifier.load("exports/lstm_int8.tflite")
    clf.predict_proba(x)          # float32 (N, 28, 28) in [0, 1] or uint8 pixels -> float32 (N, 10)
    clf.classify("digit.png")     # -> [Prediction(label=7, confidence=0.98, ...)]

One ``Classifier`` may be used from several threads at once; answers equal sequential calls. A
TFLite interpreter is not thread-safe, so each extra thread gets its own interpreter on the same
model bytes (made on its first call; the interpreter releases the GIL, so threads run in parallel).
The alternative, one interpreter behind a lock, is kept (``concurrency="lock"``) and measured in
tools/bench/runtime_overhead.py. onnxruntime sessions are thread-safe and are shared.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np

from mnistkit.runtime import backends, embedded, limits, manifest, pixels
from mnistkit.runtime import probe as probe_mod
from mnistkit.runtime.engine import Engine
from mnistkit.runtime.errors import BackendUnavailableError, IntegrityError, ModelError, UsageError
from mnistkit.runtime.prediction import Prediction, predictions


#: Input dtypes engines take as they are (a set lookup: ``dtype == np.float32`` costs ~0.1 us, a
#: visible share of a small int8 model's ~4 us call).
_READY_DTYPES = frozenset({np.dtype(np.float32), np.dtype(np.uint8)})


class Classifier:
    """A loaded model plus the logic to feed it images. Build it with ``Classifier.load``."""

    def __init__(self, engine: Engine, *, path: Path, fmt: str, manifest_data: dict | None,
                 concurrency: str = "per-thread", metadata: dict | None = None):
        self._engine = engine
        self._lock = threading.Lock()
        self._local = threading.local()
        self._owner = threading.get_ident()
        self._per_thread = concurrency == "per-thread"
        self.path = path
        self.format = fmt
        self.manifest = manifest_data
        #: The manifest essentials embedded in the file itself (None if it carries none).
        self.metadata = metadata

    @classmethod
    def load(cls, path: str | os.PathLike, backend: str | None = None,
             threads: int | None = None, *, concurrency: str = "per-thread",
             max_memory_mb: float | None = None, require_manifest: bool = False,
             probe: bool | None = None) -> "Classifier":
        """Load a .tflite or .onnx model.

        Args:
            path: the model file. If ``<path>.json`` lies beside it, its sha256 is checked;
                otherwise the digest embedded in the file by ``mnistkit export`` (if any) is.
            backend: "litert", "tflite-runtime", "tensorflow" or "onnxruntime"; None picks the
                best installed backend for the file type.
            threads: CPU threads for inference (None: the backend's default, which is 1 for
                the TFLite interpreters and all cores for onnxruntime).
            concurrency: "per-thread" (an interpreter per calling thread) or "lock" (one
                interpreter behind a lock); both give the same answers.
            max_memory_mb: refuse a .tflite model whose declared tensors need more than this
                for a batch of ``limits.CHUNK`` images (None: ``MNISTKIT_MAX_MODEL_MEMORY_MB``,
                default 512); checked before the interpreter allocates anything.
            require_manifest: refuse a file that can be verified neither by a manifest beside it
                nor by metadata embedded in it.
            probe: load and run such an unverifiable file once in a child process first, so a
                damaged file that crashes the native interpreter raises ModelError instead of
                killing this process (None: ``MNISTKIT_PROBE``, default on; see runtime/probe.py).

        Returns:
            A ready Classifier.

        Raises:
            ModelError: missing, corrupt or unsuitable model (input not 28x28, ...).
            IntegrityError: the file does not match its manifest or its embedded digest, or
                (``require_manifest``) cannot be verified at all.
            BackendUnavailableError: no installed backend can run it.
            UsageError: unknown backend or invalid thread count.
        """
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise UsageError(f"threads must be a positive integer, not {threads!r}")
        if concurrency not in ("per-thread", "lock"):
            raise UsageError(f"concurrency must be 'per-thread' or 'lock', not {concurrency!r}")
        if max_memory_mb is not None and (isinstance(max_memory_mb, bool)
                                          or not isinstance(max_memory_mb, (int, float))
                                          or not max_memory_mb > 0):
            raise UsageError(f"max_memory_mb must be a positive number, not {max_memory_mb!r}")
        path = Path(path)
        content = manifest.read_model(path)
        fmt = backends.detect_format(path.name, content[:8])
        names = backends.choose(fmt, backend)  # validate the backend before hashing
        data = manifest.load_manifest(path)
        manifest.verify(path, content, data)
        if data is None:  # no sidecar: the digest the file carries (if any) is the check
            meta = embedded.verify(content, path)
        else:  # the sidecar's sha256 already covers every byte
            found = embedded.locate(content, str(path))
            meta = found[0] if found else None
        if require_manifest and data is None and meta is None:
            raise IntegrityError(
                f"{path} cannot be verified: no {manifest.manifest_path(path).name} beside it and no "
                "mnistkit metadata inside it; use a file from `mnistkit export` or drop --strict")
        if fmt == "tflite":
            from mnistkit.runtime.tflite_check import check_memory

            limit = limits.max_model_memory() if max_memory_mb is None else int(max_memory_mb * 2**20)
            check_memory(content, str(path), limit, limits.CHUNK)
        failure: BackendUnavailableError | None = None
        for name in names:
            try:
                mod = backends.module(name)
            except BackendUnavailableError as exc:  # installed but broken: try the next one
                failure = failure or exc
                continue
            if data is None and meta is None and probe_mod.enabled(probe):
                probe_mod.probe(content, name, str(path))
            engine = mod.load(content, name=str(path), threads=threads)
            return cls(engine, path=path, fmt=fmt, manifest_data=data, concurrency=concurrency,
                       metadata=meta)
        raise failure or BackendUnavailableError(f"no backend could load {path}")

    @property
    def backend(self) -> str:
        """Name of the backend running the model."""
        return self._engine.backend

    def describe(self) -> dict:
        """Return a dict describing the model: path, format, backend, tensor types, quantization."""
        verified = "manifest" if self.manifest else "embedded" if self.metadata else None
        return {"path": str(self.path), "format": self.format, "verified_by": verified,
                **self._engine.describe()}

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Return class probabilities for preprocessed images.

        Args:
            x: array (N, 28, 28) (or one image (28, 28)): floats in [0, 1], or uint8 pixels
                0-255 (MNIST's own format), which mean pixel / 255 and give the same answers.
                uint8 skips a float conversion: the fastest input for quantized models.
                Batches larger than ``limits.CHUNK`` run in chunks (peak memory does not grow
                with N). An empty batch gives an empty (0, 10) array.

        Returns:
            float32 array (N, 10), every value finite.

        Raises:
            UsageError: not a float or uint8 array of 28x28 images, or values that are NaN/inf,
                negative or above 1 (see ``mnistkit.runtime.pixels``).
            ModelError: the model produced NaN or infinite scores (a damaged file).
        """
        if not (type(x) is np.ndarray and x.dtype in _READY_DTYPES and x.ndim == 3
                and x.shape[1:] == (28, 28) and x.flags.c_contiguous):
            x = _as_batch(x)
        if x.dtype.kind == "f":
            pixels.check_ready(x)
        n = x.shape[0]
        if n <= limits.CHUNK:
            if n == 0:
                return np.empty((0, 10), np.float32)
            return self._run(_ready(x))
        out = np.empty((n, 10), np.float32)
        for start in range(0, n, limits.CHUNK):
            out[start:start + limits.CHUNK] = self._run(_ready(x[start:start + limits.CHUNK]))
        return out

    def _run(self, x: np.ndarray) -> np.ndarray:
        """Run one chunk on this thread's engine and refuse non-finite scores."""
        if self._engine.thread_safe:
            y = self._engine.run(x)
        elif not self._per_thread:
            with self._lock:
                y = self._engine.run(x)
        else:
            engine = getattr(self._local, "engine", None) or self._thread_engine()
            y = engine.run(x)
        total = float(y.sum())  # one reduction: NaN/inf in any score makes the sum non-finite
        if total - total != 0.0 and not np.isfinite(y).all():  # (inf - inf and NaN - NaN are NaN)
            raise ModelError(f"{self.path.name} produced NaN or infinite scores for this input; the "
                             "model file is damaged or badly exported: re-export it")
        return y

    def _thread_engine(self) -> Engine:
        """This thread's engine: the original for the loading thread, a clone for the others."""
        if threading.get_ident() == self._owner:
            engine = self._engine
        else:
            with self._lock:  # clone() reads the original's state (e.g. delegate fallback)
                engine = self._engine.clone()
        self._local.engine = engine
        return engine

    def warm_up(self) -> None:
        """Run one blank image so that delegates and buffers are ready before timing starts."""
        self.predict_proba(np.zeros((1, 28, 28), np.float32))

    def classify(self, images, top_k: int = 3) -> list[Prediction]:
        """Classify one image or a batch.

        Args:
            images: a file path, a numpy image (28x28 MNIST-style uint8/float, or any size,
                grayscale or colour), or a list / batch array of those.
            top_k: how many (label, probability) pairs to keep per image (1-10).

        Returns:
            One Prediction per image, in order.

        Raises:
            ImageError: an image cannot be read or holds no digit.
            UsageError: invalid ``top_k`` or an input that is not an image.
        """
        from mnistkit.runtime.inputs import batches

        if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= 10:
            raise UsageError(f"top_k must be an integer from 1 to 10, not {top_k!r}")
        out: list[Prediction] = []
        for x, sources in batches(images, limits.CHUNK):  # memory bounded by the chunk size
            if len(x):
                out.extend(predictions(self.predict_proba(x), top_k, sources))
        return out

    def __repr__(self) -> str:
        return f"Classifier({str(self.path)!r}, backend={self.backend!r})"


def _as_batch(x) -> np.ndarray:
    """Check predict_proba's input: an array (N, 28, 28) of float or uint8 (not yet converted)."""
    x = np.asarray(x)
    if x.dtype.kind != "f" and x.dtype != np.uint8:
        raise UsageError(f"predict_proba takes float images in [0, 1] or uint8 pixels, not {x.dtype}; "
                         "scale them (x / 255) or use classify()")
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3 or x.shape[1:] != (28, 28):
        raise UsageError(f"predict_proba takes an array (N, 28, 28), not {x.shape}; "
                         "use classify() for other sizes or image files")
    return x


def _ready(x: np.ndarray) -> np.ndarray:
    """One chunk as a C-contiguous float32 or uint8 array (converted chunk by chunk)."""
    if x.dtype in _READY_DTYPES and x.flags.c_contiguous:
        return x
    return np.ascontiguousarray(x, dtype=np.uint8 if x.dtype == np.uint8 else np.float32)
