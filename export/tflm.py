"""TFLite Micro exporter: a batch-1, static-shape, full-int8 .tflite plus the C sources a board needs.

The flatbuffer is the TFLite exporter's full-int8 conversion (export/tflite.py, the same int8
scheme: recurrent models as the TFLM variant of the looped graph of export/recurrent_int8.py) with
the batch fixed to 1, since TFLM cannot resize tensors. It is refused, naming the operator, if it holds
an operator TFLM has no kernel for (export/tflm_ops.py) or a tensor without a static shape.
``inspect_file`` loads it in the TFLM interpreter (the reference kernels an MCU runs) to find the
smallest tensor arena it prepares and runs with. After parity passes, the export pipeline publishes the ``companion_files``
beside it: ``<name>_model_data.h/.cc`` and ``<name>_op_resolver.h`` (export/c_source.py).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from mnistkit.export import c_source, tflite
from mnistkit.export.modes import ExportConfig
from mnistkit.export.tflm_ops import TESTED_VERSION, resolver_methods
from mnistkit.runtime.errors import BackendUnavailableError, ExportError

#: The runtime backend the export pipeline proves parity on.
PARITY_BACKEND = "tflm"
#: Recommended arena = minimum x this, rounded up to whole KiB. The minimum is measured on a 64-bit
#: host, whose interpreter structs are larger than a 32-bit MCU's; the margin covers allocator
#: alignment differences between builds.
ARENA_MARGIN = 1.10
_ARENA_CEILING = 16 << 20


def convert(model, config: ExportConfig) -> tuple[bytes, dict[str, Any]]:
    """Convert a loaded Keras zoo model to a batch-1 full-int8 .tflite that TFLM can run.

    Returns:
        The flatbuffer and the calibration record.

    Raises:
        ExportError: the conversion failed, or the result holds an operator without a TFLM kernel
            or a tensor with a dynamic shape.
    """
    data, record = tflite.convert(model, config, batch=1, micro=True)
    check(data)
    return data, record


def _model(data: bytes):
    from ai_edge_litert import schema_py_generated as schema

    return schema, schema.ModelT.InitFromPackedBuf(data, 0)


def operators(data: bytes) -> list[str]:
    """Builtin operator names used anywhere in the model (all subgraphs), sorted and distinct."""
    schema, model = _model(data)
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    used = set()
    for sg in model.subgraphs:
        for op in sg.operators or []:
            code = model.operatorCodes[op.opcodeIndex]
            used.add(names.get(max(code.builtinCode, code.deprecatedBuiltinCode), f"#{code.builtinCode}"))
    return sorted(used)


def check(data: bytes) -> list[str]:
    """Refuse a flatbuffer TFLM cannot run; returns the resolver methods it needs.

    Raises:
        ExportError: an operator without a TFLM kernel, or a tensor whose shape is not static.
    """
    methods = resolver_methods(operators(data))
    _, model = _model(data)
    for sg in model.subgraphs:
        for t in sg.tensors:
            sig = t.shapeSignature
            if sig is not None and any(int(d) < 0 for d in sig):
                name = t.name.decode() if isinstance(t.name, bytes) else t.name
                raise ExportError(f"tensor {name or '?'} has a dynamic shape {list(sig)}; TFLM needs static "
                                  "shapes (report this model)")
    return methods


def _interpreter(data: bytes, arena: int):
    from tflite_micro.python.tflite_micro import runtime

    return runtime.Interpreter.from_bytes(data, arena_size=arena)


def _runs(data: bytes, arena: int) -> bool:
    """Whether the model prepares and runs one (blank) image in an arena of ``arena`` bytes."""
    try:
        it = _interpreter(data, arena)
        detail = it.get_input_details(0)
        it.set_input(np.zeros(detail["shape"], detail["dtype"]), 0)
        it.invoke()
        return True
    except (RuntimeError, ValueError):
        return False


def _runs_quietly(data: bytes, arena: int) -> bool:
    from mnistkit.runtime.cli import quiet_native_stderr

    with quiet_native_stderr():
        return _runs(data, arena)


def _failure_reason(data: bytes) -> str:
    """What TFLM says when the model does not prepare or run: its kernel's message (printed on the
    native stderr, captured here), else the exception."""
    import tempfile

    with tempfile.TemporaryFile() as log:
        saved = os.dup(2)
        os.dup2(log.fileno(), 2)
        try:
            it = _interpreter(data, _ARENA_CEILING)
            detail = it.get_input_details(0)
            it.set_input(np.zeros(detail["shape"], detail["dtype"]), 0)
            it.invoke()
            exc_line = "it fails to run"
        except (RuntimeError, ValueError) as exc:
            exc_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        log.seek(0)
        lines = [ln.strip() for ln in log.read().decode(errors="replace").splitlines() if ln.strip()]
    return "; ".join(lines[:2])[:300] if lines else exc_line


def measure_arena(data: bytes) -> int:
    """The smallest tensor arena (bytes) in which the TFLM interpreter prepares and runs the model.

    Found by bisection: each probe builds an interpreter with that arena and runs one image.

    Raises:
        BackendUnavailableError: tflite-micro is not installed.
        ExportError: the model does not run even in a 16 MiB arena (the message says why).
    """
    try:
        import tflite_micro  # noqa: F401
    except ImportError:
        raise BackendUnavailableError("measuring the TFLM tensor arena needs tflite-micro; "
                                      "pip install 'mnistkit[tflm]'") from None
    from mnistkit.runtime.cli import quiet_native_stderr

    if not _runs_quietly(data, _ARENA_CEILING):
        raise ExportError(f"the TFLM interpreter (tflite-micro {_tflm_version()}) cannot run this model: "
                          f"{_failure_reason(data)}")
    with quiet_native_stderr():
        lo, hi = 1, _ARENA_CEILING
        while lo < hi:
            mid = (lo + hi) // 2
            if _runs(data, mid):
                hi = mid
            else:
                lo = mid + 1
    return lo


def recommended_arena(minimum: int) -> int:
    """Arena size to allocate: the measured minimum with ARENA_MARGIN, rounded up to whole KiB."""
    return int(math.ceil(minimum * ARENA_MARGIN / 1024) * 1024)


def inspect_file(path: str | os.PathLike) -> dict[str, Any]:
    """The TFLite description plus the TFLM facts: operators, resolver calls, arena and flash sizes."""
    info = tflite.inspect_file(path)
    data = Path(path).read_bytes()
    arena = measure_arena(data)
    info["tflm"] = {
        "operators": operators(data),
        "resolver_methods": check(data),
        "arena_min_bytes": arena,
        "arena_recommended_bytes": recommended_arena(arena),
        "arena_measured_on": "TFLM Python interpreter (reference kernels) on a 64-bit host",
        "flash_bytes": len(data),
        "tflite_micro": _tflm_version(),
    }
    return info


def _tflm_version() -> str:
    try:
        from importlib.metadata import version

        return version("tflite-micro")
    except Exception:  # noqa: BLE001 - informational
        return f"unknown (table checked with {TESTED_VERSION})"


def companion_files(artifact: Path, final_name: str, info: dict[str, Any], source: str) -> dict[str, bytes]:
    """C sources published beside the .tflite: model data header/source and the op resolver header.

    Args:
        artifact: the staged .tflite.
        final_name: the name it is published under (its stem names the C files and symbols).
        info: ``inspect_file()`` output.
        source: where the model came from, for the files' comment.
    """
    stem = Path(final_name).stem
    tflm = info["tflm"]
    line = f"{final_name} from {source}"
    files = c_source.model_data_files(stem, artifact.read_bytes(), arena_min=tflm["arena_min_bytes"],
                                      arena_recommended=tflm["arena_recommended_bytes"], source=line)
    files.update(c_source.op_resolver_file(stem, tflm["resolver_methods"], tflm["operators"], source=line))
    return files


def companion_names(final_name: str) -> list[str]:
    """Names of the files ``companion_files`` writes for ``final_name`` (to refuse overwriting them)."""
    stem = Path(final_name).stem
    return [f"{stem}_model_data.h", f"{stem}_model_data.cc", f"{stem}_op_resolver.h"]

