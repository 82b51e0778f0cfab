"""Face preprocessing as pure image transforms: uint8 NHWC in, float NCHW (or resized uint8) out; no IO.

:func:`preprocess` maps uint8 NHWC to float NCHW: optional horizontal flip per sample, optional translation per
sample by ``(dy, dx)`` pixels with black (0) filling the uncovered border (:func:`shift_images`), channels
(RGB -> 1 by ITU-R 601 luma ``0.299 R + 0.587 G + 0.114 B``, 1 -> RGB by repetition), bilinear antialiased resize to
``size`` x ``size``, then ``x / 127.5 - 1 = (x / 255 - 0.5) / 0.5`` (insightface's normalisation), in ``[-1, 1]``.
:func:`resize_uint8` applies the same channel rule and resize once, rounded back to uint8, so a cache of decoded
images can already be at the input size. :class:`PreprocessConfig` is the typed choice of size, channels and
augmentations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..core.errors import ConfigError
from ..maths.image_tensors import fit_size, to_channels


@dataclass(frozen=True)
class PreprocessConfig:
    size: int = 112  # insightface's aligned face crops are 112x112
    channels: int = 3  # 3: RGB; 1: grey (digits, or a grey-level model)
    flip: bool = True  # random horizontal flips: right for faces, wrong for digits
    shift_pixels: int = 0  # random translation of up to this many pixels per axis (cheap augmentation for digits)

    def __post_init__(self) -> None:
        if self.size <= 0:
            raise ConfigError(f"input size must be positive, got {self.size}", hint="check `image_size`", field="image_size")
        if not 0 <= self.shift_pixels < self.size:
            raise ConfigError(f"shift_pixels must be in [0, {self.size}), got {self.shift_pixels}",
                              hint="check `shift_pixels`",
                              field="shift_pixels")
        if self.channels not in (1, 3):
            raise ConfigError(f"channels must be 1 or 3, got {self.channels}", hint="check `channels`", field="channels")


def as_uint8_tensor(x: np.ndarray) -> torch.Tensor:
    """A tensor on ``x``'s memory when it is contiguous and writable (torch refuses read-only arrays), else a copy."""
    x = np.ascontiguousarray(x)
    return torch.from_numpy(x if x.flags.writeable else x.copy())


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """float NCHW in 0..255 -> ``size``: the same pad-or-resize rule as ``embed_images`` (black margins)."""
    return fit_size(x, size, fill=0.0)


def shift_images(images: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """Translate each image of ``(N, H, W, C)`` by ``shifts[i] = (dy, dx)`` pixels (down, right), filling with 0.

    ``out[i, y, x] = images[i, y - dy, x - dx]`` where that pixel exists, else 0 (black background). One slice copy
    per image (a fancy-index gather is ~100x slower at 112x112 RGB); a new array (the input is never modified).

    >>> shift_images(np.arange(1, 5, dtype=np.uint8).reshape(1, 2, 2, 1), np.array([[0, 1]]))[0, :, :, 0].tolist()
    [[0, 1], [0, 3]]
    """
    n, h, w = images.shape[:3]
    out = np.zeros_like(images)
    for i, (dy, dx) in enumerate(np.asarray(shifts, dtype=np.int64).reshape(n, 2).tolist()):
        if abs(dy) < h and abs(dx) < w:  # else nothing of the image is left
            out[i, max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
                images[i, max(-dy, 0):h - max(dy, 0), max(-dx, 0):w - max(dx, 0)]
    return out


def augment(images: np.ndarray | torch.Tensor, flips: np.ndarray | torch.Tensor | None = None,
            shifts: np.ndarray | None = None) -> np.ndarray:
    """uint8 ``(N, H, W, C)`` -> uint8 ``(N, H, W, C)``: ``flips[i]`` mirrors image i, then ``shifts[i] = (dy, dx)``
    translates it (:func:`shift_images`). The caller's array is never modified. What a DataLoader worker does to a
    training batch: the float conversion (:func:`normalise`) can then run on the device."""
    x = images.numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if flips is not None:
        f = np.asarray(flips, dtype=bool)
        if f.any():
            x = x.copy()  # never modify the caller's (possibly cached) array
            x[f] = x[f][:, :, ::-1]  # NHWC: axis 2 is the width
    if shifts is not None and np.any(shifts):
        x = shift_images(x, shifts)
    return x


def normalise(images: torch.Tensor, size: int = 112, channels: int = 3) -> torch.Tensor:
    """uint8 ``(N, H, W, C)`` tensor, on any device -> float32 ``(N, channels, size, size)`` in [-1, 1] there
    (contiguous NCHW): channels, resize, ``x / 127.5 - 1``. Pure elementwise arithmetic after the layout change, so on
    a CPU it gives the same bits as converting before the copy; on an accelerator only uint8 crosses the bus (4x
    fewer bytes than float32) and the host does no float work."""
    t = images.permute(0, 3, 1, 2).float().contiguous()
    t = to_channels(t, channels)
    return _resize(t, size).div_(127.5).sub_(1.0)


def preprocess(images: np.ndarray | torch.Tensor, flips: np.ndarray | torch.Tensor | None = None, size: int = 112,
               channels: int = 3, shifts: np.ndarray | None = None) -> torch.Tensor:
    """uint8 ``(N, H, W, C)`` -> float32 ``(N, channels, size, size)`` in [-1, 1]; ``flips[i]`` mirrors image i, then
    ``shifts[i] = (dy, dx)`` translates it (:func:`shift_images`, in pixels of the input images):
    :func:`normalise` of :func:`augment`.

    >>> preprocess(np.full((1, 2, 2, 1), 255, np.uint8), size=2, channels=3).flatten().tolist()
    [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    """
    return normalise(as_uint8_tensor(augment(images, flips, shifts)), size, channels)


def resize_uint8(images: np.ndarray, size: int, channels: int, chunk: int = 512) -> np.ndarray:
    """uint8 NHWC -> uint8 ``(N, size, size, channels)``: :func:`preprocess`'s channel rule and resize, rounded.

    Returns ``images`` itself when they already have that shape.
    """
    if images.shape[1:] == (size, size, channels):
        return images
    out = np.empty((len(images), size, size, channels), dtype=np.uint8)
    for a in range(0, len(images), chunk):
        x = as_uint8_tensor(images[a:a + chunk]).permute(0, 3, 1, 2).float()
        x = _resize(to_channels(x, channels), size).round_().clamp_(0, 255)
        out[a:a + chunk] = x.to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return out
