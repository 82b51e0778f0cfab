"""Is every shard a manifest lists still the file the build wrote? One check for status, build, merge and push.

A shard is intact when it is on disk and its sha256 equals the one recorded when it was written. A shard that is
not is classified for the message: *missing*, *unreadable* (truncated or corrupted: parquet cannot read its footer) or *changed*
(it still decodes, but its bytes are not the ones the build wrote, e.g. a flipped bit).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .manifest import Manifest, file_sha256


@dataclass(frozen=True)
class Damage:
    relpath: str
    reason: str  # "missing", "unreadable" or "changed"

    def describe(self, folder: Path) -> str:
        what = {"missing": "is missing", "unreadable": "is truncated or corrupted (parquet cannot read it)",
                "changed": "does not match the sha256 recorded in manifest.json (changed after it was written)"}
        return f"shard {folder / self.relpath} {what[self.reason]}"


_INTACT: set[tuple[str, int, int, str]] = set()  # (path, size, mtime_ns, sha256) already hashed by this process


def shard_damage(path: Path, sha256: str) -> str | None:
    """None when ``path`` is intact, else why it is not. A file hashed intact once by this process is not hashed
    again while its size and mtime are unchanged (``build`` checks a finished folder before and after loading)."""
    if not path.is_file():
        return "missing"
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, sha256)
    if key in _INTACT:
        return None
    if file_sha256(path) == sha256:
        _INTACT.add(key)
        return None
    import pyarrow.parquet as pq

    try:
        pq.ParquetFile(path).metadata  # noqa: B018 - reading the footer is the decode check
    except Exception:  # pyarrow raises ArrowInvalid / OSError for a truncated or foreign file
        return "unreadable"
    return "changed"


def damaged_shards(folder: Path, manifest: Manifest) -> list[Damage]:
    """Every listed shard of ``folder`` that is not exactly as written, in path order."""
    found = []
    for rel, info in sorted((r, i) for files in manifest.shards.values() for r, i in files.items()):
        reason = shard_damage(folder / rel, str(info.get("sha256", "")))
        if reason:
            found.append(Damage(rel, reason))
    return found


def damage_line(folder: Path, damage: list[Damage]) -> str:
    """The first damaged shard, and how many more."""
    more = f" (and {len(damage) - 1} more damaged shard(s))" if len(damage) > 1 else ""
    return damage[0].describe(folder) + more
