"""EDM preconditioning around the EDM2 UNet: the denoiser D(x; sigma, y) ScoreMix samples with.

Owns: :func:`precond_coefficients` and :class:`EDM2Denoiser` (a diffusers ``ModelMixin``/``ConfigMixin`` whose
constructor takes EDM2's ``Precond`` keyword arguments, so a snapshot's ``_init_kwargs`` build it directly, and whose
``state_dict`` keys are EDM2's: ``unet.*``, ``logvar_fourier.freqs/phases``, ``logvar_linear.weight``).

Facts relied on (Karras et al. 2022 Table 1 and 2024 Sec. 2, issue 22): sigma_data = 0.5;
c_skip = sd^2/(sigma^2+sd^2), c_out = sigma*sd/sqrt(sigma^2+sd^2), c_in = 1/sqrt(sd^2+sigma^2),
c_noise = ln(sigma)/4; D = c_skip*x + c_out*F(c_in*x; c_noise, y); the inputs are taken in float32 and F runs in
fp16 only on CUDA when ``use_fp16``; a missing label is the zero vector; the uncertainty head
logvar = logvar_linear(logvar_fourier(c_noise)) (128 channels) is evaluated only when asked (training).
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin

from .unet import EDM2UNet, MPConv, MPFourier

SIGMA_DATA = 0.5


def precond_coefficients(sigma: torch.Tensor, sigma_data: float = SIGMA_DATA):
    """(c_skip, c_out, c_in, c_noise) at ``sigma`` (any shape; c_noise is flattened)."""
    c_skip = sigma_data ** 2 / (sigma ** 2 + sigma_data ** 2)
    c_out = sigma * sigma_data / (sigma ** 2 + sigma_data ** 2).sqrt()
    c_in = 1 / (sigma_data ** 2 + sigma ** 2).sqrt()
    c_noise = sigma.flatten().log() / 4
    return c_skip, c_out, c_in, c_noise


class EDM2Denoiser(ModelMixin, ConfigMixin):
    """EDM2's ``Precond``: D(x; sigma, y), with the training-only uncertainty head."""

    @register_to_config
    def __init__(self, img_resolution: int = 64, img_channels: int = 3, label_dim: int = 0,
                 use_fp16: bool = True, sigma_data: float = SIGMA_DATA, logvar_channels: int = 128,
                 model_channels: int = 192, channel_mult: Sequence[int] = (1, 2, 3, 4),
                 channel_mult_noise: Optional[int] = None, channel_mult_emb: Optional[int] = None,
                 num_blocks: int = 3, attn_resolutions: Sequence[int] = (16, 8), label_balance: float = 0.5,
                 concat_balance: float = 0.5, resample_filter: Sequence[float] = (1, 1),
                 channels_per_head: int = 64, dropout: float = 0.0, res_balance: float = 0.3,
                 attn_balance: float = 0.3, clip_act: Optional[float] = 256) -> None:
        super().__init__()
        self.img_resolution, self.img_channels, self.label_dim = img_resolution, img_channels, label_dim
        self.use_fp16, self.sigma_data = use_fp16, sigma_data
        self.unet = EDM2UNet(
            img_resolution=img_resolution, img_channels=img_channels, label_dim=label_dim,
            model_channels=model_channels, channel_mult=list(channel_mult), channel_mult_noise=channel_mult_noise,
            channel_mult_emb=channel_mult_emb, num_blocks=num_blocks, attn_resolutions=list(attn_resolutions),
            label_balance=label_balance, concat_balance=concat_balance, resample_filter=list(resample_filter),
            channels_per_head=channels_per_head, dropout=dropout, res_balance=res_balance,
            attn_balance=attn_balance, clip_act=clip_act)
        self.logvar_fourier = MPFourier(logvar_channels)
        self.logvar_linear = MPConv(logvar_channels, 1, [])

    def forward(self, x: torch.Tensor, sigma: torch.Tensor | float, class_labels: Optional[torch.Tensor] = None,
                force_fp32: bool = False, return_logvar: bool = False):
        x = x.to(torch.float32)
        sigma = torch.as_tensor(sigma, device=x.device).to(torch.float32).reshape(-1, 1, 1, 1)
        if self.label_dim == 0:
            labels = None
        elif class_labels is None:
            labels = torch.zeros([1, self.label_dim], device=x.device)
        else:
            labels = class_labels.to(device=x.device, dtype=torch.float32).reshape(-1, self.label_dim)
        half = self.use_fp16 and not force_fp32 and x.device.type == "cuda"
        c_skip, c_out, c_in, c_noise = precond_coefficients(sigma, self.sigma_data)
        f_x = self.unet((c_in * x).to(torch.float16 if half else torch.float32), c_noise, labels)
        d_x = c_skip * x + c_out * f_x.to(torch.float32)
        if return_logvar:
            return d_x, self.logvar_linear(self.logvar_fourier(c_noise)).reshape(-1, 1, 1, 1)
        return d_x
