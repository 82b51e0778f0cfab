"""Verification pair lists: from an insightface ``.bin``, a ``datasets`` pair dataset, or a labelled image set.

Every source becomes one :class:`VerificationPairs` (two aligned uint8 NHWC image arrays and one bool per pair), which
is all the runner needs. :func:`make_pairs_from_labels` draws balanced genuine/impostor pairs from labels (used for
held-out verification on the demo data).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.errors import DataError
from .binfile import read_bin

_HINT = "check the benchmark"  # errors using it name the field benchmark
_IMAGE_COLUMNS = (("image_a", "image_b"), ("image1", "image2"), ("img1", "img2"), ("image_1", "image_2"))
_INDEX_COLUMNS = (("index_a", "index_b"), ("idx_a", "idx_b"), ("index1", "index2"))
_LABEL_COLUMNS = ("is_same", "issame", "same", "label")


@dataclass(frozen=True)
class VerificationPairs:
    """Pair ``i`` is ``(images_a[i], images_b[i])``; ``issame[i]`` says whether it shows one identity twice."""

    images_a: np.ndarray
    images_b: np.ndarray
    issame: np.ndarray
    name: str

    def __post_init__(self) -> None:
        n = (len(self.images_a), len(self.images_b), len(self.issame))
        if len(set(n)) != 1:
            raise DataError(f"{self.name}: mismatched pair counts (a={n[0]}, b={n[1]}, labels={n[2]})", hint=_HINT, field="benchmark")
        for images in (self.images_a, self.images_b):
            if images.dtype != np.uint8 or images.ndim != 4:
                raise DataError(f"{self.name}: pair images must be uint8 NHWC, got {images.dtype} {images.shape}",
                                hint=_HINT, field="benchmark")

    @property
    def num_pairs(self) -> int:
        return len(self.issame)


def decode_blobs(blobs, name: str = "benchmark", first: int = 0) -> tuple[list[np.ndarray], DataError | None]:
    """Decode encoded images (JPEG/PNG bytes) to uint8 RGB arrays, in order, up to the first that does not decode:
    the arrays before it, and that image's error (its index counted from ``first``), or None."""
    from PIL import Image, UnidentifiedImageError

    arrays = []
    for i, blob in enumerate(blobs, start=first):
        try:
            with Image.open(io.BytesIO(blob)) as img:
                arrays.append(np.asarray(img.convert("RGB")))
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            return arrays, DataError(f"{name}: image {i} does not decode ({exc})", hint=_HINT, field="benchmark")
    return arrays, None


def stack_decoded(arrays: list[np.ndarray], name: str, first: int = 0, shape: tuple | None = None) -> np.ndarray:
    """Decoded images (image ``first`` onwards) as one uint8 ``(N, H, W, 3)`` array; each must have image 0's
    ``shape`` (by default the first one's): the first that does not is named."""
    shape = shape if shape is not None else (arrays[0].shape if arrays else None)
    for i, arr in enumerate(arrays, start=first):
        if arr.shape != shape:
            raise DataError(f"{name}: image {i} is {arr.shape[:2]}, image 0 is {shape[:2]}", hint=_HINT, field="benchmark")
    return np.stack(arrays) if arrays else np.zeros((0, 1, 1, 3), dtype=np.uint8)


def decode_images(blobs, name: str = "benchmark") -> np.ndarray:
    """Decode encoded images (JPEG/PNG bytes) to one uint8 ``(N, H, W, 3)`` RGB array; a bad one names its index."""
    arrays, error = decode_blobs(blobs, name)
    images = stack_decoded(arrays, name)  # a size mismatch before the image that fails is reported first
    if error is not None:
        raise error
    return images


def pairs_from_bin(path: str | Path, name: str | None = None) -> VerificationPairs:
    """An insightface ``.bin`` read with the restricted reader; pair ``i`` is images ``2i`` and ``2i + 1``."""
    name = name or Path(path).stem
    content = read_bin(path)
    images = decode_images(content.blobs, name)
    return VerificationPairs(images[0::2], images[1::2], content.issame, name)


def pil_to_array(images, name: str) -> np.ndarray:
    """PIL images -> uint8 NHWC: all grey stays 1 channel, any colour makes all RGB; sizes must agree (row named)."""
    grey = all(img.mode in ("L", "1") for img in images)
    arrays = []
    for i, img in enumerate(images):
        arr = np.asarray(img.convert("L" if grey else "RGB"))
        arrays.append(arr[..., None] if arr.ndim == 2 else arr)
        if arrays[-1].shape != arrays[0].shape:
            raise DataError(f"{name}: row {i} is {arr.shape[:2]}, row 0 is {arrays[0].shape[:2]}",
                            hint="resize the images first")
    return np.stack(arrays) if arrays else np.zeros((0, 1, 1, 3), dtype=np.uint8)


def _labels(values, name: str) -> np.ndarray:
    flags = np.asarray(values)
    if flags.dtype != bool and not np.isin(flags, (0, 1)).all():
        raise DataError(f"{name}: the pair label column must hold booleans or 0/1", hint=_HINT, field="benchmark")
    return flags.astype(bool)


def pairs_from_dataset(ds, name: str, images=None) -> VerificationPairs:
    """A ``datasets.Dataset`` of pairs: image columns (``image_a``/``image_b``...) and a label (``is_same``...), or
    index columns (``index_a``/``index_b``...) into ``images`` (a dataset with one Image column, or uint8 NHWC)."""
    import datasets

    columns = list(ds.column_names)
    label = next((c for c in _LABEL_COLUMNS if c in columns), None)
    image_cols = next((p for p in _IMAGE_COLUMNS if set(p) <= set(columns)), None)
    index_cols = next((p for p in _INDEX_COLUMNS if set(p) <= set(columns)), None)
    if label is None or (image_cols is None and (index_cols is None or images is None)):
        raise DataError(
            f"{name}: a pair dataset needs image_a/image_b (or index_a/index_b and an image set) and is_same; "
            f"it has {columns}", hint=_HINT, field="benchmark")
    issame = _labels(ds[label], name)
    if image_cols is not None:
        a, b = (pil_to_array(list(ds[c]), f"{name}:{c}") for c in image_cols)
        return VerificationPairs(a, b, issame, name)
    if isinstance(images, datasets.Dataset):
        col = next((c for c, f in images.features.items() if isinstance(f, datasets.Image)), None)
        if col is None:
            raise DataError(f"{name}: the image set has no Image column ({images.column_names})", hint=_HINT, field="benchmark")
        images = pil_to_array(list(images[col]), f"{name}:{col}")
    idx_a, idx_b = (np.asarray(ds[c], dtype=np.int64) for c in index_cols)
    bad = (idx_a < 0) | (idx_a >= len(images)) | (idx_b < 0) | (idx_b >= len(images))
    if bad.any():
        raise DataError(f"{name}: pair {int(np.argmax(bad))} indexes outside the {len(images)} images", hint=_HINT, field="benchmark")
    return VerificationPairs(images[idx_a], images[idx_b], issame, name)


def load_pair_dataset(name_or_path: str, revision: str | None = None, split: str = "test") -> VerificationPairs:
    """Load a pair dataset (local folder or Hub id) with ``datasets`` and build its pairs."""
    import datasets

    try:
        ds = datasets.load_dataset(name_or_path, revision=revision, split=split)
    except (FileNotFoundError, ValueError, ConnectionError, datasets.exceptions.DatasetsError) as exc:
        raise DataError(f"cannot load pair dataset '{name_or_path}': {str(exc).splitlines()[0]}", hint=_HINT, field="benchmark") from exc
    return pairs_from_dataset(ds, Path(name_or_path).name or name_or_path)


def _impostor_pairs(rng: np.random.Generator, labels: np.ndarray, count: int, total: int) -> np.ndarray:
    """``count`` distinct different-label pairs ``(i, j)``, uniformly: enumerated when more than half of all ``total``
    are wanted, else by rejection sampling (then at least half are still free, so it ends quickly)."""
    if 2 * count > total:
        a, b = np.triu_indices(len(labels), k=1)
        keep = np.flatnonzero(labels[a] != labels[b])
        pick = keep[rng.choice(len(keep), size=count, replace=False)]
        return np.stack([a[pick], b[pick]], axis=1).astype(np.int64)
    chosen: dict[tuple[int, int], None] = {}  # insertion-ordered, so the result depends only on the seed
    while len(chosen) < count:
        a, b = rng.integers(0, len(labels), size=(2, 2 * (count - len(chosen)) + 8))
        for x, y in zip(a.tolist(), b.tolist()):
            if labels[x] != labels[y] and len(chosen) < count:
                chosen.setdefault((min(x, y), max(x, y)))
    return np.array(list(chosen), dtype=np.int64).reshape(-1, 2)


def make_pairs_from_labels(labels, num_pairs: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``num_pairs // 2`` genuine and the rest impostor pairs ``(index_a, index_b, issame)``, shuffled, all distinct.

    Genuine pairs are drawn uniformly from all same-label pairs (each class ``c`` with ``n_c`` images offers
    ``n_c (n_c - 1) / 2``); impostor pairs uniformly from different-label pairs. The same seed gives the same pairs.
    """
    labels = np.asarray(labels).ravel()
    rng = np.random.default_rng(seed)
    num_genuine, num_impostor = num_pairs // 2, num_pairs - num_pairs // 2
    order = np.argsort(labels, kind="stable")
    _, starts, sizes = np.unique(labels[order], return_index=True, return_counts=True)
    per_class = sizes * (sizes - 1) // 2
    offsets = np.cumsum(per_class) - per_class
    total_genuine = int(per_class.sum())
    total_impostor = len(labels) * (len(labels) - 1) // 2 - total_genuine
    if num_pairs < 2 or num_genuine > total_genuine or num_impostor > total_impostor:
        raise DataError(f"cannot draw {num_pairs} distinct balanced pairs: the labelled set offers {total_genuine} "
                        f"genuine and {total_impostor} impostor pairs", hint="lower PAIRS in heldout:NAME:PAIRS, or use labelled data with more images per class")
    flat = rng.choice(total_genuine, size=num_genuine, replace=False)
    cls = np.searchsorted(offsets, flat, side="right") - 1
    t = flat - offsets[cls]  # index among the class's pairs (i < j), ordered by j then i
    j = np.floor((1 + np.sqrt(1 + 8 * t)) / 2).astype(np.int64)
    j = np.where(j * (j - 1) // 2 > t, j - 1, j)
    j = np.where((j + 1) * j // 2 <= t, j + 1, j)
    gen_a, gen_b = order[starts[cls] + t - j * (j - 1) // 2], order[starts[cls] + j]
    imp_a, imp_b = _impostor_pairs(rng, labels, num_impostor, total_impostor).T
    perm = rng.permutation(num_pairs)
    index_a, index_b = np.r_[gen_a, imp_a][perm], np.r_[gen_b, imp_b][perm]
    return index_a, index_b, np.r_[np.ones(num_genuine, bool), np.zeros(num_impostor, bool)][perm]


def pairs_from_labels(images: np.ndarray, labels, num_pairs: int, seed: int, name: str) -> VerificationPairs:
    """Balanced verification pairs drawn from a labelled uint8 NHWC image set (see :func:`make_pairs_from_labels`)."""
    index_a, index_b, issame = make_pairs_from_labels(labels, num_pairs, seed)
    return VerificationPairs(images[index_a], images[index_b], issame, name)
