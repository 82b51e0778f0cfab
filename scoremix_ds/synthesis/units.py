"""Completion markers of work units: the source of truth while a build runs.

After a unit's shards are renamed into place, its marker ``.scoremix/units/unit-NNNNN.json`` is written
(atomically) with each shard's row count and sha256. On resume a unit counts as done only if its marker is readable
and every shard it names is on disk with that hash; otherwise the unit is redone. Every process writes only its own
units' markers, so processes and job-array parts never write the same file.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from ..core.outputs import atomic_write
from ..dataset.manifest import file_sha256

logger = logging.getLogger(__name__)

STATE_DIR = ".scoremix"  # in-progress bookkeeping, removed when the build completes
UNITS_DIR = f"{STATE_DIR}/units"


def unit_of(relpath: str) -> int:
    """The unit a shard belongs to, from its name ``data/<config>/train-NNNNN.parquet``."""
    return int(relpath.rsplit("-", 1)[1].split(".")[0])


def marker_path(out: Path, unit: int) -> Path:
    return out / UNITS_DIR / f"unit-{unit:05d}.json"


def write_marker(out: Path, unit: int, shards: dict[str, dict[str, Any]]) -> None:
    """``shards``: config -> {relpath, rows, sha256}."""
    path = marker_path(out, unit)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps({"unit": unit, "shards": shards}, sort_keys=True))


def read_marker(out: Path, unit: int, verify: bool = True) -> dict[str, dict[str, Any]] | None:
    """The unit's shards if it is complete (and, with ``verify``, every shard matches its recorded hash)."""
    path = marker_path(out, unit)
    try:
        shards = json.loads(path.read_text(encoding="utf-8"))["shards"]
    except (FileNotFoundError, ValueError, KeyError, TypeError):  # absent or damaged: the unit is redone
        return None
    if not isinstance(shards, dict) or not all(isinstance(i, dict) and "relpath" in i for i in shards.values()):
        return None
    for info in shards.values():
        shard = out / info["relpath"]
        if not shard.is_file() or (verify and file_sha256(shard) != info["sha256"]):
            logger.warning("unit %d: shard %s is missing or corrupted; it will be redone", unit, info["relpath"])
            return None
    return shards


def done_units(out: Path, units: list[int], verify: bool = True) -> dict[int, dict[str, dict[str, Any]]]:
    found = {}
    for unit in units:
        shards = read_marker(out, unit, verify)
        if shards is not None:
            found[unit] = shards
    return found
