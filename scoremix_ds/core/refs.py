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

import os
import re
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


# ------------------------------------------------------------------------------ the public (card) form of a reference

_HUB_ID_FORM = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")  # ORG/NAME
# A local path inside free text: ``/abs/x``, ``~/x``, ``./x``, ``../x``, not preceded by a word or path character
# (so ``org/name`` and URLs are left alone; ``lfw:/data/lfw.bin`` has its path reduced).
_LOCAL_PATH_IN_TEXT = re.compile(r"(?<![\w/.~-])(?:/(?!/)|~/|\.\.?/)[^\s\"'`,;()\[\]{}<>|]+")


def is_local_path(ref: str) -> bool:
    """``ref`` names a file or folder on this machine, not a Hub id or a built-in name: it is written as a path
    (absolute, or starting with ``~`` or ``.``, or with a backslash: no Hub id or built-in name looks like that), or
    it has a ``/`` and exists (``runs/gen``, which would otherwise read as the Hub id ``ORG/NAME``). A bare name is
    never local here: it is a built-in name, or a folder name that reveals no path."""
    return (os.path.isabs(ref) or ref.startswith((".", "~")) or "\\" in ref
            or ("/" in ref and Path(ref).exists()))


def could_be_hub_id(ref: str) -> bool:
    """``ref`` has the form of a Hub id, ``ORG/NAME`` (one ``/``, a name starting with a letter or digit, letters,
    digits, ``_``, ``.`` and ``-``): what a loader may try to download once no local folder of that name exists."""
    return _HUB_ID_FORM.fullmatch(ref) is not None


def public_ref(ref: str | None) -> str | None:
    """A reference fit for a card, a manifest or a published file: a local path becomes ``local:<its last part>``
    (the rest of it is only meaningful on the machine that wrote it, and may name a user); Hub ids, built-in names
    and ``None`` are unchanged.

    >>> public_ref("/home/alice/runs/gen/"), public_ref("~/faces"), public_ref("./a/b"), public_ref("org/faces@v1")
    ('local:gen', 'local:faces', 'local:b', 'org/faces@v1')
    """
    if ref is None or not is_local_path(ref):
        return ref
    name = re.split(r"[/\\]", ref.rstrip("/\\"))[-1]
    return f"local:{name}" if name else ref


def public_text(text: str) -> str:
    """``text`` (a card, a log line, a JSON dump) with every local path in it given its :func:`public_ref` form.

    >>> public_text("imagefolder /abs/faces at 3f1c; lfw:/data/lfw.bin and ~/x")
    'imagefolder local:faces at 3f1c; lfw:local:lfw.bin and local:x'
    """
    return _LOCAL_PATH_IN_TEXT.sub(lambda m: public_ref(m.group(0)) or m.group(0), text)
