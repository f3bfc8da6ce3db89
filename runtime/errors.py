"""Typed errors shared by every mnistkit package.

This module lives in the runtime (the package that depends on nothing else in the project) so that
the device install and the training tools raise the same types. Every message says what went wrong
and what to do; only the CLI turns these into exit codes.
"""

from __future__ import annotations


class MnistkitError(Exception):
    """Base class of every error mnistkit raises on purpose."""


class UsageError(MnistkitError):
    """An impossible argument or combination of arguments (CLI exit code 2)."""


class DataError(MnistkitError):
    """MNIST files are missing, truncated or corrupt."""


class ModelError(MnistkitError):
    """A model file is missing, not of the expected kind, or unusable."""


class OutputExistsError(MnistkitError):
    """The output path exists and overwriting was not asked for."""


class ExportError(MnistkitError):
    """A conversion failed or is impossible for this model/format/mode."""


class IntegrityError(MnistkitError):
    """A file's bytes do not match the sha256 recorded in its manifest."""


class BackendUnavailableError(MnistkitError):
    """The inference backend needed for a model is not installed."""


class ImageError(MnistkitError):
    """An input image cannot be read or holds no digit."""


class MissingExtraError(MnistkitError):
    """A command needs an optional part of mnistkit (an extra) that is not installed."""


def first_line(exc: BaseException) -> str:
    """The first non-blank line of an exception's message (native libraries raise pages), or its type name."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[0] if lines else type(exc).__name__
