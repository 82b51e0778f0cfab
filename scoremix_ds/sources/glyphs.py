"""``glyphs-han``: the many-identity open-set dataset that ships inside the package (no network, no fonts needed).

Identity = one Han ideograph; its images = the character drawn by many typefaces (Ming/Song, Kai, Gothic, brush,
handwriting) from Debian's font packages, aligned like face crops, 32x32 greyscale. Two DISJOINT identity sets:

- ``glyphs-han-train``: 3,000 characters x 16 images, in a seeded random class order, so ``glyphs-han-train[0-299]``
  is a random subset of 300 identities (generators and discriminators train on it);
- ``glyphs-han-verify``: 600 other characters x 16 images (verification only: open set).

The parquet files and their card (fonts, versions, licences) are in ``scoremix_ds/default/glyphs-han/``; a
maintainer re-renders them byte for byte with ``tools/render_glyphs.py`` from the same font packages. The folder
is also a plain ``datasets`` folder with two configs (one ``ClassLabel`` each):
``load_dataset(glyphs_dir(), "train", split="train")``, ``load_dataset(glyphs_dir(), "verify", split="test")``.
"""

from __future__ import annotations

import functools
import io
import json
from pathlib import Path

import numpy as np

from ..core.errors import DataError
from ..core.resources import default_model_dir
from .real_data import RealData

SPLITS = ("train", "verify")


def glyphs_dir() -> Path:
    """The folder of the shipped dataset (README card, ``glyphs.json``, ``data/{train,verify}-*.parquet``)."""
    return default_model_dir("glyphs-han")


@functools.lru_cache(maxsize=2)
def _decoded(split: str) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    import pyarrow.parquet as pq
    from PIL import Image

    files = sorted((glyphs_dir() / "data").glob(f"{split}-*.parquet"))
    if not files:
        raise DataError(f"glyphs-han-{split} is missing from this installation ({glyphs_dir()})",
                        hint="reinstall scoremix-ds")
    tables = [pq.read_table(f, columns=["image", "label"]) for f in files]
    meta = json.loads(tables[0].schema.metadata[b"huggingface"])
    names = tuple(meta["info"]["features"]["label"]["names"])
    images = np.stack([np.asarray(Image.open(io.BytesIO(cell["bytes"])).convert("L"))
                       for t in tables for cell in t.column("image").to_pylist()])[..., None]
    labels = np.concatenate([t.column("label").to_numpy() for t in tables]).astype(np.int64)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels, names


def read_glyphs(split: str, revision: str | None = None) -> RealData:
    """One split as :class:`~.real_data.RealData` (decoded once per process; the arrays are read-only)."""
    if split not in SPLITS:
        raise DataError(f"glyphs-han has no split '{split}'", hint=f"use glyphs-han-{' or glyphs-han-'.join(SPLITS)}")
    images, labels, names = _decoded(split)
    return RealData(images=images, labels=labels, class_names=names,
                    source=f"glyphs-han {split} (scoremix-ds package, {len(names)} characters x typefaces)",
                    licence="other", attribution="Han ideographs rendered from Debian font packages; each typeface "
                    "keeps its own licence (see the dataset card)")
