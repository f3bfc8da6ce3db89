"""Measure which builtin op versions tflite-runtime 2.14 registers, by loading one-opcode models.

This is how ``mnistkit.export.compat``'s table was derived (and how a test re-checks it): for every
builtin operator code 0..N and version 1..MAX_PROBE, a minimal model (one OperatorCode, one empty
subgraph, one empty buffer) is built with the ``flatbuffers`` package and handed to
``tflite_runtime.interpreter.Interpreter(model_content=...)`` in the tflite-runtime venv. The
interpreter resolves every operator code before anything else, so construction succeeds exactly
when the (code, version) pair is registered in its default op resolver (the one Python uses).

    python -m mnistkit.tools.pi.tflrt_ops            # prints the table as Python
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

MAX_PROBE = 20
CUSTOM = 32  # BuiltinOperator.CUSTOM

# Runs inside the tflite-runtime venv: reads [[code, version, b64], ...] on stdin, prints registered pairs.
_PROBE = r"""
import base64, json, sys
from tflite_runtime.interpreter import Interpreter
ok, other = [], []
for code, version, blob in json.load(sys.stdin):
    try:
        Interpreter(model_content=base64.b64decode(blob))
        ok.append([code, version])
    except ValueError as exc:
        if "Didn't find op for builtin opcode" not in str(exc) and "out of range" not in str(exc):
            other.append([code, version, str(exc).strip().splitlines()[0]])
print(json.dumps({"ok": ok, "other": other}))
"""


def minimal_model(code: int, version: int) -> bytes:
    """A valid .tflite flatbuffer whose only operator code is (``code``, ``version``), no operators.

    Written like TF's converter: ``deprecated_builtin_code = min(code, 127)``, ``builtin_code = code``.
    """
    import flatbuffers

    b = flatbuffers.Builder(256)

    def empty_vector() -> int:
        b.StartVector(4, 0, 4)
        return b.EndVector()

    # OperatorCode: 0 deprecated_builtin_code (byte), 2 version (int), 3 builtin_code (int)
    b.StartObject(4)
    b.PrependInt8Slot(0, min(code, 127), 0)
    b.PrependInt32Slot(2, version, 1)
    b.PrependInt32Slot(3, code, 0)
    opcode = b.EndObject()
    tensors, inputs, outputs, operators = (empty_vector() for _ in range(4))
    b.StartObject(5)  # SubGraph: tensors, inputs, outputs, operators, name
    for slot, vec in enumerate((tensors, inputs, outputs, operators)):
        b.PrependUOffsetTRelativeSlot(slot, vec, 0)
    subgraph = b.EndObject()
    b.StartObject(1)  # Buffer (empty)
    buffer = b.EndObject()

    def vector_of(item: int) -> int:
        b.StartVector(4, 1, 4)
        b.PrependUOffsetTRelative(item)
        return b.EndVector()

    opcodes, subgraphs, buffers = vector_of(opcode), vector_of(subgraph), vector_of(buffer)
    b.StartObject(5)  # Model: version, operator_codes, subgraphs, description, buffers
    b.PrependUint32Slot(0, 3, 0)
    b.PrependUOffsetTRelativeSlot(1, opcodes, 0)
    b.PrependUOffsetTRelativeSlot(2, subgraphs, 0)
    b.PrependUOffsetTRelativeSlot(4, buffers, 0)
    b.Finish(b.EndObject(), file_identifier=b"TFL3")
    return bytes(b.Output())


def measure(python: str | Path, codes: range, max_version: int = MAX_PROBE) -> dict[int, list[int]]:
    """Registered versions per builtin code, measured by the interpreter of ``python``.

    Args:
        python: An interpreter that can import ``tflite_runtime``.
        codes: Builtin operator codes to probe.
        max_version: Highest version to try per code.

    Returns:
        ``{code: [registered versions...]}`` (codes with none are left out).

    Raises:
        RuntimeError: the probe failed, or an interpreter error other than "op not found" occurred.
    """
    codes = [c for c in codes if c != CUSTOM]  # custom ops are resolved by name, not version
    jobs = [[c, v, base64.b64encode(minimal_model(c, v)).decode()] for c in codes for v in range(1, max_version + 1)]
    proc = subprocess.run([str(python), "-c", _PROBE], input=json.dumps(jobs), capture_output=True,
                          text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"probe failed: {proc.stderr.strip().splitlines()[-1:]}")
    result = json.loads(proc.stdout)
    if result["other"]:
        raise RuntimeError(f"unexpected interpreter errors: {result['other'][:3]}")
    table: dict[int, list[int]] = {}
    for code, version in result["ok"]:
        table.setdefault(code, []).append(version)
    return {c: sorted(v) for c, v in sorted(table.items())}


def main() -> int:
    """Print the measured table in the form ``mnistkit.export.compat`` stores it."""
    from mnistkit.export.compat import BUILTIN_OPERATORS
    from mnistkit.tools.pi.tflrt import ensure_venv

    table = measure(ensure_venv(), range(len(BUILTIN_OPERATORS)))
    for code, versions in table.items():
        if versions != list(range(versions[0], versions[-1] + 1)):
            print(f"# note: {BUILTIN_OPERATORS[code]} has gaps: {versions}", file=sys.stderr)
    print("TFLITE_RUNTIME_2_14: dict[str, tuple[int, int]] = {")
    for code, versions in table.items():
        print(f'    "{BUILTIN_OPERATORS[code]}": ({versions[0]}, {versions[-1]}),')
    print("}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
