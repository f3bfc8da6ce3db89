"""The shared bounds-checked flatbuffer reader, on the bundled .tflite and on damaged copies of it."""

from __future__ import annotations

import pytest

from mnistkit.export.compat import read_operator_codes
from mnistkit.runtime.cli import DEFAULT_MODEL
from mnistkit.runtime.errors import ModelError
from mnistkit.runtime.flatbuffer import U32, FlatbufferError, Reader
from mnistkit.runtime.tflite_check import check_tflite

pytestmark = pytest.mark.skipif(not DEFAULT_MODEL.is_file(), reason="no bundled default model")


def test_reads_the_bundled_model():
    r = Reader(DEFAULT_MODEL.read_bytes())
    model = r.root()
    assert r.uint(model, 0) == 3  # Model.version
    assert r.string(model, 3)  # Model.description (the converter names itself)
    assert len(r.tables(model, 2)) >= 1 and len(r.tables(model, 1)) >= 1  # subgraphs, operator codes


def test_every_truncation_fails_in_one_line_and_never_reads_past_the_end():
    data = DEFAULT_MODEL.read_bytes()
    for cut in range(0, len(data), max(1, len(data) // 97)):
        with pytest.raises(ModelError):
            check_tflite(data[:cut], "cut.tflite")


def test_offsets_pointing_outside_the_buffer_raise():
    data = bytearray(DEFAULT_MODEL.read_bytes())
    r = Reader(bytes(data))
    with pytest.raises(FlatbufferError):
        r.read(U32, len(data) - 2)
    with pytest.raises(FlatbufferError):
        r.read(U32, -1)
    data[0:4] = (len(data) + 100).to_bytes(4, "little")  # the root table offset leaves the file
    with pytest.raises(FlatbufferError):
        Reader(bytes(data)).root()
    with pytest.raises(ModelError, match="truncated or corrupt"):
        read_operator_codes(bytes(data))
