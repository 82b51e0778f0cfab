"""Small matplotlib figures written as PNG (Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save_histograms(path: Path, series: Sequence[tuple[str, np.ndarray]], xlabel: str, title: str,
                    vlines: Sequence[tuple[str, float]] = ()) -> Path:
    """Overlaid density histograms of several samples on shared bins, plus labelled vertical lines."""
    plt = _pyplot()
    values = [np.asarray(v, dtype=float) for _, v in series if len(v)]
    lo = min(float(v.min()) for v in values)
    hi = max(float(v.max()) for v in values)
    bins = np.linspace(lo, hi if hi > lo else lo + 1e-6, 41)
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=100)
    for label, v in series:
        if len(v):
            ax.hist(np.asarray(v, dtype=float), bins=bins, density=True, alpha=0.55, label=f"{label} (n={len(v)})")
    for label, x in vlines:
        ax.axvline(x, color="black", linestyle="--", linewidth=1)
        ax.annotate(label, (x, 0.95), xycoords=("data", "axes fraction"), rotation=90, va="top", ha="right", fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    from ..outputs import atomic_path

    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)
    return path
