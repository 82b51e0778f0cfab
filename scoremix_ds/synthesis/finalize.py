"""Turn a folder of completed units into a dataset: consolidated manifest, counts, preview grid and card.

Used by the build (process 0, once every unit is done) and by ``merge``. The preview is read back from the rows
themselves when the ``repro`` config exists (parent A alone | mix | parent B alone, image 0 of the first
identities); otherwise ``sample_preview`` makes it.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

import datasets
import numpy as np
import pyarrow.parquet as pq

from .. import __version__
from ..dataset.card import render_card, write_card
from ..dataset.manifest import Manifest
from ..dataset.preview import save_preview
from ..dataset.schema import features_for
from ..dataset.writer import arrow_bytes, decode_png
from ..maths.pair_strategies import get_strategy
from .planning.mix_plan import unique_names
from ..core.recipe_file import write_recipe
from ..core.refs import public_ref
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
    """Image 0 of the first identities with every parent's reproduction, read from the shards."""
    columns = ["image", "mix_identity", "sample_index", "parents", "identity"]
    mixes: dict[str, np.ndarray] = {}
    for rel in manifest.shards["mix"]:
        for row in pq.read_table(out / rel, columns=columns).to_pylist():
            if row["sample_index"] == 0 and len(mixes) < PREVIEW_ROWS:
                mixes[row["identity"]] = (decode_png(row["image"]["bytes"]), row["parents"])
        if len(mixes) >= PREVIEW_ROWS:
            break
    singles: dict[tuple[str, int], np.ndarray] = {}
    for rel in manifest.shards["repro"]:
        for row in pq.read_table(out / rel, columns=columns).to_pylist():
            if row["sample_index"] == 0 and row["mix_identity"] in mixes:
                singles[(row["mix_identity"], row["parents"][0])] = decode_png(row["image"]["bytes"])
    return [preview_row([singles[(name, p)] for p in parents], img) for name, (img, parents) in mixes.items()]


def preview_row(parents: list[np.ndarray], mix: np.ndarray) -> tuple[np.ndarray, ...]:
    """``parent A | mix | parent B [| parent C ...]``."""
    return (parents[0], mix, *parents[1:])


def names_from_rows(out: Path, config: str, files: dict[str, dict], class_names: list[str] | None = None) -> list[str]:
    """The name of every ``label`` of a config, read back from its rows: a mix label is named by its ``identity``,
    a repro label (a parent's class id) by its ``parent_names``; ids no row shows take ``class_names`` (the
    generator's classes as the real data names them, from the manifest) or the id itself."""
    column = "identity" if config == "mix" else "parent_names"
    seen: dict[int, str] = {}
    for rel in files:
        table = pq.read_table(out / rel, columns=["label", column])
        for label, name in zip(table.column("label").to_pylist(), table.column(column).to_pylist()):
            seen[label] = name if config == "mix" else name[0]
    known = list(class_names or []) if config != "mix" else []
    size = max([len(known), *(label + 1 for label in seen)])
    return [seen.get(i, known[i] if i < len(known) else str(i)) for i in range(size)]


def card_features(out: Path, manifest: Manifest) -> dict[str, datasets.Features]:
    """Each config's Features as the card declares them: ``label`` a ClassLabel named after the identities (mix)
    or the classes (repro). The parquet files keep a plain int64 ``label``: ``datasets`` applies the card's
    features when it loads the folder or the Hub repo, and 10K names in every shard's schema would make each
    shard several times larger (``benchmarks/bench_classlabel.py``)."""
    names = manifest.provenance.get("class_names")
    return {name: features_for(unique_names(names_from_rows(out, name, files, names)))
            for name, files in manifest.shards.items() if files}


def write_build_card(out: Path, manifest: Manifest) -> None:
    """(Re)render README.md from the manifest: config (local paths reduced), provenance, counts and any audit."""
    config = manifest.config
    build = dict(config, generator=public_ref(config["generator"]), discriminator=public_ref(config["discriminator"]),
                 weak_generator=public_ref(config["weak_generator"]), real_data=public_ref(config["real_data"]),
                 plan=public_ref(config.get("plan")))
    provenance = {k: v for k, v in manifest.provenance.items() if k != "class_names"}  # in the label features
    card = render_card(build, provenance, manifest.counts, __version__, get_strategy(config["strategy"]).space,
                       audit=manifest.audit, features=card_features(out, manifest))
    write_card(out, card)


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
