"""Class centres in an embedding space and cosine distances between them."""

from __future__ import annotations

import numpy as np


def l2_normalise(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, eps)


def class_centres(embeddings: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Mean of the L2-normalised embeddings of each class. Shape ``(num_classes, D)``.

    A class with no sample gets a NaN row, so that it can never be chosen silently.
    """
    e = l2_normalise(np.asarray(embeddings, dtype=np.float64))
    sums = np.zeros((num_classes, e.shape[1]))
    np.add.at(sums, labels, e)
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / counts


def cosine_distances(vectors: np.ndarray) -> np.ndarray:
    """``1 - cos(v_i, v_j)`` for all rows, shape ``(N, N)``, zero on the diagonal."""
    v = l2_normalise(np.asarray(vectors, dtype=np.float64))
    d = 1.0 - v @ v.T
    np.fill_diagonal(d, 0.0)
    return np.clip(d, 0.0, 2.0)
