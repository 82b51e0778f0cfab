"""Identity-leakage audit maths: how close is each synthetic identity to the REAL classes it must not copy?

Pure numpy on L2-normalised embeddings. For synthetic identity ``s`` with images ``x_1..x_n``:

- its centre ``c_s`` = normalised mean of its image embeddings;
- ``nearest_real`` = ``argmax_r cos(c_s, mu_r)`` over the real class centres ``mu_r`` (normalised), and
  ``nearest_real_similarity`` that cosine; ``parent_similarity`` = ``cos(c_s, mu_p)`` for each parent ``p``;
- ``leak_score`` = mean over its images of ``cos(x_i, mu_nearest)``: how close its IMAGES sit to that real centre;
- ``consistency`` = mean pairwise cosine between its images, ``(||sum_i x_i||^2 - n) / (n (n - 1))`` (1 = all the
  same identity; needs n >= 2).

An identity is flagged as leaking when ``leak_score >= threshold``. The default threshold is per real class: the
median ``cos(x, mu_r)`` of that class's OWN real images (:func:`real_reference`) — a synthetic identity whose
images sit as close to a real centre as that class's typical real image is, in the discriminator's eyes, that
real identity. An explicit float threshold (a cosine) replaces the rule.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..maths.centres import l2_normalise


@dataclass(frozen=True)
class IdentityAudit:
    identity: int
    parents: tuple[int, ...]
    images: int
    nearest_real: int
    nearest_real_similarity: float
    parent_similarity: tuple[float, ...]
    leak_score: float
    threshold: float
    consistency: float

    @property
    def flagged(self) -> bool:
        return self.leak_score >= self.threshold


def real_reference(real_emb: np.ndarray, real_labels: np.ndarray, num_classes: int, quantile: float = 0.5
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Normalised real class centres ``(C, D)`` and, per class, the ``quantile`` of its own images' cosine to its
    centre ``(C,)`` (NaN for a class without images)."""
    e = l2_normalise(np.asarray(real_emb, dtype=np.float64))
    sums = np.zeros((num_classes, e.shape[1]))
    np.add.at(sums, real_labels, e)
    centres = l2_normalise(sums)
    own = np.einsum("ij,ij->i", e, centres[real_labels])
    ref = np.full(num_classes, np.nan)
    for c in range(num_classes):
        if (real_labels == c).any():
            ref[c] = np.quantile(own[real_labels == c], quantile)
    return centres, ref


def consistency(unit: np.ndarray) -> float:
    n = len(unit)
    if n < 2:
        return float("nan")
    s = unit.sum(axis=0)
    return float((s @ s - n) / (n * (n - 1)))


def audit_identities(emb: np.ndarray, identity: np.ndarray, parents: dict[int, tuple[int, ...]], real_centres: np.ndarray,
                     real_ref: np.ndarray, threshold: float | None = None) -> list[IdentityAudit]:
    """One :class:`IdentityAudit` per synthetic identity id in ``identity`` (row labels of ``emb``), in id order."""
    e = l2_normalise(np.asarray(emb, dtype=np.float64))
    identity = np.asarray(identity)
    out = []
    for s in np.unique(identity):
        x = e[identity == s]
        centre = l2_normalise(x.mean(axis=0, keepdims=True))[0]
        sims = real_centres @ centre
        r = int(np.nanargmax(sims))
        out.append(IdentityAudit(
            identity=int(s),
            parents=tuple(parents[int(s)]),
            images=len(x),
            nearest_real=r,
            nearest_real_similarity=float(sims[r]),
            parent_similarity=tuple(float(sims[p]) for p in parents[int(s)]),
            leak_score=float((x @ real_centres[r]).mean()),
            threshold=float(real_ref[r] if threshold is None else threshold),
            consistency=consistency(x),
        ))
    return out


def summarise(audits: list[IdentityAudit], real_ref: np.ndarray, rule: str) -> dict:
    """The JSON summary: counts, distributions and the flagged identities."""
    flagged = [a for a in audits if a.flagged]
    leak = np.array([a.leak_score for a in audits])
    cons = np.array([a.consistency for a in audits])
    return {
        "identities": len(audits),
        "flagged": len(flagged),
        "flagged_fraction": len(flagged) / max(len(audits), 1),
        "rule": rule,
        "leak_score": {"mean": float(leak.mean()), "max": float(leak.max())},
        "nearest_real_similarity_mean": float(np.mean([a.nearest_real_similarity for a in audits])),
        "consistency_mean": float(np.nanmean(cons)) if np.isfinite(cons).any() else None,
        "real_own_similarity_median": float(np.nanmedian(real_ref)),
        "flagged_identities": [
            {"identity": a.identity, "parents": list(a.parents), "nearest_real": a.nearest_real,
             "leak_score": round(a.leak_score, 6), "threshold": round(a.threshold, 6)}
            for a in flagged
        ],
        "per_identity": [
            {"identity": a.identity, "parents": list(a.parents), "images": a.images, "nearest_real": a.nearest_real,
             "nearest_real_similarity": a.nearest_real_similarity, "parent_similarity": list(a.parent_similarity),
             "leak_score": a.leak_score, "threshold": a.threshold, "consistency": a.consistency, "flagged": a.flagged}
            for a in audits
        ],
    }
