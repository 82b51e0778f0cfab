"""ONE training source (real or synthetic) as a frozen description plus a random-access view.

EVERY command reads its real or synthetic data through :func:`scoremix_ds.sources.openers.open_source` (``build``,
``plan``, ``align``, ``audit`` and ``eval`` through :func:`scoremix_ds.sources.openers.read_real_data`, which loads the
view into memory). A source is a string plus an optional revision, looked up in this order:

- a built-in name, a key of :data:`scoremix_ds.sources.readers.READERS` (``mnist-5k`` and its ``mnist-5k-train`` /
  ``mnist-5k-heldout`` parts, ...), held in memory;
- a local folder (or file), by what it holds: ``recordio``, ``saved``, ``build-output``, ``parquet`` or
  ``imagefolder`` (:data:`scoremix_ds.sources.openers.OPENERS`, whose module says what each kind means);
- a Hub dataset id: the revision (branch, tag or commit; default ``main``) is resolved to its commit first and the
  data loaded at that commit with ``datasets.load_dataset``, so the provenance names exactly what was read;
- any of these followed by ``[classes]`` (``NAME[0-6]``): only those classes, relabelled ``0..k-1``; a Hub id
  followed by ``@REVISION`` (:mod:`.refs`; the ``revision`` field and the ``--x-revision`` flags are its aliases).

This module owns what every kind shares: the spec (:class:`SourceSpec`), the description (:class:`SourceInfo`), the
view (:class:`Source`, :class:`ArraySource` in memory, :class:`EncodedSource` decoding on access), and the pure
decoding and label helpers. The dispatch and the per-kind openers live in :mod:`.openers`.

The view: ``len(src)``, ``src[i] -> (uint8 HxWxC, label)`` with ``0 <= label < src.num_classes``, ``class_names``
and ``provenance``. Labels are made contiguous: a ``ClassLabel`` keeps its names; other values (ints, identity
strings) are mapped in sorted order to ``0..K-1`` and ``class_names[k]`` is the original value.

Images come out in ONE mode (``L``: C=1, ``RGB``: C=3) and ONE size: the configured ones, else those of the first
row. A row that differs is converted (PIL ``convert`` / bilinear ``resize``), or refused naming the row when
``strict``. A row that does not decode is a :class:`DataError` naming it; with ``skip_corrupt`` every row is decoded
once at open, the ones that fail are dropped and counted in ``info.skipped`` (so len() is known and exact).
"""

from __future__ import annotations

import dataclasses
import io
import logging
from dataclasses import dataclass
from typing import Any, Callable, Protocol, Sequence

import numpy as np
from PIL import Image

from ..core.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

# The config fields that fix each problem, named in errors (the CLI names them by the running command's flags).
FLAG_LABEL = "label_column"
FLAG_IMAGE = "image_column"
FLAG_STRICT = "strict_images"
FLAG_SKIP = "skip_corrupt"
FLAG_SOURCE = "real / synthetic"


def source_fields(flag: str) -> tuple[str, ...]:
    """The config fields a source's ``flag`` names (``"real / synthetic"``: both)."""
    return tuple(part.strip() for part in flag.split("/") if part.strip().isidentifier())

LABEL_COLUMNS = ("label", "labels", "identity", "identity_id", "class", "class_id", "person", "person_id",
                 "subject", "subject_id")  # tried in this order when no label column is given
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff")
_GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})


@dataclass(frozen=True)
class SourceSpec:
    """What the user asked for: a source string and how to read it."""

    location: str  # "mnist-5k", a local folder, or a Hub dataset id
    revision: str | None = None  # Hub only: branch, tag or commit (resolved to the commit)
    config: str | None = None  # datasets config name; build outputs: "mix" (default) or "repro"
    split: str = "train"
    label_column: str | None = None  # None: the first of LABEL_COLUMNS present
    image_column: str | None = None  # None: the column with an Image feature
    mode: str | None = None  # "RGB" or "L"; None: the first row's
    size: tuple[int, int] | None = None  # (height, width); None: the first row's
    strict: bool = False  # refuse (naming the row) instead of converting a row of another mode or size
    skip_corrupt: bool = False  # drop rows that do not decode (one decoding pass at open) instead of failing
    allow_partial: bool = False  # a build folder: read an unfinished one as it stands (a damaged one never)
    flag: str = FLAG_SOURCE  # the config field(s) that name this source, for errors (e.g. "real_data")

    def __post_init__(self) -> None:
        if not self.location:
            raise ConfigError("a data source needs a name, folder or Hub id", hint=f"give {self.flag}",
                              fields=source_fields(self.flag))
        if self.mode not in (None, "RGB", "L"):
            raise ConfigError(f"image mode must be 'RGB' or 'L', got {self.mode!r}", hint="check `channels`", field="channels")
        if isinstance(self.size, int):
            object.__setattr__(self, "size", (self.size, self.size))
        if self.size is not None:
            size = tuple(int(v) for v in self.size)
            if len(size) != 2 or min(size) <= 0:
                raise ConfigError(f"image size must be (height, width) > 0, got {self.size}", hint="check `image_size`", field="image_size")
            object.__setattr__(self, "size", size)


@dataclass(frozen=True)
class SourceInfo:
    """What was actually read: enough for a model card to name the data exactly."""

    location: str
    kind: str  # a key of openers.OPENERS, or "builtin" / "hub"
    revision: str | None  # as requested
    commit: str | None  # the exact Hub commit, or a content fingerprint of a local folder; None when unknown
    config: str | None
    split: str | None
    num_rows: int
    num_classes: int
    class_names: tuple[str, ...]
    image_column: str | None
    label_column: str | None
    mode: str  # "RGB" or "L"
    size: tuple[int, int]  # (height, width)
    skipped: int  # corrupt rows dropped (skip_corrupt only)
    licence: str
    provenance: str  # one line: what, where, which revision
    attribution: str = ""  # who made the data (built-ins: their citation line; datasets: the card's citation)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class Source:
    """Random-access view: ``src[i] -> (uint8 HxWxC, int label)``; ``info`` is its frozen description."""

    info: SourceInfo

    def __len__(self) -> int:
        return self.info.num_rows

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        raise NotImplementedError

    @property
    def num_classes(self) -> int:
        return self.info.num_classes

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.info.class_names

    @property
    def provenance(self) -> str:
        return self.info.provenance

    def load_all(self, progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Every row decoded once: uint8 ``(N, H, W, C)`` and int64 labels ``(N,)``."""
        from tqdm.auto import tqdm

        n = len(self)
        h, w = self.info.size
        images = np.empty((n, h, w, 1 if self.info.mode == "L" else 3), dtype=np.uint8)
        labels = np.empty(n, dtype=np.int64)
        for i in tqdm(range(n), disable=not progress, desc=f"decode {self.info.location}", leave=False):
            images[i], labels[i] = self[i]
        return images, labels


class ArraySource(Source):
    """Images already decoded in memory."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, info: SourceInfo) -> None:
        self.images, self.labels, self.info = images, labels, info

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        return self.images[i], int(self.labels[i])

    def load_all(self, progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
        return self.images, self.labels


# ---------------------------------------------------------------------------------------------- decoding (pure)


def decode_image(data: bytes | None) -> Image.Image | None:
    """Encoded bytes -> a loaded PIL image, or None when they do not decode (corrupt, truncated, empty, too large)."""
    if not data:
        return None
    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None
    return img


def native_mode(img: Image.Image) -> str:
    """``L`` for grey-level modes, ``RGB`` for everything else (palette, RGBA, CMYK... are colour)."""
    return "L" if img.mode in _GRAY_MODES else "RGB"


def conform(img: Image.Image, mode: str, size: tuple[int, int], strict: bool, row_id: str) -> np.ndarray:
    """PIL image -> uint8 HxWxC in ``mode`` at ``size`` (h, w); with ``strict`` a row that would change is refused."""
    if strict and (native_mode(img) != mode or (img.height, img.width) != size):
        raise DataError(
            f"{row_id} is {native_mode(img)} {img.height}x{img.width}, the source is {mode} {size[0]}x{size[1]}",
            hint=f"drop {FLAG_STRICT} to convert such rows, or fix the data", field=FLAG_STRICT,
        )
    if img.mode != mode:
        img = img.convert(mode)
    if (img.height, img.width) != size:
        img = img.resize((size[1], size[0]), Image.Resampling.BILINEAR)
    arr = np.asarray(img, dtype=np.uint8)
    return arr[..., None] if arr.ndim == 2 else arr


def corrupt_error(row_id: str) -> DataError:
    return DataError(f"{row_id}: the image does not decode (corrupt or truncated)",
                     hint=f"fix or remove the row, or set {FLAG_SKIP} to drop and count such rows",
                     field=FLAG_SKIP)


def contiguous_labels(values: Sequence[Any], where: str, column: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """Label values -> ints ``0..K-1`` in sorted order of the distinct values, and the values as class names."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "iu":  # the common case, without Python objects
        uniques, inverse = np.unique(values, return_inverse=True)
        return inverse.astype(np.int64).reshape(-1), tuple(str(u) for u in uniques)
    if any(v is None for v in values):
        row = next(i for i, v in enumerate(values) if v is None)
        raise DataError(f"{where}: row {row} has no value in label column '{column}'", hint=f"check {FLAG_LABEL}",
                        field=FLAG_LABEL)
    kinds = {type(v) for v in values}
    if kinds <= {int, np.int64, np.int32, bool}:
        array = np.asarray(values, dtype=np.int64)
    elif kinds <= {float, np.float32, np.float64} and all(float(v).is_integer() for v in values):
        array = np.asarray(values, dtype=np.float64).astype(np.int64)
    elif kinds == {str}:
        array = np.asarray(values, dtype=object)
    else:
        raise DataError(f"{where}: label column '{column}' holds {sorted(k.__name__ for k in kinds)}, not integer or "
                        f"string identities", hint=f"choose another column as {FLAG_LABEL}", field=FLAG_LABEL)
    uniques, inverse = np.unique(array, return_inverse=True)
    return inverse.astype(np.int64).reshape(-1), tuple(str(u) for u in uniques)


# ---------------------------------------------------------------------------------------- sources of encoded rows


class _Rows(Protocol):
    """Raw access to one backend's rows: encoded image bytes, the contiguous label, and a row id for messages."""

    def __len__(self) -> int: ...

    def fetch(self, i: int) -> tuple[bytes | None, int, str]: ...


_FETCH_BLOCK = 4096  # rows whose encoded bytes :meth:`EncodedSource.load_all` reads at once


class EncodedSource(Source):
    """Decodes rows on access; see the module docstring for modes, sizes, ``strict`` and ``skip_corrupt``."""

    def __init__(self, rows: _Rows, spec: SourceSpec, describe: Callable[..., SourceInfo], progress: bool = False):
        self.rows, self.strict = rows, spec.strict
        self.valid: np.ndarray | None = None
        first: Image.Image | None = None
        if spec.skip_corrupt:
            self.valid, first = self._scan(progress)
        elif len(rows):
            data, _, row_id = rows.fetch(0)
            first = decode_image(data)
            if first is None:
                raise corrupt_error(row_id)
        if first is None:
            raise DataError(f"{spec.location} has no readable image rows", hint=f"check {spec.flag}",
                            fields=source_fields(spec.flag))
        self.mode = spec.mode or native_mode(first)
        self.size = spec.size or (first.height, first.width)
        skipped = 0 if self.valid is None else len(rows) - len(self.valid)
        self.info = describe(num_rows=len(rows) - skipped, mode=self.mode, size=self.size, skipped=skipped)

    def _scan(self, progress: bool) -> tuple[np.ndarray, Image.Image | None]:
        from tqdm.auto import tqdm

        valid, first, bad = [], None, []
        for i in tqdm(range(len(self.rows)), disable=not progress, desc="check images", leave=False):
            data, _, row_id = self.rows.fetch(i)
            img = decode_image(data)
            if img is None:
                bad.append(row_id)
                continue
            valid.append(i)
            first = img if first is None else first
        if bad:
            shown = ", ".join(bad[:5]) + (" ..." if len(bad) > 5 else "")
            logger.warning("skipped %d corrupt image rows (%s)", len(bad), shown)
        return np.asarray(valid, dtype=np.int64), first

    def load_all(self, progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Every row decoded once, as :meth:`Source.load_all` gives them; a backend that reads its encoded bytes a
        block of rows at a time (``rows.fetch_block``: one columnar read instead of one per row) is read that way."""
        fetch_block = getattr(self.rows, "fetch_block", None)
        if fetch_block is None:
            return super().load_all(progress)
        from tqdm.auto import tqdm

        n = len(self)
        h, w = self.info.size
        images = np.empty((n, h, w, 1 if self.mode == "L" else 3), dtype=np.uint8)
        labels = np.empty(n, dtype=np.int64)
        rows = self.valid if self.valid is not None else np.arange(n, dtype=np.int64)
        with tqdm(total=n, disable=not progress, desc=f"decode {self.info.location}", leave=False) as bar:
            for s in range(0, n, _FETCH_BLOCK):
                block = rows[s:s + _FETCH_BLOCK]
                datas, labels[s:s + len(block)] = fetch_block(block)
                for t, data in enumerate(datas):
                    img = decode_image(data)
                    if img is None or (self.strict and (native_mode(img) != self.mode
                                                        or (img.height, img.width) != self.size)):
                        row_id = self.rows.fetch(int(block[t]))[2]  # the row's own message, as __getitem__ gives
                        if img is None:
                            raise corrupt_error(row_id)
                        conform(img, self.mode, self.size, True, row_id)  # refuses the row
                    images[s + t] = conform(img, self.mode, self.size, False, "")
                bar.update(len(block))
        return images, labels

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        j = int(self.valid[i]) if self.valid is not None else int(i) % len(self)
        data, label, row_id = self.rows.fetch(j)
        img = decode_image(data)
        if img is None:
            raise corrupt_error(row_id)
        return conform(img, self.mode, self.size, self.strict, row_id), label
