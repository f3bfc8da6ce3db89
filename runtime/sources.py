"""Enumerate the images a bulk job classifies: files, folders, globs and path lists, lazily.

Sources come out one at a time, so memory stays flat however many images there are (a folder is
listed one directory at a time, sorted by name). Anything that cannot be an image is turned into a
``Source`` carrying an error, reported per item rather than stopping the run: a missing path, a glob
that matches nothing, a dangling symlink, a symlink loop, a special file (FIFO, socket, device) or a
folder that cannot be listed. Files are never opened here; :func:`read_image_file` reads one
without ever blocking on a FIFO.
"""

from __future__ import annotations

import glob
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TextIO

from mnistkit.runtime.errors import ImageError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp",
                            ".pgm", ".ppm", ".pbm", ".pnm"})
MAX_FILE_BYTES = 256 * 1024 * 1024
"""Largest image file read (bigger ones are refused before reading)."""


@dataclass(frozen=True)
class Source:
    """One input of a bulk job: a path to classify, or a path with the reason it cannot be."""

    name: str
    error: str | None = None


@dataclass
class Census:
    """What the enumeration skipped without reporting an error (shown in the summary)."""

    not_images: int = 0  # files in folders without an image suffix
    subfolders: int = 0  # folders not searched because --recursive was not given
    seen_dirs: set = field(default_factory=set)  # (st_dev, st_ino) of folders listed so far


def iter_sources(items: Iterable[str], *, recursive: bool = False, stdin: TextIO | None = None,
                 census: Census | None = None) -> Iterator[Source]:
    """Yield a ``Source`` per image named by ``items``, lazily and in a stable order.

    Args:
        items: paths of files or folders, glob patterns (``scans/*.png``, ``**`` with
            ``recursive``), or ``-`` for a list of paths read from ``stdin``, one per line.
        recursive: also search subfolders of the folders given (symlinked folders are followed,
            a symlink back to one of its own parents is reported as a loop).
        stdin: where ``-`` reads paths from.
        census: collects what was skipped silently (files without an image suffix, subfolders).

    Yields:
        Sources, in the order given; a folder's images sorted by name, folders before their subfolders.
    """
    census = census if census is not None else Census()
    for item in items:
        if item == "-":
            if stdin is None:
                yield Source("-", "no list of paths on standard input; pipe one path per line")
                continue
            for line in stdin:
                path = line.rstrip("\r\n")
                if path.strip():
                    yield from _one(path, recursive, census)
        else:
            yield from _one(item, recursive, census)


def _one(item: str, recursive: bool, census: Census) -> Iterator[Source]:
    """Sources for one command-line item: a file, a folder, or a glob pattern."""
    if os.path.isdir(item):
        yield from _folder(item, recursive, census, ancestors=(), top=True)
    elif os.path.lexists(item):
        yield _file(item)
    elif glob.has_magic(item):
        matched = False
        for path in glob.iglob(item, recursive=recursive):
            matched = True
            if os.path.isdir(path):
                yield from _folder(path, recursive, census, ancestors=(), top=True)
            else:
                yield _file(path)
        if not matched:
            yield Source(item, "no file matches this pattern; check the pattern (quote it so the "
                               "shell does not expand it)")
    else:
        yield Source(item, "no such file; check the path")


def _file(path: str) -> Source:
    """A named file: checked for dangling links and special files (it is not opened)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return Source(path, "dangling symlink (its target does not exist); fix or remove the link")
    except OSError as exc:
        if exc.errno == 40:  # ELOOP
            return Source(path, "symlink loop; fix the link")
        return Source(path, f"cannot read ({exc.strerror}); check the path and permissions")
    if not stat.S_ISREG(st.st_mode):
        return Source(path, f"not a regular file ({_kind(st.st_mode)}); pass an image file")
    return Source(path)


def _folder(path: str, recursive: bool, census: Census, ancestors: tuple, top: bool) -> Iterator[Source]:
    """Images of one folder (sorted by name), then its subfolders when ``recursive``."""
    try:
        st = os.stat(path)
        key = (st.st_dev, st.st_ino)
        if key in ancestors:
            yield Source(path, "symlink loop (a link back to one of its parent folders); skipped")
            return
        if key in census.seen_dirs:  # reached twice through symlinks: list it once
            return
        census.seen_dirs.add(key)
        with os.scandir(path) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as exc:
        yield Source(path, f"cannot list this folder ({exc.strerror}); check its permissions")
        return
    found = 0
    subfolders = []
    for entry in entries:
        full = os.path.join(path, entry.name)
        try:
            is_dir = entry.is_dir()
        except OSError:
            is_dir = False
        if is_dir:
            subfolders.append(full)
            continue
        if os.path.splitext(entry.name)[1].lower() not in IMAGE_SUFFIXES:
            census.not_images += 1
            continue
        found += 1
        yield _file(full)
    del entries
    if top and not found and not (recursive and subfolders):
        yield Source(path, f"folder holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})"
                     + ("; pass --recursive to search its subfolders" if subfolders else ""))
    if not recursive:
        census.subfolders += len(subfolders)
        return
    for sub in subfolders:
        yield from _folder(sub, recursive, census, (*ancestors, key), top=False)


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISDIR, "a directory")):
        if test(mode):
            return name
    return "not a regular file"


def read_image_file(path: str) -> bytes:
    """Read a whole image file, refusing special files without blocking on them.

    The file is opened non-blocking and checked with ``fstat``, so a FIFO named ``x.png`` (even one
    that replaced a regular file after it was listed) fails at once instead of hanging the job.

    Raises:
        ImageError: missing, unreadable, not a regular file, or larger than MAX_FILE_BYTES.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file (or a dangling symlink); check the path") from None
    except OSError as exc:
        raise ImageError(f"{path}: cannot open ({exc.strerror}); check the path and permissions") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ImageError(f"{path}: not a regular file ({_kind(st.st_mode)}); pass an image file")
        if st.st_size > MAX_FILE_BYTES:
            raise ImageError(f"{path}: {st.st_size / 2**20:.0f} MiB is over the "
                             f"{MAX_FILE_BYTES // 2**20} MiB limit for one image; downscale it first")
        chunks = []
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError as exc:
        raise ImageError(f"{path}: cannot read ({exc.strerror}); check the file") from None
    finally:
        os.close(fd)
