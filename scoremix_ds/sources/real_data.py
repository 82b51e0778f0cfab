"""Labelled images in memory: :class:`RealData`, what :func:`scoremix_ds.sources.openers.read_real_data` returns
for ANY data reference, and what every built-in reader (:mod:`.readers`, :mod:`.glyphs`) makes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RealData:
    """Labelled images held in memory: ``images`` is uint8 NHWC, ``labels`` int64 in ``[0, len(class_names))``."""

    images: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    source: str  # the reference as given (built-ins: what they are), fit for a card once public_ref'd
    licence: str
    attribution: str
    provenance: str = ""  # exactly what was read (resolved Hub commit, folder digest), as the data layer says
    commit: str | None = None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)
