"""Where bulk results go: a JSON Lines or CSV file written as results arrive, and resuming one.

A record is written whole with one ``write`` and the file is flushed after every batch, so an
interrupted job leaves only complete lines (a line cut by a crash or a kill is dropped when the file
is resumed). ``--resume`` reads the sources already in the file into a sorted array of 64-bit
hashes (8 bytes per record, not a set of strings), so skipping them stays cheap for millions.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from array import array
from pathlib import Path
from typing import IO

import numpy as np

from mnistkit.runtime.errors import OutputExistsError, UsageError

FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv"}
CSV_FIELDS = ["source", "label", "confidence", "top_k", "error", *[f"p{d}" for d in range(10)]]


def output_format(path: str | os.PathLike) -> str:
    """``jsonl`` or ``csv`` from the file's extension.

    Raises:
        UsageError: any other extension.
    """
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise UsageError(f"--output {path}: unknown format {suffix or '(no extension)'}; "
                         "name it .jsonl (JSON Lines) or .csv")
    return FORMATS[suffix]


def to_csv_row(record: dict) -> dict:
    """Flatten a record for CSV: top-k as ``7:0.98;1:0.01``, probabilities as p0..p9."""
    if "error" in record:
        return {"source": record["source"], "error": record["error"]}
    row = {"source": record["source"], "label": record["label"], "confidence": record["confidence"],
           "top_k": ";".join(f"{label}:{p}" for label, p in record["top_k"])}
    row.update({f"p{d}": p for d, p in enumerate(record.get("probabilities", ()))})
    return row


class RecordWriter:
    """Append records to a JSON Lines or CSV stream, flushing after each batch."""

    def __init__(self, stream: IO[str], fmt: str, *, header: bool = True):
        self.stream = stream
        self.fmt = fmt
        self.written = 0
        self._csv = csv.DictWriter(stream, CSV_FIELDS, lineterminator="\n") if fmt == "csv" else None
        if self._csv is not None and header:
            self._csv.writeheader()

    def write(self, records: list[dict]) -> None:
        """Write a batch of records (one ``write`` call) and flush."""
        if not records:
            return
        if self._csv is not None:
            buf = io.StringIO()
            w = csv.DictWriter(buf, CSV_FIELDS, lineterminator="\n")
            w.writerows(to_csv_row(r) for r in records)
            text = buf.getvalue()
        else:
            text = "".join(json.dumps(r, separators=(",", ":"), allow_nan=False) + "\n" for r in records)
        self.stream.write(text)
        self.stream.flush()
        self.written += len(records)


class SourceSet:
    """Sources already present in an output file, as a sorted array of 64-bit hashes."""

    def __init__(self, hashes: np.ndarray):
        self._h = np.sort(hashes.astype(np.uint64))

    def __len__(self) -> int:
        return int(self._h.size)

    def __contains__(self, source: str) -> bool:
        if not self._h.size:
            return False
        h = np.uint64(_hash(source))
        i = int(np.searchsorted(self._h, h))
        return i < self._h.size and self._h[i] == h


def _hash(source: str) -> int:
    return int.from_bytes(hashlib.blake2b(source.encode("utf-8", "surrogateescape"), digest_size=8).digest(),
                          "little")


def open_output(path: str | os.PathLike, *, resume: bool) -> tuple[RecordWriter, SourceSet]:
    """Open ``path`` for a bulk job: new, or continued with ``resume``.

    A resumed file loses any incomplete last line (a crash mid-write), then is appended to.

    Returns:
        (writer, sources already in the file).

    Raises:
        OutputExistsError: the file exists and ``resume`` is False.
        UsageError: unknown extension, the parent folder is missing, or the file is not one
            this command wrote.
    """
    path = Path(path)
    fmt = output_format(path)
    if not path.parent.is_dir():
        raise UsageError(f"--output {path}: folder {path.parent} does not exist; create it first")
    if path.exists() and not resume:
        raise OutputExistsError(f"{path} exists; pass --resume to continue that job, or choose another file")
    if not path.exists() or path.stat().st_size == 0:
        stream = open(path, "w", encoding="utf-8", newline="")
        return RecordWriter(stream, fmt), SourceSet(np.empty(0, np.uint64))
    done = _read_sources(path, fmt)
    stream = open(path, "a", encoding="utf-8", newline="")
    return RecordWriter(stream, fmt, header=False), done


def _read_sources(path: Path, fmt: str) -> SourceSet:
    """Hash the source of every complete line and cut off an incomplete last line."""
    hashes = array("Q")  # 8 bytes per record while reading
    good_end = 0
    with open(path, "rb") as f:
        first = True
        for raw in f:
            if not raw.endswith(b"\n"):
                break  # cut mid-write: dropped, its source is classified again
            line = raw.decode("utf-8", "surrogateescape")
            if fmt == "csv":
                if first:
                    if not line.startswith("source,"):
                        raise UsageError(f"{path} is not a CSV written by mnistkit classify "
                                         "(no source column); choose another --output")
                    first = False
                    good_end += len(raw)
                    continue
                row = next(csv.reader([line]))
                source = row[0] if row else ""
            else:
                try:
                    source = json.loads(line)["source"]
                except (ValueError, KeyError, TypeError):
                    raise UsageError(f"{path} is not JSON Lines written by mnistkit classify; "
                                     "choose another --output") from None
            hashes.append(_hash(str(source)))
            good_end += len(raw)
    if good_end < path.stat().st_size:
        os.truncate(path, good_end)
    return SourceSet(np.frombuffer(hashes, np.uint64) if hashes else np.empty(0, np.uint64))
