"""Errors as a command prints them: the library names config fields, the CLI names them by that command's flags."""

from __future__ import annotations

from scoremix_ds.cli.boundary import error_line, for_command


def as_build_prints(exc):
    """``exc`` as ``scoremix-ds build`` prints it (its ``message`` and ``hint``, each field named by build's flag)."""
    return for_command(exc, ["build"])


def line_as(command: str, exc) -> str:
    """The one line ``scoremix-ds COMMAND`` prints for ``exc``."""
    return error_line(exc, [command])
