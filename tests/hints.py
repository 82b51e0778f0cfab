"""Errors as a command prints them: the library names config fields, the CLI maps them to that command's flags."""

from __future__ import annotations

from scoremix_ds.cli.boundary import with_flags


def as_build_prints(exc):
    """``exc`` as ``scoremix-ds build`` prints it."""
    return with_flags(exc, ["build"])
