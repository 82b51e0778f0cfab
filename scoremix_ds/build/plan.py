"""The mixing plan: which synthetic identities exist, their parents, weights, distances and per-image seeds.

Seeds are derived from the build seed and the (identity, image) index only, never from a rank or batch, so the
rows do not depend on how the work is split.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np


def sample_seed(build_seed: int, identity_index: int, image_index: int) -> int:
    """A 63-bit seed for one image, a pure function of the build seed and its indices."""
    digest = hashlib.blake2b(f"scoremix:{build_seed}:{identity_index}:{image_index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


@dataclass(frozen=True)
class Identity:
    """One new synthetic identity: the mix of ``parents`` with ``weights``."""

    index: int
    parents: tuple[int, ...]
    weights: tuple[float, ...]
    embedding_distance: float
    condition_distance: float

    def name(self, class_names: tuple[str, ...]) -> str:
        return "mix:" + "+".join(class_names[p] for p in self.parents)


@dataclass(frozen=True)
class MixPlan:
    identities: tuple[Identity, ...]
    per_identity: int
    seed: int

    def seeds(self, identity_index: int) -> list[int]:
        return [sample_seed(self.seed, identity_index, j) for j in range(self.per_identity)]

    @property
    def num_images(self) -> int:
        return len(self.identities) * self.per_identity


def make_plan(
    pairs: np.ndarray,
    weights: tuple[float, ...],
    embedding_distances: np.ndarray,
    condition_distances: np.ndarray,
    per_identity: int,
    seed: int,
) -> MixPlan:
    """Attach weights, both distances (whichever space chose the pair) and the seed rule to chosen pairs."""
    ids = tuple(
        Identity(
            index=i,
            parents=(int(a), int(b)),
            weights=tuple(float(w) for w in weights),
            embedding_distance=float(embedding_distances[a, b]),
            condition_distance=float(condition_distances[a, b]),
        )
        for i, (a, b) in enumerate(pairs)
    )
    return MixPlan(identities=ids, per_identity=per_identity, seed=seed)
