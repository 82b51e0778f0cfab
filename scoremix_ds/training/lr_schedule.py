"""The learning-rate multiplier of both trainers: linear warm-up, then a decay from the peak to a floor.

``train`` (recognition) takes its schedule from ``--lr-schedule`` with floor 0; ``train-generator`` decays by
cosine to 5% of the peak (:data:`scoremix_ds.training.generator.LR_FLOOR`).
"""

from __future__ import annotations

import math


def lr_factor(step: int, warmup: int, total: int, schedule: str = "cosine", floor: float = 0.0) -> float:
    """Multiplier of the peak LR at 0-based optimizer step ``step``: ``(step + 1) / warmup`` during warm-up, then
    ``floor + (1 - floor) * d(p)`` with ``p = (step - warmup) / (total - warmup)`` and ``d`` the ``schedule``:
    ``cosine`` ``(1 + cos(pi p)) / 2``, ``poly`` ``(1 - p)^2``, ``constant`` 1."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    if schedule == "cosine":
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
    if schedule == "poly":
        return floor + (1.0 - floor) * (1.0 - progress) ** 2
    return 1.0
