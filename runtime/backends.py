"""Backend registry: which backend runs which file type, what is installed, how to load it.

Backends are small modules (``backend_<name>.py``) exposing ``load(content, name=, threads=) ->
Engine``; everything else about a backend (its module, import name, pip package, the formats it
reads and its rank among them) is in the tables below, the only place it is written. Nothing heavy
is imported here: availability is checked with ``importlib.util.find_spec`` and the backend module
imports its package only when a model is loaded. Adding a backend: a ``backend_<name>.py`` and one
row in BACKENDS, PACKAGES and PREFERENCE.
"""

from __future__ import annotations

import importlib
import importlib.util
import platform
import sys
from types import ModuleType

from mnistkit.runtime.errors import BackendUnavailableError, ModelError, UsageError

#: backend name -> module implementing it, in order of preference per format.
BACKENDS: dict[str, str] = {
    "litert": "mnistkit.runtime.backend_litert",
    "tflite-runtime": "mnistkit.runtime.backend_tflite_runtime",
    "tensorflow": "mnistkit.runtime.backend_tensorflow",
    "onnxruntime": "mnistkit.runtime.backend_onnxruntime",
}
#: import name and pip package of each backend (kept here so listing them imports nothing).
PACKAGES: dict[str, tuple[str, str]] = {
    "litert": ("ai_edge_litert", "ai-edge-litert"),
    "tflite-runtime": ("tflite_runtime", "tflite-runtime"),
    "tensorflow": ("tensorflow", "tensorflow-cpu"),
    "onnxruntime": ("onnxruntime", "onnxruntime"),
}
PREFERENCE: dict[str, tuple[str, ...]] = {
    "tflite": ("litert", "tflite-runtime", "tensorflow"),
    "onnx": ("onnxruntime",),
}
ALIASES: dict[str, str] = {
    "ai-edge-litert": "litert", "ai_edge_litert": "litert", "tflite_runtime": "tflite-runtime",
    "tf": "tensorflow", "tf.lite": "tensorflow", "tensorflow-cpu": "tensorflow", "ort": "onnxruntime",
}


def detect_format(name: str, head: bytes) -> str:
    """Return "tflite" or "onnx" from a file name and its first bytes.

    Raises:
        ModelError: neither the extension nor the content tells a supported format.
    """
    lower = name.lower()
    if head[4:8] == b"TFL3" or lower.endswith(".tflite"):
        return "tflite"
    if lower.endswith(".onnx"):
        return "onnx"
    raise ModelError(f"{name} is neither a .tflite nor an .onnx model; pass a file exported by "
                     "`mnistkit export`")


def canonical(backend: str) -> str:
    """Return the registered name of ``backend`` (aliases accepted).

    Raises:
        UsageError: unknown backend.
    """
    key = backend.strip().lower()
    key = ALIASES.get(key, key)
    if key not in BACKENDS:
        raise UsageError(f"unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
    return key


def installed(name: str) -> bool:
    """True if the package behind backend ``name`` can be found (without importing it)."""
    module = PACKAGES[name][0]
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def available() -> list[str]:
    """Names of the backends whose package is installed."""
    return [name for name in BACKENDS if installed(name)]


def choose(fmt: str, backend: str | None) -> list[str]:
    """Return the backends to try, in order, for a model of format ``fmt``.

    Raises:
        UsageError: unknown backend, or a backend that cannot read this format.
        BackendUnavailableError: no installed backend can read this format.
    """
    if backend is not None:
        name = canonical(backend)
        if name not in PREFERENCE[fmt]:
            raise UsageError(f"backend {name!r} cannot run .{fmt} models; for .{fmt} use: "
                             f"{', '.join(PREFERENCE[fmt])}")
        if not installed(name):
            raise BackendUnavailableError(_missing(name))
        return [name]
    names = [n for n in PREFERENCE[fmt] if installed(n)]
    if not names and is_32bit_arm():
        raise BackendUnavailableError(
            f"no backend for .{fmt} models is installed, and none publishes wheels for 32-bit ARM "
            f"({platform.machine()}); install a 64-bit OS (e.g. Raspberry Pi OS 64-bit), then: "
            f"pip install {PACKAGES[PREFERENCE[fmt][0]][1]}")
    if not names:
        raise BackendUnavailableError(
            f"no backend for .{fmt} models is installed; install one with: pip install "
            f"{PACKAGES[PREFERENCE[fmt][0]][1]}"
            + (f" (alternatives: {', '.join(PACKAGES[n][1] for n in PREFERENCE[fmt][1:])})"
               if len(PREFERENCE[fmt]) > 1 else ""))
    return names


def is_32bit_arm() -> bool:
    """True on a 32-bit ARM Python (armv6l/armv7l), for which no backend ships wheels."""
    return platform.machine().lower().startswith("armv") or (
        platform.machine().lower() in ("aarch64", "arm64") and sys.maxsize <= 2**32)


def module(name: str) -> ModuleType:
    """Import the backend module ``name`` (this imports its package).

    Raises:
        BackendUnavailableError: the package is missing or fails to import.
    """
    try:
        mod = importlib.import_module(BACKENDS[name])
        importlib.import_module(PACKAGES[name][0])
    except Exception as exc:  # noqa: BLE001 - broken native wheels raise all sorts of errors
        note = f"; {NOTES[name]}" if name in NOTES else ""
        line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise BackendUnavailableError(f"backend {name!r} failed to import ({line}){note}") from None
    return mod


#: extra advice when a backend's package is installed but fails to import.
NOTES: dict[str, str] = {
    "tflite-runtime": "tflite-runtime 2.14 needs numpy<2; prefer: pip install ai-edge-litert",
}


def _missing(name: str) -> str:
    return f"backend {name!r} is not usable; install it with: pip install {PACKAGES[name][1]}"
