"""Margin heads for recognition training: ArcFace, CosFace and AdaFace (pure tensor maths, no IO).

Every head turns cosines between L2-normalised embeddings and L2-normalised class centres into logits for
cross-entropy, with a margin on the target class only. The ``*_logits`` functions are the formulas; the
modules in :data:`HEADS` own the class-centre matrix (and AdaFace's running norm statistics) and share one
constructor, ``Head(num_classes, dim, scale=..., margin=..., **extra)``, and one call,
``head(embeddings, labels) -> logits`` on RAW (unnormalised) embeddings: AdaFace needs their norms.

A label of ``-1`` (:data:`IGNORE`) marks a row whose class is not among the columns (Partial FC on a rank that
does not hold that class): the row gets no margin, only ``scale * cos``.

>>> head = HEADS["cosface"](num_classes=3, dim=4, scale=10.0, margin=0.35)
>>> head(torch.randn(2, 4), torch.tensor([0, 2])).shape
torch.Size([2, 3])
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..core.errors import ConfigError

IGNORE = -1


def _targets(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(labels clamped into range as an (N, 1) index, (N, 1) bool: the row has a target column)``."""
    labels = labels.view(-1, 1)
    return labels.clamp_min(0), labels >= 0


def _with_targets(cos_theta: torch.Tensor, labels: torch.Tensor, target_logit: torch.Tensor, scale: float
                  ) -> torch.Tensor:
    """``scale * cos_theta`` with each row's target column replaced by ``scale * target_logit`` (rows labelled -1
    keep their cosine): by index, with no ``(N, C)`` one-hot, and the same values as masking would give."""
    safe, has_target = _targets(labels)
    target_logit = torch.where(has_target, target_logit, cos_theta.gather(1, safe))
    return (scale * cos_theta).scatter(1, safe, scale * target_logit)


def arcface_logits(cos_theta: torch.Tensor, labels: torch.Tensor, scale: float = 64.0, margin: float = 0.5) -> torch.Tensor:
    """ArcFace logits (Deng et al., CVPR 2019) from cosines between embeddings and class weights.

    With ``theta_y = arccos(cos_theta[i, y_i])`` for the target class ``y_i``::

        logit[i, j] = s * cos(theta_y + m)        if j == y_i and theta_y + m <= pi
                    = s * (cos(theta_y) - m*sin(m))  if j == y_i and theta_y + m > pi
                    = s * cos_theta[i, j]           otherwise

    ``cos(theta + m) = cos(theta)cos(m) - sin(theta)sin(m)``. Past ``theta = pi - m`` that curve would rise again
    (the target logit would grow as the sample moves away), so insightface switches to the monotone linear
    fallback ``cos(theta) - m*sin(m)`` (its ``th = cos(pi - m)``, ``mm = sin(pi - m)*m``).

    Args:
        cos_theta: ``(N, C)`` cosines, in [-1, 1].
        labels: ``(N,)`` int64 target classes in ``[0, C)``, or -1 for no target column.
        scale: ``s``, the radius of the hypersphere the logits live on.
        margin: ``m``, the additive angular margin in radians.

    Returns:
        ``(N, C)`` logits for cross-entropy; ``cos_theta`` is not modified.
    """
    cos_theta = cos_theta.clamp(-1.0, 1.0)
    safe, _ = _targets(labels)
    target = cos_theta.gather(1, safe)  # cos(theta_y), (N, 1)
    sin_target = torch.sqrt((1.0 - target * target).clamp_min(1e-12))
    with_margin = target * math.cos(margin) - sin_target * math.sin(margin)  # cos(theta_y + m)
    threshold = math.cos(math.pi - margin)  # theta_y + m > pi  <=>  cos(theta_y) < cos(pi - m)
    target_logit = torch.where(target > threshold, with_margin, target - margin * math.sin(margin))
    return _with_targets(cos_theta, labels, target_logit, scale)


def cosface_logits(
    cos_theta: torch.Tensor, labels: torch.Tensor, scale: float = 64.0, margin: float = 0.4
) -> torch.Tensor:
    """CosFace / large-margin cosine loss logits (Wang et al., CVPR 2018), insightface's ``CosFace``::

        logit[i, j] = s * (cos_theta[i, j] - m)   if j == y_i
                    = s * cos_theta[i, j]         otherwise

    Args:
        cos_theta: ``(N, C)`` cosines (clamped to [-1, 1]).
        labels: ``(N,)`` target classes in ``[0, C)``, or -1 for no target column.
        scale: ``s``; margin: ``m``, the additive cosine margin.
    """
    cos_theta = cos_theta.clamp(-1.0, 1.0)
    safe, _ = _targets(labels)
    return _with_targets(cos_theta, labels, cos_theta.gather(1, safe) - margin, scale)


def adaface_statistics(
    norms: torch.Tensor, batch_mean: torch.Tensor, batch_std: torch.Tensor, t_alpha: float = 0.01
) -> tuple[torch.Tensor, torch.Tensor]:
    """AdaFace's EMA of the feature-norm mean and standard deviation (official ``head.py``, ``AdaFace.forward``)::

        n = clip(norms, 0.001, 100)                     (no gradient)
        mean' = t_alpha * mean(n) + (1 - t_alpha) * mean
        std'  = t_alpha * std(n)  + (1 - t_alpha) * std   (std with Bessel's correction, torch.std's default)

    ``t_alpha`` is the weight of the current batch (official training default 0.01; 1.0 uses the batch alone).
    Returns the new ``(mean, std)``; nothing is modified in place.
    """
    safe = norms.detach().clamp(0.001, 100.0)
    mean = t_alpha * safe.mean() + (1.0 - t_alpha) * batch_mean
    std = t_alpha * safe.std() + (1.0 - t_alpha) * batch_std
    return mean, std


def adaface_logits(
    cos_theta: torch.Tensor,
    norms: torch.Tensor,
    labels: torch.Tensor,
    batch_mean: torch.Tensor | float,
    batch_std: torch.Tensor | float,
    scale: float = 64.0,
    margin: float = 0.4,
    h: float = 0.333,
    eps: float = 1e-3,
) -> torch.Tensor:
    """AdaFace logits (Kim, Jain & Liu, "AdaFace: Quality Adaptive Margin for Face Recognition", CVPR 2022).

    The feature norm ``||z_i||`` is a proxy of image quality. Following the official implementation
    (github.com/mk-minchul/AdaFace, ``head.py``, ``AdaFace.forward``) with ``mu`` / ``sigma`` the running norm
    statistics (:func:`adaface_statistics`)::

        cos  = clip(cos_theta, -1 + eps, 1 - eps)
        n_i  = clip(||z_i||, 0.001, 100)                            (no gradient)
        hat  = clip((n_i - mu) / (sigma + eps) * h, -1, 1)           "margin_scaler"
        g_angle = -m * hat                                          the paper's angular margin g_angle
        g_add   =  m * hat + m                                      the paper's additive margin g_add
        logit[i, y_i] = s * (cos(clip(arccos(cos[i, y_i]) + g_angle, eps, pi - eps)) - g_add)
        logit[i, j]   = s * cos[i, j]                               j != y_i

    High-norm (high-quality) samples, ``hat = 1``, get ``cos(theta - m) - 2m`` (hard samples weigh more);
    low-norm ones, ``hat = -1``, get ``cos(theta + m)``, ArcFace's margin (hard samples weigh less); ``hat = 0``
    gives ``cos(theta) - m``, CosFace's. The official code applies ``cos(clip(arccos(.)))`` to every column; off the target it is the
    identity on ``[-1 + eps, 1 - eps]`` (up to float rounding), so only the target column is transformed here.

    Args:
        cos_theta: ``(N, C)`` cosines.
        norms: ``(N,)`` or ``(N, 1)`` L2 norms of the raw embeddings.
        labels: ``(N,)`` target classes in ``[0, C)``, or -1 for no target column.
        batch_mean, batch_std: ``mu`` and ``sigma``, the (already updated) norm statistics.
        scale: ``s``; margin: ``m``; h: the concentration ``h`` (0.333 keeps ~68% of ``hat`` in [-1/3, 1/3]);
        eps: the official ``eps = 1e-3``.
    """
    cos_theta = cos_theta.clamp(-1.0 + eps, 1.0 - eps)
    safe, _ = _targets(labels)
    safe_norms = norms.detach().reshape(-1, 1).clamp(0.001, 100.0)
    margin_scaler = ((safe_norms - batch_mean) / (batch_std + eps) * h).clamp(-1.0, 1.0)  # (N, 1)
    g_angular = -margin * margin_scaler
    g_additive = margin + margin * margin_scaler
    target = cos_theta.gather(1, safe)
    theta_m = (torch.acos(target) + g_angular).clamp(eps, math.pi - eps)
    target_logit = torch.cos(theta_m) - g_additive
    return _with_targets(cos_theta, labels, target_logit, scale)


class MarginHead(nn.Module):
    """Class centres ``(num_classes, dim)``, L2-normalised at every call, and a margin on top.

    ``head(embeddings, labels)`` returns the logits to train with from RAW embeddings; ``head.cosine(embeddings)``
    the plain cosines; ``head.margin_logits(cos, labels, norms)`` the margin alone on any set of columns (what
    Partial FC calls on its sampled centres).
    """

    def __init__(self, num_classes: int, dim: int, scale: float = 64.0, margin: float = 0.5) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.dim = dim
        self.scale = scale
        self.margin = margin
        self.weight = nn.Parameter(torch.empty(num_classes, dim))
        nn.init.normal_(self.weight, std=0.01)

    def cosine(self, embeddings: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        """``(N, C)`` cosines between embeddings and ``weight`` (default: all class centres), in float32 even under
        autocast (the margins take arccos / sqrt of them; insightface also computes its logits in fp32)."""
        weight = self.weight if weight is None else weight
        with torch.autocast(device_type=embeddings.device.type, enabled=False):  # fp32 matmul, not bf16-then-cast
            return F.linear(F.normalize(embeddings.float(), dim=1), F.normalize(weight.float(), dim=1))

    def margin_logits(self, cos_theta: torch.Tensor, labels: torch.Tensor, norms: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.margin_logits(self.cosine(embeddings), labels, embeddings.detach().norm(dim=1))


class ArcFaceHead(MarginHead):
    """ArcFace (:func:`arcface_logits`); insightface defaults ``s = 64``, ``m = 0.5``."""

    def margin_logits(self, cos_theta: torch.Tensor, labels: torch.Tensor, norms: torch.Tensor) -> torch.Tensor:
        return arcface_logits(cos_theta, labels, scale=self.scale, margin=self.margin)


class CosFaceHead(MarginHead):
    """CosFace (:func:`cosface_logits`); insightface defaults ``s = 64``, ``m = 0.4``."""

    def __init__(self, num_classes: int, dim: int, scale: float = 64.0, margin: float = 0.4) -> None:
        super().__init__(num_classes, dim, scale=scale, margin=margin)

    def margin_logits(self, cos_theta: torch.Tensor, labels: torch.Tensor, norms: torch.Tensor) -> torch.Tensor:
        return cosface_logits(cos_theta, labels, scale=self.scale, margin=self.margin)


class AdaFaceHead(MarginHead):
    """AdaFace (:func:`adaface_logits`) with its running norm statistics as buffers (saved and resumed).

    Official defaults: ``s = 64``, ``m = 0.4``, ``h = 0.333``, ``t_alpha = 0.01``; the statistics start at
    ``mean = 20``, ``std = 100``. As in the official head the statistics are updated BEFORE the margin is computed,
    so the current batch already counts; unlike it, only in training mode (an eval-mode call leaves them alone).
    A batch of one row has no standard deviation: it leaves the statistics unchanged.
    """

    def __init__(
        self,
        num_classes: int,
        dim: int,
        scale: float = 64.0,
        margin: float = 0.4,
        h: float = 0.333,
        t_alpha: float = 0.01,
        eps: float = 1e-3,
    ) -> None:
        super().__init__(num_classes, dim, scale=scale, margin=margin)
        self.h = h
        self.t_alpha = t_alpha
        self.eps = eps
        self.register_buffer("batch_mean", torch.full((1,), 20.0))
        self.register_buffer("batch_std", torch.full((1,), 100.0))

    def margin_logits(self, cos_theta: torch.Tensor, labels: torch.Tensor, norms: torch.Tensor) -> torch.Tensor:
        if self.training and norms.numel() > 1:
            with torch.no_grad():
                mean, std = adaface_statistics(norms, self.batch_mean, self.batch_std, self.t_alpha)
                self.batch_mean.copy_(mean)
                self.batch_std.copy_(std)
        return adaface_logits(
            cos_theta, norms, labels, self.batch_mean, self.batch_std,
            scale=self.scale, margin=self.margin, h=self.h, eps=self.eps,
        )


HEADS: dict[str, type[MarginHead]] = {"arcface": ArcFaceHead, "cosface": CosFaceHead, "adaface": AdaFaceHead}


def build_head(name: str, num_classes: int, dim: int, **kwargs) -> MarginHead:
    """A fresh head by its name in :data:`HEADS` (``kwargs``: ``scale``, ``margin`` and the head's own extras)."""
    if name not in HEADS:
        raise ConfigError(f"unknown head '{name}'", hint=f"`head` takes one of {', '.join(HEADS)}", field="head")
    return HEADS[name](num_classes, dim, **kwargs)
