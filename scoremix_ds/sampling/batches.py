"""Sampling a list of images outside the build pipeline (the preview, ``folder``); the build itself samples
through :mod:`scoremix_ds.synthesis.rows`."""

from __future__ import annotations

import numpy as np
import torch

from ..sources.transforms import to_uint8
from ..generators.loading import ClassConditionalGenerator
from .schedulers import make_scheduler
from .scoremix import scoremix_sample
from ..synthesis.config import BuildConfig


def sample_images(gen: ClassConditionalGenerator, weak, config: BuildConfig, classes: np.ndarray, weights: np.ndarray,
                  seeds: list[int], on_batch=None) -> list[np.ndarray]:
    """uint8 HxWxC images for ``(classes, weights, seeds)`` in batches of ``config.batch_size``."""
    out: list[np.ndarray] = []
    for start in range(0, len(seeds), config.batch_size):
        sl = slice(start, start + config.batch_size)
        scheduler = make_scheduler(config.scheduler, gen.scheduler_config, config.prediction_type)
        x = scoremix_sample(gen, scheduler, torch.as_tensor(np.asarray(classes[sl])),
                            torch.as_tensor(np.asarray(weights[sl]), dtype=torch.float32), seeds[sl],
                            config.steps, config.guidance, weak, config.schedule, mixing=config.mixing)
        imgs = list(to_uint8(x))
        out.extend(imgs)
        if on_batch is not None:
            on_batch(len(imgs))
    return out
