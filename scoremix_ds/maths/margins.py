"""Margin heads for recognition training: the ArcFace additive angular margin (pure tensor maths, no IO)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


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
        labels: ``(N,)`` int64 target classes in ``[0, C)``.
        scale: ``s``, the radius of the hypersphere the logits live on.
        margin: ``m``, the additive angular margin in radians.

    Returns:
        ``(N, C)`` logits for cross-entropy; ``cos_theta`` is not modified.
    """
    cos_theta = cos_theta.clamp(-1.0, 1.0)
    target = cos_theta.gather(1, labels.view(-1, 1))  # cos(theta_y), (N, 1)
    sin_target = torch.sqrt((1.0 - target * target).clamp_min(1e-12))
    with_margin = target * math.cos(margin) - sin_target * math.sin(margin)  # cos(theta_y + m)
    threshold = math.cos(math.pi - margin)  # theta_y + m > pi  <=>  cos(theta_y) < cos(pi - m)
    target_logit = torch.where(target > threshold, with_margin, target - margin * math.sin(margin))
    is_target = F.one_hot(labels.view(-1), cos_theta.shape[1]).bool()
    return scale * torch.where(is_target, target_logit, cos_theta)


class ArcFaceHead(nn.Module):
    """Class weights ``(num_classes, dim)``, L2-normalised at every call, and the ArcFace margin on top.

    ``head(embeddings, labels)`` returns the logits to train with; ``head.cosine(embeddings)`` the plain cosines.
    """

    def __init__(self, num_classes: int, dim: int, scale: float = 64.0, margin: float = 0.5) -> None:
        super().__init__()
        self.scale = scale
        self.margin = margin
        self.weight = nn.Parameter(torch.empty(num_classes, dim))
        nn.init.normal_(self.weight, std=0.01)

    def cosine(self, embeddings: torch.Tensor) -> torch.Tensor:
        return F.linear(F.normalize(embeddings, dim=1), F.normalize(self.weight, dim=1))

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return arcface_logits(self.cosine(embeddings), labels, scale=self.scale, margin=self.margin)
