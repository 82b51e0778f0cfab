"""``list_versions``: the tags of a Hub dataset repository, each with the build that made it.

Read from the tagged commit itself: the card's ``scoremix`` block (strategy, generator, package version) and
``manifest.json`` (fingerprint, rows per config). A tag on something that is not a scoremix-ds dataset is still
listed, with those fields empty.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from huggingface_hub import DatasetCard, HfApi
from huggingface_hub.errors import EntryNotFoundError

from ..core.hub_client import check_repo_id, hub_errors, make_api, resolve_token

logger = logging.getLogger(__name__)

REPO_TYPE = "dataset"


@dataclass(frozen=True)
class Version:
    tag: str
    commit: str
    date: str | None  # ISO 8601, the tagged commit's date as the Hub reports it
    strategy: str | None
    generator: str | None
    counts: dict[str, int] = field(default_factory=dict)  # config -> rows
    fingerprint: str | None = None  # same fingerprint = same build config = same rows
    package_version: str | None = None


def _download(api: HfApi, repo_id: str, filename: str, commit: str) -> str | None:
    try:
        path = api.hf_hub_download(repo_id, filename, repo_type=REPO_TYPE, revision=commit)
    except EntryNotFoundError:
        return None
    return Path(path).read_text(encoding="utf-8")


def _read_version(api: HfApi, repo_id: str, tag: str, commit: str) -> Version:
    info = api.dataset_info(repo_id, revision=commit)
    card_text = _download(api, repo_id, "README.md", commit)
    manifest_text = _download(api, repo_id, "manifest.json", commit)
    block: dict[str, Any] = {}
    if card_text:
        block = DatasetCard(card_text).data.to_dict().get("scoremix") or {}
    manifest: dict[str, Any] = {}
    if manifest_text:
        try:
            manifest = json.loads(manifest_text)
        except ValueError:
            logger.warning("manifest.json at %s of %s is not JSON; ignoring it", tag, repo_id)
    build = block.get("build") or manifest.get("config") or {}
    counts = {name: int(c["rows"]) for name, c in (manifest.get("counts") or {}).items() if "rows" in c}
    return Version(
        tag=tag,
        commit=commit,
        date=info.last_modified.isoformat() if info.last_modified else None,
        strategy=build.get("strategy"),
        generator=build.get("generator"),
        counts=counts,
        fingerprint=manifest.get("fingerprint"),
        package_version=block.get("package_version") or manifest.get("package_version"),
    )


def list_versions(repo_id: str, token: str | None = None) -> list[Version]:
    """Every tag of ``repo_id`` with its build config, oldest first. Public repos need no token."""
    check_repo_id(repo_id, field="REPO")
    token = resolve_token(token, required=False)
    api = make_api(token)
    with hub_errors(repo_id, f"listing the versions of {repo_id}", token, write=False):
        refs = api.list_repo_refs(repo_id, repo_type=REPO_TYPE)
        versions = [_read_version(api, repo_id, ref.name, ref.target_commit) for ref in refs.tags]
    return sorted(versions, key=lambda v: (v.date or "", v.tag))
