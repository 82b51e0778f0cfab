"""Open-set benchmark on labelled images: EVERY genuine and impostor pair, and 1:N rank-1 (pure numpy, no IO).

Balanced pair lists saturate (a few thousand pairs of unseen identities sit near 97% accuracy for any decent model),
so the headline of a many-identity benchmark is TAR at a low FAR over all pairs, as IJB-C's TAR@FAR=1e-6 is:

- genuine pairs: every ``(i, j)``, ``i < j``, of one identity; impostor pairs: every ``(i, j)`` of two identities
  (``N (N - 1) / 2`` pairs in all: tens of millions for ten thousand images);
- TAR@FAR with the ``at_most`` rule of :func:`~.metrics.tar_at_far` (accept ``score >= t``; the highest TAR whose
  FAR <= target), computed exactly without holding the impostor scores: only the top ``floor(FAR * n) + 1``
  impostor scores decide it, so the scores are streamed ``chunk`` rows at a time and the top ones kept;
- rank-1 identification: one gallery image per identity (drawn with ``seed``), every other image a probe
  (:func:`~.identification.identification`).

>>> e = np.eye(4, dtype=np.float32)[[0, 0, 1, 1, 2, 2, 3, 3]]
>>> r = open_set(e, np.repeat(np.arange(4), 2), fars=(0.25,))
>>> r.num_genuine, r.num_impostor, r.tar_at_far[0].tar, r.rank_accuracy[1]
(4, 24, 1.0, 1.0)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..core.errors import DataError
from .identification import identification
from .metrics import TarAtFar, min_impostors_for

OPEN_SET_FARS: tuple[float, ...] = (1e-6, 1e-5, 1e-4, 1e-3)
_HINT = "an open-set benchmark needs at least 2 identities with at least 2 images each"


@dataclass(frozen=True)
class OpenSetResult:
    num_images: int
    num_identities: int
    num_genuine: int
    num_impostor: int
    tar_at_far: tuple[TarAtFar, ...]
    rank_accuracy: dict[int, float]  # rank-k identification (k = 1, 5)
    genuine_mean: float  # mean cosine of genuine and of impostor pairs (a sanity figure beside the TARs)
    impostor_mean: float


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _allowed(far: float, num_impostor: int) -> int:
    """Impostors a threshold may accept at FAR <= ``far`` (the tolerance of :func:`~.metrics.tar_at_far`)."""
    return math.floor(far * num_impostor * (1.0 + 1e-9))


def pair_scores(embeddings: np.ndarray, labels: np.ndarray, keep_top: int, chunk: int = 1024
                ) -> tuple[np.ndarray, np.ndarray, int, float]:
    """All genuine scores, the ``keep_top`` highest impostor scores (descending), the impostor count and mean.

    Memory is ``chunk x N`` floats plus the kept scores, whatever ``N``.
    """
    e, labels = _unit(embeddings), np.asarray(labels).ravel()
    n = len(e)
    genuine, top = [], np.empty(0, dtype=np.float32)
    num_impostor, impostor_sum = 0, 0.0
    cols = np.arange(n)
    for s in range(0, n, chunk):
        rows = np.arange(s, min(s + chunk, n))
        sim = e[rows] @ e.T
        upper = cols[None, :] > rows[:, None]
        same = labels[rows][:, None] == labels[None, :]
        genuine.append(sim[upper & same])
        imp = sim[upper & ~same]
        num_impostor += imp.size
        impostor_sum += float(imp.sum(dtype=np.float64))
        pool = np.concatenate([top, imp])
        k = min(keep_top, pool.size)
        top = pool[np.argpartition(-pool, k - 1)[:k]] if k else pool[:0]
    top = np.sort(top)[::-1]
    mean = impostor_sum / num_impostor if num_impostor else float("nan")
    return np.concatenate(genuine) if genuine else np.empty(0, np.float32), top, num_impostor, mean


def open_set(embeddings: np.ndarray, labels: np.ndarray, fars: tuple[float, ...] = OPEN_SET_FARS,
             ranks: tuple[int, ...] = (1, 5), seed: int = 0, chunk: int = 1024) -> OpenSetResult:
    """TAR@FAR over all pairs and rank-k identification of ``embeddings`` (module docstring)."""
    labels = np.asarray(labels).ravel()
    if len(embeddings) != len(labels):
        raise DataError(f"{len(embeddings)} embeddings but {len(labels)} labels", hint=_HINT)
    ids, counts = np.unique(labels, return_counts=True)
    if len(ids) < 2 or (counts < 2).all():
        raise DataError(f"{len(ids)} identities, the largest with {counts.max() if len(ids) else 0} images", hint=_HINT)
    n = len(labels)
    num_impostor_total = (n * (n - 1) - int(np.sum(counts * (counts - 1)))) // 2
    keep = _allowed(max(fars), num_impostor_total) + 1
    genuine, top, num_impostor, impostor_mean = pair_scores(embeddings, labels, keep, chunk)
    out = []
    for far in fars:
        need = min_impostors_for(far)
        if num_impostor < need:
            out.append(TarAtFar(far, None, None, None,
                                f"FAR={far:g} needs >= {need} impostor pairs, the benchmark has {num_impostor}"))
            continue
        m = _allowed(far, num_impostor)
        if m >= len(top):  # every impostor may be accepted: the most lenient ROC point
            threshold, accepted = float(genuine.min(initial=top.min(initial=np.inf))), len(top)
        else:
            cut = top[m]  # the (m+1)-th highest impostor: a threshold must lie strictly above it
            above = np.concatenate([genuine[genuine > cut], top[top > cut]])
            threshold = float(above.min()) if above.size else float("inf")
            accepted = int(np.sum(top >= threshold))
        tar = float(np.mean(genuine >= threshold)) if genuine.size else 0.0
        out.append(TarAtFar(far, tar, threshold, accepted / num_impostor))
    gallery = _gallery(labels, seed)
    probe = np.setdiff1d(np.arange(n), gallery)
    ident = identification(embeddings[probe], labels[probe], embeddings[gallery], labels[gallery], ranks=ranks)
    return OpenSetResult(num_images=n, num_identities=len(ids), num_genuine=int(genuine.size),
                         num_impostor=num_impostor, tar_at_far=tuple(out), rank_accuracy=ident.rank_accuracy,
                         genuine_mean=float(genuine.mean()) if genuine.size else float("nan"),
                         impostor_mean=impostor_mean)


def _gallery(labels: np.ndarray, seed: int) -> np.ndarray:
    """One image per identity (seeded), sorted: the identification gallery; the other images are probes."""
    rng = np.random.default_rng(seed)
    return np.sort([rng.choice(np.flatnonzero(labels == c)) for c in np.unique(labels)])
