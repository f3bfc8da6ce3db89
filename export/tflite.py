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


def describe(path: str | os.PathLike) -> dict[str, Any]:
    """Read a .tflite file: input/output dtypes and quantization, operator census (all subgraphs,
    so a WHILE loop's body counts).

    Parses the flatbuffer only (no interpreter, no TensorFlow).
    """
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(Path(path).read_bytes(), 0)
    ops_names = _enum_names(schema.BuiltinOperator)
    types = _enum_names(schema.TensorType)

    def opname(op) -> str:
        code = model.operatorCodes[op.opcodeIndex]
        return ops_names.get(max(code.builtinCode, code.deprecatedBuiltinCode), str(code.builtinCode))

    all_ops, weighted = [], []
    weight_elems: dict[str, int] = {}
    for sg in model.subgraphs:
        tensors = sg.tensors

        def is_const(i: int) -> bool:
            buf = model.buffers[tensors[i].buffer] if tensors[i].buffer < len(model.buffers) else None
            return buf is not None and buf.data is not None and len(buf.data) > 0

        def elems(i: int) -> int:
            shape = tensors[i].shape
            return int(np.prod(shape)) if shape is not None and len(shape) else 1

        def is_kernel(i: int) -> bool:  # a weight matrix or conv kernel (not a bias or a shape)
            shape = tensors[i].shape
            return is_const(i) and shape is not None and len(shape) >= 2 and elems(i) >= _MIN_WEIGHT_ELEMS

        def dtype(i: int) -> str:
            return types[tensors[i].type].lower()

        producer = {int(o): op for op in sg.operators for o in op.outputs}
        for op in sg.operators:
            name = opname(op)
            all_ops.append(name)
            ins = [int(i) for i in op.inputs if i >= 0]
            weights = []
            for i in ins:
                src = producer.get(i)
                if is_kernel(i):
                    weights.append(dtype(i))
                elif src is not None and opname(src) == "DEQUANTIZE" and src.inputs is not None:
                    j = int(src.inputs[0])
                    if is_kernel(j):
                        weights.append(dtype(j))
            if name in ("DEQUANTIZE", "QUANTIZE") or not weights:
                continue
            acts = [dtype(i) for i in ins if not is_const(i)]
            if "int16" in acts:
                prec = "int16x8"
            elif "int8" in acts:
                prec = "int8"
            elif "int8" in weights:
                prec = "int8-weights"
            elif "float16" in weights:
                prec = "float16"
            else:
                prec = "float32"
            weighted.append((name, prec))
        for t_i in range(len(tensors)):
            if is_const(t_i) and elems(t_i) >= _MIN_WEIGHT_ELEMS:
                weight_elems[dtype(t_i)] = weight_elems.get(dtype(t_i), 0) + elems(t_i)
    sg = model.subgraphs[0]
    tensors = sg.tensors
    return {
        "input": _io(tensors[sg.inputs[0]], types),
        "output": _io(tensors[sg.outputs[0]], types),
        "ops": base.op_census(weighted, all_ops, weight_elems),
    }
