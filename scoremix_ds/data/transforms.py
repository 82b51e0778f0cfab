"""Pure conversions between uint8 images and the float tensors models take."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def to_model_tensor(images: np.ndarray, size: int, channels: int) -> torch.Tensor:
    """uint8 NHWC -> float NCHW in [-1, 1] at ``size`` x ``size``.

    Smaller images are centre-padded with black (MNIST 28 -> 32 keeps the digit's scale); others are resized.
    """
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    if x.shape[1] != channels:
        if channels == 1:
            x = x.mean(dim=1, keepdim=True)
        elif x.shape[1] == 1:
            x = x.expand(-1, channels, -1, -1)
    h, w = x.shape[-2:]
    if (h, w) != (size, size):
        if h <= size and w <= size and (size - h) % 2 == 0 and (size - w) % 2 == 0:
            ph, pw = (size - h) // 2, (size - w) // 2
            x = F.pad(x, (pw, pw, ph, ph), value=-1.0)
        else:
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return x


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """float NCHW in [-1, 1] -> uint8 NHWC (the quantisation step before PNG encoding)."""
    x = ((x.float().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()
