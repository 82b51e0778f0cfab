"""Evaluate a recognition model on a list of benchmarks: embed (timed), then run each benchmark's protocol (timed).

A benchmark is one of: a path to an insightface ``.bin``; a :class:`~.verification_pairs.VerificationPairs`; a ``datasets.Dataset``
of pairs (:func:`~.verification_pairs.pairs_from_dataset`); a :class:`HeldOutSet` (balanced pairs drawn from labelled images); an
:class:`IJBSet` (1:1 template verification from an IJB release folder); an :class:`IdentificationSet` (1:N); an
:class:`OpenSetSet` (labelled images of unseen identities: every pair, and rank-1, :mod:`.openset`).

>>> import torch; from scoremix_ds.models.discriminator import SmallCNN
>>> _ = torch.manual_seed(0); model = SmallCNN(in_channels=1, image_size=8, embedding_dim=4)
>>> rng = np.random.default_rng(0); images = rng.integers(0, 256, (20, 8, 8, 1), dtype=np.uint8)
>>> held_out = HeldOutSet(images, np.repeat(np.arange(4), 5), "toy", num_pairs=20)
>>> evaluate(model, [held_out], num_folds=2).benchmarks[0].metrics.num_pairs
20
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from ..models.discriminator import embed_images
from .identification import IdentificationResult, identification
from .ijb import IJBResult, ijb_verification, load_ijb_faces, read_ijb_meta
from .metrics import DEFAULT_FARS, KFoldResult, Roc, TarAtFar, eer, kfold_accuracy, roc_auc, roc_curve, tar_at_far
from .openset import OPEN_SET_FARS, OpenSetResult, open_set
from .verification_pairs import VerificationPairs, pairs_from_bin, pairs_from_dataset, pairs_from_labels

logger = logging.getLogger(__name__)
LOAD_WORKERS = 2  # IJB: threads reading and aligning the next chunks while the current one is embedded
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
        if Path(spec).suffix != ".bin":
            raise DataError(f"benchmark '{spec}' is not a .bin file", hint="check --benchmark")
        return pairs_from_bin(spec)
    if isinstance(spec, datasets.Dataset):
        return pairs_from_dataset(spec, spec.info.dataset_name or "pairs")
    if isinstance(spec, HeldOutSet):
        return pairs_from_labels(spec.images, spec.labels, spec.num_pairs, spec.seed, spec.name)
    return None


def _run_one(spec, model, flip_tta, batch_size, device, embed_fn, fars, num_folds) -> BenchmarkResult:
    def emb(images):
        return _embed(model, images, flip_tta, batch_size, device, embed_fn)

    t0 = time.perf_counter()
    pairs = _to_pairs(spec)
    if pairs is not None:
        t1 = time.perf_counter()
        ea, eb = emb(pairs.images_a), emb(pairs.images_b)
        t2 = time.perf_counter()
        metrics = verification_metrics(np.sum(ea * eb, axis=1), pairs.issame, fars, num_folds)
        name, kind, images = pairs.name, "verification", 2 * pairs.num_pairs
    elif isinstance(spec, IJBSet):
        meta = read_ijb_meta(spec.root, spec.name)
        t1, parts, embed_s = time.perf_counter(), [], 0.0
        starts = list(range(0, len(meta.templates), batch_size))

        def load(s: int) -> np.ndarray:
            return load_ijb_faces(spec.root, meta, np.arange(s, min(s + batch_size, len(meta.templates))),
                                  spec.image_size)

        # Reading and aligning the next chunks (threads: image decoding releases the GIL) overlaps the forwards.
        with ThreadPoolExecutor(LOAD_WORKERS, thread_name_prefix="scoremix-ijb") as pool:
            ahead = deque(pool.submit(load, s) for s in starts[:LOAD_WORKERS + 1])
            for k in range(len(starts)):
                faces = ahead.popleft().result()
                if k + LOAD_WORKERS + 1 < len(starts):
                    ahead.append(pool.submit(load, starts[k + LOAD_WORKERS + 1]))
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
    model_name: str | None = None,
) -> EvalResult:
    """Run every benchmark in order.

    Args:
        model: anything ``embed_fn`` takes (by default :func:`~scoremix_ds.models.discriminator.embed_images`).
        benchmarks: specs as listed in the module docstring.
        flip_tta: embed each image and its horizontal flip, sum, renormalise (doubles the forward passes).
        batch_size: images per forward pass. device: where the model runs (``auto``: the accelerator when present).
        fars: TAR@FAR targets. num_folds: folds of the verification protocol (10 is the standard).
        embed_fn: ``embed_fn(model, uint8 NHWC, batch_size=, device=) -> (N, D)`` unit-norm embeddings.
        model_name: what the report calls the model (default: its ``name`` attribute, else its class name).
    """
    if not benchmarks:
        raise DataError("no benchmark given", hint="pass --benchmark")
    from ..devices import resolve_device

    device = resolve_device(device)
    results = tuple(_run_one(b, model, flip_tta, batch_size, device, embed_fn, fars, num_folds) for b in benchmarks)
    return EvalResult(model_name or getattr(model, "name", None) or type(model).__name__, flip_tta, results)
