"""Is a local folder a complete scoremix-ds dataset, exactly as its build left it? Checked before any push.

A complete dataset is: ``manifest.json`` saying ``complete``, every shard it lists present with the sha256 it
recorded, no other parquet file under ``data/`` (it would be loaded as rows of the dataset), per-config row counts
that add up, and the card (``README.md``) and ``preview.png`` the build writes when it finishes.
"""

from __future__ import annotations

from pathlib import Path

from ..dataset.manifest import MANIFEST, Manifest
from ..dataset.manifest import file_sha256
from ..core.errors import DataError

CARD = "README.md"
PREVIEW = "preview.png"
REBUILD = "re-run the same scoremix-ds build command to finish it"
# Re-running the same build re-samples missing shards; a changed shard is caught there only by its hash, so the
# hint names both ways.
RESAMPLE = "delete the damaged shard and re-run the same scoremix-ds build command (same config and seed, same rows)"


def listed_shards(manifest: Manifest) -> dict[str, dict]:
    """``{relpath: {rows, sha256}}`` over every config of the manifest."""
    return {rel: info for shards in manifest.shards.values() for rel, info in shards.items()}


def verify_dataset(folder: str | Path) -> Manifest:
    """Return the folder's manifest, or raise a :class:`DataError` naming the problem and the fix."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder} is not a folder", hint="give the folder a finished `scoremix-ds build --out DIR` wrote",
                        field="folder")
    try:
        manifest = Manifest.read(folder)
    except (ValueError, TypeError) as exc:  # JSONDecodeError is a ValueError; unknown keys a TypeError
        raise DataError(f"{folder / MANIFEST} is unreadable ({type(exc).__name__})",
                        hint=RESAMPLE) from exc
    if manifest is None:
        raise DataError(f"{folder} holds no {MANIFEST}: it is not a scoremix-ds dataset",
                        hint="push the folder `scoremix-ds build --out DIR` wrote", field="folder")
    shards = listed_shards(manifest)
    part = getattr(manifest, "part", None)
    if part:
        raise DataError(f"{folder} is part {part.get('index')} of {part.get('count')} of a job-array build "
                        "(shard / num_shards), not a whole dataset",
                        hint="join all parts with `scoremix-ds merge PART... --out DIR`, then push DIR")
    if not manifest.complete:
        raise DataError(f"the build in {folder} is unfinished ({MANIFEST} says complete: false, {len(shards)} shard(s) "
                        "written so far)", hint=REBUILD)
    if not manifest.shards.get("mix"):
        raise DataError(f"{folder / MANIFEST} lists no 'mix' shards", hint=REBUILD)
    for rel, info in sorted(shards.items()):
        path = folder / rel
        if not path.is_file():
            raise DataError(f"shard {rel} listed in {MANIFEST} is missing from {folder}",
                            hint=RESAMPLE)
        if file_sha256(path) != info["sha256"]:
            raise DataError(f"shard {rel} in {folder} does not match the sha256 in {MANIFEST} (changed after the build)",
                            hint=RESAMPLE)
    data = folder / "data"
    unlisted = sorted(p.relative_to(folder).as_posix() for p in data.rglob("*.parquet")) if data.is_dir() else []
    unlisted = [rel for rel in unlisted if rel not in shards]
    if unlisted:
        more = f" (and {len(unlisted) - 1} more)" if len(unlisted) > 1 else ""
        raise DataError(f"{folder} holds {unlisted[0]}{more}, which {MANIFEST} does not list; it would be loaded as rows",
                        hint="remove the files this build did not write, or push a clean output folder",
                        field="folder")
    for config, shard_infos in manifest.shards.items():
        rows = sum(int(s["rows"]) for s in shard_infos.values())
        declared = manifest.counts.get(config, {}).get("rows")
        if declared != rows:
            raise DataError(f"{MANIFEST} in {folder} says config '{config}' has {declared} rows but its shards hold {rows}",
                            hint=RESAMPLE)
    for name, what in ((CARD, "dataset card"), (PREVIEW, "preview grid")):
        if not (folder / name).is_file():
            raise DataError(f"{folder} has no {name} (the {what} a finished build writes)",
                            hint=RESAMPLE)
    return manifest

