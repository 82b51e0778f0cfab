"""The output folder's state: new, resumable (same build), complete, or refused (another build's data)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from .. import __version__
from ..dataset.manifest import MANIFEST, Manifest
from ..core.errors import ConfigError, DataError
from ..core.outputs import TMP_SUFFIX, OutputLock, foreign_entries
from .config import BuildConfig, recorded_precision
from .units import unit_of, write_marker

logger = logging.getLogger(__name__)


def part_of(config: BuildConfig) -> dict[str, int] | None:
    return {"index": config.shard, "count": config.num_shards} if config.num_shards > 1 else None


def check_same_build(out: Path, existing: Manifest, config: BuildConfig, layout: dict[str, Any]) -> None:
    """Refuse to continue a folder that holds another build, another part, another precision or another unit size."""
    made_in = recorded_precision(existing.config, existing.provenance)
    if made_in is not None and made_in != config.compute_dtype:
        raise ConfigError(f"{out} was built in {made_in} and this build computes in {config.compute_dtype}; refusing to "
                          "mix precisions", hint=f"resume with `dtype` {made_in}, or choose another output folder",
                          fields=("dtype", "device", "out"))
    if existing.fingerprint != config.fingerprint():
        changed = sorted(k for k, v in config.content_config().items() if existing.config.get(k) != v)
        raise ConfigError(
            f"{out} holds a different build (settings differ: {', '.join(changed) or 'format'}); refusing to mix them",
            hint="choose another output folder, or rerun with the original settings to resume", field="out",
        )
    if existing.layout and existing.layout.get("shard_size") != layout["shard_size"]:
        raise ConfigError(
            f"{out} was built with shard_size {existing.layout['shard_size']}, not {layout['shard_size']}",
            hint=f"resume with `shard_size` {existing.layout['shard_size']}", fields=("shard_size", "out"),
        )
    if existing.part != part_of(config):
        raise ConfigError(f"{out} holds job-array part {existing.part}, not {part_of(config)}",
                          hint="resume with the same shard / num_shards, or choose another output folder",
                          fields=("shard", "num_shards", "out"))


def reopen_complete(out: Path, manifest: Manifest) -> None:
    """Turn a complete build whose shards went missing or were damaged back into a resumable one: every unit gets
    its marker back, and ``read_marker`` re-checks each hash, so exactly the damaged units are re-sampled."""
    by_unit: dict[int, dict[str, dict[str, Any]]] = {}
    for name, files in manifest.shards.items():
        for rel, info in files.items():
            by_unit.setdefault(unit_of(rel), {})[name] = {"relpath": rel, **info}
    for unit, shards in by_unit.items():
        write_marker(out, unit, shards)  # read_marker re-checks every hash before trusting them
    manifest.shards, manifest.complete = {}, False
    manifest.write(out)


def _check_foreign(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise DataError(f"{out} is a file, not a folder", hint="choose a folder as the output", field="out")
    # Another run's lock and its atomic writes in flight (the manifest's temporary before its rename) are ours, not
    # foreign: a second build meeting them must be told the folder is in use, not that it holds someone's files.
    if out.is_dir() and not (out / MANIFEST).exists() and foreign_entries(out):
        raise DataError(
            f"{out} is not empty and holds no scoremix-ds manifest; refusing to write into it",
            hint="choose a new or empty output folder", field="out",
        )


def open_out_dir(config: BuildConfig, layout: dict[str, Any], provenance: dict[str, Any],
                 lock: OutputLock | None = None) -> Manifest:
    """Create ``config.out`` or reopen it for the SAME build; never touch another build's data.

    Returns the manifest header (config, fingerprint, layout, provenance). Leftover temporary files of an
    interrupted run are removed; completed units are known from their markers (``units.py``). ``lock`` is taken
    once the folder is known to be new or this build's, and held by the caller until the build ends.
    """
    out = Path(config.out)
    _check_foreign(out)
    if lock is not None:
        lock.acquire()
    existing = Manifest.read(out) if out.is_dir() else None
    if existing is None:
        _check_foreign(out)
        out.mkdir(parents=True, exist_ok=True)
        manifest = Manifest(fingerprint=config.fingerprint(), config=config.content_config(), package_version=__version__,
                            provenance=provenance, layout=layout, part=part_of(config))
        manifest.write(out)
        return manifest
    check_same_build(out, existing, config, layout)
    if existing.complete:
        reopen_complete(out, existing)
    for pattern in (".*.tmp", f".*{TMP_SUFFIX}"):  # temporaries of an interrupted run (older and current names)
        for leftover in out.rglob(pattern):
            leftover.unlink()
    logger.info("resuming the build in %s", out)
    return existing


__all__ = ["open_out_dir", "check_same_build", "MANIFEST"]
