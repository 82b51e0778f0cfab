"""Pair strategies: which classes to mix.

Every strategy is an ORDER over the distinct unordered pairs of candidate classes, followed by the same capped
greedy pick: walk the order and keep a pair while both of its classes have been used fewer than ``cap`` times.
The cap starts at the smallest value that could fit the request (``ceil(2 * pairs / classes)``) and grows only
when the order runs out, so classes spread over the pairs instead of one class appearing in every pair, and each
unordered pair is used at most once.

| strategy            | space                        | order                        |
|---------------------|------------------------------|------------------------------|
| ``random``          | —                            | seeded random permutation    |
| ``distant``         | discriminator class centres  | largest cosine distance first |
| ``close``           | discriminator class centres  | smallest distance first       |
| ``distant-condition`` | generator class embeddings | largest distance first        |
| ``close-condition`` | generator class embeddings   | smallest distance first       |

Ties are broken by the pair's class ids, so every strategy is deterministic (``random`` for a given seed).

:data:`STRATEGIES` also holds selections that need more than a pair order (``build --strategy`` takes them all):

| strategy             | space                       | order                                                     |
|----------------------|-----------------------------|-----------------------------------------------------------|
| ``band``             | discriminator class centres | seeded random, over the pairs whose distance lies between |
|                      |                             | the ``lo``-th and ``hi``-th percentiles of all candidates |
| ``distant-triplets`` | discriminator class centres | largest summed pairwise distance first (paper's K=3)      |
| ``close-triplets``   | discriminator class centres | smallest summed pairwise distance first                   |

Tuples of K classes follow the same capped greedy pick (cap from ``ceil(K * tuples / classes)``); each tuple at most
once; ties broken by class ids. Triplets are enumerated exactly, so their candidates are limited to
:data:`MAX_TUPLES` (about 230 classes): restrict the candidate classes above that.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import chain, combinations
from typing import Literal

import numpy as np

from ..core.errors import ConfigError
from ..core.validate import positive_count


@dataclass(frozen=True)
class Strategy:
    name: str
    space: Literal["embedding", "condition", "none"]
    descending: bool  # True: farthest pairs first (the paper's winning choice in the embedding space)
    size: int = 2  # classes per mixed tuple (K); the paper's triplets are K=3
    banded: bool = False  # order: seeded random over the pairs inside a distance-percentile band


STRATEGIES: dict[str, Strategy] = {
    s.name: s
    for s in (
        Strategy("random", "none", False),
        Strategy("distant", "embedding", True),
        Strategy("close", "embedding", False),
        Strategy("distant-condition", "condition", True),
        Strategy("close-condition", "condition", False),
        Strategy("band", "embedding", False, banded=True),
        Strategy("distant-triplets", "embedding", True, size=3),
        Strategy("close-triplets", "embedding", False, size=3),
    )
}

MAX_TUPLES = 2_000_000  # K>2 tuples are enumerated exactly; C(230, 3) ~ 2.0M


def get_strategy(name: str, table: dict[str, Strategy] = STRATEGIES) -> Strategy:
    try:
        return table[name]
    except KeyError:
        raise ConfigError(f"unknown strategy '{name}'", hint=f"set `strategy` to one of {', '.join(table)}",
                          field="strategy") from None


def as_strategy(strategy: str | Strategy) -> Strategy:
    """A :class:`Strategy` as given, or the one a name stands for: the selection functions take either (a build
    passes the object its config resolved once, ``BuildConfig.strategy_spec``)."""
    return strategy if isinstance(strategy, Strategy) else get_strategy(strategy)


def candidate_pairs(classes: np.ndarray) -> np.ndarray:
    """All distinct unordered pairs ``(a, b)`` with ``a < b`` from ``classes``; shape ``(M, 2)``."""
    classes = np.sort(np.asarray(classes, dtype=np.int64))
    ii, jj = np.triu_indices(len(classes), k=1)
    return np.stack([classes[ii], classes[jj]], axis=1)


def candidate_tuples(classes: np.ndarray, size: int) -> np.ndarray:
    """All ``size``-subsets of ``classes`` as sorted rows, in lexicographic order; shape ``(C(n, size), size)``."""
    classes = np.sort(np.asarray(classes, dtype=np.int64))
    if size == 2:
        return candidate_pairs(classes)
    total = math.comb(len(classes), size)
    if total > MAX_TUPLES:
        raise ConfigError(
            f"{len(classes)} classes give {total} candidate {size}-tuples; at most {MAX_TUPLES} are enumerated",
            hint="restrict the candidate `classes`", field="classes",
        )
    flat = np.fromiter(chain.from_iterable(combinations(classes.tolist(), size)), dtype=np.int64, count=total * size)
    return flat.reshape(total, size)


def summed_distances(tuples: np.ndarray, distances: np.ndarray) -> np.ndarray:
    """``sum_{a<b in tuple} d(a, b)`` for every row of ``tuples``."""
    k = tuples.shape[1]
    return sum(distances[tuples[:, a], tuples[:, b]] for a in range(k) for b in range(a + 1, k))


def band_mask(d: np.ndarray, band: tuple[float, float]) -> np.ndarray:
    """Which distances lie in ``[P_lo, P_hi]``, the ``lo``-th and ``hi``-th percentiles (linear interpolation) of
    ``d`` itself."""
    lo, hi = np.percentile(d, [band[0], band[1]])
    return (d >= lo) & (d <= hi)


def check_selection(strategy: Strategy, num_pairs: int, band: object = None, max_uses: int | None = None
                    ) -> tuple[float, float] | None:
    """The one check of the selection settings, shared by :class:`~scoremix_ds.synthesis.config.BuildConfig` and the
    selection functions: a positive count, a positive ``max_uses``, and a percentile ``band`` given exactly for
    banded strategies with ``0 <= LO <= HI <= 100``. Returns the band as floats (None without one)."""
    positive_count("pairs", num_pairs)
    positive_count("max_uses", max_uses, optional=True)
    if band is None:
        if strategy.banded:
            raise ConfigError("strategy 'band' needs a percentile range", hint="set band to LO,HI, e.g. 40,60", field="band")
        return None
    if not strategy.banded:
        raise ConfigError(f"band applies to strategy 'band' only, not '{strategy.name}'",
                          hint="drop band, or set strategy to band", fields=("band", "strategy"))
    try:
        lo, hi = (float(b) for b in band)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise ConfigError(f"band takes two percentiles LO,HI, got {band!r}", hint="set band to LO,HI, e.g. 40,60",
                          field="band") from None
    if not (0.0 <= lo <= hi <= 100.0):
        raise ConfigError(f"band {lo:g} {hi:g} is not a percentile range", hint="set band to LO,HI with 0 <= LO <= HI <= 100",
                          field="band")
    return lo, hi


def tuple_distances(pairs: np.ndarray, strategy: Strategy, distances: np.ndarray | None) -> np.ndarray:
    """Summed pairwise distance of every row of ``pairs`` in the strategy's space; refuses missing or NaN ones."""
    if distances is None:
        raise ConfigError(f"strategy '{strategy.name}' needs {strategy.space} distances", hint="check the `discriminator` / `generator`",
                          fields=("discriminator", "generator"))
    d = summed_distances(pairs, distances)
    if np.isnan(d).any():
        raise ConfigError(
            f"strategy '{strategy.name}': some classes have no {strategy.space} vector (NaN distance)",
            hint="every class needs real images; restrict the `classes`", field="classes",
        )
    return d


def order_pairs(pairs: np.ndarray, strategy: Strategy, distances: np.ndarray | None, seed: int) -> np.ndarray:
    """The strategy's order over ``pairs`` (indices into ``pairs``)."""
    if strategy.space == "none" or strategy.banded:
        return np.random.default_rng(seed).permutation(len(pairs))
    d = tuple_distances(pairs, strategy, distances)
    key = -d if strategy.descending else d
    # lexsort sorts by the LAST key first: distance, then class a, then class b (then c...).
    return np.lexsort(tuple(pairs[:, c] for c in range(pairs.shape[1] - 1, -1, -1)) + (key,))


def _word(size: int) -> str:
    return {2: "pairs", 3: "triplets"}.get(size, f"{size}-tuples")


def capped_greedy(
    pairs: np.ndarray, order: np.ndarray, num_pairs: int, num_classes: int, max_uses: int | None = None
) -> np.ndarray:
    """Pick ``num_pairs`` tuples (rows of ``pairs``, any width K) following ``order`` under a per-class usage cap;
    returns indices into ``pairs``. The cap starts at ``ceil(K * num_pairs / num_classes)`` and grows up to
    ``max_uses`` (unbounded when None) while the order runs out."""
    size = pairs.shape[1]
    if num_pairs > len(pairs):
        raise ConfigError(
            f"{num_pairs} {_word(size)} requested but only {len(pairs)} distinct {_word(size)} exist among {num_classes} classes",
            hint=f"use `pairs` {len(pairs)} or fewer", field="pairs",
        )
    cap = max(1, math.ceil(size * num_pairs / max(num_classes, 1)))
    if max_uses is not None:  # >= 1: check_selection
        cap = min(cap, max_uses)
    chosen: list[int] = []
    taken = np.zeros(len(pairs), dtype=bool)
    usage: dict[int, int] = {}
    while len(chosen) < num_pairs:
        for idx in order:
            if taken[idx]:
                continue
            members = pairs[idx].tolist()
            if all(usage.get(m, 0) < cap for m in members):
                chosen.append(int(idx))
                taken[idx] = True
                for m in members:
                    usage[m] = usage.get(m, 0) + 1
                if len(chosen) == num_pairs:
                    break
        if len(chosen) < num_pairs and max_uses is not None and cap >= max_uses:
            raise ConfigError(
                f"{num_pairs} {_word(size)} requested but the usage cap of {max_uses} per class admits only "
                f"{len(chosen)} of the {len(pairs)} candidates (greedy pick in strategy order)",
                hint=f"use `pairs` {len(chosen)} or fewer, or raise `max_uses`", fields=("pairs", "max_uses"),
            )
        cap += 1
    return np.asarray(chosen, dtype=np.int64)


def select_pairs(
    strategy: str | Strategy,
    num_pairs: int,
    classes: np.ndarray,
    embedding_distances: np.ndarray | None = None,
    condition_distances: np.ndarray | None = None,
    seed: int = 0,
    *,
    band: tuple[float, float] | None = None,
    max_uses: int | None = None,
) -> np.ndarray:
    """Choose ``num_pairs`` class tuples; returns ``(num_pairs, K)`` class ids (sorted within a row) in pick order.

    Args:
        strategy: a name from :data:`STRATEGIES` or a :class:`Strategy`.
        num_pairs: how many distinct tuples (pairs for K=2).
        classes: candidate class ids (at least K).
        embedding_distances / condition_distances: full ``(C, C)`` cosine-distance matrices indexed by class id.
        seed: used by ``random`` and ``band`` only.
        band: ``(lo, hi)`` percentiles of the candidate pairs' distances; ``band`` strategy only.
        max_uses: the most tuples one class may join (default: no limit beyond the balancing cap).

    >>> d = np.array([[0, .1, .9], [.1, 0, .5], [.9, .5, 0]])
    >>> select_pairs("distant", 1, np.arange(3), embedding_distances=d).tolist()
    [[0, 2]]
    """
    s = as_strategy(strategy)
    classes = np.unique(np.asarray(classes, dtype=np.int64))
    if len(classes) < max(2, s.size):
        raise ConfigError(f"mixing needs at least {max(2, s.size)} classes, got {len(classes)}", hint="check `classes` / `real_data`",
                          fields=("classes", "real_data"))
    band = check_selection(s, num_pairs, band, max_uses)
    pairs = candidate_tuples(classes, s.size)
    distances = {"embedding": embedding_distances, "condition": condition_distances}.get(s.space)
    if s.banded:
        lo, hi = band
        inside = band_mask(tuple_distances(pairs, s, distances), (lo, hi))
        if not inside.any():
            raise ConfigError(f"band {lo:g} {hi:g} selects no pair among {len(pairs)}", hint="widen the `band`", field="band")
        pairs = pairs[inside]
        if num_pairs > len(pairs):
            raise ConfigError(
                f"{num_pairs} pairs requested but only {len(pairs)} pairs lie in band {lo:g} {hi:g}",
                hint=f"use `pairs` {len(pairs)} or fewer, or widen the `band`", fields=("pairs", "band"),
            )
    order = order_pairs(pairs, s, distances, seed)
    return pairs[capped_greedy(pairs, order, num_pairs, len(classes), max_uses)]


def select_extreme_pairs(
    vectors: np.ndarray,
    num_pairs: int,
    classes: np.ndarray,
    descending: bool,
    max_uses: int | None = None,
    block_rows: int | None = None,
    device: str | None = "auto",
) -> np.ndarray:
    """``distant`` (``descending``) or ``close`` straight from class vectors, without an ``N x N`` matrix.

    Gives the same pairs as ``select_pairs`` on ``cosine_distances(vectors)``, through the per-class capped greedy
    of :func:`scoremix_ds.maths.extreme_greedy.greedy_extreme_pairs` (chunked top-k lists per class, extended only
    for the classes that run out; float32 screening on ``device``, ``auto``: the accelerator when present, exact
    float64 keys). Pairs = classes at 20K x 512-d takes seconds on 2 CPU cores: figures in ``docs/performance.md``.
    """
    from ..core.devices import resolve_device
    from .extreme_greedy import greedy_extreme_pairs

    classes = np.unique(np.asarray(classes, dtype=np.int64))
    if len(classes) < 2:
        raise ConfigError(f"mixing needs at least 2 classes, got {len(classes)}", hint="check `classes` / `real_data`",
                          fields=("classes", "real_data"))
    positive_count("pairs", num_pairs)
    positive_count("max_uses", max_uses, optional=True)
    total = len(classes) * (len(classes) - 1) // 2
    if num_pairs > total:
        raise ConfigError(
            f"{num_pairs} pairs requested but only {total} distinct pairs exist among {len(classes)} classes",
            hint=f"use `pairs` {total} or fewer", field="pairs",
        )
    sub = np.asarray(vectors)[classes]  # sorted class ids keep the (distance, a, b) tie order
    start = max(1, math.ceil(2 * num_pairs / len(classes)))
    if max_uses is not None:
        start = min(start, max_uses)
    local = greedy_extreme_pairs(sub, num_pairs, descending, start, max_uses, device=resolve_device(device),
                                 block_rows=block_rows)
    return classes[local]
