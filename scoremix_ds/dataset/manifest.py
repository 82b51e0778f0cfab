"""``manifest.json``: the build config, its fingerprint, and the shards completed so far.

The manifest is rewritten atomically after every shard, so after a crash it lists exactly the shards that are
complete on disk; anything else in the folder is an unfinished leftover.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
FORMAT_VERSION = 1


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


@dataclass
class Manifest:
    fingerprint: str
    config: dict[str, Any]
    package_version: str
    provenance: dict[str, Any] = field(default_factory=dict)
    shards: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # config -> file -> {rows, sha256}
    counts: dict[str, Any] = field(default_factory=dict)
    complete: bool = False
    layout: dict[str, Any] = field(default_factory=dict)  # shard_size and the unit count: fixed for a build
    part: dict[str, int] | None = None  # {"index": i, "count": n} for a job-array part, None for a whole build
    format: int = FORMAT_VERSION
    audit: dict[str, Any] | None = None  # the summary of `scoremix-ds audit`, shown in the card

    @classmethod
    def read(cls, folder: Path) -> "Manifest | None":
        path = folder / MANIFEST
        if not path.is_file():
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(**data)

    def write(self, folder: Path) -> None:
        atomic_write_text(folder / MANIFEST, json.dumps(self.__dict__, indent=2, sort_keys=True) + "\n")

    def rows(self) -> dict[str, int]:
        """Rows per config, summed over the shards listed so far."""
        return {c: sum(f["rows"] for f in files.values()) for c, files in self.shards.items()}

    def add_shard(self, config: str, relpath: str, rows: int, sha256: str) -> None:
        self.shards.setdefault(config, {})[relpath] = {"rows": rows, "sha256": sha256}
