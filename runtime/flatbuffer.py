"""A bounds-checked reader of the flatbuffers wire format (tables, vectors, strings, scalars).

The one flatbuffer reader of the project's own: the runtime's structural check of a .tflite file
(``tflite_check``) and the exporter's tflite-runtime 2.14 census (``mnistkit.export.compat``) both
walk files with it. Every read checks that the offset, the vector or the string stays inside the
buffer and raises :class:`FlatbufferError` otherwise, so a truncated or damaged file can never make
a caller read past its end. No ``flatbuffers`` package, no TensorFlow.
"""

from __future__ import annotations

import struct

U8, I8, U16 = struct.Struct("<B"), struct.Struct("<b"), struct.Struct("<H")
I32, U32, U64 = struct.Struct("<i"), struct.Struct("<I"), struct.Struct("<Q")

#: A table as (table position, vtable position, vtable size in bytes).
Table = tuple[int, int, int]


class FlatbufferError(Exception):
    """An offset, vector or string of the buffer lies outside it (the file is truncated or damaged)."""


class Reader:
    """Walks one flatbuffer; every method raises FlatbufferError instead of reading out of bounds."""

    def __init__(self, buf: bytes) -> None:
        self.buf, self.n = buf, len(buf)

    def read(self, fmt: struct.Struct, pos: int) -> int:
        """The scalar of type ``fmt`` at absolute position ``pos``."""
        if pos < 0 or pos + fmt.size > self.n:
            raise FlatbufferError(f"offset {pos} is past the end of the file ({self.n} bytes)")
        return fmt.unpack_from(self.buf, pos)[0]

    def root(self) -> Table:
        """The root table (its offset is the buffer's first 4 bytes)."""
        return self.table(self.read(U32, 0))

    def table(self, pos: int) -> Table:
        """The table at ``pos``, after checking its vtable and that every present field lies inside it."""
        vt = pos - self.read(I32, pos)
        size = self.read(U16, vt)
        if size < 4 or size % 2:
            raise FlatbufferError(f"invalid vtable at {vt}")
        table_size = self.read(U16, vt + 2)
        if table_size < 4 or pos + table_size > self.n:
            raise FlatbufferError(f"a table at {pos} runs past the end of the file")
        for slot in range(4, size, 2):
            off = self.read(U16, vt + slot)
            if off and off >= table_size:
                raise FlatbufferError(f"a field of the table at {pos} lies outside it")
        return pos, vt, size

    def field(self, tab: Table, index: int) -> int | None:
        """Absolute position of field ``index`` of a table, None if absent."""
        pos, vt, size = tab
        slot = 4 + 2 * index
        if slot >= size:
            return None
        off = self.read(U16, vt + slot)
        return pos + off if off else None

    def deref(self, at: int) -> int:
        """Follow the unsigned offset stored at ``at``."""
        return at + self.read(U32, at)

    def scalar(self, tab: Table, index: int, fmt: struct.Struct, default: int = 0) -> int:
        """A scalar field of type ``fmt`` (``default`` if absent)."""
        at = self.field(tab, index)
        return default if at is None else self.read(fmt, at)

    def uint(self, tab: Table, index: int, default: int = 0) -> int:
        """A uint32 field."""
        return self.scalar(tab, index, U32, default)

    def ulong(self, tab: Table, index: int) -> int:
        """A uint64 field (0 if absent)."""
        return self.scalar(tab, index, U64)

    def vector(self, tab: Table, index: int, elem: int) -> tuple[int, int]:
        """(first element position, length) of a vector field of ``elem``-byte items ((0, 0) if absent)."""
        at = self.field(tab, index)
        if at is None:
            return 0, 0
        vec = self.deref(at)
        length = self.read(U32, vec)
        if vec + 4 + length * elem > self.n:
            raise FlatbufferError(f"a vector of {length} elements at {vec} runs past the end of the file")
        return vec + 4, length

    def tables(self, tab: Table, index: int) -> list[Table]:
        """The tables of a vector-of-tables field (empty if absent)."""
        start, length = self.vector(tab, index, 4)
        return [self.table(self.deref(start + 4 * i)) for i in range(length)]

    def ints(self, tab: Table, index: int) -> list[int]:
        """The items of an int32 vector field (empty if absent)."""
        start, length = self.vector(tab, index, 4)
        return [self.read(I32, start + 4 * i) for i in range(length)]

    def string(self, tab: Table, index: int) -> str | None:
        """A string field (None if absent), checked to end with its NUL terminator inside the file."""
        start, length = self.vector(tab, index, 1)
        if not start:
            return None
        if start + length >= self.n or self.buf[start + length] != 0:
            raise FlatbufferError(f"an unterminated string at {start}")
        return self.buf[start:start + length].decode("utf-8", "replace")

    def subtable(self, tab: Table, index: int) -> Table | None:
        """A table field (None if absent)."""
        at = self.field(tab, index)
        return None if at is None else self.table(self.deref(at))
