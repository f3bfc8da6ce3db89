"""A structural check of a .tflite flatbuffer, for interpreters that do not verify their input.

tflite-runtime 2.14 builds a model from a buffer without running the flatbuffer verifier, and a
truncated or damaged file can then crash the process (SIGSEGV) instead of raising. This module walks
the parts of the file an interpreter dereferences first (the Model table, subgraphs, tensors,
operators, buffers) and checks that every offset, vector and index stays inside the file, so such
files fail with a ModelError. LiteRT verifies by itself and does not need it.

It walks the file with the shared bounds-checked reader (``runtime/flatbuffer.py``). Schema field
numbers follow tensorflow/compiler/mlir/lite/schema/schema.fbs.
"""

from __future__ import annotations

from mnistkit.runtime.errors import ModelError
from mnistkit.runtime.flatbuffer import FlatbufferError, Reader

def check_tflite(content: bytes, name: str) -> None:
    """Raise ModelError unless ``content`` is a structurally sound TFLite flatbuffer.

    Raises:
        ModelError: truncated, not a TFLite file, or with offsets/indices outside the file.
    """
    try:
        _check(Reader(content))
    except FlatbufferError as exc:
        raise ModelError(f"{name} is not a valid TFLite model ({exc}); re-export it or check the "
                         "file is complete") from None


def _check(r: Reader) -> None:
    if r.n < 16 or r.buf[4:8] != b"TFL3":
        raise FlatbufferError("no TFL3 file identifier")
    model = r.root()
    if r.uint(model, 0) != 3:
        raise FlatbufferError(f"schema version {r.uint(model, 0)}, expected 3")
    codes = r.tables(model, 1)
    for code in codes:
        r.string(code, 1)
    n_codes = len(codes)
    r.string(model, 3)
    r.vector(model, 5, 4)
    buffers = r.tables(model, 4)
    for buf in buffers:
        r.vector(buf, 0, 1)
        offset, size = r.ulong(buf, 1), r.ulong(buf, 2)
        if offset and offset + size > r.n:
            raise FlatbufferError("a weight buffer lies past the end of the file")
    subgraphs = r.tables(model, 2)
    if not subgraphs:
        raise FlatbufferError("no subgraph")
    for sub in subgraphs:
        r.string(sub, 4)
        tensors = r.tables(sub, 0)
        for t in tensors:
            _tensor(r, t, len(buffers))
        _indices(r.ints(sub, 1) + r.ints(sub, 2), len(tensors))
        for op in r.tables(sub, 3):
            if r.uint(op, 0) >= n_codes:
                raise FlatbufferError("an operator refers to a missing op code")
            _indices(r.ints(op, 1) + r.ints(op, 2) + r.ints(op, 8), len(tensors))
            r.vector(op, 7, 1)  # mutating_variable_inputs: [bool]
            r.subtable(op, 4)
            r.subtable(op, 12)
            r.vector(op, 5, 1)
    for meta in r.tables(model, 6):
        r.string(meta, 0)
        if r.uint(meta, 1) >= max(len(buffers), 1):
            raise FlatbufferError("metadata refers to a missing buffer")
    for sig in r.tables(model, 7):
        r.string(sig, 2)
        if r.uint(sig, 4) >= len(subgraphs):
            raise FlatbufferError("a signature refers to a missing subgraph")
        for tmap in r.tables(sig, 0) + r.tables(sig, 1):
            r.string(tmap, 0)


def _tensor(r: Reader, t, n_buffers: int) -> None:
    if any(d < -1 or d > 1 << 24 for d in r.ints(t, 0) + r.ints(t, 7)):
        raise FlatbufferError("a tensor has an impossible shape")
    if r.uint(t, 2) >= max(n_buffers, 1):
        raise FlatbufferError("a tensor refers to a missing buffer")
    r.string(t, 3)
    q = r.subtable(t, 4)
    if q is not None:
        for index, size in ((0, 4), (1, 4), (2, 4), (3, 8)):
            r.vector(q, index, size)
        r.subtable(q, 5)
    if r.subtable(t, 6) is not None:
        raise FlatbufferError("sparse tensors are not supported")


def _indices(values: list[int], n: int) -> None:
    if any(v < -1 or v >= n for v in values):
        raise FlatbufferError("a tensor index is out of range")


#: Bytes per element of each TFLite TensorType (schema.fbs enum order); unknown types count 8.
_ITEMSIZE = {0: 4, 1: 2, 2: 4, 3: 1, 4: 8, 5: 1, 6: 1, 7: 2, 8: 8, 9: 1, 10: 8, 11: 16, 12: 8,
             13: 8, 14: 8, 15: 4, 16: 2, 17: 1, 18: 2}


def declared_bytes(content: bytes, batch: int) -> int:
    """Memory the interpreter would allocate for the model's non-constant tensors, in bytes.

    Every tensor of every subgraph counts at its declared shape; tensors with a free batch
    dimension (shape_signature[0] == -1) count ``batch`` times. Weights (tensors backed by a buffer
    in the file) count nothing: the file size limit already bounds them. Call ``check_tflite``
    first: this walk assumes a structurally sound file.
    """
    r = Reader(content)
    model = r.root()
    buffers = r.tables(model, 4)
    constant = [bool(r.vector(b, 0, 1)[1] or r.ulong(b, 2)) for b in buffers]
    total = 0
    for sub in r.tables(model, 2):
        for t in r.tables(sub, 0):
            buf = r.uint(t, 2)
            if buf < len(constant) and constant[buf]:
                continue
            shape, sig = r.ints(t, 0), r.ints(t, 7)
            count = 1
            for d in shape:
                count *= max(d, 1)
            at = r.field(t, 1)
            itemsize = _ITEMSIZE.get(0 if at is None else r.buf[at], 8)
            total += count * itemsize * (batch if sig and sig[0] == -1 else 1)
    return total


def check_memory(content: bytes, name: str, limit: int, batch: int) -> None:
    """Refuse a model whose declared tensors need more than ``limit`` bytes at ``batch`` images.

    Raises:
        ModelError: structurally unsound (see ``check_tflite``) or over the limit.
    """
    check_tflite(content, name)
    need = declared_bytes(content, batch)
    if need > limit:
        raise ModelError(
            f"{name} declares tensors needing {need / 2**20:,.0f} MiB for a batch of {batch}, over the "
            f"{limit / 2**20:,.0f} MiB limit (a damaged shape?); re-export it, or raise the limit "
            "with MNISTKIT_MAX_MODEL_MEMORY_MB if the model is really this large")
