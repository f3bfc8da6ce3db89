"""Open user-named files so that no read blocks or runs away: regular files only, size-capped.

A FIFO given as an image or a model would block ``open()`` until a writer appears, ``/dev/zero``
would be read until memory runs out, a socket cannot be opened at all. Here the path is checked
with ``stat`` first (no open, so no side effect on a device), then opened with ``O_NONBLOCK`` and
checked again on the open descriptor (the path may have been swapped in between).
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import BinaryIO

_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISDIR, "a directory"))


def _kind(mode: int) -> str:
    for test, name in _KINDS:
        if test(mode):
            return name
    return "not a regular file"


def _check(path: Path, st: os.stat_result, what: str, limit: int, error: type[Exception]) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise error(f"{path} is {_kind(st.st_mode)}, not a regular file; pass the path of {what}")
    if st.st_size > limit:
        raise error(f"{path} is {st.st_size / 2**20:.1f} MiB, over the {limit / 2**20:.0f} MiB limit "
                    f"for {what}; pass a smaller file")


def _os_error(path: Path, exc: OSError, what: str, error: type[Exception]) -> Exception:
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        return error(f"{path} does not exist (no such file); check the path")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return error(f"{path}: permission denied; check the permissions of the file and its folders")
    if exc.errno == errno.ENXIO:
        return error(f"{path} is a socket or device, not a regular file; pass the path of {what}")
    return error(f"cannot read {path} ({exc.strerror or exc}); check the path and its permissions")


def open_regular(path: str | os.PathLike, *, what: str, limit: int,
                 error: type[Exception]) -> BinaryIO:
    """Open ``path`` for reading if it is a regular file of at most ``limit`` bytes.

    Args:
        path: the file.
        what: what the file should be, for messages ("a .tflite or .onnx model").
        limit: largest size accepted, in bytes.
        error: the exception type to raise (ModelError, ImageError).

    Returns:
        A binary file object (the caller closes it).

    Raises:
        error: missing, permission denied, not a regular file (FIFO, device, socket, directory)
            or over the limit.
    """
    path = Path(path)
    try:
        _check(path, os.stat(path), what, limit, error)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
                     | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        raise _os_error(path, exc, what, error) from None
    try:
        _check(path, os.fstat(fd), what, limit, error)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


def read_regular(path: str | os.PathLike, *, what: str, limit: int, error: type[Exception]) -> bytes:
    """Return the bytes of a regular file of at most ``limit`` bytes (see ``open_regular``).

    Reads at most ``limit + 1`` bytes even if the file grows while it is read.
    """
    with open_regular(path, what=what, limit=limit, error=error) as f:
        try:
            data = f.read(limit + 1)
        except OSError as exc:
            raise _os_error(Path(path), exc, what, error) from None
    if len(data) > limit:
        raise error(f"{path} grew over the {limit / 2**20:.0f} MiB limit for {what} while it was read")
    return data
