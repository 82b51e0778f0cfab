"""``manifest.json``: a build folder's config, fingerprint, layout and provenance, and once complete its shards.

A build writes it (atomically) twice: when it opens the folder (the header, no shards, ``complete`` false) and when
the last unit is done (every shard with its rows and sha256, the counts, ``complete`` true); ``audit`` adds its
summary later. While a build runs, the per-unit markers (:mod:`scoremix_ds.synthesis.units`) say which shards are done.
A manifest of another ``format`` than :data:`FORMAT_VERSION` is refused on read.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.errors import DataError
from ..core.outputs import atomic_write

MANIFEST = "manifest.json"
FORMAT_VERSION = 1


def file_sha256(path: str | Path) -> str:
    """The hex sha256 of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


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
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            manifest = cls(**data)
            manifest._check_types()
        except (ValueError, TypeError, AttributeError) as exc:  # JSON errors are ValueErrors; unknown keys TypeErrors
            detail = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
            raise DataError(f"{path} is not a readable scoremix-ds manifest ({detail})",
                            hint="restore the folder's manifest.json, or write to a new output folder", field="out") from None
        if manifest.format != FORMAT_VERSION:
            raise DataError(f"{path} has manifest format {manifest.format}; this scoremix-ds reads format {FORMAT_VERSION}",
                            hint=f"use the scoremix-ds version that wrote it ({manifest.package_version})")
        return manifest

    def _check_types(self) -> None:
        """Raise TypeError when a field has the wrong JSON type (a hand-edited or foreign manifest)."""
        expect = {"fingerprint": str, "config": dict, "package_version": str, "provenance": dict, "shards": dict,
                  "counts": dict, "complete": bool, "layout": dict, "format": int}
        for name, kind in expect.items():
            if not isinstance(getattr(self, name), kind):
                raise TypeError(f"'{name}' should be a {kind.__name__}")
        if self.part is not None and not (isinstance(self.part, dict) and all(isinstance(self.part.get(k), int)
                                                                             for k in ("index", "count"))):
            raise TypeError("'part' should be null or {index, count}")
        for config, files in self.shards.items():
            if not isinstance(files, dict):
                raise TypeError(f"'shards.{config}' should be an object")
            for rel, info in files.items():
                if not (isinstance(info, dict) and isinstance(info.get("rows"), int)
                        and isinstance(info.get("sha256"), str)) or ".." in Path(rel).parts or Path(rel).is_absolute():
                    raise TypeError(f"shard entry {rel!r} should be a relative path with {{rows, sha256}}")

    def write(self, folder: Path) -> None:
        atomic_write(folder / MANIFEST, json.dumps(self.__dict__, indent=2, sort_keys=True) + "\n")

    def rows(self) -> dict[str, int]:
        """Rows per config, summed over the shards listed so far."""
        return {c: sum(f["rows"] for f in files.values()) for c, files in self.shards.items()}
