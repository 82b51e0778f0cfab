"""Representation alignment between two spaces that describe the same N items (the paper's alignment analysis).

Rows are items (e.g. classes): ``X`` is ``(N, p)`` (generator condition vectors), ``Y`` is ``(N, q)`` (discriminator
class centres, or a second discriminator's). Every measure is 1 for a space against itself, an orthogonal rotation
of itself, or an isotropic scaling of it.

| measure                   | what it compares                                   | reference                               |
|---------------------------|----------------------------------------------------|-----------------------------------------|
| :func:`linear_cka`        | centred linear Gram matrices                       | Kornblith et al. 2019                   |
| :func:`debiased_linear_cka` | unbiased HSIC of linear Gram matrices            | Song et al. 2012; Nguyen et al. 2020    |
| :func:`mutual_knn`        | shared cosine k nearest neighbours                 | Huh et al. 2024                         |
| :func:`cknna`             | unbiased HSIC restricted to mutual kNN pairs       | Huh et al. 2024                         |
| :func:`distance_spearman` | rank correlation of pairwise cosine distances      | representational similarity analysis    |

CKA and debiased CKA use the feature-space identities ``<K, L> = ||X^T Y||_F^2`` and never build an ``N x N``
matrix; the kNN measures walk row blocks (:func:`scoremix_ds.maths.topk.knn_indices`), so memory stays
``O(block * N + N * k)``; the Spearman correlation uses all ``N(N-1)/2`` pairs up to ``max_pairs`` and a seeded
uniform sample of pairs above it.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr

from ..core.errors import ConfigError
from .topk import knn_indices, row_dots, sample_pair_indices

_HINT = "every class needs a finite, non-zero vector; restrict the `classes`"  # errors using it name `classes`


def _check(x: np.ndarray, y: np.ndarray, min_rows: int, nonzero: bool) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2:
        raise ConfigError(f"alignment needs two 2-D arrays, got shapes {x.shape} and {y.shape}", hint=_HINT, field="classes")
    if x.shape[0] != y.shape[0]:
        raise ConfigError(f"the two spaces describe {x.shape[0]} and {y.shape[0]} items; they must match row for row",
                          hint="compare the same `classes` in both spaces",
                          field="classes")
    if x.shape[0] < min_rows:
        raise ConfigError(f"this alignment measure needs at least {min_rows} items, got {x.shape[0]}",
                          hint="use more `classes`", field="classes")
    for name, a in (("first", x), ("second", y)):
        bad = ~np.isfinite(a).all(axis=1)
        if bad.any():
            raise ConfigError(f"the {name} space has NaN or infinite rows (items {np.flatnonzero(bad)[:5].tolist()})", hint=_HINT, field="classes")
        if nonzero:
            zero = ~(np.abs(a) > 0).any(axis=1)
            if zero.any():
                raise ConfigError(f"the {name} space has all-zero rows, whose cosine is undefined "
                                  f"(items {np.flatnonzero(zero)[:5].tolist()})", hint=_HINT, field="classes")
    return x, y


def _unit(a: np.ndarray) -> np.ndarray:
    return a / np.linalg.norm(a, axis=1, keepdims=True)


# --- CKA ---------------------------------------------------------------------------------------------------------


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA (Kornblith et al. 2019, "Similarity of Neural Network Representations Revisited").

    With column-centred ``Xc = H X``, ``Yc = H Y`` (``H = I - 11^T/n``):
    ``CKA = ||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F)``, which equals
    ``<HKH, HLH>_F / (||HKH||_F ||HLH||_F)`` for ``K = X X^T``, ``L = Y Y^T``. In ``[0, 1]``.
    """
    x, y = _check(x, y, 2, nonzero=False)
    xc = x - x.mean(axis=0)
    yc = y - y.mean(axis=0)
    num = np.linalg.norm(yc.T @ xc) ** 2
    den = np.linalg.norm(xc.T @ xc) * np.linalg.norm(yc.T @ yc)
    if den == 0:
        raise ConfigError("linear CKA is undefined: one space is constant across items", hint=_HINT, field="classes")
    return float(num / den)


def _hsic_unbiased_linear(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased HSIC (Song et al. 2012, eq. 5) of ``K = X X^T`` and ``L = Y Y^T`` without forming them.

    With ``K~``, ``L~`` the Gram matrices with zeroed diagonals:
    ``HSIC_1 = [tr(K~L~) + (1^T K~ 1)(1^T L~ 1)/((n-1)(n-2)) - 2/(n-2) 1^T K~ L~ 1] / (n(n-3))``, where
    ``tr(K~L~) = ||X^T Y||_F^2 - sum_i K_ii L_ii``, ``K~ 1 = X (X^T 1) - diag(K)``.
    """
    n = x.shape[0]
    dk = np.einsum("ij,ij->i", x, x)
    dl = np.einsum("ij,ij->i", y, y)
    tr = np.linalg.norm(x.T @ y) ** 2 - dk @ dl
    k1 = x @ x.sum(axis=0) - dk
    l1 = y @ y.sum(axis=0) - dl
    return float((tr + k1.sum() * l1.sum() / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * (k1 @ l1)) / (n * (n - 3)))


def debiased_linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Debiased linear CKA: ``HSIC_1(K, L) / sqrt(HSIC_1(K, K) HSIC_1(L, L))`` with the unbiased HSIC estimator of
    Song et al. 2012 (as proposed for CKA by Nguyen et al. 2020, "Do Wide and Deep Networks Learn the Same Things?").

    Near 0 for independent spaces even when ``p`` is comparable to ``n`` (plain CKA is biased upwards there); can be
    slightly negative. Needs ``n >= 4``. Features are centred first, which leaves the estimator unchanged.
    """
    x, y = _check(x, y, 4, nonzero=False)
    x = x - x.mean(axis=0)
    y = y - y.mean(axis=0)
    kk, ll = _hsic_unbiased_linear(x, x), _hsic_unbiased_linear(y, y)
    if kk <= 0 or ll <= 0:
        raise ConfigError("debiased CKA is undefined: a space has no (estimated) variance across items", hint=_HINT, field="classes")
    return _hsic_unbiased_linear(x, y) / float(np.sqrt(kk * ll))


# --- nearest-neighbour measures ----------------------------------------------------------------------------------


def _check_k(k: int, n: int, low: int) -> None:
    if not low <= k <= n - 1:
        raise ConfigError(f"k must lie in [{low}, {n - 1}] for {n} items, got {k}", hint=f"use `k` between {low} and {n - 1}",
                          field="k")


def mutual_knn(x: np.ndarray, y: np.ndarray, k: int = 10, block_rows: int | None = None) -> float:
    """Mutual k-nearest-neighbour alignment (Huh et al. 2024, "The Platonic Representation Hypothesis", §A).

    ``mean_i |N_X(i) ∩ N_Y(i)| / k`` where ``N(i)`` are the ``k`` nearest other items by cosine similarity.
    In ``[0, 1]``; about ``k / (n - 1)`` for independent spaces. Exact ties in similarity are broken by item index.
    """
    x, y = _check(x, y, 2, nonzero=True)
    n = x.shape[0]
    _check_k(k, n, 1)
    nx = knn_indices(_unit(x), k, block_rows)
    ny = knn_indices(_unit(y), k, block_rows)
    # rows of nx / ny hold distinct indices, so the shared count is the number of duplicates in their union
    both = np.sort(np.concatenate([nx, ny], axis=1), axis=1)
    shared = (both[:, 1:] == both[:, :-1]).sum(axis=1)
    return float(shared.mean() / k)


def _masked_hsic(rows: np.ndarray, cols: np.ndarray, a: np.ndarray, b: np.ndarray, n: int) -> float:
    """Song et al.'s unbiased HSIC of two sparse ``n x n`` matrices ``A``, ``B`` with nonzeros at (rows, cols)
    (zero diagonal), values ``a`` and ``b``; ``tr(AB) = sum_ij A_ij B_ji`` pairs each entry with its transpose."""
    if len(rows) == 0:  # no mutual neighbour at all: the masked kernels are zero
        return 0.0
    key = rows * n + cols
    tkey = cols * n + rows
    order = np.argsort(key)
    pos = np.clip(np.searchsorted(key[order], tkey), 0, len(key) - 1)
    hit = key[order][pos] == tkey
    tr = float((a[hit] * b[order][pos][hit]).sum())
    a_col = np.bincount(cols, weights=a, minlength=n)  # 1^T A
    b_row = np.bincount(rows, weights=b, minlength=n)  # B 1
    value = tr + a.sum() * b.sum() / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * float(a_col @ b_row)
    return value / (n * (n - 3))


def cknna(x: np.ndarray, y: np.ndarray, k: int = 10, block_rows: int | None = None) -> float:
    """CKNNA, "Centered Kernel Nearest-Neighbour Alignment" (Huh et al. 2024, "The Platonic Representation
    Hypothesis", §A, and their reference code ``metrics.py::cknna`` with ``unbiased=True``).

    Rows are L2-normalised and ``K = X X^T``, ``L = Y Y^T`` (cosine kernels). Let ``M`` be the mask of mutual
    neighbours, ``M_ij = 1[j in kNN_K(i) and j in kNN_L(i)]`` (self excluded; not symmetric), and ``M_K``, ``M_L``
    the masks of each space alone. With ``HSIC_1`` the unbiased estimator of Song et al. 2012:

        ``CKNNA = HSIC_1(M∘K, M∘L) / sqrt(HSIC_1(M_K∘K, M_K∘K) HSIC_1(M_L∘L, M_L∘L))``.

    (The reference code adds 1e-6 to the denominator; we do not.) With ``k = n - 1`` it equals the debiased CKA of
    the normalised rows. Needs ``n >= 4`` and ``2 <= k <= n - 1``. Built from ``n * k`` nonzeros, never ``n x n``.
    """
    x, y = _check(x, y, 4, nonzero=True)
    n = x.shape[0]
    _check_k(k, n, 2)
    xu, yu = _unit(x), _unit(y)
    nx = knn_indices(xu, k, block_rows)
    ny = knn_indices(yu, k, block_rows)
    rows = np.repeat(np.arange(n), k)

    cx, cy = nx.ravel(), ny.ravel()
    kx, ly = row_dots(xu, rows, cx), row_dots(yu, rows, cy)
    self_k = _masked_hsic(rows, cx, kx, kx, n)
    self_l = _masked_hsic(rows, cy, ly, ly, n)
    # mutual entries: (i, j) present in both neighbour lists
    kx_keys = rows * n + cx
    ly_keys = rows * n + cy
    mutual = np.isin(kx_keys, ly_keys)
    mr, mc = rows[mutual], cx[mutual]
    cross = _masked_hsic(mr, mc, row_dots(xu, mr, mc), row_dots(yu, mr, mc), n)
    den = self_k * self_l
    if den <= 0:
        raise ConfigError("CKNNA is undefined: a space's neighbour kernel has no (estimated) variance", hint="use a larger `k`", field="k")
    return float(cross / np.sqrt(den))


# --- distance rank correlation -----------------------------------------------------------------------------------


def distance_spearman(x: np.ndarray, y: np.ndarray, max_pairs: int | None = 2_000_000, seed: int = 0) -> float:
    """Spearman rank correlation between the two spaces' pairwise cosine distances ``1 - cos(v_i, v_j)``, ``i < j``.

    Pearson correlation of the average ranks. All ``n(n-1)/2`` pairs when that is at most ``max_pairs`` (or
    ``max_pairs`` is None); above it, the same seeded uniform sample of ``max_pairs`` pairs in both spaces.
    """
    x, y = _check(x, y, 3, nonzero=True)
    n = x.shape[0]
    ii, jj = sample_pair_indices(n, max_pairs, seed)
    xu, yu = _unit(x), _unit(y)
    dx = 1.0 - row_dots(xu, ii, jj)
    dy = 1.0 - row_dots(yu, ii, jj)
    if np.ptp(dx) == 0 or np.ptp(dy) == 0:
        raise ConfigError("Spearman correlation is undefined: all pairwise distances are equal in one space", hint=_HINT, field="classes")
    return float(spearmanr(dx, dy).statistic)  # Pearson correlation of the average ranks


def alignment_report(x: np.ndarray, y: np.ndarray, k: int = 10, seed: int = 0) -> dict[str, float]:
    """All five measures by name, in the table's order."""
    return {
        "linear_cka": linear_cka(x, y),
        "debiased_cka": debiased_linear_cka(x, y),
        "mutual_knn": mutual_knn(x, y, k),
        "cknna": cknna(x, y, k),
        "distance_spearman": distance_spearman(x, y, seed=seed),
    }
