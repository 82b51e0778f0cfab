"""Join job-array parts (``build --shard i --num-shards n``) into one dataset folder.

Parts must come from the same build config (same fingerprint and unit size), be complete, and cover every part
index exactly once. The merged folder is assembled under a temporary name and renamed into place, so a failed
merge leaves nothing behind, and the next merge into the same folder removes what a killed one left. Shards are
copied (reflinked where the filesystem can), never hard-linked: the merged dataset does not share its parts' fate.
"""

from __future__ import annotations

import glob
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

import pyarrow.parquet as pq
from tqdm.auto import tqdm

from ..dataset.integrity import damage_line, damaged_shards
from ..dataset.manifest import Manifest
from ..core.errors import DataError
from ..core.outputs import LOCK, OutputLock
from .config import recorded_precision
from .finalize import finalize

logger = logging.getLogger(__name__)


FICLONE = 0x40049409  # linux/fs.h: make dst share src's blocks, copy-on-write (btrfs, XFS with reflink, bcachefs)
STAGING_SUFFIX = ".scoremix-merge"


def copy_shard(src: Path, dst: Path) -> None:
    """An independent copy of ``src`` at ``dst``: never a hard link, so damaging a part later leaves the merged
    dataset intact. A reflink (copy-on-write clone, no data copied) where the filesystem supports it, else a plain
    copy (the kernel's in-kernel copy: the merge then reads and writes every byte once, and the parts and the merged
    folder take twice the space)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl

        with open(src, "rb") as fin, open(dst, "wb") as fout:
            fcntl.ioctl(fout.fileno(), FICLONE, fin.fileno())
    except (OSError, ImportError):  # not supported here (ext4, tmpfs, another filesystem): copy the bytes
        shutil.copyfile(src, dst)
    shutil.copystat(src, dst)


def remove_stale_staging(out: Path) -> list[Path]:
    """Remove the staging folders a killed merge into ``out`` left beside it: only folders this tool made (named
    ``.OUT.*.scoremix-merge`` AND holding its lock file) whose lock no live process holds; a merge still running, or
    a folder of the user's named alike, is left alone. Returns what was removed."""
    removed = []
    for folder in sorted(out.parent.glob(f".{glob.escape(out.name)}.*{STAGING_SUFFIX}")):
        if not (folder.is_dir() and not folder.is_symlink() and (folder / LOCK).is_file()):
            continue
        try:
            with OutputLock(folder):  # taken only when its holder is gone
                pass
        except (DataError, OSError):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
        logger.info("removed %s, the staging folder of an interrupted merge", folder)
    return removed


def merge_parts(parts: list[Path], out: Path, sample_preview: Callable[[], list] | None = None,
                progress: bool = False) -> Manifest:
    """Merge ``parts`` into ``out``; returns the merged manifest. ``sample_preview`` makes the card's preview when
    the parts have no ``repro`` config to read it from; by default
    :func:`~scoremix_ds.synthesis.runner.resample_preview` of the parts' recorded config. ``progress``: a bar over
    the two long steps, re-hashing every part's shards (once each) and copying them into place."""
    if not parts:
        raise DataError("merge needs at least one part folder", hint="give the output folders of the job-array parts",
                        field="parts")
    manifests = []
    for part in tqdm(parts, desc="merge: check parts", unit="part", disable=not progress):
        m = Manifest.read(part)
        if m is None:
            raise DataError(f"{part} is not a scoremix-ds build folder (no manifest.json)", hint="give the parts' output folders",
                            field="parts")
        if not m.complete:
            raise DataError(f"{part} is an unfinished part", hint="re-run its build command to finish it, then merge")
        damage = damaged_shards(part, m)
        if damage:
            raise DataError(f"{damage_line(part, damage)}; refusing to merge a damaged part",
                            hint=f"re-run that part's `scoremix-ds build` command into {part} to re-sample it, then merge")
        manifests.append(m)
    first = manifests[0]
    first_precision = recorded_precision(first.config, first.provenance)
    for part, m in zip(parts, manifests):
        precision = recorded_precision(m.config, m.provenance)
        if precision != first_precision and None not in (precision, first_precision):
            raise DataError(f"{part} was built in {precision} and {parts[0]} in {first_precision}; refusing to merge "
                            "parts of different precision", hint="re-run one part with the other's `dtype`, then merge")
        if m.fingerprint != first.fingerprint or m.layout != first.layout:
            changed = sorted(k for k in set(first.config) | set(m.config) if first.config.get(k) != m.config.get(k))
            raise DataError(
                f"{part} comes from a different build config than {parts[0]} (differs: {', '.join(changed) or 'shard size'})",
                hint="merge only parts built with the same settings",
            )
    count = (first.part or {"count": 1})["count"]
    indices = sorted((m.part or {"index": 0})["index"] for m in manifests)
    if indices != list(range(count)):
        missing = sorted(set(range(count)) - set(indices))
        raise DataError(
            f"parts cover indices {indices} of {count}" + (f"; missing {missing}" if missing else "; some given twice"),
            hint="give the folder of each part 0..n-1 exactly once", field="parts",
        )
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DataError(f"{out} already exists and is not empty", hint="choose a new output folder for the merged dataset",
                        field="out")

    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(out)
    # A fresh, uniquely named folder beside --out (same filesystem, so the final rename is atomic); it can never be
    # a folder of the user's, and it is removed if the merge fails. Its lock (held until the rename) tells a later
    # merge that a staging folder left by a killed one is stale.
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=STAGING_SUFFIX, dir=out.parent))
    lock = OutputLock(staging).acquire()
    umask = os.umask(0o22)
    os.umask(umask)
    os.chmod(staging, 0o777 & ~umask)  # mkdtemp makes it private; the dataset folder gets the usual permissions
    try:
        merged = _assemble(parts, manifests, staging, sample_preview, progress)
        if out.exists():
            out.rmdir()
        os.replace(staging, out)
        lock.folder, lock.path = out, out / LOCK  # the lock file moved with the folder: release removes it there
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        lock.release()
    return merged


def _assemble(parts: list[Path], manifests: list[Manifest], staging: Path, sample_preview, progress: bool) -> Manifest:
    first = manifests[0]
    merged = Manifest(fingerprint=first.fingerprint, config=first.config, package_version=first.package_version,
                      provenance=first.provenance, layout=first.layout, part=None)
    files = [(part, name, rel, info) for part, m in zip(parts, manifests) for name, shards in m.shards.items()
             for rel, info in shards.items()]
    for part, name, rel, info in tqdm(files, desc="merge: copy shards", unit="file", disable=not progress):
        copy_shard(part / rel, staging / rel)
        merged.shards.setdefault(name, {})[rel] = info
    merged.shards = {c: dict(sorted(f.items())) for c, f in sorted(merged.shards.items())}
    identities = sum(m.counts["mix"]["identities"] for m in manifests)
    parents: set[int] = set()
    for rel in merged.shards.get("repro", {}):
        parents.update(pq.read_table(staging / rel, columns=["label"]).column("label").to_pylist())
    finalize(staging, merged, identities, parents, sample_preview or (lambda: _resample_preview(first.config)))
    return merged


def _resample_preview(recorded: dict) -> list:
    from .runner import resample_preview  # torch and the models load only when a preview must be sampled

    return resample_preview(recorded)
