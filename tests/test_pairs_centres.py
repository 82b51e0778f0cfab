"""Class centres, cosine distances, pair strategies and per-image seeds against hand-made inputs."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pytest

from scoremix_ds.synthesis.planning.mix_plan import make_plan, sample_seed
from scoremix_ds.core.errors import ConfigError
from scoremix_ds.maths.centres import class_centres, cosine_distances
from scoremix_ds.maths.pair_strategies import STRATEGIES as ALL
from scoremix_ds.maths.pair_strategies import candidate_pairs, capped_greedy, select_pairs

from hints import as_build_prints


# --- centres and distances -------------------------------------------------------------------------------------


def test_class_centres_hand_computed():
    emb = np.array([[3.0, 4.0],  # class 0 -> (0.6, 0.8)
                    [0.0, 2.0],  # class 0 -> (0, 1)
                    [5.0, 0.0],  # class 1 -> (1, 0)
                    [-1.0, 0.0]])  # class 2 -> (-1, 0)
    labels = np.array([0, 0, 1, 2])
    c = class_centres(emb, labels, num_classes=4)
    assert c.shape == (4, 2)
    np.testing.assert_allclose(c[0], [0.3, 0.9])  # mean of normalised rows, not normalise of the mean
    np.testing.assert_allclose(c[1], [1.0, 0.0])
    np.testing.assert_allclose(c[2], [-1.0, 0.0])
    assert np.isnan(c[3]).all()  # class 3 has no sample


def test_class_centres_ignores_scale_of_each_row():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(6, 5))
    labels = np.array([0, 0, 0, 1, 1, 1])
    scaled = emb * rng.uniform(0.1, 10.0, size=(6, 1))
    np.testing.assert_allclose(class_centres(emb, labels, 2), class_centres(scaled, labels, 2))


def test_cosine_distances_hand_picked():
    v = np.array([[1.0, 0.0],
                  [0.0, 3.0],  # orthogonal to v0
                  [-2.0, 0.0],  # opposite to v0
                  [5.0, 0.0]])  # same direction as v0
    d = cosine_distances(v)
    assert d.shape == (4, 4)
    np.testing.assert_allclose(np.diag(d), 0.0)
    np.testing.assert_allclose(d[0, 1], 1.0)
    np.testing.assert_allclose(d[0, 2], 2.0)
    np.testing.assert_allclose(d[0, 3], 0.0, atol=1e-12)
    np.testing.assert_allclose(d[1, 2], 1.0)
    np.testing.assert_allclose(d, d.T)


def test_cosine_distance_of_empty_class_is_nan():
    emb = np.array([[1.0, 0.0], [0.0, 1.0]])
    d = cosine_distances(class_centres(emb, np.array([0, 1]), 3))
    assert np.isnan(d[0, 2]) and np.isnan(d[2, 1])
    assert d[0, 1] == pytest.approx(1.0)


# --- pair strategies on a hand-made matrix ---------------------------------------------------------------------

# Embedding distances between 4 classes:  01=.1  02=.9  03=.5  12=.7  13=.3  23=.2
EMB = np.array([[0.0, 0.1, 0.9, 0.5],
                [0.1, 0.0, 0.7, 0.3],
                [0.9, 0.7, 0.0, 0.2],
                [0.5, 0.3, 0.2, 0.0]])
# Condition distances order the pairs differently: 01=.8  02=.1  03=.3  12=.2  13=.6  23=.9
COND = np.array([[0.0, 0.8, 0.1, 0.3],
                 [0.8, 0.0, 0.2, 0.6],
                 [0.1, 0.2, 0.0, 0.9],
                 [0.3, 0.6, 0.9, 0.0]])
CLASSES = np.arange(4)


def _select(strategy, n, **kw):
    kw.setdefault("embedding_distances", EMB)
    kw.setdefault("condition_distances", COND)
    return select_pairs(strategy, n, kw.pop("classes", CLASSES), **kw).tolist()


def test_distant_and_close_exact_pairs():
    # 2 pairs among 4 classes: cap 1, every class once.
    assert _select("distant", 2) == [[0, 2], [1, 3]]  # .9 first; (1,2) and (0,3) blocked by the cap
    assert _select("close", 2) == [[0, 1], [2, 3]]
    # 3 pairs: cap 2.
    assert _select("distant", 3) == [[0, 2], [1, 2], [0, 3]]
    assert _select("close", 3) == [[0, 1], [2, 3], [1, 3]]
    # 1 pair: the extreme one
    assert _select("distant", 1) == [[0, 2]]
    assert _select("close", 1) == [[0, 1]]


def test_condition_strategies_use_the_condition_matrix():
    assert _select("distant-condition", 2) == [[2, 3], [0, 1]]
    assert _select("close-condition", 2) == [[0, 2], [1, 3]]
    # the embedding matrix plays no part: swapping it for garbage (or leaving it out) changes nothing
    garbage = np.full((4, 4), np.nan)
    assert _select("distant-condition", 2, embedding_distances=garbage) == [[2, 3], [0, 1]]
    assert select_pairs("close-condition", 2, CLASSES, condition_distances=COND).tolist() == [[0, 2], [1, 3]]
    # ... and the embedding strategies ignore the condition matrix
    assert _select("distant", 2, condition_distances=garbage) == [[0, 2], [1, 3]]


def test_missing_distances_refused():
    with pytest.raises(ConfigError):
        select_pairs("distant", 1, CLASSES, condition_distances=COND)
    with pytest.raises(ConfigError):
        select_pairs("close-condition", 1, CLASSES, embedding_distances=EMB)


def test_docstring_example():
    d = np.array([[0, .1, .9], [.1, 0, .5], [.9, .5, 0]])
    assert select_pairs("distant", 1, np.arange(3), embedding_distances=d).tolist() == [[0, 2]]


def test_ties_broken_by_class_ids():
    d = np.ones((4, 4)) - np.eye(4)  # all pairs equally far
    assert select_pairs("distant", 2, CLASSES, embedding_distances=d).tolist() == [[0, 1], [2, 3]]
    assert select_pairs("close", 3, CLASSES, embedding_distances=d).tolist() == [[0, 1], [0, 2], [1, 2]]  # 03 over cap


def test_random_deterministic_per_seed_and_varies_across_seeds():
    classes = np.arange(10)
    a = select_pairs("random", 10, classes, seed=3).tolist()
    assert a == select_pairs("random", 10, classes, seed=3).tolist()
    others = [select_pairs("random", 10, classes, seed=s).tolist() for s in range(4, 8)]
    assert all(o != a for o in others)


def test_non_contiguous_class_ids_index_the_full_matrix():
    rng = np.random.default_rng(0)
    v = rng.normal(size=(8, 4))
    d = cosine_distances(v)
    classes = np.array([6, 1, 4])  # order and gaps do not matter
    got = select_pairs("distant", 1, classes, embedding_distances=d).tolist()
    best = max(combinations([1, 4, 6], 2), key=lambda p: d[p])
    assert got == [list(best)]


PAIR_ORDERS = [n for n, s in ALL.items() if s.size == 2 and not s.banded]  # plain orders over all pairs


def _rand_dist(c, seed):
    return cosine_distances(np.random.default_rng(seed).normal(size=(c, 6)))


@pytest.mark.parametrize("strategy", PAIR_ORDERS)
def test_each_unordered_pair_at_most_once_and_sorted(strategy):
    d = _rand_dist(7, 1)
    pairs = select_pairs(strategy, 15, np.arange(7), embedding_distances=d, condition_distances=d, seed=2)
    assert pairs.shape == (15, 2)
    assert (pairs[:, 0] < pairs[:, 1]).all()
    assert len({tuple(p) for p in pairs.tolist()}) == 15


@pytest.mark.parametrize("strategy", PAIR_ORDERS)
def test_cap_spreads_classes_ten_classes_five_pairs(strategy):
    for seed in range(5):
        d = _rand_dist(10, seed)
        pairs = select_pairs(strategy, 5, np.arange(10), embedding_distances=d, condition_distances=d, seed=seed)
        assert sorted(pairs.ravel().tolist()) == list(range(10)), (strategy, seed)  # every class exactly once


@pytest.mark.parametrize("strategy", PAIR_ORDERS)
def test_all_pairs_works_and_one_more_refused(strategy):
    c = 6
    d = _rand_dist(c, 0)
    n_all = c * (c - 1) // 2
    pairs = select_pairs(strategy, n_all, np.arange(c), embedding_distances=d, condition_distances=d)
    assert sorted(map(tuple, pairs.tolist())) == list(combinations(range(c), 2))
    with pytest.raises(ConfigError) as info:
        select_pairs(strategy, n_all + 1, np.arange(c), embedding_distances=d, condition_distances=d)
    assert "`pairs`" in str(info.value)
    assert str(n_all) in info.value.message  # names how many exist


@pytest.mark.parametrize("classes", [np.array([3]), np.array([], dtype=int), np.array([2, 2, 2])])
def test_fewer_than_two_classes_refused(classes):
    with pytest.raises(ConfigError):
        select_pairs("random", 1, classes)


@pytest.mark.parametrize("n", [0, -1])
def test_non_positive_pairs_refused(n):
    with pytest.raises(ConfigError) as info:
        select_pairs("random", n, np.arange(4))
    assert "--pairs" in str(as_build_prints(info.value))


def test_unknown_strategy_refused():
    with pytest.raises(ConfigError) as info:
        select_pairs("farthest", 1, np.arange(4))
    assert "--strategy" in as_build_prints(info.value).hint


@pytest.mark.parametrize("strategy", ["distant", "close"])
def test_nan_embedding_distances_refused_unless_class_excluded(strategy):
    emb = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    d = cosine_distances(class_centres(emb, np.array([0, 1, 2]), 4))  # class 3 has no real image
    with pytest.raises(ConfigError) as info:
        select_pairs(strategy, 1, np.arange(4), embedding_distances=d)
    assert "NaN" in info.value.message
    # restricting the candidates to classes with images works
    assert select_pairs(strategy, 1, np.arange(3), embedding_distances=d).shape == (1, 2)
    # random and condition strategies do not look at the embedding matrix
    assert select_pairs("random", 2, np.arange(4), embedding_distances=d).shape == (2, 2)


def test_candidate_pairs():
    assert candidate_pairs(np.array([5, 2, 9])).tolist() == [[2, 5], [2, 9], [5, 9]]


def test_capped_greedy_follows_order_under_cap():
    pairs = candidate_pairs(np.arange(4))  # 01 02 03 12 13 23
    order = np.array([0, 1, 2, 3, 4, 5])
    # cap ceil(2*2/4) = 1: 01, then 23
    assert pairs[capped_greedy(pairs, order, 2, 4)].tolist() == [[0, 1], [2, 3]]


@pytest.mark.xfail(strict=True, raises=AssertionError, reason="limitation: capped greedy stalls on a 4-cycle, then re-walks the order "
                   "with cap+1 and never uses class 4, though a 5-cycle uses every class twice")
def test_cap_leaves_no_class_out_when_balanced_pick_exists():
    # 5 classes, 5 pairs: cap 2. The far pairs form the cycle 0-1-2-3-0; (0,2) is next.
    d = np.full((5, 5), 0.1)
    for (a, b), v in {(0, 1): .9, (1, 2): .89, (2, 3): .88, (0, 3): .87, (0, 2): .8}.items():
        d[a, b] = d[b, a] = v
    np.fill_diagonal(d, 0)
    pairs = select_pairs("distant", 5, np.arange(5), embedding_distances=d)
    usage = np.bincount(pairs.ravel(), minlength=5)
    assert usage.min() >= 1 and usage.max() <= 2, usage.tolist()  # got [3, 2, 3, 2, 0]


# --- per-image seeds -------------------------------------------------------------------------------------------


def test_sample_seed_deterministic_distinct_and_int64():
    s = sample_seed(0, 3, 5)
    assert s == sample_seed(0, 3, 5)
    seeds = {sample_seed(b, i, j) for b in (0, 1) for i in range(20) for j in range(10)}
    assert len(seeds) == 400
    assert sample_seed(0, 1, 2) != sample_seed(0, 2, 1)  # index order matters
    for x in seeds:
        assert isinstance(x, int) and 0 <= x < 2**63
        np.int64(x)  # fits
    import torch

    torch.Generator().manual_seed(s)  # usable as a torch seed


def test_make_plan_seeds_and_distances():
    pairs = np.array([[0, 2], [1, 3]])
    plan = make_plan(pairs, (0.5, 0.5), EMB[pairs[:, 0], pairs[:, 1]], COND[pairs[:, 0], pairs[:, 1]], per_identity=3, seed=7)
    assert plan.num_images == 6
    assert [i.parents for i in plan.identities] == [(0, 2), (1, 3)]
    assert plan.identities[0].embedding_distance == pytest.approx(0.9)
    assert plan.identities[1].condition_distance == pytest.approx(0.6)
    assert plan.seeds(1) == [sample_seed(7, 1, j) for j in range(3)]
    assert plan.identities[0].name(("a", "b", "c", "d")) == "mix:a+c"
