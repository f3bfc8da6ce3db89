"""The TFLite engine shared by the LiteRT, tflite-runtime and tf.lite backends.

Each of those packages ships the same ``Interpreter`` class; the backend module only says how to
construct one. This module handles, without the caller knowing:

- quantized input/output tensors (int8, uint8, int16: scale and zero point);
- any batch size (the input tensor is resized; models with a fixed batch run in chunks);
- stateful graphs (the fused LSTM op keeps state between invokes: variables are reset each call);
- a default delegate (XNNPACK) that refuses a model (at ``allocate_tensors`` or, lazily, at the
  first ``invoke``): the interpreter is rebuilt on the built-in kernels (OpResolverType
  BUILTIN_WITHOUT_DEFAULT_DELEGATES) and the fallback is logged at debug level;
- a graph whose batch dimension cannot be resized: it runs in chunks of its fixed batch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from mnistkit.runtime.engine import Engine, check_io, fixed_batch, io_description
from mnistkit.runtime.errors import ModelError, first_line
from mnistkit.runtime.quant import Dequantizer, PixelConverter, Quantizer, qparams

LOGGER = "mnistkit.runtime"

#: Ops that keep state in variable tensors between invokes.
STATEFUL_OPS = frozenset({
    "UNIDIRECTIONAL_SEQUENCE_LSTM", "BIDIRECTIONAL_SEQUENCE_LSTM", "UNIDIRECTIONAL_SEQUENCE_RNN",
    "BIDIRECTIONAL_SEQUENCE_RNN", "VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE",
})

# dtype instances for hot-path checks: ``x.dtype == np.uint8`` (against a type) costs ~0.11 us,
# against an instance ~0.08 us; a small int8 model's whole call is ~4 us.
_UINT8, _FLOAT32 = np.dtype(np.uint8), np.dtype(np.float32)

#: make(no_delegates) -> a constructed (not yet allocated) Interpreter.
Factory = Callable[[bool], Any]


class TFLiteEngine(Engine):
    """Runs a .tflite model on an ``Interpreter`` built by ``factory``."""

    def __init__(self, factory: Factory, *, backend: str, name: str, delegates_ok: bool = True):
        """Build and allocate the interpreter.

        Args:
            factory: builds an Interpreter; its argument asks for no default delegates.
            backend: backend name for messages and ``describe``.
            name: model file name for messages.
            delegates_ok: False to start without default delegates (set when cloning a fallback).

        Raises:
            ModelError: the file is not a usable TFLite model.
        """
        self.backend = backend
        self._factory, self._name = factory, name
        self._no_delegates = not delegates_ok
        self._interp = self._build(self._no_delegates)
        inp, out = self._details()
        if len(inp) != 1 or len(out) != 1:
            raise ModelError(f"{name} has {len(inp)} inputs and {len(out)} outputs; expected 1 and 1")
        inp, out = inp[0], out[0]
        in_sig = list(inp.get("shape_signature", inp["shape"]))
        self._layout = check_io(name, in_sig, list(out.get("shape_signature", out["shape"])))
        self._in_index, self._out_index = inp["index"], out["index"]
        self._in_dtype, self._out_dtype = np.dtype(inp["dtype"]), np.dtype(out["dtype"])
        self._in_q, self._out_q = qparams(inp), qparams(out)
        self._quantize = Quantizer(*self._in_q, self._in_dtype) if self._in_q else None
        self._dequantize = Dequantizer(*self._out_q, self._out_dtype) if self._out_q else None
        self._from_pixels = PixelConverter(self._quantize)
        self._needs_reshape = self._layout != (28, 28)  # e.g. (28, 28, 1) or (784,) inputs
        self._fixed = fixed_batch(in_sig[0])
        self._batch = int(inp["shape"][0])
        self._stateful = _has_state(self._interp)
        if self._fixed is None and _batch_crashes(backend, self._in_dtype, self._interp):
            _debug("%s: %s runs one image at a time (batched int8 LSTM graphs crash tflite-runtime "
                   "2.14 on aarch64)", backend, name)
            self._fixed = 1
        self._allocate()

    # -- construction -------------------------------------------------------------------------
    def _details(self) -> tuple[list, list]:
        """Input and output tensor details; a damaged name or shape gives a ModelError."""
        try:
            inp, out = self._interp.get_input_details(), self._interp.get_output_details()
            for d in (*inp, *out):  # touch what is used later: every field must decode
                shape, sig = list(d["shape"]), list(d.get("shape_signature", d["shape"]))
                np.dtype(d["dtype"])
                if len(shape) != len(sig):  # (fuzzer find: an empty shape with a full signature)
                    raise ValueError(f"tensor shape {shape} disagrees with its signature {sig}")
        except (UnicodeDecodeError, KeyError, IndexError, TypeError, ValueError) as exc:
            what = "a tensor name that is not UTF-8" if isinstance(exc, UnicodeDecodeError) \
                else f"unreadable tensor details ({first_line(exc)})"
            raise ModelError(f"{self._name} is damaged: {what}; re-export it or check the file "
                             "is complete") from None
        return inp, out

    def _build(self, no_delegates: bool):
        try:
            return self._factory(no_delegates)
        except (ValueError, RuntimeError, TypeError) as exc:
            if "opcode" in str(exc):  # a valid model with ops this interpreter is too old for
                raise self._op_error(exc) from None
            raise ModelError(f"{self._name} is not a valid TFLite model ({first_line(exc)}); "
                             "re-export it or check the file is complete") from None

    def _allocate(self) -> None:
        try:
            self._interp.allocate_tensors()
        except (RuntimeError, ValueError) as exc:
            self._fallback(exc)

    def _fallback(self, exc: Exception) -> None:
        """Rebuild the interpreter without default delegates after ``exc`` (or give up)."""
        if self._no_delegates:
            raise self._op_error(exc) from None
        _debug("%s: the default delegate (XNNPACK) refused %s (%s); falling back to the "
               "built-in kernels", self.backend, self._name, first_line(exc))
        self._no_delegates = True
        self._interp = self._build(True)
        if self._batch != int(self._details()[0][0]["shape"][0]):
            self._interp.resize_tensor_input(self._in_index, [self._batch, *self._layout])
        try:
            self._interp.allocate_tensors()
        except (RuntimeError, ValueError) as exc2:
            raise self._op_error(exc2) from None

    def _op_error(self, exc: Exception) -> ModelError:
        msg = first_line(exc)
        if ("opcode" in str(exc) or "op for builtin" in str(exc)) and self.backend != "litert":
            hint = ("the model uses op versions newer than this interpreter knows; run it with "
                    "ai-edge-litert (pip install ai-edge-litert)"
                    + (" or export it in another mode (float32 / int8)"
                       if self.backend == "tflite-runtime" else ""))
        elif "opcode" in str(exc) or "op for builtin" in str(exc):
            # LiteRT is the newest interpreter: advice to install it would be wrong. The file asks
            # for an op nobody ships (damaged), or one newer than this LiteRT release.
            hint = ("the file asks for an op this LiteRT does not know: it is damaged or from a "
                    "newer converter; re-export it, or upgrade ai-edge-litert")
        else:
            hint = "re-export the model"
        return ModelError(f"{self.backend} cannot run {self._name}: {msg}; {hint}")

    def _resize(self, n: int) -> bool:
        """Resize the input to batch ``n``; False if the graph cannot take another batch size."""
        try:
            self._interp.resize_tensor_input(self._in_index, [n, *self._layout])
        except (RuntimeError, ValueError) as exc:
            _debug("%s cannot be resized to batch %d (%s); running it in chunks of %d",
                   self._name, n, first_line(exc), self._batch)
            self._fixed = self._batch
            return False
        self._batch = n
        self._allocate()
        return True

    # -- running ------------------------------------------------------------------------------
    def run(self, x: np.ndarray) -> np.ndarray:
        n = x.shape[0]
        if self._fixed is not None and n != self._fixed:
            return self._run_chunked(x, self._fixed)
        if n != self._batch and not self._resize(n):
            return self._run_chunked(x, self._fixed)
        return self._invoke(x)

    def _run_chunked(self, x: np.ndarray, size: int) -> np.ndarray:
        out = np.empty((x.shape[0], 10), np.float32)
        for start in range(0, x.shape[0], size):
            chunk = x[start:start + size]
            k = chunk.shape[0]
            if k < size:  # pad the last chunk to the fixed batch
                chunk = np.concatenate([chunk, np.zeros((size - k, *chunk.shape[1:]), chunk.dtype)])
            out[start:start + k] = self._invoke(chunk)[:k]
        return out

    def _invoke(self, x: np.ndarray) -> np.ndarray:
        if x.dtype == _UINT8:
            x = self._from_pixels(x)
        elif self._quantize is not None:
            x = self._quantize(x)
        if self._needs_reshape:
            x = x.reshape(x.shape[0], *self._layout)
        try:
            y = self._call(x)
        except (RuntimeError, ValueError) as exc:  # delegates may refuse lazily, at first invoke
            self._fallback(exc)
            try:
                y = self._call(x)
            except (RuntimeError, ValueError) as exc2:
                raise self._op_error(exc2) from None
        if self._dequantize is not None:
            y = self._dequantize(y)
        if y.shape != (x.shape[0], 10):  # a damaged graph can compute another shape than it declares
            if y.size != x.shape[0] * 10:
                raise ModelError(f"{self._name} gave outputs of shape {y.shape} for {x.shape[0]} image(s), "
                                 "not 10 scores each; the file is damaged: re-export it")
            y = y.reshape(x.shape[0], 10)
        return y if y.dtype == _FLOAT32 else y.astype(np.float32)

    def _call(self, x: np.ndarray) -> np.ndarray:
        interp = self._interp
        interp.set_tensor(self._in_index, x)
        if self._stateful:
            interp.reset_all_variables()
        interp.invoke()
        return interp.get_tensor(self._out_index)

    def clone(self) -> "TFLiteEngine":
        return TFLiteEngine(self._factory, backend=self.backend, name=self._name,
                            delegates_ok=not self._no_delegates)

    def describe(self) -> dict:
        return io_description(self.backend, self._in_dtype, self._out_dtype, self._in_q, self._out_q) | {
            "default_delegates": not self._no_delegates,
            "stateful": self._stateful,
            "fixed_batch": self._fixed,
        }


def _node_names(interp) -> set[str] | None:
    """Op names of the graph, or None if this interpreter wrapper does not expose them."""
    try:
        raw = interp._interpreter  # noqa: SLF001 - op names are only exposed privately
        return {raw.NodeName(i) for i in range(raw.NumNodes())}
    except Exception:  # noqa: BLE001 - older/newer wrappers
        return None


def _batch_crashes(backend: str, in_dtype: np.dtype, interp) -> bool:
    """True where a batch of images is known to kill the process: tflite-runtime 2.14 on aarch64
    running a full-int8 unrolled LSTM (measured under emulation, reports/compat.md)."""
    import platform

    if backend != "tflite-runtime" or in_dtype != np.int8 or platform.machine().lower() not in ("aarch64", "arm64"):
        return False
    names = _node_names(interp)
    return names is None or {"LOGISTIC", "SPLIT"} <= names


def _has_state(interp) -> bool:
    """True if the graph holds stateful ops (or if that cannot be told: then reset to be safe)."""
    names = _node_names(interp)
    return names is None or bool(names & STATEFUL_OPS)


def _debug(msg: str, *args) -> None:
    """Log at debug level; ``logging`` is imported only here (it costs start-up time)."""
    import logging

    logging.getLogger(LOGGER).debug(msg, *args)
