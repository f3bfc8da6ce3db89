"""Seeded structural mutators of .tflite, .onnx and image files: one seed, one mutant, every time.

Random byte flips mostly hit weights, which interpreters accept as they are. The mutators here aim
at the fields a reader trusts: for a .tflite file, every position the structural check
(``runtime.tflite_check``) reads (offsets, vector lengths, shapes, types, indices); for an .onnx
file, the varints and length prefixes of its protobuf wire format; for images, the header fields
(PNG chunks with their CRC recomputed so the decoder gets past the checksum, JPEG segment lengths
and frame size, GIF and BMP sizes). Plain byte mutations (flips, interesting values, truncation,
deleted or repeated ranges) are mixed in.
"""

from __future__ import annotations

import random
import struct
import zlib

from mnistkit.runtime import embedded
from mnistkit.runtime.flatbuffer import FlatbufferError, Reader
from mnistkit.runtime.tflite_check import _check

#: Values that break assumptions: zero, one, sign edges, powers of two near type limits.
INTERESTING_32 = (0, 1, 2, 3, 4, 7, 8, 16, 28, 255, 256, 784, 1024, 0x7FFF, 0x8000, 0xFFFF, 0x10000,
                  1 << 20, 1 << 24, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0xFFFFFFFE)
INTERESTING_8 = (0, 1, 0x7F, 0x80, 0xFF, 0x10, 0x20)


class _Recorder(Reader):
    """A flatbuffer reader that records the position and size of every field it reads."""

    def __init__(self, buf: bytes):
        super().__init__(buf)
        self.seen: list[tuple[int, int]] = []

    def read(self, fmt, pos):
        self.seen.append((pos, fmt.size))
        return super().read(fmt, pos)


def tflite_fields(data: bytes) -> list[tuple[int, int]]:
    """(position, size) of every field the structural check reads in a sound .tflite file."""
    rec = _Recorder(data)
    try:
        _check(rec)
    except (FlatbufferError, struct.error):
        pass
    return sorted(set(rec.seen))


def onnx_fields(data: bytes, start: int = 0, end: int | None = None, depth: int = 0) -> list[tuple[int, int]]:
    """(position, size) of the varints (values and length prefixes) of a protobuf message."""
    end = len(data) if end is None else end
    out: list[tuple[int, int]] = []
    pos = start
    while pos < end:
        key, n = _varint(data, pos)
        if n == 0:
            return out
        wire, pos = key & 7, pos + n
        if wire == 0:
            _, m = _varint(data, pos)
            if m == 0:
                return out
            out.append((pos, m))
            pos += m
        elif wire == 2:
            length, m = _varint(data, pos)
            if m == 0 or pos + m + length > end:
                return out
            out.append((pos, m))
            body = pos + m
            if depth < 6 and length > 1:
                out += onnx_fields(data, body, body + length, depth + 1)
            pos = body + length
        elif wire == 5:
            pos += 4
        elif wire == 1:
            pos += 8
        else:
            return out
    return out


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value, shift, i = 0, 0, pos
    while i < len(data) and i - pos < 10:
        b = data[i]
        value |= (b & 0x7F) << shift
        i += 1
        if not b & 0x80:
            return value, i - pos
        shift += 7
    return 0, 0


def _encode_varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


# --- byte-level mutations --------------------------------------------------------------------------

def mutate_bytes(data: bytes, rng: random.Random, ops: int = 3) -> bytes:
    """Apply ``ops`` random byte-level mutations."""
    b = bytearray(data)
    for _ in range(ops):
        if not b:
            break
        op = rng.randrange(7)
        i = rng.randrange(len(b))
        if op == 0:
            b[i] ^= 1 << rng.randrange(8)
        elif op == 1:
            b[i] = rng.choice(INTERESTING_8)
        elif op == 2 and i + 4 <= len(b):
            b[i:i + 4] = struct.pack("<I", rng.choice(INTERESTING_32))
        elif op == 3:
            del b[rng.randrange(1, len(b) + 1):]  # truncate
        elif op == 4:
            j = min(len(b), i + rng.randrange(1, 64))
            del b[i:j]
        elif op == 5:
            j = min(len(b), i + rng.randrange(1, 64))
            b[i:i] = b[i:j]  # repeat a range
        else:
            b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 16)))
    return bytes(b)


def _set_field(b: bytearray, pos: int, size: int, rng: random.Random) -> None:
    value = rng.choice(INTERESTING_32) if rng.random() < 0.7 else rng.getrandbits(8 * size)
    if rng.random() < 0.3:  # nudge the current value instead
        cur = int.from_bytes(b[pos:pos + size], "little")
        value = cur + rng.choice((-1, 1, 2, -2, 4, 28, -28))
    b[pos:pos + size] = (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")


# --- per-format mutants ----------------------------------------------------------------------------

def mutate_tflite(data: bytes, rng: random.Random, keep_metadata: bool = False) -> bytes:
    """A mutant of a .tflite file: structural fields (60%) or bytes (40%), 1-4 edits."""
    if not keep_metadata:
        data = strip_metadata(data)
    fields = tflite_fields(data)
    b = bytearray(data)
    for _ in range(rng.randrange(1, 5)):
        if fields and rng.random() < 0.6:
            pos, size = rng.choice(fields)
            _set_field(b, pos, size, rng)
        else:
            b = bytearray(mutate_bytes(bytes(b), rng, 1))
    return bytes(b)


def mutate_onnx(data: bytes, rng: random.Random, keep_metadata: bool = False) -> bytes:
    """A mutant of an .onnx file: a varint replaced (lengths and values), or bytes, 1-4 edits."""
    if not keep_metadata:
        data = strip_metadata(data)
    b = data
    for _ in range(rng.randrange(1, 5)):
        fields = onnx_fields(b)
        if fields and rng.random() < 0.6:
            pos, size = rng.choice(fields)
            cur, _ = _varint(b, pos)
            value = rng.choice((0, 1, 2, cur + 1, cur - 1, cur * 2, 1 << 31, 1 << 40, (1 << 64) - 1,
                                rng.getrandbits(16)))
            b = b[:pos] + _encode_varint(value) + b[pos + size:]
        else:
            b = mutate_bytes(b, rng, 1)
    return b


def strip_metadata(data: bytes) -> bytes:
    """Hide an embedded mnistkit block (one byte of its prefix) so mutants reach the loader instead
    of stopping at the digest check."""
    at = data.find(embedded.PREFIX)
    return data if at < 0 else data[:at] + b" " + data[at + 1:]


def mutate_image(data: bytes, rng: random.Random) -> bytes:
    """A mutant of a PNG, JPEG, GIF or BMP file: header fields (60%) or bytes (40%)."""
    if rng.random() < 0.6:
        if data.startswith(b"\x89PNG"):
            return _png(data, rng)
        if data.startswith(b"\xff\xd8"):
            return _jpeg(data, rng)
        if data[:3] == b"GIF" or data[:2] == b"BM":
            b = bytearray(data)
            fields = [(6, 2), (8, 2), (10, 1)] if data[:3] == b"GIF" else \
                [(2, 4), (10, 4), (14, 4), (18, 4), (22, 4), (26, 2), (28, 2), (30, 4), (34, 4), (46, 4)]
            for _ in range(rng.randrange(1, 3)):
                pos, size = rng.choice(fields)
                if pos + size <= len(b):
                    _set_field(b, pos, size, rng)
            return bytes(b)
    return mutate_bytes(data, rng, rng.randrange(1, 4))


def _png(data: bytes, rng: random.Random) -> bytes:
    chunks, pos = [], 8
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        chunks.append([kind, bytearray(data[pos + 8:pos + 8 + length])])
        pos += 12 + length
    if not chunks:
        return mutate_bytes(data, rng)
    for _ in range(rng.randrange(1, 3)):
        kind, body = rng.choice(chunks)
        if kind == b"IHDR" and len(body) >= 13 or (rng.random() < 0.5 and chunks[0][0] == b"IHDR"):
            body = chunks[0][1]
            pos, size = rng.choice([(0, 4), (4, 4), (8, 1), (9, 1), (10, 1), (11, 1), (12, 1)])
            fld = bytearray(body[pos:pos + size][::-1])  # big-endian field: edit as little-endian
            _set_field(fld, 0, size, rng)
            body[pos:pos + size] = fld[::-1]
        elif body:
            body[:] = mutate_bytes(bytes(body), rng, 1)
    out = bytearray(data[:8])
    for kind, body in chunks:  # recompute every CRC so the decoder reads the edited fields
        out += struct.pack(">I", len(body)) + kind + body
        out += struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    return bytes(out)


def _jpeg(data: bytes, rng: random.Random) -> bytes:
    fields, pos = [], 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        (length,) = struct.unpack(">H", data[pos + 2:pos + 4])
        fields.append((pos + 2, 2))
        if marker in (0xC0, 0xC1, 0xC2) and pos + 9 <= len(data):
            fields += [(pos + 4, 1), (pos + 5, 2), (pos + 7, 2), (pos + 9, 1)]  # precision, h, w, comps
        if marker == 0xDA:
            break
        pos += 2 + length
    if not fields:
        return mutate_bytes(data, rng)
    b = bytearray(data)
    for _ in range(rng.randrange(1, 3)):
        pos, size = rng.choice(fields)
        fld = bytearray(b[pos:pos + size][::-1])
        _set_field(fld, 0, size, rng)
        b[pos:pos + size] = fld[::-1]
    return bytes(b)


MUTATORS = {"tflite": mutate_tflite, "onnx": mutate_onnx, "image": mutate_image}


def mutant(kind: str, base: bytes, seed: int) -> bytes:
    """The mutant number ``seed`` of ``base`` (same seed, same bytes). 1 in 10 model mutants keeps
    its embedded metadata, so the digest check is fuzzed too."""
    rng = random.Random(seed)
    if kind == "image":
        return mutate_image(base, rng)
    return MUTATORS[kind](base, rng, keep_metadata=rng.random() < 0.1)
