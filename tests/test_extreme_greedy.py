"""The per-class capped greedy (``maths/extreme_greedy.py``) picks exactly what ``select_pairs`` picks on the full
dense distance matrix: in the paper's regime (pairs ~ classes), when the screened lists run out and must be
extended, when the cap has to grow, with hubs, ties and ``max_uses``."""

from __future__ import annotations

import math

import numpy as np
import pytest

from scoremix_ds.core.errors import ConfigError
from scoremix_ds.maths.centres import cosine_distances
from scoremix_ds.maths.extreme_greedy import greedy_extreme_pairs
from scoremix_ds.maths.pair_strategies import select_extreme_pairs, select_pairs


def dense(v, num, descending, max_uses=None):
    return select_pairs("distant" if descending else "close", num, np.arange(len(v)),
                        embedding_distances=cosine_distances(v), max_uses=max_uses)


def start_cap(num, n, max_uses=None):
    cap = max(1, math.ceil(2 * num / n))
    return min(cap, max_uses) if max_uses else cap


# What each walk did (greedy_extreme_pairs' stats: refills, cap_growths, screen_k): the screened lists ran out and
# were extended in every case, most often with the shortest lists (k=2); k=None screens the default
# max(32, 8 * cap + 16) = 32; the cap never had to grow.
EQUAL_STATS = {(True, 2): (300, 0, 2), (True, 8): (51, 0, 8), (True, None): (13, 0, 32),
               (False, 2): (300, 0, 2), (False, 8): (39, 0, 8), (False, None): (8, 0, 32)}


@pytest.mark.parametrize("descending", [True, False])
@pytest.mark.parametrize("k", [2, 8, None])
def test_pairs_equal_classes_matches_dense(descending, k):
    v = np.random.default_rng(7).normal(size=(300, 32))
    stats = {}
    got = greedy_extreme_pairs(v, 300, descending, start_cap(300, 300), k=k, block_rows=37, stats=stats)
    np.testing.assert_array_equal(got, dense(v, 300, descending))
    refills, cap_growths, screen_k = EQUAL_STATS[descending, k]  # lists extended, and still exact
    assert stats == {"refills": refills, "cap_growths": cap_growths, "screen_k": screen_k}


@pytest.mark.parametrize("num", [50, 400, 1750, 4950])
def test_cap_growth_and_every_pair_match_dense(num):
    v = np.random.default_rng(num).normal(size=(100, 6))
    stats = {}
    got = greedy_extreme_pairs(v, num, True, start_cap(num, 100), k=4, stats=stats)
    np.testing.assert_array_equal(got, dense(v, num, True))
    # at 400 and 1750 the walk at the start cap ends short: the cap grows once and the lists start over
    refills, cap_growths = {50: (24, 0), 400: (187, 1), 1750: (200, 1), 4950: (100, 0)}[num]
    assert stats == {"refills": refills, "cap_growths": cap_growths, "screen_k": 4}


def test_hub_and_exact_ties_match_dense():
    rng = np.random.default_rng(1)
    hub = np.eye(6)[0] + 0.1 * rng.normal(size=(40, 6))
    hub[0] = -np.eye(6)[0]  # opposite to everyone: all the farthest pairs contain class 0
    axes = np.eye(4)[rng.integers(0, 4, 30)] * rng.choice([-2.0, 1.0, 3.0], size=(30, 1))  # distances 0, 1, 2 only
    for v in (hub, axes):
        for num in (5, len(v), 3 * len(v)):
            for desc in (True, False):
                got = greedy_extreme_pairs(v, num, desc, start_cap(num, len(v)), k=3)
                np.testing.assert_array_equal(got, dense(v, num, desc), err_msg=f"{len(v)} {num} {desc}")


def test_max_uses_matches_dense_and_refuses_like_it():
    v = np.random.default_rng(3).normal(size=(60, 5))
    np.testing.assert_array_equal(greedy_extreme_pairs(v, 80, True, start_cap(80, 60, 3), 3, k=5), dense(v, 80, True, max_uses=3))
    with pytest.raises(ConfigError) as info:
        dense(v, 31, True, max_uses=1)
    want = info.value.message.split(" of the ")[0]
    with pytest.raises(ConfigError) as info:
        greedy_extreme_pairs(v, 31, True, 1, 1, k=5)
    assert info.value.message.split(" of the ")[0] == want and "`max_uses`" in info.value.hint


def test_select_extreme_pairs_on_a_class_subset_and_auto_device():
    v = np.random.default_rng(5).normal(size=(80, 8))
    classes = np.array([70, 3, 41, 9, 12, 55, 28, 0, 66, 17])
    got = select_extreme_pairs(v, 10, classes, True, device="auto")
    want = select_pairs("distant", 10, classes, embedding_distances=cosine_distances(v))
    np.testing.assert_array_equal(got, want)
