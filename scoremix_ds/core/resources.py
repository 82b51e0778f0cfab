"""Where the bundled recipes (``builders/``) and card templates (``cards/``) are found.

In a wheel they are copied to ``scoremix_ds/_bundled/``; in a checkout or an editable install they are the
top-level folders of the repository. Both are looked up, bundled first.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent.parent  # scoremix_ds/ (this file is scoremix_ds/core/resources.py)


def resource_dir(name: str) -> Path:
    """Return the folder ``builders`` or ``cards`` wherever this installation keeps it."""
    for candidate in (_PACKAGE / "_bundled" / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"scoremix-ds installation has no '{name}' folder (looked in {_PACKAGE})")


def default_model_dir(kind: str) -> Path:
    """The embedded default ``generator`` or ``discriminator`` shipped inside the package."""
    return _PACKAGE / "default" / kind
