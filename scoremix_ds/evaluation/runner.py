"""Evaluate a recognition model on a list of benchmarks: embed (timed), then run each benchmark's protocol (timed).

A benchmark is one of: a path to an insightface ``.bin``; a :class:`~.verification_pairs.VerificationPairs`; a ``datasets.Dataset``
of pairs (:func:`~.verification_pairs.pairs_from_dataset`); a :class:`HeldOutSet` (balanced pairs drawn from labelled images); an
:class:`IJBSet` (1:1 template verification from an IJB release folder); an :class:`IdentificationSet` (1:N); an
:class:`OpenSetSet` (labelled images of unseen identities: every pair, and rank-1, :mod:`.openset`).

>>> import torch; from scoremix_ds.discriminators.loading import SmallCNN
>>> _ = torch.manual_seed(0); model = SmallCNN(in_channels=1, image_size=8, embedding_dim=4)
>>> rng = np.random.default_rng(0); images = rng.integers(0, 256, (20, 8, 8, 1), dtype=np.uint8)
>>> held_out = HeldOutSet(images, np.repeat(np.arange(4), 5), "toy", num_pairs=20)
>>> evaluate(model, [held_out], num_folds=2).benchmarks[0].metrics.num_pairs
20
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import DataError
from ..discriminators.loading import embed_images
from .identification import IdentificationResult, identification
from .binfile import read_bin
from .ijb import IJBResult, ijb_verification, load_ijb_faces, read_ijb_meta
from .loading import chunks_ahead, default_load_workers
from .metrics import DEFAULT_FARS, KFoldResult, Roc, TarAtFar, eer, kfold_accuracy, roc_auc, roc_curve, tar_at_far
from .openset import OPEN_SET_FARS, OpenSetResult, open_set
from .verification_pairs import (VerificationPairs, decode_blobs, pairs_from_dataset, pairs_from_labels,
                                 stack_decoded)

logger = logging.getLogger(__name__)
EmbedFn = Callable[..., np.ndarray]  # embed_fn(model, uint8 NHWC, batch_size=, device=) -> (N, D) unit rows


@dataclass(frozen=True)
class HeldOutSet:
    """Held-out labelled images (uint8 NHWC); ``num_pairs`` balanced pairs are drawn from them with ``seed``."""

    images: np.ndarray
    labels: np.ndarray
    name: str = "held-out"
    num_pairs: int = 3000
    seed: int = 0


@dataclass(frozen=True)
class IJBSet:
    """An IJB release folder (``meta/``, ``loose_crop/``); ``name`` is ``ijbb`` or ``ijbc``."""

    root: str | Path
    name: str = "ijbc"
    use_face_scores: bool = False
    image_size: int = 112


@dataclass(frozen=True)
class IdentificationSet:
    """1:N: probes against a gallery (+ distractors); uint8 NHWC images, any label type."""

    probe_images: np.ndarray
    probe_labels: np.ndarray
    gallery_images: np.ndarray
    gallery_labels: np.ndarray
    distractor_images: np.ndarray | None = None
    name: str = "identification"
    ranks: tuple[int, ...] = (1, 5, 10, 20)


@dataclass(frozen=True)
class OpenSetSet:
    """Labelled images (uint8 NHWC): EVERY genuine and impostor pair is scored, and rank-k identification with one
    gallery image per identity drawn with ``seed`` (:func:`~.openset.open_set`)."""

    images: np.ndarray
    labels: np.ndarray
    name: str = "open-set"
    seed: int = 0


@dataclass(frozen=True)
class VerificationMetrics:
    num_pairs: int
    accuracy: KFoldResult
    auc: float
    eer: float
    tar_at_far: tuple[TarAtFar, ...]
    roc: Roc


@dataclass(frozen=True)
class Timing:
    """Seconds to load/decode, to embed (``images`` forward passes, flips included) and for the protocol itself."""

    load_s: float
    embed_s: float
    images: int
    protocol_s: float

    @property
    def images_per_s(self) -> float:
        return self.images / self.embed_s if self.embed_s > 0 else float("inf")


@dataclass(frozen=True)
class BenchmarkResult:
    name: str
    kind: str  # "verification" | "ijb" | "identification" | "openset"
    metrics: VerificationMetrics | IJBResult | IdentificationResult | OpenSetResult
    timing: Timing


@dataclass(frozen=True)
class EvalResult:
    model: str
    flip_tta: bool
    benchmarks: tuple[BenchmarkResult, ...]


def verification_metrics(
    scores: np.ndarray, issame: np.ndarray, fars: tuple[float, ...] = DEFAULT_FARS, num_folds: int = 10
) -> VerificationMetrics:
    """k-fold accuracy, ROC AUC, EER and TAR@FAR (``at_most`` rule) of similarity scores."""
    roc = roc_curve(scores, issame)
    return VerificationMetrics(len(scores), kfold_accuracy(scores, issame, num_folds), roc_auc(roc), eer(roc),
                               tar_at_far(roc, fars), roc)


def _embed(model, images: np.ndarray, flip_tta: bool, batch_size: int, device, embed_fn: EmbedFn) -> np.ndarray:
    """Unit embeddings (bfloat16 autocast on CUDA); with flip TTA ``normalise(e(x) + e(flip_w(x)))``."""
    import torch

    cuda = torch.device(device).type == "cuda"
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
        emb = embed_fn(model, images, batch_size=batch_size, device=device)
        if flip_tta:
            emb = emb + embed_fn(model, images[:, :, ::-1], batch_size=batch_size, device=device)
    if flip_tta:
        emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    return emb


def _to_pairs(spec: Any) -> VerificationPairs | None:
    import datasets

    if isinstance(spec, VerificationPairs):
        return spec
    if isinstance(spec, (str, Path)):
        raise DataError(f"benchmark '{spec}' is not a .bin file", hint="check the benchmark", field="benchmark")
    if isinstance(spec, datasets.Dataset):
        return pairs_from_dataset(spec, spec.info.dataset_name or "pairs")
    if isinstance(spec, HeldOutSet):
        return pairs_from_labels(spec.images, spec.labels, spec.num_pairs, spec.seed, spec.name)
    return None


def _decode_pair_chunk(blobs: tuple[bytes, ...], pairs_per_chunk: int, name: str, k: int):
    """Chunk ``k`` of a ``.bin``: the images of pairs ``k * pairs_per_chunk ..`` decoded (a worker's task)."""
    first = 2 * k * pairs_per_chunk
    return first, decode_blobs(blobs[first:first + 2 * pairs_per_chunk], name, first)


def _ijb_chunk(root, meta, batch_size: int, size: int, k: int) -> np.ndarray:
    """Chunk ``k`` of an IJB set: faces ``k * batch_size ..`` read and aligned (a worker's task)."""
    return load_ijb_faces(root, meta, np.arange(k * batch_size, min((k + 1) * batch_size, len(meta.templates))), size)


def _bin_embeddings(path: Path, emb, batch_size: int, workers: int):
    """Embeddings of both sides of a ``.bin``'s pairs, its decoding in ``workers`` processes overlapping the
    forwards. Each chunk holds ``batch_size`` pairs, and its sides are embedded as the batches that embedding all the
    A images, then all the B images, makes: the same embeddings. Returns (ea, eb, issame, seconds in forwards)."""
    name = path.stem
    content = read_bin(path)
    n, shape, ea, eb, embed_s = content.num_pairs, None, [], [], 0.0
    load = functools.partial(_decode_pair_chunk, content.blobs, batch_size, name)
    for first, (arrays, error) in chunks_ahead(load, -(-n // batch_size), workers):
        shape = shape if shape is not None or not arrays else arrays[0].shape
        images = stack_decoded(arrays, name, first, shape)  # errors in file order, as a sequential decode names them
        if error is not None:
            raise error
        e0 = time.perf_counter()
        ea.append(emb(images[0::2]))
        eb.append(emb(images[1::2]))
        embed_s += time.perf_counter() - e0
    if not n:
        ea = eb = [emb(np.zeros((0, 1, 1, 3), dtype=np.uint8))]
    return np.concatenate(ea), np.concatenate(eb), content.issame, embed_s


def _run_one(spec, model, flip_tta, batch_size, device, embed_fn, fars, num_folds, workers) -> BenchmarkResult:
    def emb(images):
        return _embed(model, images, flip_tta, batch_size, device, embed_fn)

    t0 = time.perf_counter()
    if isinstance(spec, (str, Path)) and Path(spec).suffix == ".bin":
        ea, eb, issame, embed_s = _bin_embeddings(Path(spec), emb, batch_size, workers)
        t2 = time.perf_counter()
        t1 = t2 - embed_s  # reading and decoding count as loading
        metrics = verification_metrics(np.sum(ea * eb, axis=1), issame, fars, num_folds)
        name, kind, images = Path(spec).stem, "verification", 2 * len(issame)
    elif (pairs := _to_pairs(spec)) is not None:
        t1 = time.perf_counter()
        ea, eb = emb(pairs.images_a), emb(pairs.images_b)
        t2 = time.perf_counter()
        metrics = verification_metrics(np.sum(ea * eb, axis=1), pairs.issame, fars, num_folds)
        name, kind, images = pairs.name, "verification", 2 * pairs.num_pairs
    elif isinstance(spec, IJBSet):
        meta = read_ijb_meta(spec.root, spec.name)
        parts, embed_s = [], 0.0
        # Reading and aligning the next chunks (worker processes) overlaps the forwards.
        load = functools.partial(_ijb_chunk, spec.root, meta, batch_size, spec.image_size)
        for faces in chunks_ahead(load, -(-len(meta.templates) // batch_size), workers):
            e0 = time.perf_counter()
            parts.append(emb(faces))
            embed_s += time.perf_counter() - e0
        t2 = time.perf_counter()
        t1 = t2 - embed_s  # image reading and alignment count as loading
        metrics = ijb_verification(np.concatenate(parts), meta, fars, spec.use_face_scores)
        name, kind, images = spec.name, "ijb", len(meta.templates)
    elif isinstance(spec, IdentificationSet):
        t1 = time.perf_counter()
        probe, gallery = emb(spec.probe_images), emb(spec.gallery_images)
        distractors = None if spec.distractor_images is None else emb(spec.distractor_images)
        t2 = time.perf_counter()
        metrics = identification(probe, spec.probe_labels, gallery, spec.gallery_labels, distractors, spec.ranks)
        images = len(probe) + len(gallery) + (0 if distractors is None else len(distractors))
        name, kind = spec.name, "identification"
    elif isinstance(spec, OpenSetSet):
        t1 = time.perf_counter()
        embeddings = emb(spec.images)
        t2 = time.perf_counter()
        low = tuple(f for f in fars if f <= max(OPEN_SET_FARS))  # every pair: the low FARs are the point
        metrics = open_set(embeddings, spec.labels, low or OPEN_SET_FARS, seed=spec.seed)
        name, kind, images = spec.name, "openset", len(spec.images)
    else:
        raise DataError(f"unknown benchmark {type(spec).__name__}", hint="pass a .bin path, pairs or a labelled set")
    t3 = time.perf_counter()
    timing = Timing(load_s=t1 - t0, embed_s=t2 - t1, images=images * (2 if flip_tta else 1), protocol_s=t3 - t2)
    logger.info("%s: %d images embedded at %.0f/s, protocol %.3fs", name, timing.images, timing.images_per_s,
                timing.protocol_s)
    return BenchmarkResult(name, kind, metrics, timing)


def evaluate(
    model, benchmarks: list, flip_tta: bool = False, batch_size: int = 256, device: str | None = "auto",
    fars: tuple[float, ...] = DEFAULT_FARS, num_folds: int = 10, embed_fn: EmbedFn = embed_images,
    model_name: str | None = None, load_workers: int | None = None,
) -> EvalResult:
    """Run every benchmark in order.

    Args:
        model: anything ``embed_fn`` takes (by default :func:`~scoremix_ds.discriminators.loading.embed_images`).
        benchmarks: specs as listed in the module docstring.
        flip_tta: embed each image and its horizontal flip, sum, renormalise (doubles the forward passes).
        batch_size: images per forward pass. device: where the model runs (``auto``: the accelerator when present).
        fars: TAR@FAR targets. num_folds: folds of the verification protocol (10 is the standard).
        embed_fn: ``embed_fn(model, uint8 NHWC, batch_size=, device=) -> (N, D)`` unit-norm embeddings.
        model_name: what the report calls the model (default: its ``name`` attribute, else its class name).
        load_workers: processes decoding ``.bin`` images and reading + aligning IJB faces ahead of the forwards
            (default :func:`~.loading.default_load_workers`; 0: in this process, between forwards).
    """
    if not benchmarks:
        raise DataError("no benchmark given", hint="give a benchmark", field="benchmark")
    from ..core.devices import resolve_device

    import torch

    device = resolve_device(device)
    workers = load_workers if load_workers is not None else default_load_workers(torch.device(device).type == "cuda")
    results = tuple(_run_one(b, model, flip_tta, batch_size, device, embed_fn, fars, num_folds, workers)
                    for b in benchmarks)
    return EvalResult(model_name or getattr(model, "name", None) or type(model).__name__, flip_tta, results)
