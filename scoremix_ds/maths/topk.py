"""Cosine distances at scale: extreme pairs, nearest neighbours and pair samples without an ``N x N`` matrix.

Rows are walked in blocks of ``block_rows``: a block's similarities to the other rows are one ``(B, N)`` product,
reduced at once (``np.argpartition``) to per-row candidates, then merged. Memory is ``O(B * N + M)`` for ``M``
pairs kept, whatever ``N`` is. By default ``B`` is chosen so a block holds about 2^23 numbers (64 MiB in float64).

Ties are broken exactly like :func:`scoremix_ds.maths.pair_strategies.order_pairs`: by distance, then the first class id,
then the second, so the dense and the chunked answers agree pair for pair.
"""

from __future__ import annotations

import numpy as np

from ..core.errors import ConfigError
from ..core.validate import positive_count

_BLOCK_NUMBERS = 1 << 23


def _block_rows(n: int, block_rows: int | None) -> int:
    if block_rows is not None:
        if block_rows < 1:
            raise ConfigError(f"block_rows must be positive, got {block_rows}", hint="pass block_rows >= 1, or None to size blocks automatically")
        return block_rows
    return int(max(16, min(4096, _BLOCK_NUMBERS // max(n, 1))))


def unit_rows(vectors: np.ndarray, dtype: type = np.float64) -> np.ndarray:
    """L2-normalised rows; refuses NaN / infinite rows and all-zero rows (their cosine is undefined)."""
    v = np.asarray(vectors, dtype=dtype)
    if v.ndim != 2:
        raise ConfigError(f"expected an (N, D) array of vectors, got shape {v.shape}", hint="check the `discriminator` / `generator`",
                          fields=("discriminator", "generator"))
    bad = ~np.isfinite(v).all(axis=1)
    if bad.any():
        raise ConfigError(f"{int(bad.sum())} classes have NaN or infinite vectors (e.g. {np.flatnonzero(bad)[:5].tolist()})",
                          hint="every class needs real images; restrict the `classes`", field="classes")
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    zero = norms[:, 0] == 0
    if zero.any():
        raise ConfigError(f"{int(zero.sum())} classes have all-zero vectors (e.g. {np.flatnonzero(zero)[:5].tolist()})",
                          hint="every class needs a non-zero vector; restrict the `classes`", field="classes")
    return v / norms


def extreme_pairs(
    vectors: np.ndarray,
    num: int,
    largest: bool = True,
    block_rows: int | None = None,
    dtype: type = np.float64,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``num`` pairs ``(i, j)``, ``i < j``, with the largest (``largest``) or smallest cosine distance.

    Returns ``(pairs (M, 2) int64, distances (M,))`` in order (farthest or closest first), ``M = min(num, N(N-1)/2)``.
    Each block keeps, per row, its best ``num`` candidates plus any ties with the cut, so the merge is exact: a pair
    in the global top ``num`` is in the top ``num`` of its own row.

    >>> v = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.1]])
    >>> extreme_pairs(v, 1)[0].tolist()
    [[0, 2]]
    """
    u = unit_rows(vectors, dtype)
    n = len(u)
    positive_count("pairs", num)
    num = min(num, n * (n - 1) // 2)
    b = _block_rows(n, block_rows)
    best_i = np.empty(0, np.int64)
    best_j = np.empty(0, np.int64)
    best_key = np.empty(0, np.float64)  # smaller is better: -d for largest, d for smallest
    lower = np.tril(np.ones((b, b), dtype=bool))  # j <= i inside a diagonal block
    # Blocks are screened on the raw similarity (one comparison pass); the exact key -d or d, d = clip(1 - sim),
    # is computed only for the candidates. d is monotone in sim, so a threshold on sim with a small slack keeps
    # every pair that can enter the best `num`, ties included; the merge then cuts exactly.
    slack = 1e-9
    for s in range(0, n - 1, b):
        e = min(s + b, n)
        sim = u[s:e] @ u[s:].T  # (e-s, n-s): columns s..n-1
        sim[:, : e - s][lower[: e - s, : e - s]] = np.inf if largest else -np.inf  # only j > i
        flat = sim.ravel()
        if len(best_key) == num:  # the running best is full: only what beats (or ties) its worst can enter
            thr = 1.0 + best_key[-1] if largest else 1.0 - best_key[-1]
        else:
            valid = flat.size - (e - s) * (e - s + 1) // 2
            m = min(num, valid)
            if m == 0:
                continue
            thr = np.partition(flat, m - 1)[m - 1] if largest else np.partition(flat, flat.size - m)[flat.size - m]
        idx = np.flatnonzero(flat <= thr + slack) if largest else np.flatnonzero(flat >= thr - slack)
        if len(idx) == 0:
            continue
        d = np.clip(1.0 - flat[idx], 0.0, 2.0)
        rows, cols = np.divmod(idx, sim.shape[1])
        best_i = np.concatenate([best_i, rows + s])
        best_j = np.concatenate([best_j, cols + s])
        best_key = np.concatenate([best_key, -d if largest else d])
        order = np.lexsort((best_j, best_i, best_key))[:num]
        best_i, best_j, best_key = best_i[order], best_j[order], best_key[order]
    dist = -best_key if largest else best_key
    return np.stack([best_i, best_j], axis=1), dist


def knn_indices(unit: np.ndarray, k: int, block_rows: int | None = None) -> np.ndarray:
    """Indices ``(N, k)`` of each row's ``k`` most cosine-similar OTHER rows of the L2-normalised ``unit``,
    most similar first; exact ties broken by the lower index."""
    n = len(unit)
    b = _block_rows(n, block_rows)
    out = np.empty((n, k), dtype=np.int64)
    for s in range(0, n, b):
        e = min(s + b, n)
        sim = unit[s:e] @ unit.T
        sim[np.arange(e - s), np.arange(s, e)] = -np.inf  # never your own neighbour
        part = np.argpartition(-sim, k - 1, axis=1)[:, :k] if k < n else np.argsort(-sim, axis=1)[:, :k]
        psim = np.take_along_axis(sim, part, axis=1)
        order = np.lexsort((part, -psim), axis=1)  # similarity descending, then index
        out[s:e] = np.take_along_axis(part, order, axis=1)
        # a tie with the k-th similarity outside the partition: redo that row exactly, lower index first
        kth = psim.min(axis=1)
        for r in np.flatnonzero((sim >= kth[:, None]).sum(axis=1) > k):
            cand = np.flatnonzero(sim[r] >= kth[r])
            out[s + r] = cand[np.lexsort((cand, -sim[r, cand]))[:k]]
    return out


def sample_pair_indices(n: int, num: int | None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Row indices ``(i, j)``, ``i < j``: all ``n(n-1)/2`` pairs in ``np.triu_indices`` order when ``num`` is None or
    covers them, else ``num`` distinct pairs drawn uniformly without replacement for ``seed`` (sorted)."""
    total = n * (n - 1) // 2
    if num is None or num >= total:
        ii, jj = np.triu_indices(n, k=1)
        return ii.astype(np.int64), jj.astype(np.int64)
    if num <= 0:
        raise ConfigError(f"the number of sampled pairs must be positive, got {num}", hint="pass a count >= 1, or None for all pairs")
    flat = np.sort(np.random.default_rng(seed).choice(total, size=num, replace=False))
    rows = np.arange(n, dtype=np.int64)
    offsets = rows * (2 * n - rows - 1) // 2  # index of pair (i, i+1) in triu order
    ii = np.searchsorted(offsets, flat, side="right") - 1
    jj = flat - offsets[ii] + ii + 1
    return ii.astype(np.int64), jj.astype(np.int64)


def row_dots(unit: np.ndarray, ii: np.ndarray, jj: np.ndarray, chunk: int = 1 << 13) -> np.ndarray:
    """``<unit[ii[t]], unit[jj[t]]>`` for every t, gathered ``chunk`` pairs at a time."""
    out = np.empty(len(ii), dtype=np.float64)
    for s in range(0, len(ii), chunk):
        out[s:s + chunk] = np.einsum("ij,ij->i", unit[ii[s:s + chunk]], unit[jj[s:s + chunk]])
    return out


def pair_distance_sample(vectors: np.ndarray, num: int | None = 100_000, seed: int = 0) -> np.ndarray:
    """Cosine distances of ``num`` uniformly sampled distinct pairs (all pairs if fewer exist), for histograms and
    percentile bands at scale."""
    u = unit_rows(vectors)
    ii, jj = sample_pair_indices(len(u), num, seed)
    return np.clip(1.0 - row_dots(u, ii, jj), 0.0, 2.0)
