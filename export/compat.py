"""Will an exported .tflite file load on tflite-runtime 2.14? Decided from its operator codes alone.

tflite-runtime 2.14.0 (Oct 2023) is the last release of the standalone TFLite wheel, and many
devices still run it. A model names, per operator code, a builtin operator and a version; the
interpreter refuses the whole model when any (operator, version) pair is not registered in it:
``Didn't find op for builtin opcode 'FULLY_CONNECTED' version '12'`` (what TF 2.21's dynamic-range
files do). This module reads those codes with the runtime's bounds-checked flatbuffer reader
(``mnistkit.runtime.flatbuffer``; no TensorFlow, no ``flatbuffers`` package) and compares them
with the table below.

    report = tflite_runtime_compat("exports/mlp_dynamic.tflite")
    report.loads            # False
    report.reasons          # ["FULLY_CONNECTED version 12 (tflite-runtime 2.14 knows 1-10)"]
    manifest["compat"] = {"tflite_runtime_2_14": report.to_manifest()}
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from mnistkit.runtime.errors import ModelError
from mnistkit.runtime.flatbuffer import I8, I32, FlatbufferError, Reader

RUNTIME = "tflite-runtime 2.14.0"

#: BuiltinOperator enum of tensorflow/lite/schema/schema.fbs, index = code (from the schema bundled
#: with ai-edge-litert 2.3.0 / TF 2.21: codes 0-209).
BUILTIN_OPERATORS: tuple[str, ...] = (
    "ADD", "AVERAGE_POOL_2D", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D", "DEPTH_TO_SPACE",
    "DEQUANTIZE", "EMBEDDING_LOOKUP", "FLOOR", "FULLY_CONNECTED", "HASHTABLE_LOOKUP",
    "L2_NORMALIZATION", "L2_POOL_2D", "LOCAL_RESPONSE_NORMALIZATION", "LOGISTIC", "LSH_PROJECTION",
    "LSTM", "MAX_POOL_2D", "MUL", "RELU", "RELU_N1_TO_1", "RELU6", "RESHAPE", "RESIZE_BILINEAR", "RNN",
    "SOFTMAX", "SPACE_TO_DEPTH", "SVDF", "TANH", "CONCAT_EMBEDDINGS", "SKIP_GRAM", "CALL", "CUSTOM",
    "EMBEDDING_LOOKUP_SPARSE", "PAD", "UNIDIRECTIONAL_SEQUENCE_RNN", "GATHER", "BATCH_TO_SPACE_ND",
    "SPACE_TO_BATCH_ND", "TRANSPOSE", "MEAN", "SUB", "DIV", "SQUEEZE", "UNIDIRECTIONAL_SEQUENCE_LSTM",
    "STRIDED_SLICE", "BIDIRECTIONAL_SEQUENCE_RNN", "EXP", "TOPK_V2", "SPLIT", "LOG_SOFTMAX",
    "DELEGATE", "BIDIRECTIONAL_SEQUENCE_LSTM", "CAST", "PRELU", "MAXIMUM", "ARG_MAX", "MINIMUM",
    "LESS", "NEG", "PADV2", "GREATER", "GREATER_EQUAL", "LESS_EQUAL", "SELECT", "SLICE", "SIN",
    "TRANSPOSE_CONV", "SPARSE_TO_DENSE", "TILE", "EXPAND_DIMS", "EQUAL", "NOT_EQUAL", "LOG", "SUM",
    "SQRT", "RSQRT", "SHAPE", "POW", "ARG_MIN", "FAKE_QUANT", "REDUCE_PROD", "REDUCE_MAX", "PACK",
    "LOGICAL_OR", "ONE_HOT", "LOGICAL_AND", "LOGICAL_NOT", "UNPACK", "REDUCE_MIN", "FLOOR_DIV",
    "REDUCE_ANY", "SQUARE", "ZEROS_LIKE", "FILL", "FLOOR_MOD", "RANGE", "RESIZE_NEAREST_NEIGHBOR",
    "LEAKY_RELU", "SQUARED_DIFFERENCE", "MIRROR_PAD", "ABS", "SPLIT_V", "UNIQUE", "CEIL", "REVERSE_V2",
    "ADD_N", "GATHER_ND", "COS", "WHERE", "RANK", "ELU", "REVERSE_SEQUENCE", "MATRIX_DIAG", "QUANTIZE",
    "MATRIX_SET_DIAG", "ROUND", "HARD_SWISH", "IF", "WHILE", "NON_MAX_SUPPRESSION_V4",
    "NON_MAX_SUPPRESSION_V5", "SCATTER_ND", "SELECT_V2", "DENSIFY", "SEGMENT_SUM", "BATCH_MATMUL",
    "PLACEHOLDER_FOR_GREATER_OP_CODES", "CUMSUM", "CALL_ONCE", "BROADCAST_TO", "RFFT2D", "CONV_3D",
    "IMAG", "REAL", "COMPLEX_ABS", "HASHTABLE", "HASHTABLE_FIND", "HASHTABLE_IMPORT", "HASHTABLE_SIZE",
    "REDUCE_ALL", "CONV_3D_TRANSPOSE", "VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE",
    "BROADCAST_ARGS", "RANDOM_STANDARD_NORMAL", "BUCKETIZE", "RANDOM_UNIFORM", "MULTINOMIAL", "GELU",
    "DYNAMIC_UPDATE_SLICE", "RELU_0_TO_1", "UNSORTED_SEGMENT_PROD", "UNSORTED_SEGMENT_MAX",
    "UNSORTED_SEGMENT_SUM", "ATAN2", "UNSORTED_SEGMENT_MIN", "SIGN", "BITCAST", "BITWISE_XOR",
    "RIGHT_SHIFT", "STABLEHLO_LOGISTIC", "STABLEHLO_ADD", "STABLEHLO_DIVIDE", "STABLEHLO_MULTIPLY",
    "STABLEHLO_MAXIMUM", "STABLEHLO_RESHAPE", "STABLEHLO_CLAMP", "STABLEHLO_CONCATENATE",
    "STABLEHLO_BROADCAST_IN_DIM", "STABLEHLO_CONVOLUTION", "STABLEHLO_SLICE", "STABLEHLO_CUSTOM_CALL",
    "STABLEHLO_REDUCE", "STABLEHLO_ABS", "STABLEHLO_AND", "STABLEHLO_COSINE", "STABLEHLO_EXPONENTIAL",
    "STABLEHLO_FLOOR", "STABLEHLO_LOG", "STABLEHLO_MINIMUM", "STABLEHLO_NEGATE", "STABLEHLO_OR",
    "STABLEHLO_POWER", "STABLEHLO_REMAINDER", "STABLEHLO_RSQRT", "STABLEHLO_SELECT",
    "STABLEHLO_SUBTRACT", "STABLEHLO_TANH", "STABLEHLO_SCATTER", "STABLEHLO_COMPARE",
    "STABLEHLO_CONVERT", "STABLEHLO_DYNAMIC_SLICE", "STABLEHLO_DYNAMIC_UPDATE_SLICE", "STABLEHLO_PAD",
    "STABLEHLO_IOTA", "STABLEHLO_DOT_GENERAL", "STABLEHLO_REDUCE_WINDOW", "STABLEHLO_SORT",
    "STABLEHLO_WHILE", "STABLEHLO_GATHER", "STABLEHLO_TRANSPOSE", "DILATE",
    "STABLEHLO_RNG_BIT_GENERATOR", "REDUCE_WINDOW", "STABLEHLO_COMPOSITE", "STABLEHLO_SHIFT_LEFT",
    "STABLEHLO_CBRT", "STABLEHLO_CASE",)
CUSTOM = BUILTIN_OPERATORS.index("CUSTOM")

#: Builtin operator -> (min, max) version that tflite-runtime 2.14.0's default op resolver (the one
#: its Python ``Interpreter`` uses) registers. MEASURED, not typed from the source: for every code
#: 0-209 and version 1-20, ``python -m mnistkit.tools.pi.tflrt_ops`` builds a model holding just that
#: operator code and constructs ``tflite_runtime.interpreter.Interpreter`` on it (x86_64 cp311 wheel,
#: numpy 1.26); construction succeeds exactly when the pair is registered. Every registered range is
#: contiguous. Cross-checked by hand against TF's tensorflow/lite/core/kernels/register.cc of that
#: era (FULLY_CONNECTED 1-10, CONV_2D 1-7, ADD 1-5, BROADCAST_TO 2-3, ...). Codes missing here are
#: not registered (CALL, CONCAT_EMBEDDINGS, DELEGATE, and 162+ = STABLEHLO_* etc., which 2.14
#: rejects as "builtin_code out of range"). tests/test_compat.py re-measures this table.
TFLITE_RUNTIME_2_14: dict[str, tuple[int, int]] = {
    "ADD": (1, 5), "AVERAGE_POOL_2D": (1, 3), "CONCATENATION": (1, 4), "CONV_2D": (1, 7),
    "DEPTHWISE_CONV_2D": (1, 7), "DEPTH_TO_SPACE": (1, 2), "DEQUANTIZE": (1, 5),
    "EMBEDDING_LOOKUP": (1, 3), "FLOOR": (1, 1), "FULLY_CONNECTED": (1, 10),
    "HASHTABLE_LOOKUP": (1, 1), "L2_NORMALIZATION": (1, 2), "L2_POOL_2D": (1, 1),
    "LOCAL_RESPONSE_NORMALIZATION": (1, 1), "LOGISTIC": (1, 3), "LSH_PROJECTION": (1, 1),
    "LSTM": (1, 4), "MAX_POOL_2D": (1, 3), "MUL": (1, 7), "RELU": (1, 3), "RELU_N1_TO_1": (1, 1),
    "RELU6": (1, 3), "RESHAPE": (1, 1), "RESIZE_BILINEAR": (1, 4), "RNN": (1, 3), "SOFTMAX": (1, 3),
    "SPACE_TO_DEPTH": (1, 2), "SVDF": (1, 4), "TANH": (1, 3), "SKIP_GRAM": (1, 1),
    "EMBEDDING_LOOKUP_SPARSE": (1, 1), "PAD": (1, 4), "UNIDIRECTIONAL_SEQUENCE_RNN": (1, 3),
    "GATHER": (1, 6), "BATCH_TO_SPACE_ND": (1, 4), "SPACE_TO_BATCH_ND": (1, 4), "TRANSPOSE": (1, 6),
    "MEAN": (1, 3), "SUB": (1, 5), "DIV": (1, 2), "SQUEEZE": (1, 2),
    "UNIDIRECTIONAL_SEQUENCE_LSTM": (1, 4), "STRIDED_SLICE": (1, 8),
    "BIDIRECTIONAL_SEQUENCE_RNN": (1, 3), "EXP": (1, 2), "TOPK_V2": (1, 3), "SPLIT": (1, 4),
    "LOG_SOFTMAX": (1, 2), "BIDIRECTIONAL_SEQUENCE_LSTM": (1, 3), "CAST": (1, 5), "PRELU": (1, 1),
    "MAXIMUM": (1, 4), "ARG_MAX": (1, 3), "MINIMUM": (1, 4), "LESS": (1, 3), "NEG": (1, 1),
    "PADV2": (1, 4), "GREATER": (1, 2), "GREATER_EQUAL": (1, 3), "LESS_EQUAL": (1, 2),
    "SELECT": (1, 4), "SLICE": (1, 6), "SIN": (1, 1), "TRANSPOSE_CONV": (1, 4),
    "SPARSE_TO_DENSE": (1, 3), "TILE": (1, 3), "EXPAND_DIMS": (1, 1), "EQUAL": (1, 4),
    "NOT_EQUAL": (1, 3), "LOG": (1, 1), "SUM": (1, 2), "SQRT": (1, 1), "RSQRT": (1, 2),
    "SHAPE": (1, 1), "POW": (1, 1), "ARG_MIN": (1, 3), "FAKE_QUANT": (1, 2), "REDUCE_PROD": (1, 2),
    "REDUCE_MAX": (1, 3), "PACK": (1, 4), "LOGICAL_OR": (1, 1), "ONE_HOT": (1, 1),
    "LOGICAL_AND": (1, 1), "LOGICAL_NOT": (1, 1), "UNPACK": (1, 4), "REDUCE_MIN": (1, 3),
    "FLOOR_DIV": (1, 3), "REDUCE_ANY": (1, 1), "SQUARE": (1, 1), "ZEROS_LIKE": (1, 1), "FILL": (1, 4),
    "FLOOR_MOD": (1, 2), "RANGE": (1, 2), "RESIZE_NEAREST_NEIGHBOR": (1, 4), "LEAKY_RELU": (1, 2),
    "SQUARED_DIFFERENCE": (1, 2), "MIRROR_PAD": (1, 3), "ABS": (1, 5), "SPLIT_V": (1, 2),
    "UNIQUE": (1, 1), "CEIL": (1, 1), "REVERSE_V2": (1, 3), "ADD_N": (1, 1), "GATHER_ND": (1, 4),
    "COS": (1, 1), "WHERE": (1, 2), "RANK": (1, 1), "ELU": (1, 1), "REVERSE_SEQUENCE": (1, 1),
    "MATRIX_DIAG": (1, 1), "QUANTIZE": (1, 3), "MATRIX_SET_DIAG": (1, 1), "ROUND": (1, 1),
    "HARD_SWISH": (1, 1), "IF": (1, 1), "WHILE": (1, 1), "NON_MAX_SUPPRESSION_V4": (1, 1),
    "NON_MAX_SUPPRESSION_V5": (1, 1), "SCATTER_ND": (1, 1), "SELECT_V2": (1, 2), "DENSIFY": (1, 1),
    "SEGMENT_SUM": (1, 1), "BATCH_MATMUL": (1, 4), "CUMSUM": (1, 1), "CALL_ONCE": (1, 1),
    "BROADCAST_TO": (2, 3), "RFFT2D": (1, 1), "CONV_3D": (1, 1), "IMAG": (1, 1), "REAL": (1, 1),
    "COMPLEX_ABS": (1, 1), "HASHTABLE": (1, 1), "HASHTABLE_FIND": (1, 1), "HASHTABLE_IMPORT": (1, 1),
    "HASHTABLE_SIZE": (1, 1), "REDUCE_ALL": (1, 1), "CONV_3D_TRANSPOSE": (1, 1), "VAR_HANDLE": (1, 1),
    "READ_VARIABLE": (1, 1), "ASSIGN_VARIABLE": (1, 1), "BROADCAST_ARGS": (1, 1),
    "RANDOM_STANDARD_NORMAL": (1, 1), "BUCKETIZE": (1, 1), "RANDOM_UNIFORM": (1, 1),
    "MULTINOMIAL": (1, 1), "GELU": (1, 2), "DYNAMIC_UPDATE_SLICE": (1, 1), "RELU_0_TO_1": (1, 1),
    "UNSORTED_SEGMENT_PROD": (1, 1), "UNSORTED_SEGMENT_MAX": (1, 1), "UNSORTED_SEGMENT_SUM": (1, 1),
    "ATAN2": (1, 1), "UNSORTED_SEGMENT_MIN": (1, 1), "SIGN": (1, 2), "BITCAST": (1, 1),
    "BITWISE_XOR": (1, 1), "RIGHT_SHIFT": (1, 1),}
#: Custom ops built into tflite-runtime 2.14's default resolver (register.cc ``AddCustom``, version 1).
TFLITE_RUNTIME_2_14_CUSTOM: frozenset[str] = frozenset(
    {"NumericVerify", "Mfcc", "AudioSpectrogram", "TFLite_Detection_PostProcess"})
SCHEMA_VERSION = 3


@dataclass(frozen=True)
class OpCode:
    """One entry of a model's ``operator_codes``.

    Attributes:
        name: builtin operator name (``"CUSTOM"`` for custom ops, ``"UNKNOWN_<code>"`` if newer than
            this table).
        code: builtin code, ``max(deprecated_builtin_code, builtin_code)`` as TFLite reads it.
        version: operator version (default 1).
        custom_code: name of a custom op, else None.
    """

    name: str
    code: int
    version: int
    custom_code: str | None = None


@dataclass(frozen=True)
class CompatReport:
    """Whether a .tflite file loads on tflite-runtime 2.14, and why not.

    Attributes:
        loads: True if every operator code (and the schema version) is known to tflite-runtime 2.14.
        reasons: one line per blocking operator, e.g. "FULLY_CONNECTED version 12 (tflite-runtime
            2.14 knows 1-10)"; empty when ``loads``.
        ops: the model's operator codes.
        runtime: the runtime checked against.
    """

    loads: bool
    reasons: list[str] = field(default_factory=list)
    ops: list[OpCode] = field(default_factory=list)
    runtime: str = RUNTIME

    def to_manifest(self) -> dict:
        """JSON-ready dict for ``manifest["compat"]["tflite_runtime_2_14"]``."""
        return {
            "runtime": self.runtime,
            "loads": self.loads,
            "reasons": list(self.reasons),
            "ops": sorted({f"{op.custom_code or op.name} v{op.version}" for op in self.ops}),
            "method": "operator codes and versions vs the op versions tflite-runtime 2.14 registers "
                      "(mnistkit.export.compat)",
        }


def _source(model: str | os.PathLike | bytes) -> tuple[bytes, str]:
    if isinstance(model, (bytes, bytearray, memoryview)):
        return bytes(model), "model"
    path = Path(model)
    try:
        return path.read_bytes(), path.name
    except OSError as exc:
        raise ModelError(f"cannot read {path} ({exc.strerror}); pass an existing .tflite file") from None


def read_operator_codes(model: str | os.PathLike | bytes) -> tuple[int, list[OpCode]]:
    """Read a .tflite file's schema version and operator codes, without TensorFlow.

    Args:
        model: path of a .tflite file, or its bytes.

    Returns:
        ``(schema_version, op_codes)``.

    Raises:
        ModelError: not a TFLite flatbuffer, or truncated/corrupt.
    """
    data, name = _source(model)
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ModelError(f"{name} is not a TFLite model (no TFL3 identifier); pass a .tflite file")
    r = Reader(data)
    try:
        root = r.root()
        schema = r.uint(root, 0)  # Model.version
        ops = []
        for table in r.tables(root, 1):  # Model.operator_codes
            code = max(r.scalar(table, 0, I8),   # deprecated_builtin_code: byte
                       r.scalar(table, 3, I32))  # builtin_code: BuiltinOperator (int32)
            name = BUILTIN_OPERATORS[code] if 0 <= code < len(BUILTIN_OPERATORS) else f"UNKNOWN_{code}"
            custom = r.string(table, 1) if code == CUSTOM else None
            ops.append(OpCode(name, code, r.scalar(table, 2, I32, default=1), custom))  # version: int = 1
    except FlatbufferError:
        raise ModelError(f"{name} is truncated or corrupt (its flatbuffer cannot be read); re-export it") from None
    return schema, ops


def tflite_runtime_compat(model: str | os.PathLike | bytes) -> CompatReport:
    """Predict whether tflite-runtime 2.14 can load a .tflite file.

    Only what decides loading is checked: every operator code must be a (builtin, version) pair that
    tflite-runtime 2.14 registers, or one of its built-in custom ops, and the schema must be v3.

    Args:
        model: path of a .tflite file, or its bytes.

    Returns:
        A CompatReport; ``reasons`` names each operator that blocks loading.

    Raises:
        ModelError: not a readable TFLite flatbuffer.
    """
    schema, ops = read_operator_codes(model)
    reasons = []
    if schema != SCHEMA_VERSION:
        reasons.append(f"schema version {schema} (tflite-runtime 2.14 reads version {SCHEMA_VERSION})")
    seen = set()
    for op in ops:
        if (op.code, op.version, op.custom_code) in seen:
            continue
        seen.add((op.code, op.version, op.custom_code))
        if op.code == CUSTOM:
            if op.custom_code not in TFLITE_RUNTIME_2_14_CUSTOM:
                reasons.append(f"custom op {op.custom_code!r} (not built into tflite-runtime 2.14)")
            continue
        known = TFLITE_RUNTIME_2_14.get(op.name)
        if known is None:
            reasons.append(f"{op.name} (not in tflite-runtime 2.14 at all)")
        elif not known[0] <= op.version <= known[1]:
            reasons.append(f"{op.name} version {op.version} (tflite-runtime 2.14 knows {known[0]}-{known[1]})")
    return CompatReport(loads=not reasons, reasons=reasons, ops=ops)
