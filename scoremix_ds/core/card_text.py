"""Text from users, model folders and datasets as a card or a plot may show it: never markup, never a broken table.

Names, paths, class names and provenance reach the markdown of dataset, model and generator cards (rendered by the
Hub as HTML) and the titles of plots. :func:`card_safe` makes a display copy of such values: HTML's ``<``, ``>`` and
``&`` escaped, newlines folded to spaces (a value cannot start a new markdown block or YAML document), ``|``
escaped (a value cannot add table cells), backticks replaced (a value cannot close the code span it sits in), and
very long values shortened. The YAML metadata is written by ``huggingface_hub`` with PyYAML, which quotes what YAML
needs quoted, so it keeps the raw values. :func:`plot_safe` does the same for matplotlib, whose ``$`` starts maths.
"""

from __future__ import annotations

import html
from typing import Any

MAX_CHARS = 300  # a longer value is shortened on display (the card's YAML and manifest keep it whole)


def _text(value: str, limit: int) -> str:
    flat = " ".join(value.splitlines()) if ("\n" in value or "\r" in value) else value
    if len(flat) > limit:
        flat = flat[: limit - 1] + "…"
    return html.escape(flat, quote=False).replace("|", "\\|").replace("`", "'")


def card_safe(value: Any, limit: int = MAX_CHARS) -> Any:
    """A copy of ``value`` (strings, and the strings inside dicts, lists and tuples) safe to show in markdown."""
    if isinstance(value, str):
        return _text(value, limit)
    if isinstance(value, dict):
        return {k: card_safe(v, limit) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(card_safe(v, limit) for v in value)
    return value


def plot_safe(text: str, limit: int = 120) -> str:
    """``text`` for a matplotlib title or label: one line, shortened, ``$`` not read as the start of maths."""
    flat = " ".join(str(text).splitlines())
    if len(flat) > limit:
        flat = flat[: limit - 1] + "…"
    return flat.replace("$", r"\$")
