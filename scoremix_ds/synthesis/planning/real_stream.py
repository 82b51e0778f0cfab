"""The real set read as a stream for planning: its labels and facts at open, its images a block at a time.

Planning needs, of the real data, its labels (which classes have rows), a digest (the key of the class-centre
cache) and, on a cache miss, one embedding pass. None of these needs the whole set decoded at once:
:class:`RealSet` holds the opened source, its labels and what a manifest records of it (source, licence, class
names...), and :func:`image_blocks` decodes :data:`BLOCK` rows at a time (the next block decoded on a thread while
the current one is hashed or embedded), so planning's memory is bounded by a block whatever the set's size, except
for a class subset (``NAME[0-6]``), which the sources layer still decodes whole before it selects the classes.

The digest (:func:`stream_digest`) and the centres (:func:`stream_centres`) are bit for bit those of the whole set
decoded in memory (:func:`~scoremix_ds.synthesis.centres_cache.data_digest`,
:func:`~scoremix_ds.maths.centres.class_centres` over :func:`~scoremix_ds.discriminators.loading.embed_images`):
blocks are whole multiples of the embedding batch, so every batch the discriminator sees is the one it saw before.

``SCOREMIX_TRACE_REAL_DATA=FILE`` appends one line per opening of the real data (``pid rank open LOCATION``): what
the multi-process tests and ``benchmarks/bench_scale_out.py`` count.
"""

from __future__ import annotations

import hashlib
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from ...core.refs import public_ref
from ...sources.source import ArraySource, Source, SourceSpec, conform, corrupt_error, decode_image, native_mode

logger = logging.getLogger(__name__)

BLOCK = 4096  # rows decoded at once (rounded up to a whole number of embedding batches)
TRACE = "SCOREMIX_TRACE_REAL_DATA"


@dataclass(frozen=True)
class RealSet:
    """An opened real set without its images in memory: what :func:`~.choose.provenance` and the class names need,
    its labels (int64, one per row) and the source to stream the images from (None when made from a plan file's
    record of the facts: then nothing can be streamed)."""

    labels: np.ndarray
    class_names: tuple[str, ...]
    source: str
    licence: str
    attribution: str
    provenance: str = ""
    commit: str | None = None
    src: Source | None = field(default=None, repr=False, compare=False)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def facts(self) -> dict:
        """What a plan file records of the real data, so ``build --plan`` never opens it again: what a manifest's
        provenance takes from it, local paths in their public form (as the manifest has them)."""
        from ...core.refs import public_text

        return {"source": public_ref(self.source), "licence": self.licence, "attribution": public_ref(self.attribution),
                "provenance": public_text(self.provenance), "commit": self.commit, "class_names": list(self.class_names)}

    @classmethod
    def from_facts(cls, facts: dict) -> "RealSet":
        return cls(labels=np.zeros(0, dtype=np.int64), class_names=tuple(facts["class_names"]), source=facts["source"],
                   licence=facts["licence"], attribution=facts["attribution"], provenance=facts.get("provenance", ""),
                   commit=facts.get("commit"))


def given_digest(name: str | None, revision: str | None) -> str | None:
    """A digest of the real data reference as given (``--real-data``, its revision): a plan file records it, not
    the path, to know a later ``build --plan`` names the same data."""
    if name is None:
        return None
    return hashlib.sha256(f"{name}@{revision}".encode()).hexdigest()[:16]


def trace_open(location: str) -> None:
    """One line in ``$SCOREMIX_TRACE_REAL_DATA`` (when set) saying this process opened the real data."""
    path = os.environ.get(TRACE)
    if not path:
        return
    from ...core.processes import rank

    with open(path, "a", encoding="utf-8") as fh:  # one short append: atomic enough across processes
        fh.write(f"{os.getpid()} {rank()} open {location}\n")


def open_real(name: str, revision: str | None = None, progress: bool = False) -> RealSet:
    """Open the real data through the one data layer (:func:`~scoremix_ds.sources.openers.open_source`) and read
    its labels, not its images; the facts are those :func:`~scoremix_ds.sources.openers.read_real_data` gives."""
    from ...sources.openers import open_source

    trace_open(name)
    logger.debug("opening the real data %s", name)
    src = open_source(SourceSpec(name, revision=revision, flag="real_data"), progress=progress)
    info = src.info
    given = name if revision is None or "@" in name else f"{name}@{revision}"
    return RealSet(labels=source_labels(src), class_names=info.class_names,
                   source=info.provenance if info.kind == "builtin" else given, licence=info.licence,
                   attribution=info.attribution or public_ref(given), provenance=info.provenance, commit=info.commit,
                   src=src)


def source_labels(src: Source) -> np.ndarray:
    """Every row's label without decoding an image (the labels ``load_all`` gives, same dtype)."""
    if isinstance(src, ArraySource):
        return np.asarray(src.labels)
    rows = getattr(src, "rows", None)
    valid = getattr(src, "valid", None)
    if rows is not None and getattr(rows, "labels", None) is not None:
        labels = np.asarray(rows.labels, dtype=np.int64)
        return labels[valid] if valid is not None else labels[:len(src)]
    if rows is not None:  # e.g. an insightface .rec: labels are in the record headers (read, not decoded)
        index = valid if valid is not None else range(len(src))
        return np.fromiter((rows.fetch(int(i))[1] for i in index), dtype=np.int64, count=len(src))
    return np.fromiter((src[i][1] for i in range(len(src))), dtype=np.int64, count=len(src))


def image_shape(src: Source) -> tuple[int, int, int]:
    """(H, W, C) of the decoded rows."""
    if isinstance(src, ArraySource):
        return tuple(int(d) for d in src.images.shape[1:])  # type: ignore[return-value]
    h, w = src.info.size
    return int(h), int(w), 1 if src.info.mode == "L" else 3


def _decode(src: Source, rows: np.ndarray) -> np.ndarray:
    """The decoded images of ``rows`` (increasing row indices of ``src``), as ``load_all`` decodes them."""
    if isinstance(src, ArraySource):
        return np.asarray(src.images[rows])
    h, w, c = image_shape(src)
    out = np.empty((len(rows), h, w, c), dtype=np.uint8)
    backend = getattr(src, "rows", None)
    fetch_block = getattr(backend, "fetch_block", None)
    if fetch_block is None:
        for t, i in enumerate(rows):
            out[t] = src[int(i)][0]
        return out
    valid = getattr(src, "valid", None)
    raw = valid[rows] if valid is not None else rows
    datas, _ = fetch_block(np.asarray(raw, dtype=np.int64))
    mode, size, strict = src.mode, src.size, src.strict
    for t, data in enumerate(datas):
        img = decode_image(data)
        if img is None or (strict and (native_mode(img) != mode or (img.height, img.width) != size)):
            row_id = backend.fetch(int(raw[t]))[2]
            if img is None:
                raise corrupt_error(row_id)
            conform(img, mode, size, True, row_id)  # refuses the row, naming it
        out[t] = conform(img, mode, size, False, "")
    return out


def image_blocks(src: Source, rows: np.ndarray, block: int = BLOCK) -> Iterator[np.ndarray]:
    """The images of ``rows`` (increasing), ``block`` rows at a time; the next block is decoded on a thread while
    the caller works on the current one."""
    starts = range(0, len(rows), block)
    if not len(rows):
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="decode-real") as pool:
        pending = pool.submit(_decode, src, rows[0:block])
        for s in starts:
            images = pending.result()
            if s + block < len(rows):
                pending = pool.submit(_decode, src, rows[s + block:s + 2 * block])
            yield images


def stream_digest(real: RealSet, rows: np.ndarray, num_classes: int, progress: bool = False) -> str:
    """:func:`~scoremix_ds.synthesis.centres_cache.data_digest` of ``rows`` of the set, a block at a time."""
    from tqdm.auto import tqdm

    h, w, c = image_shape(real.src)
    labels = np.ascontiguousarray(real.labels[rows] if len(rows) != len(real.labels) else real.labels)
    digest = hashlib.blake2b(digest_size=8)
    digest.update(f"uint8:{(len(rows), h, w, c)}:".encode())
    with tqdm(total=len(rows), unit="img", desc="hash real data", disable=not progress, leave=False) as bar:
        for images in image_blocks(real.src, rows):
            digest.update(memoryview(np.ascontiguousarray(images)).cast("B"))
            bar.update(len(images))
    digest.update(f"{labels.dtype}:{labels.shape}:".encode())
    digest.update(memoryview(labels).cast("B"))
    digest.update(f"classes:{num_classes}".encode())
    return digest.hexdigest()


def embedding_block(disc, device: str, batch_size: int) -> int:
    """A block size that is a whole number of the batches ``embed_images`` runs (so the same batches are run)."""
    import torch

    from ...discriminators import loading

    if isinstance(disc, torch.nn.Module) and torch.device(device).type == "cpu":
        step = loading._cpu_batch(getattr(disc, "image_size", 0), batch_size)
    else:
        step = batch_size
    return step * max(1, BLOCK // step)


class _Once(logging.Filter):
    """Each distinct warning once (``embed_images`` checks every block's size)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message in self.seen:
            return False
        self.seen.add(message)
        return True


def stream_centres(disc, real: RealSet, rows: np.ndarray, num_classes: int, device: str, batch_size: int = 512,
                   progress: bool = False) -> np.ndarray:
    """Class centres of ``rows`` of the set (bfloat16 autocast on CUDA), embedded a block at a time: the mean of
    each class's L2-normalised embeddings, NaN rows for classes without images (as
    :func:`~scoremix_ds.maths.centres.class_centres`)."""
    import contextlib

    import torch
    from tqdm.auto import tqdm

    from ...discriminators.loading import embed_images
    from ...maths.centres import l2_normalise

    dev = torch.device(device)
    labels = real.labels[rows] if len(rows) != len(real.labels) else real.labels
    block = embedding_block(disc, device, batch_size)
    sums: np.ndarray | None = None
    once = _Once()
    loader_log = logging.getLogger("scoremix_ds.discriminators.loading")
    loader_log.addFilter(once)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if dev.type == "cuda" else contextlib.nullcontext()
    try:
        with autocast, tqdm(total=len(rows), unit="img", desc="embed real data", disable=not progress,
                            leave=False) as bar:
            done = 0
            for images in image_blocks(real.src, rows, block):
                e = l2_normalise(np.asarray(embed_images(disc, images, batch_size=batch_size, device=dev),
                                            dtype=np.float64))
                if sums is None:
                    sums = np.zeros((num_classes, e.shape[1]))
                np.add.at(sums, labels[done:done + len(images)], e)
                done += len(images)
                bar.update(len(images))
    finally:
        loader_log.removeFilter(once)
    if sums is None:
        sums = np.zeros((num_classes, int(getattr(disc, "embedding_dim", 0))))
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / counts


__all__ = ["BLOCK", "RealSet", "TRACE", "image_blocks", "open_real", "source_labels", "stream_centres",
           "stream_digest", "trace_open"]
