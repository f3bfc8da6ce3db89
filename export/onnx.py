"""ONNX exporter (tf2onnx + onnxruntime quantization): float32, float16, dynamic, int8, int16x8.

LSTM and BiLSTM convert whole (one ONNX ``LSTM`` op); SimpleRNN converts through an unrolled clone
(tf2onnx's ``Loop`` breaks float16 and cannot be quantized). float16 keeps float32 input/output.
dynamic is onnxruntime ``quantize_dynamic`` (int8 weights; LSTM becomes ``DynamicQuantizeLSTM``).
int8 and int16x8 are static QDQ (calibrated on training images) with float32 input/output;
onnxruntime's static quantizer leaves the ``LSTM`` op in float32, which ``inspect_file`` reports.
"""

from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from mnistkit.export import base
from mnistkit.export.modes import ExportConfig, Format, Mode
from mnistkit.runtime.errors import ExportError

OPSET = 17
INPUT_NAME = "image"
_CALIB_BATCH = 50
_MIN_WEIGHT_ELEMS = 16
# Ops that are int8 by construction (dynamic quantization and QOperator forms).
_INTEGER_OPS = {
    "MatMulInteger": "int8-weights", "ConvInteger": "int8-weights", "DynamicQuantizeLSTM": "int8-weights",
    "DynamicQuantizeMatMul": "int8-weights", "QLinearMatMul": "int8", "QLinearConv": "int8",
}


@functools.lru_cache(maxsize=2)
def _float_model(model):
    """The float32 ONNX graph of ``model`` (converted once per process, shared by every mode)."""
    import tensorflow as tf
    import tf2onnx

    graph = base.conversion_graph(model, Format.ONNX)
    spec = [tf.TensorSpec((None, 28, 28), tf.float32, name=INPUT_NAME)]
    proto, _ = tf2onnx.convert.from_keras(graph, input_signature=spec, opset=OPSET)
    return proto


def _copy(proto):
    import onnx

    clone = onnx.ModelProto()
    clone.CopyFrom(proto)
    return clone


class _Reader:
    """onnxruntime CalibrationDataReader over calibration images, in batches."""

    def __init__(self, images: np.ndarray):
        self._batches = iter([{INPUT_NAME: images[i : i + _CALIB_BATCH]} for i in range(0, len(images), _CALIB_BATCH)])

    def get_next(self):
        return next(self._batches, None)


def _quantize(float_path: Path, out_path: Path, config: ExportConfig) -> dict[str, Any]:
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if config.mode is Mode.DYNAMIC:
        quantize_dynamic(str(float_path), str(out_path), weight_type=QuantType.QInt8)
        return base.no_calibration()
    images, record = base.calibration_set(config)
    pre = float_path.with_name("pre_" + float_path.name)
    quant_pre_process(str(float_path), str(pre))
    act = QuantType.QInt8 if config.mode is Mode.INT8 else QuantType.QInt16
    quantize_static(
        str(pre), str(out_path), _Reader(images), quant_format=QuantFormat.QDQ,
        activation_type=act, weight_type=QuantType.QInt8, per_channel=True,
    )
    return record


def convert(model, config: ExportConfig) -> tuple[bytes, dict[str, Any]]:
    """Convert a loaded Keras zoo model to ONNX bytes in ``config.mode``.

    Returns:
        The serialized model and the calibration record.

    Raises:
        ExportError: tf2onnx or the quantizer failed.
    """
    import onnx

    try:
        proto = _float_model(model)
        if config.mode is Mode.NONE:
            return proto.SerializeToString(), base.no_calibration()
        if config.mode is Mode.FLOAT16:
            from onnxconverter_common import float16

            half = float16.convert_float_to_float16(_copy(proto), keep_io_types=True)
            return half.SerializeToString(), base.no_calibration()
        with tempfile.TemporaryDirectory(prefix="mnistkit-onnx-") as tmp:
            float_path, out_path = Path(tmp) / "float.onnx", Path(tmp) / "quant.onnx"
            onnx.save(proto, str(float_path))
            record = _quantize(float_path, out_path, config)
            return out_path.read_bytes(), record
    except ExportError:
        raise
    except Exception as exc:  # tf2onnx / onnxruntime raise many types
        first = next((ln for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
        raise ExportError(f"ONNX {config.mode.value} conversion failed for {model.name}: {first[:300]}") from None


# ---------------------------------------------------------------------------------------- inspection


def _dtype_name(elem_type: int) -> str:
    import onnx

    return onnx.helper.tensor_dtype_to_np_dtype(elem_type).name


def _value_io(value, graph, consumers) -> dict[str, Any]:
    ttype = value.type.tensor_type
    out: dict[str, Any] = {
        "name": value.name,
        "dtype": _dtype_name(ttype.elem_type),
        "shape": [d.dim_value if d.HasField("dim_value") else -1 for d in ttype.shape.dim],
    }
    inits = {i.name: i for i in graph.initializer}
    for node in consumers.get(value.name, []):  # QDQ: first QuantizeLinear after the float input
        if node.op_type == "QuantizeLinear" and len(node.input) >= 3 and node.input[1] in inits:
            from onnx import numpy_helper

            zp = numpy_helper.to_array(inits[node.input[2]])
            out["internal_quantization"] = {
                "scale": float(numpy_helper.to_array(inits[node.input[1]]).ravel()[0]),
                "zero_point": int(zp.ravel()[0]), "dtype": zp.dtype.name,
            }
    return out


def inspect_file(path: str | os.PathLike) -> dict[str, Any]:
    """Read an .onnx file: input/output dtypes (and QDQ parameters), operator census."""
    import onnx

    model = onnx.load(str(path))
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    producer, consumers = {}, {}
    for node in graph.node:
        for o in node.output:
            producer[o] = node
        for i in node.input:
            consumers.setdefault(i, []).append(node)

    def kernel_dtype(name: str) -> str | None:
        """dtype of the weight matrix behind input ``name`` (through DequantizeLinear/Cast)."""
        if name in inits:
            t = inits[name]
            return _dtype_name(t.data_type) if len(t.dims) >= 2 and np.prod(t.dims) >= _MIN_WEIGHT_ELEMS else None
        node = producer.get(name)
        if node is not None and node.op_type in ("DequantizeLinear", "Cast") and node.input:
            return kernel_dtype(node.input[0])
        return None

    used = {""} | {n.domain for n in graph.node}
    weighted = []
    for node in graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear", "Cast"):
            continue
        kinds = [k for k in (kernel_dtype(i) for i in node.input) if k]
        if not kinds:
            continue
        if node.op_type in _INTEGER_OPS:
            prec = _INTEGER_OPS[node.op_type]
        elif any(k in ("int8", "uint8") for k in kinds):
            act = producer.get(node.input[0])
            act_q = act is not None and act.op_type == "DequantizeLinear" and act.input[0] not in inits
            zp_type = _act_dtype(act, inits) if act_q else None
            prec = ("int16x8" if zp_type in ("int16", "uint16") else "int8") if act_q else "int8-weights"
        elif "float16" in kinds:
            prec = "float16"
        else:
            prec = "float32"
        weighted.append((node.op_type, prec))
    elems: dict[str, int] = {}
    for t in graph.initializer:
        n = int(np.prod(t.dims)) if len(t.dims) else 1
        if n >= _MIN_WEIGHT_ELEMS:
            elems[_dtype_name(t.data_type)] = elems.get(_dtype_name(t.data_type), 0) + n
    return {
        "input": _value_io(graph.input[0], graph, consumers),
        "output": _value_io(graph.output[0], graph, consumers),
        "ops": base.op_census(weighted, [n.op_type for n in graph.node], elems),
        "opset": {o.domain or "ai.onnx": o.version for o in model.opset_import if o.domain in used},
    }


def _act_dtype(dq_node, inits) -> str | None:
    if dq_node is None or len(dq_node.input) < 3 or dq_node.input[2] not in inits:
        return None
    return _dtype_name(inits[dq_node.input[2]].data_type)
