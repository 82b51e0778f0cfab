"""The mixing plan: which synthetic identities exist, their parents, weights, distances and per-image seeds.

Seeds are derived from the build seed and the (identity, image) index only, never from a rank or batch, so the
rows do not depend on how the work is split.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ...dataset.schema import unique_names


def sample_seed(build_seed: int, identity_index: int, image_index: int) -> int:
    """A 63-bit seed for one image, a pure function of the build seed and its indices."""
    digest = hashlib.blake2b(f"scoremix:{build_seed}:{identity_index}:{image_index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


@dataclass(frozen=True)
class Identity:
    """One new synthetic identity: the mix of ``parents`` (K classes) with ``weights``, one image per seed.

    For K > 2 the distances are the MEAN over the tuple's K(K-1)/2 pairs (for a pair: its distance)."""

    index: int
    parents: tuple[int, ...]
    weights: tuple[float, ...]
    embedding_distance: float
    condition_distance: float
    seeds: tuple[int, ...]

    def name(self, class_names: tuple[str, ...]) -> str:
        return "mix:" + "+".join(class_names[p] for p in self.parents)


def label_names(real_names: tuple[str, ...], generator_names: tuple[str, ...], num_classes: int) -> tuple[str, ...]:
    """The name of each of the generator's ``num_classes`` classes: the real data's class name (its ``ClassLabel``,
    name column or folder name) where the real data has that class, else the generator's own name."""
    names = [real_names[c] if c < len(real_names) else (generator_names[c] if c < len(generator_names) else str(c))
             for c in range(num_classes)]
    return unique_names(names)


@dataclass(frozen=True)
class MixPlan:
    identities: tuple[Identity, ...]
    class_names: tuple[str, ...] = ()  # the name of every class id a parent may have (rows' ``parent_names``)

    @cached_property
    def names(self) -> tuple[str, ...]:
        """Class names for every parent id in the plan (the ids themselves where the plan carries no names)."""
        top = max((max(i.parents) for i in self.identities), default=-1)
        if len(self.class_names) > top:
            return self.class_names
        return tuple(self.class_names) + tuple(str(c) for c in range(len(self.class_names), top + 1))

    @cached_property
    def identity_names(self) -> tuple[str, ...]:
        """One distinct name per identity, ``mix:<parent names joined by +>``: the ``label`` names of ``mix``."""
        names = self.names
        return unique_names([i.name(names) for i in self.identities])

    def seeds(self, identity_index: int) -> list[int]:
        return list(self.identities[identity_index].seeds)

    @property
    def num_images(self) -> int:
        return sum(len(i.seeds) for i in self.identities)


def make_plan(
    tuples: np.ndarray,
    weights: tuple[float, ...],
    embedding_distances: np.ndarray,
    condition_distances: np.ndarray,
    per_identity: int,
    seed: int,
) -> MixPlan:
    """Attach weights, both per-tuple distances (``(N,)`` arrays, whichever space chose the tuple) and the seed
    rule to the chosen ``(N, K)`` class tuples."""
    ids = tuple(
        Identity(
            index=i,
            parents=tuple(int(c) for c in row),
            weights=tuple(float(w) for w in weights),
            embedding_distance=float(embedding_distances[i]),
            condition_distance=float(condition_distances[i]),
            seeds=tuple(sample_seed(seed, i, j) for j in range(per_identity)),
        )
        for i, row in enumerate(np.asarray(tuples))
    )
    return MixPlan(identities=ids)
