"""The EDM2 magnitude-preserving UNet (Karras et al., CVPR 2024, "Analyzing and Improving the Training Dynamics of
Diffusion Models"), written for ScoreMix from the paper and the facts of issue 22 (no NVlabs code copied).

Owns: the magnitude-preserving (MP) primitives (:func:`normalize`, :func:`mp_silu`, :func:`mp_sum`, :func:`mp_cat`,
:func:`resample`, :class:`MPFourier`, :class:`MPConv`), the encoder/decoder :class:`Block` and the
:class:`EDM2UNet` (a diffusers ``ModelMixin``/``ConfigMixin``). The preconditioner is in :mod:`.precond`.

Parameter names are EDM2's, so an EDM2 ``state_dict`` loads strictly: ``emb_fourier.freqs/phases``,
``emb_noise.weight``, ``emb_label.weight``, ``enc.<r>x<r>_conv``, ``enc.<r>x<r>_down``, ``enc.<r>x<r>_block<i>``,
``dec.<r>x<r>_in0/in1/up/block<i>`` (each block: ``emb_gain``, ``conv_res0``, ``emb_linear``, ``conv_res1``,
optional ``conv_skip``, ``attn_qkv``, ``attn_proj``), ``out_conv.weight``, ``out_gain``.

Facts relied on (paper sections 2-3 and Appendix B/Fig. 21, issue 22, and the published architecture as read):
- weight normalisation per output channel: w / (1e-4 + ||w||/sqrt(fan_in)), then x gain/sqrt(fan_in); in training
  the stored weight is overwritten (no grad) with its normalised value (forced weight normalisation);
- convs are 'same' padded (kernel//2), no biases; fully-connected layers are MP convs with an empty kernel;
- mp_silu = silu/0.596; mp_sum(a, b, t) = lerp(a, b, t)/sqrt((1-t)^2+t^2); mp_cat scales a by C(1-t)/sqrt(Na) and
  b by Ct/sqrt(Nb) with C = sqrt((Na+Nb)/((1-t)^2+t^2));
- MPFourier: cos(2*pi*(x*f + p))*sqrt(2) with buffers freqs = 2*pi*f (f ~ N(0,1)) and phases = 2*pi*p (p ~ U(0,1));
- resampling with the filter [1,1]: its normalised outer product (all 1/4) as a depthwise stride-2 conv going down
  (= 2x2 average pool) and 4x that filter as a stride-2 transposed conv going up (= nearest-neighbour 2x);
- block: resample; encoder blocks apply conv_skip (if any) then pixel-normalise (over channels) the main path;
  residual = conv_res1(mp_silu(conv_res0(mp_silu(x)) * (emb_linear(emb, gain=emb_gain) + 1))) (dropout before
  conv_res1 in training); decoder blocks apply conv_skip after the residual branch; x = mp_sum(x, res, 0.3);
  attention: qkv channels laid out as (head, channel, q/k/v), each of q, k, v pixel-normalised over its head's
  channels, softmax(q.k/sqrt(c)) v, attn_proj, mp_sum(x, attn, 0.3); finally clip to +-clip_act (256);
- UNet: emb = mp_silu(mp_sum(emb_noise(fourier(c_noise)), emb_label(y*sqrt(label_dim)), 0.5)); a ones channel is
  appended to the input; every encoder output is a skip; each decoder 'block' first mp_cat's (main, skip) with
  t = 0.5; the lowest level's decoder starts with in0 (attention) and in1; out_conv has gain out_gain (init 0).
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

EPS = 1e-4
SILU_SCALE = 0.596


def normalize(x: torch.Tensor, dim: Optional[Sequence[int] | int] = None, eps: float = EPS) -> torch.Tensor:
    """x / (eps + ||x||/sqrt(n)) over ``dim`` (default: every dim but the first), n the number of reduced
    elements, so each slice has unit RMS; the norm is taken in float32."""
    dims = list(range(1, x.ndim)) if dim is None else ([dim] if isinstance(dim, int) else list(dim))
    norm = torch.linalg.vector_norm(x, dim=dims, keepdim=True, dtype=torch.float32)
    norm = torch.add(eps, norm, alpha=math.sqrt(norm.numel() / x.numel()))
    return x / norm.to(x.dtype)


def mp_silu(x: torch.Tensor) -> torch.Tensor:
    return F.silu(x) / SILU_SCALE


def mp_sum(a: torch.Tensor, b: torch.Tensor, t: float = 0.5) -> torch.Tensor:
    return a.lerp(b, t) / math.sqrt((1 - t) ** 2 + t ** 2)


def mp_cat(a: torch.Tensor, b: torch.Tensor, dim: int = 1, t: float = 0.5) -> torch.Tensor:
    na, nb = a.shape[dim], b.shape[dim]
    c = math.sqrt((na + nb) / ((1 - t) ** 2 + t ** 2))
    return torch.cat([a * (c / math.sqrt(na) * (1 - t)), b * (c / math.sqrt(nb) * t)], dim=dim)


def resample(x: torch.Tensor, mode: str = "keep", taps: Sequence[float] = (1, 1)) -> torch.Tensor:
    """'keep', 'down' (depthwise stride-2 conv with the normalised separable filter) or 'up' (stride-2 transposed
    conv with 4x that filter). With taps [1, 1]: 2x2 average pooling / nearest-neighbour doubling."""
    if mode == "keep":
        return x
    taps1d = torch.tensor([float(v) for v in taps], dtype=torch.float32)
    if taps1d.ndim != 1 or len(taps1d) % 2:
        raise ValueError("resample filter must be 1-D with an even number of taps")
    taps1d = taps1d / taps1d.sum()
    kernel = torch.outer(taps1d, taps1d).to(device=x.device, dtype=x.dtype)
    channels, pad = x.shape[1], (len(taps1d) - 1) // 2
    if mode == "down":
        return F.conv2d(x, kernel.expand(channels, 1, -1, -1), groups=channels, stride=2, padding=pad)
    if mode == "up":
        return F.conv_transpose2d(x, (kernel * 4).expand(channels, 1, -1, -1), groups=channels, stride=2,
                                  padding=pad)
    raise ValueError(f"unknown resample mode {mode!r}")


class MPFourier(nn.Module):
    """Magnitude-preserving Fourier features of a scalar per sample: (B,) -> (B, num_channels)."""

    def __init__(self, num_channels: int, bandwidth: float = 1.0) -> None:
        super().__init__()
        self.register_buffer("freqs", 2 * math.pi * torch.randn(num_channels) * bandwidth)
        self.register_buffer("phases", 2 * math.pi * torch.rand(num_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        angles = torch.outer(x.to(torch.float32), self.freqs.to(torch.float32)) + self.phases.to(torch.float32)
        return (angles.cos() * math.sqrt(2)).to(x.dtype)


class MPConv(nn.Module):
    """Magnitude-preserving conv (kernel [k, k]) or linear layer (kernel []), no bias."""

    def __init__(self, in_channels: int, out_channels: int, kernel: Sequence[int]) -> None:
        super().__init__()
        self.out_channels = out_channels
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, *kernel))

    def forward(self, x: torch.Tensor, gain: float | torch.Tensor = 1.0) -> torch.Tensor:
        w = self.weight.to(torch.float32)
        if self.training:
            with torch.no_grad():
                self.weight.copy_(normalize(w))
        w = normalize(w)
        w = (w * (gain / math.sqrt(w[0].numel()))).to(x.dtype)
        if w.ndim == 2:
            return x @ w.t()
        return F.conv2d(x, w, padding=w.shape[-1] // 2)


class Block(nn.Module):
    """One encoder ('enc') or decoder ('dec') block, optionally resampling and with self-attention."""

    def __init__(self, in_channels: int, out_channels: int, emb_channels: int, flavor: str = "enc",
                 resample_mode: str = "keep", resample_filter: Sequence[float] = (1, 1), attention: bool = False,
                 channels_per_head: int = 64, dropout: float = 0.0, res_balance: float = 0.3,
                 attn_balance: float = 0.3, clip_act: Optional[float] = 256) -> None:
        super().__init__()
        self.out_channels, self.flavor = out_channels, flavor
        self.resample_mode, self.resample_filter = resample_mode, list(resample_filter)
        self.num_heads = out_channels // channels_per_head if attention else 0
        self.dropout, self.res_balance, self.attn_balance, self.clip_act = dropout, res_balance, attn_balance, clip_act
        self.emb_gain = nn.Parameter(torch.zeros([]))
        self.conv_res0 = MPConv(out_channels if flavor == "enc" else in_channels, out_channels, [3, 3])
        self.emb_linear = MPConv(emb_channels, out_channels, [])
        self.conv_res1 = MPConv(out_channels, out_channels, [3, 3])
        self.conv_skip = MPConv(in_channels, out_channels, [1, 1]) if in_channels != out_channels else None
        self.attn_qkv = MPConv(out_channels, out_channels * 3, [1, 1]) if self.num_heads else None
        self.attn_proj = MPConv(out_channels, out_channels, [1, 1]) if self.num_heads else None

    def _attention(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        qkv = self.attn_qkv(x).reshape(n, self.num_heads, -1, 3, h * w)
        q, k, v = normalize(qkv, dim=2).unbind(3)
        scores = torch.einsum("nhcq,nhck->nhqk", q, k / math.sqrt(q.shape[2])).softmax(dim=3)
        return self.attn_proj(torch.einsum("nhqk,nhck->nhcq", scores, v).reshape(n, c, h, w))

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        x = resample(x, self.resample_mode, self.resample_filter)
        if self.flavor == "enc":
            if self.conv_skip is not None:
                x = self.conv_skip(x)
            x = normalize(x, dim=1)
        y = self.conv_res0(mp_silu(x))
        scale = self.emb_linear(emb, gain=self.emb_gain) + 1
        y = mp_silu(y * scale[:, :, None, None].to(y.dtype))
        if self.training and self.dropout:
            y = F.dropout(y, p=self.dropout)
        y = self.conv_res1(y)
        if self.flavor == "dec" and self.conv_skip is not None:
            x = self.conv_skip(x)
        x = mp_sum(x, y, t=self.res_balance)
        if self.num_heads:
            x = mp_sum(x, self._attention(x), t=self.attn_balance)
        if self.clip_act is not None:
            x = x.clamp(-self.clip_act, self.clip_act)
        return x


class EDM2UNet(ModelMixin, ConfigMixin):
    """F(x; c_noise, y) of EDM2: (B, C, H, W), (B,), (B, label_dim) -> (B, C, H, W)."""

    @register_to_config
    def __init__(self, img_resolution: int = 64, img_channels: int = 3, label_dim: int = 0,
                 model_channels: int = 192, channel_mult: Sequence[int] = (1, 2, 3, 4),
                 channel_mult_noise: Optional[int] = None, channel_mult_emb: Optional[int] = None,
                 num_blocks: int = 3, attn_resolutions: Sequence[int] = (16, 8), label_balance: float = 0.5,
                 concat_balance: float = 0.5, resample_filter: Sequence[float] = (1, 1),
                 channels_per_head: int = 64, dropout: float = 0.0, res_balance: float = 0.3,
                 attn_balance: float = 0.3, clip_act: Optional[float] = 256) -> None:
        super().__init__()
        widths = [model_channels * m for m in channel_mult]
        noise_ch = model_channels * channel_mult_noise if channel_mult_noise is not None else widths[0]
        emb_ch = model_channels * channel_mult_emb if channel_mult_emb is not None else max(widths)
        blk = dict(resample_filter=resample_filter, channels_per_head=channels_per_head, dropout=dropout,
                   res_balance=res_balance, attn_balance=attn_balance, clip_act=clip_act)
        self.label_balance, self.concat_balance = label_balance, concat_balance
        self.out_gain = nn.Parameter(torch.zeros([]))
        self.emb_fourier = MPFourier(noise_ch)
        self.emb_noise = MPConv(noise_ch, emb_ch, [])
        self.emb_label = MPConv(label_dim, emb_ch, []) if label_dim else None

        self.enc = nn.ModuleDict()
        width = img_channels + 1
        for level, level_width in enumerate(widths):
            res = img_resolution >> level
            if level == 0:
                self.enc[f"{res}x{res}_conv"] = MPConv(width, level_width, [3, 3])
                width = level_width
            else:
                self.enc[f"{res}x{res}_down"] = Block(width, width, emb_ch, "enc", resample_mode="down", **blk)
            for i in range(num_blocks):
                self.enc[f"{res}x{res}_block{i}"] = Block(width, level_width, emb_ch, "enc",
                                                          attention=res in attn_resolutions, **blk)
                width = level_width

        self.dec = nn.ModuleDict()
        skip_widths = [m.out_channels for m in self.enc.values()]
        for level in reversed(range(len(widths))):
            res, level_width = img_resolution >> level, widths[level]
            if level == len(widths) - 1:
                self.dec[f"{res}x{res}_in0"] = Block(width, width, emb_ch, "dec", attention=True, **blk)
                self.dec[f"{res}x{res}_in1"] = Block(width, width, emb_ch, "dec", **blk)
            else:
                self.dec[f"{res}x{res}_up"] = Block(width, width, emb_ch, "dec", resample_mode="up", **blk)
            for i in range(num_blocks + 1):
                self.dec[f"{res}x{res}_block{i}"] = Block(width + skip_widths.pop(), level_width, emb_ch, "dec",
                                                          attention=res in attn_resolutions, **blk)
                width = level_width
        self.out_conv = MPConv(width, img_channels, [3, 3])

    def forward(self, x: torch.Tensor, noise_labels: torch.Tensor,
                class_labels: Optional[torch.Tensor] = None) -> torch.Tensor:
        emb = self.emb_noise(self.emb_fourier(noise_labels))
        if self.emb_label is not None:
            label_emb = self.emb_label(class_labels * math.sqrt(class_labels.shape[1]))
            emb = mp_sum(emb, label_emb, t=self.label_balance)
        emb = mp_silu(emb)
        x = torch.cat([x, torch.ones_like(x[:, :1])], dim=1)
        skips = []
        for name, layer in self.enc.items():
            x = layer(x) if name.endswith("_conv") else layer(x, emb)
            skips.append(x)
        for name, layer in self.dec.items():
            if "_block" in name:
                x = mp_cat(x, skips.pop(), t=self.concat_balance)
            x = layer(x, emb)
        return self.out_conv(x, gain=self.out_gain)
