"""The one error family of scoremix-ds.

Library code raises these; the CLI boundary turns them into ONE line naming what is wrong and the flag that fixes
it, and a non-zero exit. Set ``SCOREMIX_DEBUG=1`` for the traceback.
"""

from __future__ import annotations


class ScoreMixError(Exception):
    """Base class: something the user can fix. ``hint`` says what fixes it; ``field`` (and ``fields``) the config
    fields the message and hint name, which the CLI names by the running command's flags (``learning_rate`` ->
    ``--learning-rate``) or as recipe keys. Library code names fields (or files, or recipe keys), never a command's
    flags: a field is named as the message's first word (``pairs must be a positive count``) or in backticks
    (``use `pairs` 6 or fewer``), which is where the CLI puts the flag; a declared field named neither way gets its
    flag in parentheses after the hint (``scoremix_ds.cli.boundary.for_command``)."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None, field: str | None = None,
                 fields: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.field = field
        self.fields = tuple(fields) or ((field,) if field else ())

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class ConfigError(ScoreMixError):
    """A flag, recipe or config value is invalid."""


class ModelError(ScoreMixError):
    """A generator or discriminator cannot be used (missing, not class-conditional, pickle-only...)."""


class DataError(ScoreMixError):
    """Real data or an output folder is unusable."""
