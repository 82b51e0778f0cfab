"""1:N closed-set identification (TinyFace-style gallery/probe), pure numpy.

Every probe is compared (cosine of unit embeddings) with every gallery image; distractors are gallery images whose
identity matches no probe (label -1, or any label absent from the probes). The rank of a probe is::

    rank = 1 + #{non-mate gallery images scoring strictly above the probe's best mate}

(the position of its first correct match, ties resolved in the mate's favour). Rank-k accuracy (one point of the
CMC curve) is the fraction of probes with ``rank <= k``; a probe without any mate in the gallery never counts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.errors import DataError

_HINT = "check the gallery/probe split"


@dataclass(frozen=True)
class IdentificationResult:
    """Rank-k accuracies ``{k: accuracy}``, and the counts that produced them."""

    rank_accuracy: dict[int, float]
    num_probes: int
    num_gallery: int
    num_distractors: int
    probes_without_mate: int


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def probe_ranks(
    probe_emb: np.ndarray, probe_labels: np.ndarray, gallery_emb: np.ndarray, gallery_labels: np.ndarray,
    chunk: int = 256,
) -> np.ndarray:
    """The rank of each probe (module docstring); ``np.iinfo(int64).max`` for a probe with no mate in the gallery.

    The similarity matrix is built ``chunk`` probes at a time, so memory is ``chunk x len(gallery)`` floats.
    """
    probe_labels, gallery_labels = np.asarray(probe_labels).ravel(), np.asarray(gallery_labels).ravel()
    if len(probe_emb) != len(probe_labels) or len(gallery_emb) != len(gallery_labels):
        raise DataError("embeddings and labels differ in length", hint=_HINT)
    if len(gallery_emb) == 0 or len(probe_emb) == 0:
        raise DataError("identification needs a non-empty gallery and probe set", hint=_HINT)
    p, g = _unit(probe_emb), _unit(gallery_emb)
    ranks = np.empty(len(p), dtype=np.int64)
    for s in range(0, len(p), chunk):
        sim = p[s : s + chunk] @ g.T
        mate = probe_labels[s : s + chunk, None] == gallery_labels[None, :]
        best = np.where(mate, sim, -np.inf).max(axis=1)
        above = ((sim > best[:, None]) & ~mate).sum(axis=1)
        ranks[s : s + chunk] = np.where(np.isfinite(best), 1 + above, np.iinfo(np.int64).max)
    return ranks


def identification(
    probe_emb: np.ndarray, probe_labels: np.ndarray, gallery_emb: np.ndarray, gallery_labels: np.ndarray,
    distractor_emb: np.ndarray | None = None, ranks: tuple[int, ...] = (1, 5, 10, 20),
) -> IdentificationResult:
    """Rank-k accuracy of probes against ``gallery`` plus optional ``distractor_emb`` (identities outside the probes).

    >>> e = np.eye(3, dtype=np.float32)
    >>> identification(e, [0, 1, 2], e[[0, 2, 1]], [0, 2, 1]).rank_accuracy[1]
    1.0
    """
    probe_labels, gallery_labels = np.asarray(probe_labels).ravel(), np.asarray(gallery_labels).ravel()
    _, codes = np.unique(np.concatenate([probe_labels, gallery_labels]), return_inverse=True)  # any label type
    probe_codes, gallery_codes = codes[: len(probe_labels)], codes[len(probe_labels) :]
    gallery_emb = np.asarray(gallery_emb, dtype=np.float32)
    num_distractors = int(np.sum(~np.isin(gallery_codes, probe_codes)))
    if distractor_emb is not None and len(distractor_emb):
        distractor_emb = np.asarray(distractor_emb, dtype=np.float32)
        if distractor_emb.shape[1:] != gallery_emb.shape[1:]:
            raise DataError("distractor and gallery embeddings differ in size", hint=_HINT)
        gallery_emb = np.concatenate([gallery_emb, distractor_emb])
        gallery_codes = np.r_[gallery_codes, np.full(len(distractor_emb), -1)]  # -1: no probe's identity
        num_distractors += len(distractor_emb)
    if any(k < 1 for k in ranks):
        raise DataError(f"ranks must be >= 1, got {ranks}", hint="pass ranks >= 1, e.g. ranks=(1, 5)")
    r = probe_ranks(probe_emb, probe_codes, gallery_emb, gallery_codes)
    return IdentificationResult(
        rank_accuracy={int(k): float(np.mean(r <= k)) for k in ranks},
        num_probes=len(r),
        num_gallery=len(gallery_codes),
        num_distractors=num_distractors,
        probes_without_mate=int(np.sum(r == np.iinfo(np.int64).max)),
    )
