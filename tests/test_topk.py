"""Chunked cosine top-k / bottom-k pairs, kNN and pair samples against the dense N x N computation."""

from __future__ import annotations

import numpy as np
import pytest

from scoremix_ds.core.errors import ConfigError
from scoremix_ds.maths.centres import cosine_distances
from scoremix_ds.maths.pair_strategies import STRATEGIES, candidate_pairs, order_pairs
from scoremix_ds.maths.topk import (
    extreme_pairs,
    knn_indices,
    pair_distance_sample,
    sample_pair_indices,
    unit_rows,
)


def dense_extreme(v, num, largest):
    """The same order that maths/pair_strategies.py uses for 'distant' / 'close' on the full matrix."""
    d = cosine_distances(v)
    pairs = candidate_pairs(np.arange(len(v)))
    order = order_pairs(pairs, STRATEGIES["distant" if largest else "close"], d, seed=0)[:num]
    return pairs[order], d[pairs[order, 0], pairs[order, 1]]


@pytest.mark.parametrize("largest", [True, False])
@pytest.mark.parametrize("block_rows", [1, 3, 16, None])
@pytest.mark.parametrize("num", [1, 7, 40, 10_000])
def test_extreme_pairs_match_dense(largest, block_rows, num):
    v = np.random.default_rng(num).normal(size=(23, 6))
    got_p, got_d = extreme_pairs(v, num, largest=largest, block_rows=block_rows)
    want_p, want_d = dense_extreme(v, num, largest)
    assert got_p.tolist() == want_p.tolist()
    np.testing.assert_allclose(got_d, want_d, atol=1e-12)
    assert len(got_p) == min(num, 23 * 22 // 2)


@pytest.mark.parametrize("block_rows", [1, 2, 5])
def test_ties_broken_by_class_ids_like_pairs_py(block_rows):
    v = np.array([[1.0, 0], [0, 1], [-1, 0], [0, -1], [1, 0], [0, 1]])  # distances in {0, 1, 2}, many ties
    for largest in (True, False):
        for num in range(1, 16):
            got, _ = extreme_pairs(v, num, largest=largest, block_rows=block_rows)
            want, _ = dense_extreme(v, num, largest)
            assert got.tolist() == want.tolist(), (largest, num)


def test_float32_agrees_on_well_separated_distances():
    v = np.random.default_rng(1).normal(size=(60, 8))
    a, _ = extreme_pairs(v, 20, dtype=np.float32, block_rows=16)
    b, _ = extreme_pairs(v, 20)
    assert a.tolist() == b.tolist()


def test_knn_indices_match_dense():
    u = unit_rows(np.random.default_rng(2).normal(size=(30, 4)))
    sim = u @ u.T
    np.fill_diagonal(sim, -np.inf)
    want = np.argsort(-sim, axis=1, kind="stable")[:, :5]
    for b in (1, 4, None):
        assert knn_indices(u, 5, b).tolist() == want.tolist()


def test_knn_ties_prefer_lower_index():
    u = unit_rows(np.array([[1.0, 0], [0, 1], [0, 1], [0, 1], [-1, 0]]))
    got = knn_indices(u, 2, block_rows=2)
    assert got[0].tolist() == [1, 2]  # 1, 2, 3 tie for row 0
    assert got[1].tolist() == [2, 3]


def test_sample_pair_indices():
    ii, jj = sample_pair_indices(6, None)
    assert list(zip(ii, jj)) == [(i, j) for i in range(6) for j in range(i + 1, 6)]
    ii, jj = sample_pair_indices(1000, 5000, seed=3)
    assert (ii < jj).all() and jj.max() < 1000
    assert len(set(zip(ii.tolist(), jj.tolist()))) == 5000  # without replacement
    a = sample_pair_indices(1000, 50, seed=3)
    assert all((x == y).all() for x, y in zip(a, sample_pair_indices(1000, 50, seed=3)))
    # every flat index maps back to a valid (i, j): the last pair too
    ii, jj = sample_pair_indices(4, 5, seed=0)
    assert set(zip(ii.tolist(), jj.tolist())) <= {(i, j) for i in range(4) for j in range(i + 1, 4)}


def test_pair_distance_sample_all_pairs_equals_dense_upper_triangle():
    v = np.random.default_rng(4).normal(size=(9, 3))
    d = cosine_distances(v)
    np.testing.assert_allclose(pair_distance_sample(v, None), d[np.triu_indices(9, 1)], atol=1e-12)
    s = pair_distance_sample(v, 10, seed=1)
    assert s.shape == (10,) and np.isin(np.round(s, 12), np.round(d[np.triu_indices(9, 1)], 12)).all()


def test_bad_vectors_refused():
    v = np.ones((5, 3))
    v[1] = np.nan
    with pytest.raises(ConfigError, match="NaN"):
        extreme_pairs(v, 2)
    v[1] = 0
    with pytest.raises(ConfigError, match="zero"):
        extreme_pairs(v, 2)
    with pytest.raises(ConfigError) as info:
        extreme_pairs(np.eye(3), 0)
    assert info.value.field == "pairs" and "pairs" in info.value.hint  # the library names the field...
    from scoremix_ds.cli.boundary import error_line

    assert "--pairs" in error_line(info.value, ["build"])  # ...and the CLI names build's flag for it


# --- capped greedy on the chunked order equals the dense strategy -----------------------------------------------


@pytest.mark.parametrize("descending", [True, False])
@pytest.mark.parametrize("num", [1, 5, 20, 60, 190])
def test_select_extreme_pairs_equals_dense_select_pairs(descending, num):
    from scoremix_ds.maths.pair_strategies import select_extreme_pairs, select_pairs

    v = np.random.default_rng(num).normal(size=(20, 6))
    d = cosine_distances(v)
    name = "distant" if descending else "close"
    want = select_pairs(name, num, np.arange(20), embedding_distances=d)
    got = select_extreme_pairs(v, num, np.arange(20), descending, block_rows=3)
    assert got.tolist() == want.tolist()
    classes = np.array([17, 2, 9, 4, 11, 5, 0])  # a subset, unsorted
    n = min(num, 21)
    assert (select_extreme_pairs(v, n, classes, descending).tolist()
            == select_pairs(name, n, classes, embedding_distances=d).tolist())


def test_select_extreme_pairs_refusals():
    from scoremix_ds.maths.pair_strategies import select_extreme_pairs

    v = np.random.default_rng(0).normal(size=(6, 3))
    with pytest.raises(ConfigError) as info:
        select_extreme_pairs(v, 16, np.arange(6), True)
    assert "only 15" in info.value.message and "`pairs` 15" in info.value.hint
    with pytest.raises(ConfigError, match="admits only 3"):
        select_extreme_pairs(v, 4, np.arange(6), True, max_uses=1)
    v[2] = np.nan
    with pytest.raises(ConfigError, match="NaN"):
        select_extreme_pairs(v, 1, np.arange(6), True)


@pytest.mark.parametrize("num", [2, 5, 9])
def test_select_extreme_pairs_grows_the_candidates_when_a_hub_fills_them(num):
    """Class 0 is opposite to all others: the best 19 pairs all contain it, so the cap-1 pass needs more than the
    first 4 * num candidates."""
    from scoremix_ds.maths.pair_strategies import select_extreme_pairs, select_pairs

    rng = np.random.default_rng(1)
    v = np.eye(6)[0] + 0.1 * rng.normal(size=(20, 6))
    v[0] = -np.eye(6)[0]
    d = cosine_distances(v)
    want = select_pairs("distant", num, np.arange(20), embedding_distances=d)
    assert want[0, 0] == 0 and (want[1:] != 0).all()
    assert select_extreme_pairs(v, num, np.arange(20), True, block_rows=4).tolist() == want.tolist()
