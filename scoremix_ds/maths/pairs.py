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
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..errors import ConfigError


@dataclass(frozen=True)
class Strategy:
    name: str
    space: Literal["embedding", "condition", "none"]
    descending: bool  # True: farthest pairs first (the paper's winning choice in the embedding space)


STRATEGIES: dict[str, Strategy] = {
    s.name: s
    for s in (
        Strategy("random", "none", False),
        Strategy("distant", "embedding", True),
        Strategy("close", "embedding", False),
        Strategy("distant-condition", "condition", True),
        Strategy("close-condition", "condition", False),
    )
}


def get_strategy(name: str) -> Strategy:
    try:
        return STRATEGIES[name]
    except KeyError:
        raise ConfigError(f"unknown strategy '{name}'", hint=f"--strategy takes one of {', '.join(STRATEGIES)}") from None


def candidate_pairs(classes: np.ndarray) -> np.ndarray:
    """All distinct unordered pairs ``(a, b)`` with ``a < b`` from ``classes``; shape ``(M, 2)``."""
    classes = np.sort(np.asarray(classes, dtype=np.int64))
    ii, jj = np.triu_indices(len(classes), k=1)
    return np.stack([classes[ii], classes[jj]], axis=1)


def order_pairs(pairs: np.ndarray, strategy: Strategy, distances: np.ndarray | None, seed: int) -> np.ndarray:
    """The strategy's order over ``pairs`` (indices into ``pairs``)."""
    if strategy.space == "none":
        return np.random.default_rng(seed).permutation(len(pairs))
    if distances is None:
        raise ConfigError(f"strategy '{strategy.name}' needs {strategy.space} distances", hint="check --discriminator / --generator")
    d = distances[pairs[:, 0], pairs[:, 1]]
    if np.isnan(d).any():
        raise ConfigError(
            f"strategy '{strategy.name}': some classes have no {strategy.space} vector (NaN distance)",
            hint="every class needs real images; restrict with --classes",
        )
    key = -d if strategy.descending else d
    # lexsort sorts by the LAST key first: distance, then class a, then class b.
    return np.lexsort((pairs[:, 1], pairs[:, 0], key))


def capped_greedy(pairs: np.ndarray, order: np.ndarray, num_pairs: int, num_classes: int) -> np.ndarray:
    """Pick ``num_pairs`` pairs following ``order`` under a per-class usage cap; returns indices into ``pairs``."""
    if num_pairs > len(pairs):
        raise ConfigError(
            f"{num_pairs} pairs requested but only {len(pairs)} distinct pairs exist among {num_classes} classes",
            hint=f"use --pairs {len(pairs)} or fewer",
        )
    cap = max(1, math.ceil(2 * num_pairs / max(num_classes, 1)))
    chosen: list[int] = []
    taken = np.zeros(len(pairs), dtype=bool)
    usage: dict[int, int] = {}
    while len(chosen) < num_pairs:
        for idx in order:
            if taken[idx]:
                continue
            a, b = int(pairs[idx, 0]), int(pairs[idx, 1])
            if usage.get(a, 0) < cap and usage.get(b, 0) < cap:
                chosen.append(int(idx))
                taken[idx] = True
                usage[a] = usage.get(a, 0) + 1
                usage[b] = usage.get(b, 0) + 1
                if len(chosen) == num_pairs:
                    break
        cap += 1
    return np.asarray(chosen, dtype=np.int64)


def select_pairs(
    strategy: str | Strategy,
    num_pairs: int,
    classes: np.ndarray,
    embedding_distances: np.ndarray | None = None,
    condition_distances: np.ndarray | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Choose ``num_pairs`` class pairs; returns ``(num_pairs, 2)`` class ids in pick order.

    Args:
        strategy: a name from :data:`STRATEGIES` or a :class:`Strategy`.
        num_pairs: how many distinct unordered pairs.
        classes: candidate class ids (at least 2).
        embedding_distances / condition_distances: full ``(C, C)`` cosine-distance matrices indexed by class id.
        seed: used by ``random`` only.

    >>> d = np.array([[0, .1, .9], [.1, 0, .5], [.9, .5, 0]])
    >>> select_pairs("distant", 1, np.arange(3), embedding_distances=d).tolist()
    [[0, 2]]
    """
    s = strategy if isinstance(strategy, Strategy) else get_strategy(strategy)
    classes = np.unique(np.asarray(classes, dtype=np.int64))
    if len(classes) < 2:
        raise ConfigError(f"mixing needs at least 2 classes, got {len(classes)}", hint="check --classes / --real-data")
    if num_pairs <= 0:
        raise ConfigError(f"--pairs must be positive, got {num_pairs}", hint="use --pairs 1 or more")
    pairs = candidate_pairs(classes)
    distances = {"embedding": embedding_distances, "condition": condition_distances}.get(s.space)
    order = order_pairs(pairs, s, distances, seed)
    return pairs[capped_greedy(pairs, order, num_pairs, len(classes))]
