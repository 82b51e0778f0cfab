"""The preview grid: one row per mix, ``parent A repro | mix | parent B repro [| parent C ...]`` from one seed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ..core.outputs import atomic_path


def preview_grid(rows: list[tuple[np.ndarray, ...]], scale: int = 3, gap: int = 2) -> Image.Image:
    """Assemble rows of uint8 HxWxC images into one image, upscaled ``scale`` times (nearest) for visibility."""
    h, w, c = rows[0][0].shape
    cols = max(len(r) for r in rows)
    width = cols * w * scale + (cols + 1) * gap
    height = len(rows) * (h * scale + gap) + gap
    canvas = np.full((height, width, c), 255, dtype=np.uint8)
    for r, triplet in enumerate(rows):
        for col, img in enumerate(triplet):
            big = img.repeat(scale, axis=0).repeat(scale, axis=1)
            y, x = gap + r * (h * scale + gap), gap + col * (w * scale + gap)
            canvas[y : y + h * scale, x : x + w * scale] = big
    return Image.fromarray(canvas[..., 0] if c == 1 else canvas)


def save_preview(path: Path, rows: list[tuple[np.ndarray, ...]]) -> None:
    with atomic_path(path) as tmp:  # a full disk never leaves a truncated preview.png
        preview_grid(rows).save(tmp, format="PNG")
