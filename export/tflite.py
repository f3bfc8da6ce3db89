"""TFLite exporter: float32, float16, dynamic-range, full int8 and int16x8.

Recurrent models (see ``base.graph_kind``): full int8 is written op by op from the trained weights
(export/recurrent_int8.py: int16 gates and cell state, a WHILE loop); the other modes convert an
unrolled clone (``zoo.unrolled_clone``). Keras 3's own LSTM graph does not convert with a free batch.
Full int8 has int8 input and output; int16x8 keeps float32 input and output.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from mnistkit.export import base
from mnistkit.export.modes import ExportConfig, Format, Mode
from mnistkit.export.tflite_fixups import fix_degenerate_int8_scales, fold_batch_reshapes, strip_tensor_names
from mnistkit.runtime.errors import ExportError

# Constant tensors smaller than this are shapes or axes, not weights.
_MIN_WEIGHT_ELEMS = 16


@functools.lru_cache(maxsize=2)
def _saved_model(graph, batch: int | None = None) -> str:
    """Export ``graph`` once per process as a SavedModel; converting from it skips Keras re-tracing
    (measured 3 s instead of 10 s per mode for the unrolled SimpleRNN). ``batch`` fixes the batch
    dimension of the signature (``model.export`` always writes a free one)."""
    folder = tempfile.mkdtemp(prefix="mnistkit-savedmodel-")
    atexit.register(shutil.rmtree, folder, True)
    if batch is None:
        graph.export(folder, format="tf_saved_model", verbose=False)
        return folder
    import keras
    import tensorflow as tf

    archive = keras.export.ExportArchive()
    archive.track(graph)
    archive.add_endpoint("serve", lambda x: graph(x, training=False),
                         input_signature=[tf.TensorSpec([batch, *graph.input_shape[1:]], tf.float32, name="image")])
    archive.write_out(folder, verbose=False)
    return folder


def _converter(graph, config: ExportConfig, calib: np.ndarray | None, batch: int | None = None):
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_saved_model(_saved_model(graph, batch))
    mode = config.mode
    if mode is Mode.NONE:
        return conv
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode is Mode.FLOAT16:
        conv.target_spec.supported_types = [tf.float16]
    elif mode.calibrated:

        def representative():
            for i in range(len(calib)):
                yield [calib[i : i + 1]]

        conv.representative_dataset = representative
        if mode is Mode.INT8:
            conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            conv.inference_input_type = tf.int8
            conv.inference_output_type = tf.int8
        else:
            conv.target_spec.supported_ops = [
                tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
            ]
    return conv


def convert(model, config: ExportConfig, *, batch: int | None = None,
            micro: bool = False) -> tuple[bytes, dict[str, Any]]:
    """Convert a loaded Keras zoo model to TFLite bytes.

    Args:
        model: the Keras zoo model.
        config: mode and calibration settings.
        batch: fix the batch dimension (export/tflm.py asks for 1); None keeps it free.
        micro: write the TFLite Micro variant of the recurrent int8 graph (export/tflm.py asks for it).

    Returns:
        The flatbuffer and the calibration record.

    Raises:
        ExportError: the converter rejected the graph.
    """
    if config.mode.calibrated:
        calib, record = base.calibration_set(config)
    else:
        calib, record = None, base.no_calibration()
    if base.graph_kind(model.name, Format.TFLITE, config.mode) == "loop":
        from mnistkit.export import recurrent_int8

        data, scheme = recurrent_int8.convert(model, calib, batch, micro)
        return data, {**record, "recurrent_int8": scheme}
    graph = base.conversion_graph(model, Format.TFLITE, config.mode)
    try:
        data = _converter(graph, config, calib, batch).convert()
    except Exception as exc:  # the converter raises ConverterError, ValueError, RuntimeError...
        first = next((ln for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
        raise ExportError(f"TFLite converter failed for {model.name} {config.mode.value}: {first[:300]}") from None
    if config.mode.calibrated:
        data, fixes = fix_degenerate_int8_scales(data)
        record = {**record, "degenerate_scales_fixed": fixes}
    data, _ = fold_batch_reshapes(data)
    return strip_tensor_names(data), record


# ---------------------------------------------------------------------------------------- inspection


def _enum_names(cls) -> dict[int, str]:
    return {v: k for k, v in vars(cls).items() if not k.startswith("_") and isinstance(v, int)}


def _io(tensor, types: dict[int, str]) -> dict[str, Any]:
    q = tensor.quantization
    scales = list(q.scale) if q is not None and q.scale is not None else []
    zps = list(q.zeroPoint) if q is not None and q.zeroPoint is not None else []
    shape = tensor.shapeSignature if tensor.shapeSignature is not None else tensor.shape
    out: dict[str, Any] = {
        "name": tensor.name.decode() if isinstance(tensor.name, bytes) else tensor.name,
        "dtype": types[tensor.type].lower(),
        "shape": [int(d) for d in shape],
    }
    if scales:
        out["quantization"] = {"scale": float(scales[0]), "zero_point": int(zps[0]) if zps else 0}
    return out


def inspect_file(path: str | os.PathLike) -> dict[str, Any]:
    """Read a .tflite file: input/output dtypes and quantization, operator census (all subgraphs,
    so a WHILE loop's body counts).

    Parses the flatbuffer only (no interpreter, no TensorFlow).
    """
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(Path(path).read_bytes(), 0)
    types = _enum_names(schema.TensorType)
    all_ops, weighted = [], []
    weight_elems: dict[str, int] = {}
    for sg in model.subgraphs:
        graph = _Subgraph(model, sg, _enum_names(schema.BuiltinOperator), types)
        for op in sg.operators:
            name = graph.op_name(op)
            all_ops.append(name)
            precision = graph.weighted_precision(op)
            if precision is not None:
                weighted.append((name, precision))
        for dtype, n in graph.weight_elements().items():
            weight_elems[dtype] = weight_elems.get(dtype, 0) + n
    sg = model.subgraphs[0]
    return {
        "input": _io(sg.tensors[sg.inputs[0]], types),
        "output": _io(sg.tensors[sg.outputs[0]], types),
        "ops": base.op_census(weighted, all_ops, weight_elems),
    }


class _Subgraph:
    """One subgraph of a parsed model (``schema.ModelT``), with the questions the census asks of it."""

    def __init__(self, model, sg, op_names: dict[int, str], types: dict[int, str]) -> None:
        self.model, self.tensors, self.op_names, self.types = model, sg.tensors, op_names, types
        self.producer = {int(o): op for op in sg.operators for o in op.outputs}

    def op_name(self, op) -> str:
        """Builtin operator name of ``op``."""
        code = self.model.operatorCodes[op.opcodeIndex]
        return self.op_names.get(max(code.builtinCode, code.deprecatedBuiltinCode), str(code.builtinCode))

    def is_const(self, i: int) -> bool:
        """Whether tensor ``i`` holds data in the file (a weight, bias or shape)."""
        buffers = self.model.buffers
        buf = buffers[self.tensors[i].buffer] if self.tensors[i].buffer < len(buffers) else None
        return buf is not None and buf.data is not None and len(buf.data) > 0

    def elements(self, i: int) -> int:
        """Number of elements of tensor ``i``."""
        shape = self.tensors[i].shape
        return int(np.prod(shape)) if shape is not None and len(shape) else 1

    def is_kernel(self, i: int) -> bool:
        """A weight matrix or conv kernel (not a bias or a shape)."""
        shape = self.tensors[i].shape
        return self.is_const(i) and shape is not None and len(shape) >= 2 and self.elements(i) >= _MIN_WEIGHT_ELEMS

    def dtype(self, i: int) -> str:
        """Stored type of tensor ``i``, e.g. "int8"."""
        return self.types[self.tensors[i].type].lower()

    def weight_dtypes(self, op) -> list[str]:
        """Stored types of ``op``'s kernels, looking through a DEQUANTIZE that feeds one."""
        out = []
        for i in (int(i) for i in op.inputs if i >= 0):
            src = self.producer.get(i)
            if self.is_kernel(i):
                out.append(self.dtype(i))
            elif src is not None and self.op_name(src) == "DEQUANTIZE" and src.inputs is not None:
                if self.is_kernel(int(src.inputs[0])):
                    out.append(self.dtype(int(src.inputs[0])))
        return out

    def weighted_precision(self, op) -> str | None:
        """Precision of an op that holds weights (see ``base.op_census``); None for other ops."""
        weights = self.weight_dtypes(op)
        if self.op_name(op) in ("DEQUANTIZE", "QUANTIZE") or not weights:
            return None
        acts = [self.dtype(int(i)) for i in op.inputs if i >= 0 and not self.is_const(int(i))]
        if "int16" in acts:
            return "int16x8"
        if "int8" in acts:
            return "int8"
        if "int8" in weights:
            return "int8-weights"
        return "float16" if "float16" in weights else "float32"

    def weight_elements(self) -> dict[str, int]:
        """Constant weight elements per stored type (tensors of at least ``_MIN_WEIGHT_ELEMS`` values)."""
        out: dict[str, int] = {}
        for i in range(len(self.tensors)):
            if self.is_const(i) and self.elements(i) >= _MIN_WEIGHT_ELEMS:
                out[self.dtype(i)] = out.get(self.dtype(i), 0) + self.elements(i)
        return out
