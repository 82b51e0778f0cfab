"""Turn a folder of completed units into a dataset: consolidated manifest, counts, preview grid and card.

Used by the build (process 0, once every unit is done) and by ``merge``. The preview is read back from the rows
themselves when the ``repro`` config exists (parent A alone | mix | parent B alone, image 0 of the first
identities); otherwise ``sample_preview`` makes it.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow.parquet as pq

from .. import __version__
from ..dataset.card import write_build_card
from ..dataset.manifest import Manifest
from ..dataset.preview import save_preview
from ..dataset.writer import arrow_bytes, decode_png
from ..core.recipe_file import write_recipe
from .units import STATE_DIR

PREVIEW_ROWS = 8

Triplet = tuple[np.ndarray, np.ndarray, np.ndarray]


def collect_units(manifest: Manifest, markers: dict[int, dict]) -> None:
    """Fold unit markers into ``manifest.shards`` (config -> relpath -> {rows, sha256}), in unit order."""
    shards: dict[str, dict[str, dict]] = {}
    for unit in sorted(markers):
        for config, info in sorted(markers[unit].items()):
            shards.setdefault(config, {})[info["relpath"]] = {"rows": info["rows"], "sha256": info["sha256"]}
    manifest.shards = {c: dict(sorted(files.items())) for c, files in shards.items()}


def preview_from_rows(out: Path, manifest: Manifest) -> list[Triplet]:
    """Image 0 of the first identities with every parent's reproduction, read from the shards. Only the rows drawn
    have their image read (the row groups that hold them); the scan stops once every one is found."""
    columns = ["mix_identity", "sample_index", "parents", "identity"]
    mixes: dict[str, tuple[np.ndarray, list[int]]] = {}
    for rel in manifest.shards["mix"]:
        rows = pq.read_table(out / rel, columns=columns).to_pylist()
        wanted: list[int] = []
        for index, row in enumerate(rows):
            if row["sample_index"] == 0 and len(mixes) + len(wanted) < PREVIEW_ROWS and row["identity"] not in mixes:
                wanted.append(index)
        for index, image in zip(wanted, _images_at(out / rel, wanted)):
            mixes[rows[index]["identity"]] = (decode_png(image), rows[index]["parents"])
        if len(mixes) >= PREVIEW_ROWS:
            break
    needed = {(name, p) for name, (_, parents) in mixes.items() for p in parents}
    singles: dict[tuple[str, int], np.ndarray] = {}
    for rel in manifest.shards["repro"]:
        rows = pq.read_table(out / rel, columns=columns).to_pylist()
        wanted = [i for i, row in enumerate(rows) if row["sample_index"] == 0 and row["mix_identity"] in mixes]
        for index, image in zip(wanted, _images_at(out / rel, wanted)):
            singles[(rows[index]["mix_identity"], rows[index]["parents"][0])] = decode_png(image)
        if needed <= singles.keys():
            break
    return [preview_row([singles[(name, p)] for p in parents], img) for name, (img, parents) in mixes.items()]


def _images_at(path: Path, indices: list[int]) -> list[bytes]:
    """The PNG bytes of rows ``indices`` (ascending) of a shard, reading only the row groups that hold them."""
    if not indices:
        return []
    shard = pq.ParquetFile(path)
    found: list[bytes] = []
    start = 0
    for group in range(shard.metadata.num_row_groups):
        end = start + shard.metadata.row_group(group).num_rows
        inside = [i - start for i in indices if start <= i < end]
        if inside:
            column = shard.read_row_group(group, columns=["image"]).column("image")
            found += [column[i].as_py()["bytes"] for i in inside]
        start = end
    return found


def preview_row(parents: list[np.ndarray], mix: np.ndarray) -> tuple[np.ndarray, ...]:
    """``parent A | mix | parent B [| parent C ...]``."""
    return (parents[0], mix, *parents[1:])


def images_per_label(out: Path, files: dict[str, dict]) -> tuple[int, int]:
    """The fewest and the most rows any one ``label`` has in a config's shards."""
    counts: dict[int, int] = {}
    for rel in files:
        for label in pq.read_table(out / rel, columns=["label"]).column("label").to_pylist():
            counts[label] = counts.get(label, 0) + 1
    return (min(counts.values()), max(counts.values())) if counts else (0, 0)


def finalize(out: Path, manifest: Manifest, identities: int, parents: set[int],
             sample_preview: Callable[[], list[Triplet]] | None = None, plan: str | None = None) -> None:
    """Counts, preview, card, recipe (``build.toml``; ``plan`` the build's plan file path, if it had one) and the
    manifest marked complete; the unit markers are then removed.

    Counts per config: ``identities`` is its number of labels (mix: synthetic identities; repro: parent classes) and
    ``per_identity`` the images per label, ``per_identity_max`` the most (a parent class joined by several mixes has
    ``per_identity`` repro images for each)."""
    counts = {"mix": {"identities": identities}}
    if "repro" in manifest.shards:
        counts["repro"] = {"identities": len(parents)}
    for name, files in manifest.shards.items():
        fewest, most = images_per_label(out, files)
        counts[name].update(rows=sum(f["rows"] for f in files.values()), per_identity=fewest, per_identity_max=most,
                            bytes=sum(arrow_bytes(out / rel) for rel in files))
    manifest.counts = counts
    if manifest.part is None:  # a job-array part gets its card when the parts are merged
        triplets = preview_from_rows(out, manifest) if "repro" in manifest.shards else sample_preview()
        save_preview(out / "preview.png", triplets)
        write_recipe(out, manifest.config, plan, __version__)
        write_build_card(out, manifest)
    manifest.complete = True
    manifest.write(out)
    shutil.rmtree(out / STATE_DIR, ignore_errors=True)
