"""Figures are drawn on their own Agg canvas: writing one leaves the process's matplotlib backend alone."""

from __future__ import annotations

import numpy as np


def test_a_figure_does_not_switch_the_matplotlib_backend(tmp_path):
    import matplotlib

    from scoremix_ds.core.plots import save_histograms

    before = matplotlib.get_backend()
    matplotlib.use("pdf")  # any backend but Agg: drawing a PNG must not switch it
    try:
        path = save_histograms(tmp_path / "h.png", [("a", np.array([0.1, 0.2, 0.4])), ("b", np.array([0.3, 0.5]))],
                               "distance", "title", [("mark", 0.25)])
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert matplotlib.get_backend() == "pdf"
    finally:
        matplotlib.use(before)
