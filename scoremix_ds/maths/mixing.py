"""The ScoreMix rule: a convex combination of class-conditioned model outputs, with optional guidance.

At every reverse step (the ScoreMix rule, arXiv 2506.10226)::

    eps_k   = base_k + g * (eps(x_t, t, c_k) - base_k)       # guidance per condition (g = 1: none)
    eps_mix = sum_k w_k(t) * eps_k,   w_k >= 0,  sum_k w_k = 1

``base_k`` is the null-class output (classifier-free guidance) or a weaker checkpoint's output for ``c_k``
(autoguidance). Every parametrisation (epsilon, v, x0) is affine in the score at fixed ``x_t``, so mixing model
outputs of one parametrisation is mixing scores.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from ..core.errors import ConfigError

CONVEX_TOLERANCE = 1e-6


def validate_weights(weights: Sequence[float], k: int, allow_nonconvex: bool = False) -> tuple[float, ...]:
    """Check ``weights`` for a K-way mix; refuse non-convex weights unless explicitly allowed."""
    w = tuple(float(x) for x in weights)
    if len(w) != k:
        raise ConfigError(f"weights has {len(w)} value(s) but each mix has {k} classes", hint=f"give {k} weights",
                          field="weights")
    if any(not math.isfinite(x) for x in w):
        raise ConfigError(f"weights {w} contains a non-finite value", hint="set weights to finite values, e.g. 0.5,0.5",
                          field="weights")
    if not allow_nonconvex:
        if any(x < 0 for x in w):
            raise ConfigError(f"weights {w} has a negative weight", hint="use weights >= 0, or set allow_nonconvex",
                              fields=("weights", "allow_nonconvex"))
        if abs(sum(w) - 1.0) > CONVEX_TOLERANCE:
            raise ConfigError(
                f"weights {w} sum to {sum(w):g}, not 1 (images wash out below 1 and saturate above)",
                hint="make them sum to 1, or set allow_nonconvex", fields=("weights", "allow_nonconvex"),
            )
    return w


def guide(cond: torch.Tensor, base: torch.Tensor, scale: float) -> torch.Tensor:
    """Guidance of one condition: ``base + g * (cond - base)``; ``g = 1`` returns ``cond``."""
    if scale == 1.0:
        return cond
    return base + scale * (cond - base)


def mix(outputs: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Convex mix of K outputs.

    Args:
        outputs: ``(K, B, ...)`` model outputs, one slice per condition.
        weights: ``(B, K)`` per-sample weights.

    Returns:
        ``(B, ...)`` tensor ``sum_k weights[:, k] * outputs[k]``.
    """
    k, b = outputs.shape[:2]
    w = weights.to(outputs.dtype).t().reshape(k, b, *([1] * (outputs.dim() - 2)))
    return (w * outputs).sum(dim=0)


@dataclass(frozen=True)
class WeightSchedule:
    """How the weights vary along the trajectory; ``progress`` runs from 0 (pure noise) to 1 (last step).

    ``constant``: the given weights at every step. ``window``: the given weights while ``start <= progress < end``,
    and only the first class (weights ``(1, 0, ...)``) outside the window.
    """

    name: str = "constant"
    start: float = 0.0
    end: float = 1.0

    def __post_init__(self) -> None:
        if self.name not in WEIGHT_SCHEDULES:
            raise ConfigError(f"unknown weight schedule '{self.name}'",
                              hint=f"set weight_schedule to one of {', '.join(WEIGHT_SCHEDULES)}", field="weight_schedule")
        if not 0.0 <= self.start < self.end <= 1.0:
            raise ConfigError(
                f"weight window [{self.start}, {self.end}) is empty or outside [0, 1]",
                hint="set 0 <= window_start < window_end <= 1", fields=("window_start", "window_end"),
            )

    def __call__(self, weights: torch.Tensor, progress: float) -> torch.Tensor:
        return WEIGHT_SCHEDULES[self.name](weights, progress, self.start, self.end)


def _constant(weights: torch.Tensor, progress: float, start: float, end: float) -> torch.Tensor:
    return weights


def _window(weights: torch.Tensor, progress: float, start: float, end: float) -> torch.Tensor:
    if start <= progress < end:
        return weights
    first = torch.zeros_like(weights)
    first[:, 0] = 1.0
    return first


WEIGHT_SCHEDULES: dict[str, Callable[[torch.Tensor, float, float, float], torch.Tensor]] = {
    "constant": _constant,
    "window": _window,
}
