"""EDM2's training objective (Karras et al., CVPR 2024, Sec. 2 and Appendix: written from the paper, no NVlabs code):
the noise-level draw, the label vector and the loss with the learned uncertainty, as pure functions of tensors.

Owns: :func:`edm2_sigma` (ln sigma ~ N(p_mean, p_std^2) from a standard normal), :func:`onehot_labels` (class ids to
one-hot vectors, the dropped label ``num_classes`` to the zero vector) and :func:`edm2_loss`:

    n = sigma * eps,  D, logvar = denoiser(x + n, sigma, y),  weight = (sigma^2 + sd^2) / (sigma * sd)^2,
    loss = mean over batch and pixels of  weight / exp(logvar) * (D - x)^2 + logvar

(``logvar``: the denoiser's uncertainty head, one value per sample). The denoiser runs in float32 here
(``force_fp32``): mixed precision is the training loop's autocast, not EDM2Denoiser's own fp16 switch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def edm2_sigma(normal: torch.Tensor, p_mean: float = -0.8, p_std: float = 1.6) -> torch.Tensor:
    """sigma = exp(p_mean + p_std * normal): EDM's log-normal noise levels from standard-normal draws."""
    return (normal * p_std + p_mean).exp()


def onehot_labels(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """One-hot float rows for class ids ``labels``; the id ``num_classes`` (a dropped label) is the zero vector."""
    return F.one_hot(labels.long(), num_classes + 1)[:, :num_classes].float()


def edm2_loss(denoiser, x: torch.Tensor, sigma: torch.Tensor, noise: torch.Tensor, labels: torch.Tensor | None
              ) -> torch.Tensor:
    """The EDM2 loss of ``denoiser`` (an :class:`~scoremix_ds.generators.edm2.EDM2Denoiser`) on clean images ``x``
    (B, C, H, W) at noise levels ``sigma`` (B,) with standard-normal ``noise`` and label vectors ``labels`` (B, K)."""
    sigma = sigma.float().reshape(-1, 1, 1, 1)
    sd = float(denoiser.sigma_data)
    weight = (sigma ** 2 + sd ** 2) / (sigma * sd) ** 2
    denoised, logvar = denoiser(x + sigma * noise, sigma, labels, force_fp32=True, return_logvar=True)
    return (weight / logvar.exp() * (denoised.float() - x) ** 2 + logvar).mean()
