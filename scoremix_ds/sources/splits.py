"""Deterministic held-out splits of labelled data."""

from __future__ import annotations

import numpy as np

from ..core.errors import DataError

# The embedded default discriminator held out 50 images per class with seed 0 (builders/default-discriminator.toml):
# `mnist-5k-heldout` is exactly those images, `mnist-5k-train` the other 4,500.
DEFAULT_HOLDOUT_PER_CLASS = 50
DEFAULT_HOLDOUT_SEED = 0


def split_holdout(labels: np.ndarray, per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, held-out): ``per_class`` random images of every class held out, the same for a seed."""
    rng = np.random.default_rng(seed)
    held = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        if len(members) <= per_class:
            raise DataError(
                f"class {c} has {len(members)} images, too few to hold out {per_class}", hint="hold out fewer images per class"
            )
        held.append(rng.choice(members, size=per_class, replace=False))
    held_idx = np.sort(np.concatenate(held)) if held and per_class else np.zeros(0, dtype=np.int64)
    train_idx = np.setdiff1d(np.arange(len(labels)), held_idx)
    return train_idx, held_idx
