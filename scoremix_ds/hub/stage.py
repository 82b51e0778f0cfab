"""The exact files a push uploads, staged in a temporary folder; the user's dataset folder is never modified.

Staged: ``README.md`` (the card, its load snippet pointed at ``ORG/NAME`` and the version), ``manifest.json`` and
``build.toml`` (local paths in the build config reduced to ``local:<folder name>``, as the card shows them), ``preview.png`` and
the shards the manifest lists (linked, not copied, where the filesystem allows). The staged bytes depend only on
the folder, the repo id and the revision named in the card, so an identical re-push uploads identical files and
the client makes no commit.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import tomllib
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .. import __version__
from ..core.recipe_file import RECIPE, recipe_text
from ..core.refs import public_ref
from ..dataset.manifest import MANIFEST, Manifest
from .folder_check import CARD, PREVIEW, listed_shards

PLACEHOLDER = "path/to/this/dataset"  # what dataset/card.py renders when the dataset has no Hub home yet
_LOAD_CALL = re.compile(r'load_dataset\("' + re.escape(PLACEHOLDER) + r'"([^)\n]*)\)')


def public_card(text: str, repo_id: str, revision: str | None) -> str:
    """Point the card's ``load_dataset("path/to/this/dataset", ...)`` snippets at ``repo_id`` (and ``revision``)."""
    pinned = f', revision="{revision}"' if revision else ""
    text = _LOAD_CALL.sub(lambda m: f'load_dataset("{repo_id}"{m.group(1)}{pinned})', text)
    return text.replace(PLACEHOLDER, repo_id)


AUDIT_FILES = ("audit.json", "audit.png")


def public_manifest(manifest: dict, card_build: dict | None = None) -> dict:
    """The manifest with local paths in its build config reduced as the card shows them (``local:<name>``).

    ``card_build`` is the card's ``scoremix.build`` block, where the build already made its references public;
    any other value that looks like a local path is reduced the same way.
    """
    card_build = card_build or {}
    config = {}
    for key, value in manifest.get("config", {}).items():
        if isinstance(value, str) and isinstance(card_build.get(key), str):
            value = card_build[key]
        if isinstance(value, str):
            value = public_ref(value)
        config[key] = value
    return {**manifest, "config": config}


def public_recipe(text: str, card_build: dict | None = None) -> str:
    """``build.toml`` with local paths reduced as in :func:`public_manifest` (Hub ids and settings unchanged)."""
    values = public_manifest({"config": tomllib.loads(text)}, card_build)["config"]
    return recipe_text(values, __version__)


def card_build_block(card_text: str) -> dict:
    """The ``scoremix.build`` block of a card's YAML metadata ({} when absent)."""
    from huggingface_hub import DatasetCard

    block = DatasetCard(card_text).data.to_dict().get("scoremix") or {}
    return block.get("build") or {}


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)  # same filesystem: no copy; the client only reads it
    except OSError:
        try:
            dst.symlink_to(src.resolve())
        except OSError:
            shutil.copy2(src, dst)


@contextmanager
def staged(folder: Path, manifest: Manifest, repo_id: str, revision: str | None) -> Iterator[Path]:
    """A temporary folder holding exactly what is pushed for the verified dataset in ``folder``; removed on exit."""
    folder = Path(folder)
    with tempfile.TemporaryDirectory(prefix="scoremix-push-") as tmp:
        stage = Path(tmp) / "dataset"
        stage.mkdir()
        card = (folder / CARD).read_text(encoding="utf-8")
        (stage / CARD).write_text(public_card(card, repo_id, revision), encoding="utf-8")
        public = public_manifest(dict(manifest.__dict__), card_build_block(card))
        (stage / MANIFEST).write_text(json.dumps(public, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        _link_or_copy(folder / PREVIEW, stage / PREVIEW)
        if (folder / RECIPE).is_file():  # the recipe that rebuilds the rows (older builds have none)
            recipe = public_recipe((folder / RECIPE).read_text(encoding="utf-8"), card_build_block(card))
            (stage / RECIPE).write_text(recipe, encoding="utf-8")
        for extra in AUDIT_FILES:  # written by `scoremix-ds audit`, referenced by the card
            if (folder / extra).is_file():
                _link_or_copy(folder / extra, stage / extra)
        for rel in sorted(listed_shards(manifest)):
            _link_or_copy(folder / rel, stage / rel)
        yield stage

