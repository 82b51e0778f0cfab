"""The ``band`` strategy, K=3 tuple strategies and the ``max_uses`` cap, on hand-made distance matrices."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pytest

from scoremix_ds.core.errors import ConfigError
from scoremix_ds.maths.centres import cosine_distances
from scoremix_ds.maths.pair_strategies import STRATEGIES, candidate_tuples, get_strategy, select_pairs

from hints import as_build_prints


# 4 classes, distances 01=.1  02=.9  03=.5  12=.7  13=.3  23=.2 (as in test_pairs_centres.py)
EMB = np.array([[0.0, 0.1, 0.9, 0.5],
                [0.1, 0.0, 0.7, 0.3],
                [0.9, 0.7, 0.0, 0.2],
                [0.5, 0.3, 0.2, 0.0]])
CLASSES = np.arange(4)


def _band(n, band, seed=0, **kw):
    return select_pairs("band", n, CLASSES, embedding_distances=EMB, seed=seed, band=band, **kw).tolist()


# --- band ----------------------------------------------------------------------------------------------------------


def test_band_selects_pairs_inside_the_percentile_range():
    # sorted distances .1 .2 .3 .5 .7 .9; percentiles (linear): P0=.1 P20=.2 P40=.3 P60=.5 P80=.7 P100=.9
    assert sorted(map(tuple, _band(2, (40, 60)))) == [(0, 3), (1, 3)]  # .3 and .5
    assert _band(1, (100, 100)) == [[0, 2]]  # the farthest only
    assert _band(1, (0, 0)) == [[0, 1]]
    got = sorted(map(tuple, _band(6, (0, 100), seed=0)))
    assert got == list(combinations(range(4), 2))  # the whole range: every pair


def test_band_order_is_seeded_and_within_band():
    d = cosine_distances(np.random.default_rng(0).normal(size=(20, 5)))
    iu = np.triu_indices(20, 1)
    lo, hi = np.percentile(d[iu], [25, 75])
    a = select_pairs("band", 15, np.arange(20), embedding_distances=d, seed=1, band=(25, 75))
    assert a.tolist() == select_pairs("band", 15, np.arange(20), embedding_distances=d, seed=1, band=(25, 75)).tolist()
    assert a.tolist() != select_pairs("band", 15, np.arange(20), embedding_distances=d, seed=2, band=(25, 75)).tolist()
    dist = d[a[:, 0], a[:, 1]]
    assert ((dist >= lo) & (dist <= hi)).all()
    assert len({tuple(p) for p in a.tolist()}) == 15
    assert np.bincount(a.ravel(), minlength=20).max() <= 2  # cap ceil(2 * 15 / 20) = 2


def test_band_that_selects_nothing_names_band():
    d = np.array([[0.0, 0.1, 0.1], [0.1, 0.0, 0.9], [0.1, 0.9, 0.0]])  # .1 .1 .9: P70..P72 lies strictly between
    with pytest.raises(ConfigError) as info:
        select_pairs("band", 1, np.arange(3), embedding_distances=d, band=(70, 72))
    assert "band" in info.value.fields and "selects no pair" in info.value.message


def test_more_pairs_than_the_band_holds_says_how_many():
    with pytest.raises(ConfigError) as info:
        _band(3, (40, 60))
    assert "only 2 pairs" in info.value.message and "`pairs` 2" in info.value.hint


@pytest.mark.parametrize("band", [(60, 40), (-1, 50), (0, 101), (50,), "ab", (np.nan, 50)])
def test_bad_band_refused(band):
    with pytest.raises(ConfigError) as info:
        _band(1, band)
    assert "--band" in str(as_build_prints(info.value))


def test_band_required_for_band_and_refused_elsewhere():
    with pytest.raises(ConfigError, match="band") as info:
        select_pairs("band", 1, CLASSES, embedding_distances=EMB)
    assert "--band" in str(as_build_prints(info.value))
    with pytest.raises(ConfigError, match="band") as info:
        select_pairs("distant", 1, CLASSES, embedding_distances=EMB, band=(0, 50))
    assert "--band" in str(as_build_prints(info.value))


def test_band_refuses_nan_distances():
    d = EMB.copy()
    d[0, 3] = d[3, 0] = np.nan
    with pytest.raises(ConfigError, match="NaN"):
        select_pairs("band", 1, CLASSES, embedding_distances=d, band=(0, 100))


# --- triplets ------------------------------------------------------------------------------------------------------

# 5 classes; summed triplet distances are checked against a loop below.
D5 = np.array([[0.0, 0.9, 0.8, 0.1, 0.2],
               [0.9, 0.0, 0.7, 0.3, 0.4],
               [0.8, 0.7, 0.0, 0.5, 0.6],
               [0.1, 0.3, 0.5, 0.0, 0.15],
               [0.2, 0.4, 0.6, 0.15, 0.0]])


def _sums(d, n):
    return {t: d[t[0], t[1]] + d[t[0], t[2]] + d[t[1], t[2]] for t in combinations(range(n), 3)}


def test_triplets_one_is_the_extreme_sum():
    s = _sums(D5, 5)
    assert select_pairs("distant-triplets", 1, np.arange(5), embedding_distances=D5).tolist() == [list(max(s, key=s.get))]
    assert select_pairs("close-triplets", 1, np.arange(5), embedding_distances=D5).tolist() == [list(min(s, key=s.get))]
    assert max(s, key=s.get) == (0, 1, 2) and min(s, key=s.get) == (0, 3, 4)


def test_triplets_hand_computed_order_under_cap():
    # 3 triplets among 5 classes: cap ceil(3*3/5) = 2.
    # sums: 012=2.4 124=1.7 024=1.6 014=1.5 123=1.5 023=1.4 013=1.3 234=1.25 134=.85 034=.45
    # 012, 124 (1 and 2 now at the cap), everything else touches 1 or 2 until 034.
    got = select_pairs("distant-triplets", 3, np.arange(5), embedding_distances=D5).tolist()
    s = _sums(D5, 5)
    usage = {c: 0 for c in range(5)}
    want = []
    for t in sorted(s, key=lambda t: (-s[t], t)):
        if all(usage[c] < 2 for c in t):
            want.append(list(t))
            for c in t:
                usage[c] += 1
        if len(want) == 3:
            break
    assert got == want == [[0, 1, 2], [1, 2, 4], [0, 3, 4]]
    close = select_pairs("close-triplets", 3, np.arange(5), embedding_distances=D5).tolist()
    assert close[0] == [0, 3, 4]
    assert all(len(set(t)) == 3 and t == sorted(t) for t in close)


def test_triplets_all_and_one_more_refused_with_count():
    d = cosine_distances(np.random.default_rng(0).normal(size=(6, 4)))
    all_t = select_pairs("distant-triplets", 20, np.arange(6), embedding_distances=d)
    assert sorted(map(tuple, all_t.tolist())) == list(combinations(range(6), 3))
    with pytest.raises(ConfigError) as info:
        select_pairs("distant-triplets", 21, np.arange(6), embedding_distances=d)
    assert "only 20 distinct triplets" in info.value.message and "`pairs` 20" in info.value.hint


def test_triplets_need_three_classes_and_distances():
    with pytest.raises(ConfigError, match="at least 3 classes"):
        select_pairs("close-triplets", 1, np.array([0, 1]), embedding_distances=EMB)
    with pytest.raises(ConfigError):
        select_pairs("close-triplets", 1, CLASSES)


def test_triplet_enumeration_is_bounded():
    with pytest.raises(ConfigError) as info:
        candidate_tuples(np.arange(400), 3)
    assert "`classes`" in info.value.hint
    assert candidate_tuples(np.array([7, 2, 5, 9]), 3).tolist() == [[2, 5, 7], [2, 5, 9], [2, 7, 9], [5, 7, 9]]


# --- usage cap -----------------------------------------------------------------------------------------------------


def test_max_uses_limits_and_says_how_many_exist():
    # 4 classes, each used at most once: at most 2 disjoint pairs.
    got = select_pairs("distant", 2, CLASSES, embedding_distances=EMB, max_uses=1).tolist()
    assert got == [[0, 2], [1, 3]]
    with pytest.raises(ConfigError) as info:
        select_pairs("distant", 3, CLASSES, embedding_distances=EMB, max_uses=1)
    assert "admits only 2" in info.value.message and "`max_uses`" in info.value.hint
    with pytest.raises(ConfigError) as info:
        select_pairs("distant-triplets", 2, np.arange(5), embedding_distances=D5, max_uses=1)
    assert "admits only 1" in info.value.message
    with pytest.raises(ConfigError, match="max_uses must be a positive count"):  # the library names the field
        select_pairs("random", 1, CLASSES, max_uses=0)


# --- tables --------------------------------------------------------------------------------------------------------


def test_tables():
    assert {"random", "distant", "close", "distant-condition", "close-condition", "band", "distant-triplets",
            "close-triplets"} == set(STRATEGIES)
    assert get_strategy("band").banded
    assert get_strategy("distant-triplets").size == 3
    with pytest.raises(ConfigError, match="`strategy` to one of") as info:
        get_strategy("farthest")
    assert "set --strategy to one of" in as_build_prints(info.value).hint
