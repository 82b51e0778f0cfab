"""Choose class tuples straight from class VECTORS, at any number of classes.

:func:`scoremix_ds.maths.pair_strategies.select_pairs` works on full ``(C, C)`` distance matrices: exact and simple, but
``C = 50K`` classes would need 20 GB. :func:`select_tuples` takes the class vectors (discriminator centres and
generator condition vectors) instead and picks a path by size:

- up to :data:`DENSE_LIMIT` candidate classes: the dense matrices of the candidates, then ``select_pairs``;
- above it, never an ``N x N`` matrix:
  ``distant`` / ``close`` (and their ``-condition`` forms) walk the chunked top-k pairs
  (:func:`scoremix_ds.maths.pair_strategies.select_extreme_pairs`, the same pairs as the dense path);
  ``random`` draws uniformly random distinct pairs for the seed; ``band`` estimates the percentiles from
  :data:`BAND_SAMPLE` sampled pairs and draws random pairs inside them. Both go through the same capped greedy pick,
  so each pair is used once and classes spread; for a seed the picks are deterministic (but not the dense path's).
  Tuples of K > 2 are enumerated exactly and stay limited to :data:`scoremix_ds.maths.pair_strategies.MAX_TUPLES`.

Each chosen tuple also gets its MEAN pairwise cosine distance in both spaces (for a pair: its distance), computed
from the vectors row by row.
"""

from __future__ import annotations

import math

import numpy as np

from ..core.errors import ConfigError
from .pair_strategies import Strategy, as_strategy, check_selection, select_extreme_pairs, select_pairs
from .topk import pair_distance_sample, row_dots, unit_rows

DENSE_LIMIT = 2048  # candidate classes: 2048^2 float64 distances = 32 MiB per space
BAND_SAMPLE = 1_000_000  # sampled pairs that estimate the band's percentiles above DENSE_LIMIT
_DRAW = 1 << 16  # random candidate pairs drawn per round above DENSE_LIMIT
_STALL_ROUNDS = 16


def cosine_matrix(unit: np.ndarray) -> np.ndarray:
    d = 1.0 - unit @ unit.T
    np.fill_diagonal(d, 0.0)
    return np.clip(d, 0.0, 2.0)


def mean_pairwise_distance(tuples: np.ndarray, vectors: np.ndarray | None) -> np.ndarray:
    """Mean cosine distance over the ``K(K-1)/2`` pairs inside each row of ``tuples`` (NaN without vectors)."""
    if vectors is None:
        return np.full(len(tuples), np.nan)
    u = unit_rows(vectors)
    k = tuples.shape[1]
    total = np.zeros(len(tuples))
    for a in range(k):
        for b in range(a + 1, k):
            total += np.clip(1.0 - row_dots(u, tuples[:, a], tuples[:, b]), 0.0, 2.0)
    return total / (k * (k - 1) / 2)


def _space(strategy: Strategy, embedding: np.ndarray | None, condition: np.ndarray | None) -> np.ndarray | None:
    vectors = {"embedding": embedding, "condition": condition}.get(strategy.space)
    if strategy.space != "none" and vectors is None:
        raise ConfigError(f"strategy '{strategy.name}' needs {strategy.space} vectors", hint="check the `discriminator` / `generator`",
                          fields=("discriminator", "generator"))
    return vectors


def _random_order_greedy(n: int, num: int, accept, seed: int, max_uses: int | None) -> np.ndarray:
    """Capped greedy over uniformly drawn distinct pairs of ``range(n)`` that ``accept`` (a vectorised test).

    The cap starts at ``ceil(2 * num / n)`` and, like :func:`capped_greedy`, grows (up to ``max_uses``) when
    :data:`_STALL_ROUNDS` rounds of draws in a row add nothing."""
    rng = np.random.default_rng(seed)
    cap = max(1, math.ceil(2 * num / n))
    if max_uses is not None:
        cap = min(cap, max_uses)
    usage = np.zeros(n, dtype=np.int64)
    seen: set[tuple[int, int]] = set()
    chosen: list[tuple[int, int]] = []
    stalled = 0
    while len(chosen) < num:
        i = rng.integers(0, n, _DRAW)
        j = rng.integers(0, n - 1, _DRAW)
        j = j + (j >= i)  # uniform over j != i
        a, b = np.minimum(i, j), np.maximum(i, j)
        keep = accept(a, b)
        before = len(chosen)
        for x, y in zip(a[keep].tolist(), b[keep].tolist()):
            if (x, y) in seen or usage[x] >= cap or usage[y] >= cap:
                continue
            seen.add((x, y))
            usage[x] += 1
            usage[y] += 1
            chosen.append((x, y))
            if len(chosen) == num:
                break
        stalled = 0 if len(chosen) > before else stalled + 1
        if stalled >= _STALL_ROUNDS:
            if max_uses is not None and cap >= max_uses:
                raise ConfigError(
                    f"{num} pairs requested but the usage cap of {max_uses} per class admitted only {len(chosen)}",
                    hint=f"use `pairs` {len(chosen)} or fewer, or raise `max_uses`", fields=("pairs", "max_uses"),
                )
            cap += 1
            stalled = 0
    return np.asarray(chosen, dtype=np.int64).reshape(-1, 2)


def select_tuples(
    strategy: str | Strategy,
    num: int,
    classes: np.ndarray,
    embedding_vectors: np.ndarray | None = None,
    condition_vectors: np.ndarray | None = None,
    seed: int = 0,
    *,
    band: tuple[float, float] | None = None,
    max_uses: int | None = None,
) -> np.ndarray:
    """``num`` class tuples ``(num, K)`` (class ids, sorted within a row) for ``strategy``, from class vectors
    indexed by class id (``(C, D)``; only the rows of ``classes`` are read)."""
    s = as_strategy(strategy)
    classes = np.unique(np.asarray(classes, dtype=np.int64))
    vectors = _space(s, embedding_vectors, condition_vectors)
    if len(classes) <= DENSE_LIMIT or s.size > 2:
        # Local ids 0..n-1 keep the class order, so ties and the seeded order match select_pairs on class ids.
        local = {}
        if vectors is not None:
            sub = np.asarray(vectors, dtype=np.float64)[classes]
            good = np.isfinite(sub).all(axis=1) & (np.linalg.norm(np.nan_to_num(sub), axis=1) > 0)
            d = np.full((len(classes),) * 2, np.nan)  # NaN rows: select_pairs refuses them if a tuple needs one
            if good.any():
                d[np.ix_(good, good)] = cosine_matrix(unit_rows(sub[good]))
            local[s.space] = d
        picked = select_pairs(s, num, np.arange(len(classes)), local.get("embedding"), local.get("condition"), seed,
                              band=band, max_uses=max_uses)
        return classes[picked]
    band = check_selection(s, num, band, max_uses)
    total = len(classes) * (len(classes) - 1) // 2
    if num > total:
        raise ConfigError(f"{num} pairs requested but only {total} distinct pairs exist among {len(classes)} classes",
                          hint=f"use `pairs` {total} or fewer", field="pairs")
    if s.space != "none" and not s.banded:
        return select_extreme_pairs(vectors, num, classes, s.descending, max_uses)
    if not s.banded:
        local = _random_order_greedy(len(classes), num, lambda a, b: np.ones(len(a), dtype=bool), seed, max_uses)
        return classes[local]
    lo, hi = band
    u = unit_rows(np.asarray(vectors)[classes])
    sample = pair_distance_sample(u, BAND_SAMPLE, seed)
    p_lo, p_hi = np.percentile(sample, [lo, hi])
    expected = int(np.mean((sample >= p_lo) & (sample <= p_hi)) * total)
    if num > expected:
        raise ConfigError(f"{num} pairs requested but about {expected} pairs lie in band {lo:g} {hi:g}",
                          hint=f"use `pairs` {expected} or fewer, or widen the `band`", fields=("pairs", "band"))

    def inside(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        d = np.clip(1.0 - row_dots(u, a, b), 0.0, 2.0)
        return (d >= p_lo) & (d <= p_hi)

    local = _random_order_greedy(len(classes), num, inside, seed, max_uses)
    return classes[local]


__all__ = ["DENSE_LIMIT", "cosine_matrix", "mean_pairwise_distance", "select_tuples"]
