"""``scoremix-ds export``: a finished build in the formats face trainers read, streamed, resumable, verified first.

Formats (:data:`FORMATS`):

- ``rec``: insightface's ``train.rec`` + ``train.idx`` + ``property`` (what ``arcface_torch``'s ``MXFaceDataset`` and
  DALI read; :mod:`.recordio_writer`): record 0 the header ``(a, b)``, images at keys ``1 .. a-1`` grouped by label,
  one identity record per label at ``a .. b-1``;
- ``imagefolder``: ``OUT/<label>/<key>.png``, one folder per identity (torchvision's / arcface_torch's image
  folder), label folders zero-padded so that sorted names are the numeric labels.

Labels: a ``mix`` row's label is ``label_offset`` + its identity, so a set exported with ``--label-offset N`` (N = the
real data's class count) concatenates with the real set's labels 0..N-1; a ``repro`` row keeps its parent's REAL
class id (it is a new picture of that real identity). Exporting both therefore needs ``label_offset`` >= the real
class count the build recorded.

The build is checked before anything is written: its manifest must say complete and every shard must match its
sha256. Images are copied as stored (no re-encoding), one record batch in memory at a time. An interrupted export
re-run with the same settings continues after the last finished shard (``.export-progress.json``); ``export.json``
is written last and records the source build and every shard's hash.
"""

from __future__ import annotations

import io
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pyarrow.parquet as pq

from ..core.errors import ConfigError, DataError
from ..core.fingerprints import config_fingerprint
from ..core.outputs import OutputLock, atomic_write, claim_folder, read_json_object
from .integrity import verified_build
from .manifest import Manifest
from .recordio_writer import RecordAppender, pack_payload
from .schema import CONFIGS

logger = logging.getLogger(__name__)

FORMATS = ("rec", "imagefolder")
RECORD = "export.json"  # written last: this folder holds a finished export of the named build
PROGRESS = ".export-progress.json"  # the shards already written, and where the .rec and .idx end after them
_REC_PART, _IDX_PART = ".train.rec.partial", ".train.idx.partial"


@dataclass(frozen=True)
class ExportConfig:
    build: str  # a finished build folder
    out: str  # the export folder
    format: str = "rec"  # rec or imagefolder
    configs: tuple[str, ...] = ("mix",)  # which of the build's configs: mix, repro or both
    label_offset: int = 0  # added to every mix label (the real data's class count, to concatenate with it)

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ConfigError(f"unknown export format '{self.format}'", hint=f"use one of {', '.join(FORMATS)}",
                              field="format")
        if not self.configs or len(set(self.configs)) != len(self.configs) or set(self.configs) - set(CONFIGS):
            raise ConfigError(f"configs must name mix, repro or both, each once; got {list(self.configs)}",
                              hint="e.g. configs mix or mix,repro", field="configs")
        if self.label_offset < 0:
            raise ConfigError(f"label_offset must be >= 0, got {self.label_offset}", hint="e.g. the real class count",
                              field="label_offset")
        if self.configs == ("repro",) and self.label_offset:
            raise ConfigError("label_offset applies to the mix identities; repro rows keep their real class ids",
                              hint="drop label_offset, or export configs mix", field="label_offset")


@dataclass(frozen=True)
class ExportResult:
    out: Path
    images: int
    identities: int
    resumed: bool

    def summary(self) -> str:
        return f"exported {self.images} images of {self.identities} identities to {self.out}"


def _missing(build: Path) -> Manifest:
    raise DataError(f"build folder {build} does not exist", hint="give the output folder of a build", field="build")


def _shards(build: Path, manifest: Manifest, configs: tuple[str, ...]) -> list[tuple[str, str, str]]:
    """``(config, relative path, sha256)`` of every shard to export, configs in the order given, paths sorted."""
    return [(c, rel, info["sha256"]) for c in configs for rel, info in sorted(manifest.shards.get(c, {}).items())]


def _label_map(config: ExportConfig, manifest: Manifest) -> Callable[[str, np.ndarray], np.ndarray]:
    num_real = int(manifest.provenance.get("num_real_classes") or len(manifest.provenance.get("class_names", ())))
    if "repro" in config.configs and "mix" in config.configs and config.label_offset < num_real:
        raise ConfigError(f"repro rows keep the real class ids 0..{num_real - 1}, so the mix identities must start "
                          f"at {num_real} or later; got label_offset {config.label_offset}",
                          hint=f"set label_offset to {num_real} (or more), or export one config", field="label_offset")

    def mapped(which: str, labels: np.ndarray) -> np.ndarray:
        return labels + config.label_offset if which == "mix" else labels

    return mapped


def _fingerprint(config: ExportConfig, manifest: Manifest, shards: list[tuple[str, str, str]]) -> str:
    payload = {"build": manifest.fingerprint, "shards": shards, "format": config.format,
               "configs": list(config.configs), "label_offset": config.label_offset}
    return config_fingerprint(payload)


def _keys(build: Path, shards: list[tuple[str, str, str]], mapped) -> tuple[list[np.ndarray], np.ndarray]:
    """Each shard's image keys (1-based, every label's images contiguous, stable in row order) and the labels in key
    order. Reads only the label column."""
    per_shard = [mapped(c, pq.read_table(build / rel, columns=["label"]).column("label").to_numpy())
                 for c, rel, _ in shards]
    labels = np.concatenate(per_shard) if per_shard else np.zeros(0, np.int64)
    order = np.argsort(labels, kind="stable")
    keys = np.empty(len(labels), np.int64)
    keys[order] = np.arange(1, len(labels) + 1)
    bounds = np.cumsum([0] + [len(s) for s in per_shard])
    return [keys[a:b] for a, b in zip(bounds[:-1], bounds[1:])], labels[order]


def _rows(path: Path) -> Iterator[tuple[bytes, int]]:
    """``(encoded image, stored label)`` of every row of a shard, one record batch in memory at a time."""
    for batch in pq.ParquetFile(path).iter_batches(batch_size=256, columns=["image", "label"]):
        images = batch.column("image").field("bytes").to_pylist()
        yield from zip(images, batch.column("label").to_pylist())


def _suffix(data: bytes) -> str:
    return ".jpg" if data[:2] == b"\xff\xd8" else ".png"


def export_build(config: ExportConfig, progress: bool = True) -> ExportResult:
    """Export ``config.build`` into ``config.out`` (see the module docstring); resumes an interrupted export."""
    build = Path(config.build)
    manifest = verified_build(build, field="build") if build.is_dir() else _missing(build)
    shards = _shards(build, manifest, config.configs)
    if not shards:
        raise DataError(f"{build} has no {' or '.join(config.configs)} rows", hint="export another config",
                        field="configs")
    mapped = _label_map(config, manifest)
    fingerprint = _fingerprint(config, manifest, shards)
    out = claim_folder(config.out, "export", signature=lambda p: (p / RECORD).is_file() or (p / PROGRESS).is_file())
    with OutputLock(out):
        if (out / RECORD).is_file():
            done = read_json_object(out / RECORD)
            if done.get("fingerprint") != fingerprint:
                raise DataError(f"{out} holds an export of other data or settings",
                                hint="give a new out folder", field="out")
            return ExportResult(out, int(done["images"]), int(done["identities"]), resumed=True)
        state = read_json_object(out / PROGRESS) if (out / PROGRESS).is_file() else {}
        if config.format == "rec" and not ((out / _REC_PART).is_file() and (out / _IDX_PART).is_file()):
            state = {}  # the partial files are gone: start over (the progress file is rewritten after a shard)
        if state and state.get("fingerprint") != fingerprint:
            raise DataError(f"{out} holds an unfinished export of other data or settings",
                            hint="re-run that export, or give a new out folder", field="out")
        keys, sorted_labels = _keys(build, shards, mapped)
        writer = _write_rec if config.format == "rec" else _write_imagefolder
        writer(build, out, shards, keys, mapped, state, fingerprint, progress)
        identities = int(len(np.unique(sorted_labels)))
        if config.format == "rec":
            _finish_rec(build, out, shards, sorted_labels)
        atomic_write(out / RECORD, json.dumps({
            "fingerprint": fingerprint, "format": config.format, "configs": list(config.configs),
            "label_offset": config.label_offset, "build_fingerprint": manifest.fingerprint,
            "shards": [{"config": c, "path": rel, "sha256": sha} for c, rel, sha in shards],
            "images": int(len(sorted_labels)), "identities": identities,
            "num_classes": int(sorted_labels.max()) + 1}, indent=2) + "\n")
        (out / PROGRESS).unlink(missing_ok=True)
    result = ExportResult(out, int(len(sorted_labels)), identities, resumed=bool(state))
    logger.info(result.summary())
    return result


def _bar(total: int, progress: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="img", desc="export", disable=not progress)


def _write_rec(build, out, shards, keys, mapped, state, fingerprint, progress) -> None:
    """Images into ``.train.rec.partial`` (any order: the index maps keys), one shard at a time; after each shard the
    progress file records where the .rec and the .idx end, so a re-run truncates both there and continues."""
    done = list(state.get("done", []))
    mode = "r+b" if state else "wb"
    with open(out / _REC_PART, mode) as rec, open(out / _IDX_PART, "r+" if state else "w") as idx, \
            _bar(sum(len(k) for k in keys), progress) as bar:
        rec.truncate(state.get("rec_bytes", 0))
        rec.seek(0, os.SEEK_END)
        idx.truncate(state.get("idx_bytes", 0))
        idx.seek(0, os.SEEK_END)
        for (which, rel, _), shard_keys in zip(shards, keys):
            if rel in done:
                bar.update(len(shard_keys))
                continue
            appender = RecordAppender(rec)
            for key, (image, label) in zip(shard_keys, _rows(build / rel)):
                appender.append(int(key), pack_payload(float(mapped(which, np.int64(label))), image, id1=int(key)))
                bar.update(1)
            idx.write(appender.index_text())
            for handle in (rec, idx):
                handle.flush()
                os.fsync(handle.fileno())
            done.append(rel)
            atomic_write(out / PROGRESS, json.dumps({"fingerprint": fingerprint, "done": done,
                                                     "rec_bytes": rec.tell(), "idx_bytes": idx.tell()}))


def _finish_rec(build: Path, out: Path, shards, sorted_labels: np.ndarray) -> None:
    """Identity records and the header record, the sorted ``train.idx``, ``property``; then the files take their
    real names (``train.rec`` last)."""
    n = len(sorted_labels)
    starts = np.flatnonzero(np.r_[True, sorted_labels[1:] != sorted_labels[:-1]])
    ends = np.r_[starts[1:], n]
    with open(out / _REC_PART, "r+b") as rec:
        rec.seek(0, os.SEEK_END)
        appender = RecordAppender(rec)
        first_identity = n + 1
        for i, (a, b) in enumerate(zip(starts, ends)):
            appender.append(first_identity + i, pack_payload((a + 1, b + 1)))
        appender.append(0, pack_payload((first_identity, first_identity + len(starts))))
        rec.flush()
        os.fsync(rec.fileno())
    lines = (out / _IDX_PART).read_text(encoding="ascii").splitlines() + appender.index_text().splitlines()
    entries = sorted((int(k), int(v)) for k, v in (line.split("\t") for line in lines))
    atomic_write(out / "train.idx", "".join(f"{k}\t{v}\n" for k, v in entries))
    height, width = _image_size(build / shards[0][1])
    atomic_write(out / "property", f"{int(sorted_labels.max()) + 1},{height},{width}\n")
    os.replace(out / _REC_PART, out / "train.rec")
    (out / _IDX_PART).unlink()


def _image_size(shard: Path) -> tuple[int, int]:
    from PIL import Image

    image, _ = next(_rows(shard))
    with Image.open(io.BytesIO(image)) as im:
        return im.height, im.width


def _write_imagefolder(build, out, shards, keys, mapped, state, fingerprint, progress) -> None:
    """``OUT/<label>/<key><ext>``: each file written atomically; a shard counts as done once all its files are."""
    done = list(state.get("done", []))
    width = 6
    with _bar(sum(len(k) for k in keys), progress) as bar:
        for (which, rel, _), shard_keys in zip(shards, keys):
            if rel in done:
                bar.update(len(shard_keys))
                continue
            for key, (image, label) in zip(shard_keys, _rows(build / rel)):
                folder = out / f"{int(mapped(which, np.int64(label))):0{width}d}"
                folder.mkdir(exist_ok=True)
                atomic_write(folder / f"{int(key):08d}{_suffix(image)}", image)
                bar.update(1)
            done.append(rel)
            atomic_write(out / PROGRESS, json.dumps({"fingerprint": fingerprint, "done": done}))
