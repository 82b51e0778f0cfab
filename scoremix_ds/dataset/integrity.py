"""Is every shard a manifest lists still the file the build wrote? One check for status, build, merge and push.

A shard is intact when it is on disk and its sha256 equals the one recorded when it was written. A shard that is
not is classified for the message: *missing*, *unreadable* (truncated or corrupted: parquet cannot read its footer) or *changed*
(it still decodes, but its bytes are not the ones the build wrote, e.g. a flipped bit).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..core.errors import DataError
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


def verified_build(folder: Path, field: str | tuple[str, ...], allow_partial: bool = False) -> Manifest:
    """The manifest of the build in ``folder``, once it is complete and every shard it lists is the file the build
    wrote: the one check every command that READS a build makes first (``status --verify``'s rule; each file is hashed
    once per process). ``allow_partial``: an unfinished build is accepted as it stands (its manifest lists no shards
    until the build completes, so its shards are then read unchecked). Errors name ``field``, the config field(s) that
    gave the folder."""
    fields = (field,) if isinstance(field, str) else tuple(field)
    manifest = Manifest.read(folder)
    if manifest is None:
        raise DataError(f"{folder} holds no manifest.json: it is not a scoremix-ds build", hint="give a build folder",
                        fields=fields)
    if not manifest.complete and not allow_partial:
        raise DataError(f"{folder} is an unfinished build (`scoremix-ds status {folder}` says what remains)",
                        hint="re-run its build command to finish it, or accept it as it is with allow_partial",
                        fields=(*fields, "allow_partial"))
    damage = damaged_shards(folder, manifest)
    if damage:
        raise DataError(damage_line(folder, damage), hint="re-run the same build command: it re-samples exactly the "
                        "damaged shards", fields=fields)
    return manifest
