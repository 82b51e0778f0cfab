"""What a build folder holds and what remains: ``scoremix-ds status DIR``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..dataset.integrity import damage_line, damaged_shards
from ..dataset.manifest import Manifest
from ..core.errors import DataError
from .layout import Layout
from .units import done_units


@dataclass(frozen=True)
class BuildStatus:
    out: Path
    complete: bool
    units_done: int
    units_total: int
    rows: dict[str, int]
    part: dict[str, int] | None
    config: dict
    verified: int | None = None  # shards re-hashed by --verify (all intact), None without --verify

    def summary(self) -> str:
        cfg = self.config
        head = f"{self.out}: strategy {cfg['strategy']}, {cfg['pairs']} identities x {cfg['per_identity']} images"
        if self.part:
            head += f", job-array part {self.part['index']} of {self.part['count']}"
        if self.complete:
            rows = ", ".join(f"{name} {n} rows" for name, n in self.rows.items())
            checked = f"; {self.verified} shard(s) match their sha256" if self.verified is not None else ""
            return f"{head}\ncomplete: {rows}{checked}"
        return (f"{head}\nunfinished: {self.units_done} of {self.units_total} units done; "
                "re-run the same build command to resume")


REPAIR = "re-run the same `scoremix-ds build` command into this folder: it re-samples exactly the damaged units"


def build_status(out: Path, verify: bool = False) -> BuildStatus:
    """The folder's state; with ``verify`` every finished shard is re-hashed (and a damaged one is a DataError)."""
    manifest = Manifest.read(out) if out.is_dir() else None
    if manifest is None:
        raise DataError(f"{out} is not a scoremix-ds build folder (no manifest.json)", hint="give the build's output folder",
                        field="out")
    if manifest.complete:
        damage = damaged_shards(out, manifest) if verify else []
        if damage:
            raise DataError(damage_line(out, damage), hint=REPAIR)
        verified = sum(len(f) for f in manifest.shards.values()) if verify else None
        return BuildStatus(out, True, manifest.layout.get("units", 0), manifest.layout.get("units", 0), manifest.rows(),
                           manifest.part, manifest.config, verified)
    part = manifest.part or {"index": 0, "count": 1}
    units = Layout(part=part["index"], parts=part["count"]).part_units(manifest.layout["units"])
    done = done_units(out, units, verify=verify)
    rows: dict[str, int] = {}
    for shards in done.values():
        for name, info in shards.items():
            rows[name] = rows.get(name, 0) + info["rows"]
    return BuildStatus(out, False, len(done), len(units), rows, manifest.part, manifest.config)
