"""Alignment measures (CKA, debiased CKA, mutual kNN, CKNNA, distance Spearman) on cases with known answers and
against straightforward reference implementations (explicit centering matrices, Gram matrices and loops)."""

from __future__ import annotations

import numpy as np
import pytest

from scoremix_ds.core.errors import ConfigError
from scoremix_ds.maths.alignment import (
    alignment_report,
    cknna,
    debiased_linear_cka,
    distance_spearman,
    linear_cka,
    mutual_knn,
)

# --- reference implementations: n x n matrices, loops, no shortcuts -------------------------------------------------


def ref_linear_cka(x, y):
    n = len(x)
    h = np.eye(n) - np.ones((n, n)) / n
    k, l_ = h @ (x @ x.T) @ h, h @ (y @ y.T) @ h
    return np.sum(k * l_) / (np.linalg.norm(k) * np.linalg.norm(l_))


def ref_hsic_unbiased(k, l_):
    """Song et al. 2012, eq. 5, term by term with loops."""
    n = len(k)
    kt, lt = k.copy(), l_.copy()
    for i in range(n):
        kt[i, i] = lt[i, i] = 0.0
    tr = sum(kt[i, j] * lt[j, i] for i in range(n) for j in range(n))
    sk = sum(kt[i, j] for i in range(n) for j in range(n))
    sl = sum(lt[i, j] for i in range(n) for j in range(n))
    kl1 = sum(kt[i, m] * lt[m, j] for i in range(n) for m in range(n) for j in range(n))
    return (tr + sk * sl / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * kl1) / (n * (n - 3))


def ref_debiased_cka(x, y):
    k, l_ = x @ x.T, y @ y.T  # uncentred: the unbiased estimator does its own centring
    return ref_hsic_unbiased(k, l_) / np.sqrt(ref_hsic_unbiased(k, k) * ref_hsic_unbiased(l_, l_))


def _unit(a):
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def ref_knn(u, k):
    n = len(u)
    out = []
    for i in range(n):
        sims = [(-(u[i] @ u[j]), j) for j in range(n) if j != i]
        out.append([j for _, j in sorted(sims)[:k]])
    return out


def ref_mutual_knn(x, y, k):
    nx, ny = ref_knn(_unit(x), k), ref_knn(_unit(y), k)
    return np.mean([len(set(a) & set(b)) / k for a, b in zip(nx, ny)])


def ref_cknna(x, y, k):
    """Huh et al. 2024 metrics.py::cknna(unbiased=True), with dense masks."""
    xu, yu = _unit(x), _unit(y)
    n = len(x)
    kk, ll = xu @ xu.T, yu @ yu.T

    def mask(g):
        m = np.zeros((n, n))
        for i, nb in enumerate(ref_knn_from_gram(g, k)):
            m[i, nb] = 1.0
        return m

    mk, ml = mask(kk), mask(ll)
    m = mk * ml
    return ref_hsic_unbiased(m * kk, m * ll) / np.sqrt(ref_hsic_unbiased(mk * kk, mk * kk) * ref_hsic_unbiased(ml * ll, ml * ll))


def ref_knn_from_gram(g, k):
    n = len(g)
    return [[j for _, j in sorted((-g[i, j], j) for j in range(n) if j != i)[:k]] for i in range(n)]


def ref_rank(v):
    r = np.empty(len(v))
    for i, a in enumerate(v):
        r[i] = 1 + np.sum(v < a) + (np.sum(v == a) - 1) / 2.0
    return r


def ref_spearman(x, y):
    xu, yu = _unit(x), _unit(y)
    n = len(x)
    dx = [1 - xu[i] @ xu[j] for i in range(n) for j in range(i + 1, n)]
    dy = [1 - yu[i] @ yu[j] for i in range(n) for j in range(i + 1, n)]
    return np.corrcoef(ref_rank(np.array(dx)), ref_rank(np.array(dy)))[0, 1]


# --- known answers -------------------------------------------------------------------------------------------------

MEASURES = {
    "linear_cka": linear_cka,
    "debiased_cka": debiased_linear_cka,
    "mutual_knn": lambda a, b: mutual_knn(a, b, k=5),
    "cknna": lambda a, b: cknna(a, b, k=5),
    "distance_spearman": distance_spearman,
}


def _orthogonal(d, seed):
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(d, d)))
    return q * np.sign(np.diag(r))


@pytest.mark.parametrize("name", list(MEASURES))
def test_self_rotation_and_scaling_give_one(name):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 16))
    f = MEASURES[name]
    assert f(x, x) == pytest.approx(1.0, abs=1e-10)
    assert f(x, x @ _orthogonal(16, 1)) == pytest.approx(1.0, abs=1e-10)
    assert f(x, 3.7 * x) == pytest.approx(1.0, abs=1e-10)
    assert f(x, 0.2 * x @ _orthogonal(16, 2)) == pytest.approx(1.0, abs=1e-10)


def test_orthogonal_rotation_into_a_wider_space_gives_one():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(40, 8))
    y = x @ _orthogonal(20, 4)[:8]  # 8 orthonormal rows: an isometry into 20-d
    for name, f in MEASURES.items():
        assert f(x, y) == pytest.approx(1.0, abs=1e-10), name


def test_independent_random_spaces():
    """200 x 64 independent Gaussians. Bounds: debiased CKA and Spearman |.| < 0.05 (chance level is 0);
    mutual kNN (k=10) < 0.15 (chance k/(n-1) = 0.05); CKNNA |.| < 0.1; plain linear CKA is biased upwards when
    p ~ n (about p / (p + n) ~ 0.24 here), so only < 0.4 -- the reason to report the debiased form."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(200, 64)), rng.normal(size=(200, 64))
    r = alignment_report(x, y, k=10)
    assert abs(r["debiased_cka"]) < 0.05, r
    assert abs(r["distance_spearman"]) < 0.05, r
    assert 0.0 <= r["mutual_knn"] < 0.15, r
    assert abs(r["cknna"]) < 0.1, r
    assert 0.0 < r["linear_cka"] < 0.4, r


def test_partly_shared_space_lies_in_between():
    rng = np.random.default_rng(5)
    shared = rng.normal(size=(150, 10))
    x = np.hstack([shared, rng.normal(size=(150, 10))])
    y = np.hstack([shared @ _orthogonal(10, 6), rng.normal(size=(150, 10))])
    r = alignment_report(x, y, k=10)
    for name, v in r.items():
        assert 0.1 < v < 0.95, (name, r)


# --- equal to the reference implementations ----------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_match_reference_on_small_inputs(seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(12, 5)) + rng.normal(size=5)  # off-centre on purpose
    y = rng.normal(size=(12, 7)) + 0.5 * np.hstack([x, x[:, :2]])
    assert linear_cka(x, y) == pytest.approx(ref_linear_cka(x, y), abs=1e-10)
    assert debiased_linear_cka(x, y) == pytest.approx(ref_debiased_cka(x, y), abs=1e-10)
    assert distance_spearman(x, y) == pytest.approx(ref_spearman(x, y), abs=1e-10)
    for k in (2, 3, 5, 11):
        assert mutual_knn(x, y, k) == pytest.approx(ref_mutual_knn(x, y, k), abs=1e-10), k
        assert cknna(x, y, k) == pytest.approx(ref_cknna(x, y, k), abs=1e-10), k


def test_cknna_with_all_neighbours_is_debiased_cka_of_unit_rows():
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=(15, 4)), rng.normal(size=(15, 6))
    y[:, :4] += x
    assert cknna(x, y, k=14) == pytest.approx(ref_debiased_cka(_unit(x), _unit(y)), abs=1e-10)


def test_spearman_with_ties_matches_reference():
    x = np.array([[1.0, 0], [0, 1], [-1, 0], [0, -1], [1, 1]])  # many equal distances
    y = np.array([[1.0, 0.1], [0.2, 1], [-1, 0], [0, -1], [1, 2]])
    assert distance_spearman(x, y) == pytest.approx(ref_spearman(x, y), abs=1e-10)


def test_spearman_pair_sample_is_seeded_and_close_to_full():
    rng = np.random.default_rng(8)
    x = rng.normal(size=(120, 6))
    y = x + 0.5 * rng.normal(size=(120, 6))
    full = distance_spearman(x, y, max_pairs=None)
    a = distance_spearman(x, y, max_pairs=2000, seed=1)
    assert a == distance_spearman(x, y, max_pairs=2000, seed=1)
    assert a != distance_spearman(x, y, max_pairs=2000, seed=2)
    assert abs(a - full) < 0.05


def test_block_rows_do_not_change_knn_measures():
    rng = np.random.default_rng(9)
    x, y = rng.normal(size=(50, 5)), rng.normal(size=(50, 5))
    assert mutual_knn(x, y, 4, block_rows=7) == mutual_knn(x, y, 4)
    assert cknna(x, y, 4, block_rows=3) == pytest.approx(cknna(x, y, 4), abs=1e-12)


# --- bad input ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(MEASURES))
def test_nan_rows_refused(name):
    x = np.random.default_rng(0).normal(size=(10, 3))
    y = x.copy()
    y[4] = np.nan
    with pytest.raises(ConfigError) as info:
        MEASURES[name](x, y)
    assert "NaN" in info.value.message and "`classes`" in info.value.hint and "classes" in info.value.fields


@pytest.mark.parametrize("name", ["mutual_knn", "cknna", "distance_spearman"])
def test_zero_rows_refused_for_cosine_measures(name):
    x = np.random.default_rng(0).normal(size=(10, 3))
    x[2] = 0.0
    with pytest.raises(ConfigError) as info:
        MEASURES[name](x, x)
    assert "zero" in info.value.message


def test_mismatched_rows_and_bad_k_refused():
    rng = np.random.default_rng(0)
    with pytest.raises(ConfigError, match="row for row"):
        linear_cka(rng.normal(size=(10, 3)), rng.normal(size=(9, 3)))
    x = rng.normal(size=(10, 3))
    for k in (0, 10):
        with pytest.raises(ConfigError) as info:
            mutual_knn(x, x, k)
        assert "`k`" in info.value.hint and info.value.field == "k"
    with pytest.raises(ConfigError):
        cknna(x, x, 1)
    with pytest.raises(ConfigError, match="at least 4"):
        debiased_linear_cka(x[:3], x[:3])


def test_disjoint_neighbourhoods():
    """8 points on a circle: in x the neighbours of i are i±1; in y (item i moved to angle 3i) they are i±3."""
    angles = np.arange(8) * np.pi / 4
    x = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    y = x[(np.arange(8) * 3) % 8]
    assert mutual_knn(x, y, 2) == 0.0
    assert cknna(x, y, 2) == 0.0
    assert cknna(x, y, 2) == pytest.approx(ref_cknna(x, y, 2), abs=1e-10)
