"""The one place where a typed library error becomes what a person sees: one line and an exit code.

Every command line goes through here: the ``mnistkit`` click group and ``mnistkit classify`` call
:func:`click_guarded`, the argparse scripts (``tools/scripts``, ``python -m mnistkit.tools.pi``)
call :func:`script_guarded`. Usage errors exit 2, every other ``MnistkitError`` exits 1, and
nothing prints a traceback. It lives in the runtime so the device CLI can use it too.
"""

from __future__ import annotations

import sys
from typing import Callable, NoReturn, TypeVar

from mnistkit.runtime.errors import MnistkitError, UsageError

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

T = TypeVar("T")


def exit_code(exc: MnistkitError) -> int:
    """The exit code of a library error: 2 for a usage error, 1 for any other failure."""
    return EXIT_USAGE if isinstance(exc, UsageError) else EXIT_FAILURE


def click_guarded(callback: Callable[..., T], *args, **kwargs) -> T:
    """Call ``callback``, turning library errors into click exceptions (one line, exit 2 or 1).

    Raises:
        click.UsageError: for a ``UsageError``.
        click.ClickException: for any other ``MnistkitError``.
    """
    import click

    try:
        return callback(*args, **kwargs)
    except UsageError as exc:
        raise click.UsageError(str(exc)) from None
    except MnistkitError as exc:
        raise click.ClickException(str(exc)) from None


def exit_failed() -> NoReturn:
    """End a command whose failures were already reported line by line (files not exported, images
    not classified): exit code 1, nothing more printed."""
    raise SystemExit(EXIT_FAILURE)


def script_guarded(main: Callable[[], int | None]) -> int:
    """Run an argparse script's body: a library error prints ``error: <message>`` on stderr and
    returns its exit code; Ctrl-C returns 130. Returns ``main``'s code (None counts as 0) otherwise.
    """
    try:
        return main() or 0
    except MnistkitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exit_code(exc)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
