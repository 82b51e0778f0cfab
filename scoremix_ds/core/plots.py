"""Small matplotlib figures written as PNG: a ``Figure`` on its own Agg canvas, never pyplot, so drawing one
neither switches the process's matplotlib backend nor needs a display."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from .card_text import plot_safe
from .outputs import atomic_path


def agg_figure(figsize: tuple[float, float], dpi: int = 100):
    """A ``matplotlib.figure.Figure`` drawn by its own Agg canvas (no pyplot: no global backend, no figure registry)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def save_png(fig, path: str | Path) -> Path:
    """Write ``fig`` to ``path`` as PNG, atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


def save_histograms(path: Path, series: Sequence[tuple[str, np.ndarray]], xlabel: str, title: str,
                    vlines: Sequence[tuple[str, float]] = ()) -> Path:
    """Overlaid density histograms of several samples on shared bins, plus labelled vertical lines."""
    values = [np.asarray(v, dtype=float) for _, v in series if len(v)]
    lo = min(float(v.min()) for v in values)
    hi = max(float(v.max()) for v in values)
    bins = np.linspace(lo, hi if hi > lo else lo + 1e-6, 41)
    fig = agg_figure((6, 3.6))
    ax = fig.add_subplot()
    for label, v in series:
        if len(v):
            ax.hist(np.asarray(v, dtype=float), bins=bins, density=True, alpha=0.55, label=plot_safe(f"{label} (n={len(v)})"))
    for label, x in vlines:
        ax.axvline(x, color="black", linestyle="--", linewidth=1)
        ax.annotate(label, (x, 0.95), xycoords=("data", "axes fraction"), rotation=90, va="top", ha="right", fontsize=8)
    ax.set_xlabel(plot_safe(xlabel))
    ax.set_ylabel("density")
    ax.set_title(plot_safe(title), fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_png(fig, path)
