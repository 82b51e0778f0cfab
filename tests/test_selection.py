"""Selection from class vectors (``maths/selection.py``): the dense path equals ``select_pairs``; the path that
never builds an N x N matrix gives the same distant/close pairs and valid random/band picks."""

from __future__ import annotations

import numpy as np
import pytest

import scoremix_ds.maths.selection as selection
from scoremix_ds.core.errors import ConfigError
from scoremix_ds.maths.centres import cosine_distances
from scoremix_ds.maths.pair_strategies import select_pairs
from scoremix_ds.maths.selection import mean_pairwise_distance, select_tuples

V = np.random.default_rng(0).normal(size=(40, 8))
D = cosine_distances(V)


@pytest.mark.parametrize("strategy", ["random", "distant", "close", "distant-condition", "close-condition", "band"])
def test_dense_path_equals_select_pairs_on_matrices(strategy):
    band = (30, 70) if strategy == "band" else None
    classes = np.arange(3, 37)  # a subset: class ids are remapped internally and must come back
    got = select_tuples(strategy, 12, classes, V, V, seed=5, band=band)
    want = select_pairs(strategy, 12, classes, D, D, seed=5, band=band)
    np.testing.assert_array_equal(got, want)


def test_triplets_equal_select_pairs():
    got = select_tuples("distant-triplets", 5, np.arange(12), V, None, seed=0)
    np.testing.assert_array_equal(got, select_pairs("distant-triplets", 5, np.arange(12), D, None))


@pytest.fixture
def chunked(monkeypatch):
    monkeypatch.setattr(selection, "DENSE_LIMIT", 10)  # 40 classes now take the large-N path


@pytest.mark.parametrize("strategy", ["distant", "close"])
def test_chunked_extremes_match_the_dense_answer(chunked, strategy):
    got = select_tuples(strategy, 25, np.arange(40), V, V)
    np.testing.assert_array_equal(got, select_pairs(strategy, 25, np.arange(40), D, D))


@pytest.mark.parametrize("strategy,band", [("random", None), ("band", (25, 75))])
def test_chunked_random_and_band_are_valid_and_deterministic(chunked, strategy, band):
    got = select_tuples(strategy, 30, np.arange(40), V, V, seed=3, band=band)
    assert got.shape == (30, 2) and (got[:, 0] < got[:, 1]).all()
    assert len({tuple(p) for p in got.tolist()}) == 30  # each pair once
    assert np.bincount(got.ravel()).max() <= 2  # cap ceil(2 * 30 / 40) = 2
    np.testing.assert_array_equal(got, select_tuples(strategy, 30, np.arange(40), V, V, seed=3, band=band))
    assert not np.array_equal(got, select_tuples(strategy, 30, np.arange(40), V, V, seed=4, band=band))
    if band:
        lo, hi = np.percentile(D[np.triu_indices(40, 1)], band)
        d = D[got[:, 0], got[:, 1]]
        assert ((d >= lo - 0.05) & (d <= hi + 0.05)).all()  # percentiles estimated from (here: all) sampled pairs


def test_chunked_refusals(chunked):
    with pytest.raises(ConfigError, match="only 780 distinct pairs"):
        select_tuples("random", 781, np.arange(40), V, V)
    with pytest.raises(ConfigError, match="about .* pairs lie in band") as info:
        select_tuples("band", 500, np.arange(40), V, V, band=(40, 45))
    assert info.value.fields == ("pairs", "band")  # the fields; the CLI names their flags
    with pytest.raises(ConfigError, match="usage cap of 1"):
        select_tuples("random", 21, np.arange(40), V, V, max_uses=1)  # 40 classes, cap 1: at most 20 disjoint pairs
    bad = V.copy()
    bad[7] = np.nan
    with pytest.raises(ConfigError, match="NaN"):
        select_tuples("distant", 5, np.arange(40), bad, V)


def test_dense_refusals():
    bad = V.copy()
    bad[2] = 0.0
    with pytest.raises(ConfigError, match="no embedding vector"):
        select_tuples("distant", 100, np.arange(10), bad, V)  # all 45 pairs would need class 2
    with pytest.raises(ConfigError, match="at least 3 classes"):
        select_tuples("close-triplets", 1, np.arange(2), V, V)
    with pytest.raises(ConfigError, match="selects no pair|lie in --band"):
        select_tuples("band", 3, np.arange(5), V, V, band=(50, 50))


def test_mean_pairwise_distance_by_hand():
    v = np.array([[1.0, 0.0], [0.0, 2.0], [-1.0, 0.0]])
    # d(0,1) = 1, d(0,2) = 2, d(1,2) = 1
    np.testing.assert_allclose(mean_pairwise_distance(np.array([[0, 1], [0, 2]]), v), [1.0, 2.0])
    np.testing.assert_allclose(mean_pairwise_distance(np.array([[0, 1, 2]]), v), [4.0 / 3.0])
    assert np.isnan(mean_pairwise_distance(np.array([[0, 1]]), None)).all()
