"""Pure conversions between uint8 images and the float tensors models take (and back): what a reader, a trainer, a
sampler and an embedder share, so none of them imports another for it."""

from __future__ import annotations

import warnings

import numpy as np
import torch
import torch.nn.functional as F


LUMA = (0.299, 0.587, 0.114)  # ITU-R 601, as PIL's convert("L")


def to_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """float NCHW with 1 or 3 channels -> ``channels``: RGB to grey by luma, grey to RGB by repetition."""
    if x.shape[1] == channels:
        return x
    if channels == 1:
        return (x * torch.tensor(LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)).sum(dim=1, keepdim=True)
    return x.expand(-1, channels, -1, -1).contiguous()


def fit_size(x: torch.Tensor, size: int, fill: float) -> torch.Tensor:
    """float NCHW -> ``size`` x ``size``: a smaller image with even margins is centre-padded with ``fill`` (MNIST
    28 -> 32 keeps the digit's scale); anything else is resized (bilinear, antialiased). Training and embedding both
    use this rule, so a model sees the same geometry in both."""
    h, w = x.shape[-2:]
    if (h, w) == (size, size):
        return x
    if h <= size and w <= size and (size - h) % 2 == 0 and (size - w) % 2 == 0:
        ph, pw = (size - h) // 2, (size - w) // 2
        return F.pad(x, (pw, pw, ph, ph), value=fill)
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


def to_model_tensor(images: np.ndarray, size: int, channels: int, device: str | torch.device | None = None
                    ) -> torch.Tensor:
    """uint8 NHWC -> float NCHW in [-1, 1] at ``size`` x ``size`` (:func:`to_channels`, :func:`fit_size`), on
    ``device``: the uint8 bytes are copied there first and converted there (a quarter of float32's bytes cross)."""
    images = np.ascontiguousarray(images)
    with warnings.catch_warnings():  # a read-only array (Arrow, a memory map) is only read: permute/float copy it
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable", category=UserWarning)
        x = torch.from_numpy(images)
    if device is not None:
        x = x.to(device, non_blocking=True)
    x = x.permute(0, 3, 1, 2).float() / 127.5 - 1.0
    return fit_size(to_channels(x, channels), size, fill=-1.0)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """float NCHW in [-1, 1] -> uint8 NHWC (the quantisation step before PNG encoding)."""
    x = ((x.float().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()
