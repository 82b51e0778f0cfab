"""The ``scoremix-ds`` command line: a thin Typer layer over the library.

Each command parses flags, builds ONE typed config (recipe values overridden by the flags given), calls one library
function and prints its summary. Errors from the library become one line on stderr plus a hint, exit code 2;
``SCOREMIX_DEBUG=1`` shows the traceback.
"""

from __future__ import annotations

import os
import sys

import typer

from ..core.errors import ScoreMixError
from ..core.processes import set_argv
from . import boundary
from .commands import app
from .logsetup import setup_logging


# What a Ctrl-C leaves behind, for the commands that keep partial work; any other command says only "interrupted".
INTERRUPTED = {
    "build": "interrupted; completed shards are kept and a re-run resumes",
    "reproduce": "interrupted; finished stages are kept and a re-run continues",
}


def interrupted_line(argv: list[str]) -> str:
    """The Ctrl-C line for the command ``argv`` runs (its first word that is not an option)."""
    command = next((a for a in argv if not a.startswith("-")), "")
    return INTERRUPTED.get(command, "interrupted")


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point."""
    argv = list(sys.argv[1:] if argv is None else argv)
    set_argv(argv)
    setup_logging()
    try:
        # Typer's non-standalone mode RETURNS the code of typer.Exit, and turns Ctrl-C into Exit(130).
        code = app(args=argv, standalone_mode=False)
    except KeyboardInterrupt:
        typer.echo(interrupted_line(argv), err=True)
        return 130
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        return 1
    except Exception as exc:  # noqa: BLE001 - the one boundary: user errors become one line, bugs keep a traceback
        # usage errors (Typer raises its own bundled copy of click's exception classes)
        if callable(getattr(exc, "show", None)) and isinstance(getattr(exc, "exit_code", None), int):
            exc.show()
            return exc.exit_code
        error = boundary.as_user_error(exc, argv)
        if os.environ.get("SCOREMIX_DEBUG") or error is None:
            typer.echo(boundary.format_traceback(exc, argv).rstrip(), err=True)  # tokens redacted
            if error is None:
                typer.echo("error: unexpected failure (a bug in scoremix-ds, please report it with the traceback above)",
                           err=True)
                return 1
        typer.echo(boundary.error_line(error, argv), err=True)  # fields named by this command's flags
        return error.exit_code
    if code == 130:
        typer.echo(interrupted_line(argv), err=True)
    return code if isinstance(code, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
