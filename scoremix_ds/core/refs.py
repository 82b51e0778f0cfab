"""The one grammar of a data or model reference: ``NAME``, ``NAME@REVISION``, ``NAME[classes]`` and both.

``NAME`` is a built-in name, a local folder (or file) or a Hub id. ``@REVISION`` (a branch, tag or commit) applies
to Hub ids only; the ``--x-revision`` flags are aliases of it, and giving both with different values is refused.
``[classes]`` (:mod:`.subsets`) may come before or after the revision: ``org/faces[0-7]@v1`` = ``org/faces@v1[0-7]``.
A local path that exists as written is never split at an ``@`` (folders may contain one).

>>> split_revision("org/faces@v1")
('org/faces', 'v1')
>>> split_revision("mnist-5k")
('mnist-5k', None)
>>> with_revision("org/faces", "v2", "real_data")
('org/faces', 'v2')
"""

from __future__ import annotations

from pathlib import Path

from .errors import ConfigError


def split_revision(text: str, flag: str = "the reference") -> tuple[str, str | None]:
    """``"NAME@REV"`` -> ``("NAME", "REV")``; no ``@`` (or an existing local path) -> ``(text, None)``."""
    if "@" not in text or Path(text).expanduser().exists():
        return text, None
    name, _, revision = text.rpartition("@")
    if not name or not revision:
        raise ConfigError(f"{flag} '{text}': write NAME@REVISION with a name and a branch, tag or commit",
                          hint="e.g. org/name@v1", field=flag if flag.isidentifier() else None)
    return name, revision


def with_revision(text: str, revision: str | None, flag: str) -> tuple[str, str | None]:
    """``text`` split at its ``@``, merged with the revision of ``flag``'s ``--x-revision`` alias (which must agree)."""
    name, own = split_revision(text, flag)
    if own is not None and revision is not None and own != revision:
        raise ConfigError(f"{flag} '{text}' names revision {own} but {flag}_revision says {revision}",
                          hint=f"give the revision once: {name}@REVISION",
                          fields=(flag, f"{flag}_revision") if flag.isidentifier() else ())
    return name, own if own is not None else revision
