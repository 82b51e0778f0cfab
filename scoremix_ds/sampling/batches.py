"""Batched sampling: the one way every caller turns (classes, weights, seeds) into images with the sampler.

:class:`SamplingSettings` holds how a batch is sampled (steps, guidance, scheduler, weight schedule, mixing, batch
size); :func:`sample_batch` makes one batch (a fresh scheduler, then :func:`.scoremix.scoremix_sample`), and
:func:`sample_batches` / :func:`sample_images` cut a list into batches of ``batch_size``. The build
(``synthesis/rows.py``, which fills its batches across units and prepares them in a helper thread), its preview,
:class:`~scoremix_ds.sampling.pipeline.ScoreMixPipeline` and the tests all sample through :func:`sample_batch`, so
they make the same images from the same seeds. An image depends on its seed only, never on its batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from ..generators.loading import ClassConditionalGenerator
from ..maths.mixing import WeightSchedule
from ..maths.image_tensors import to_uint8
from .schedulers import make_scheduler
from .scoremix import scoremix_sample


@dataclass(frozen=True)
class SamplingSettings:
    """How images are sampled: everything but which classes, weights and seeds (see :func:`.scoremix.scoremix_sample`).
    A build takes them from its config (``BuildConfig.sampling``)."""

    steps: int = 25
    guidance: float = 1.0  # 1: no guidance; else classifier-free (null class) or, with a weak generator, autoguidance
    scheduler: str = "ddim"  # a name from sampling.schedulers.SCHEDULERS
    prediction_type: str | None = None  # None: the generator folder's scheduler config decides
    schedule: WeightSchedule = WeightSchedule()
    mixing: str = "score"  # "score" (ScoreMix) or "condition" (AugGen)
    batch_size: int = 64  # images per sampler call (no effect on the images)
    # edm-heun only: its Karras noise levels, None = the EDM2 generator folder's (scoremix.json ``sampler``)
    sigma_min: float | None = None
    sigma_max: float | None = None
    rho: float | None = None

    def new_scheduler(self, scheduler_config: dict | None):
        """A fresh scheduler (schedulers carry per-run state: one per batch) on the generator's noise schedule."""
        overrides = {k: v for k, v in (("sigma_min", self.sigma_min), ("sigma_max", self.sigma_max),
                                       ("rho", self.rho)) if v is not None}
        return make_scheduler(self.scheduler, scheduler_config, self.prediction_type, overrides)


def sample_batch(gen: ClassConditionalGenerator, settings: SamplingSettings, classes, weights, seeds: Sequence[int], *,
                 weak: ClassConditionalGenerator | None = None, scheduler=None, noise=None,
                 return_latents: bool = False) -> torch.Tensor:
    """One batch: ``(B, K)`` class ids and mixing weights (tensors, arrays or nested lists) and ``B`` seeds ->
    ``(B, C, H, W)`` images in ``[-1, 1]`` on the generator's device. ``scheduler`` (an unused instance) and
    ``noise`` (``initial_noise(seeds, ...)``) may be made ahead of time, e.g. in another thread; by default they are
    made here, with the same result."""
    if scheduler is None:
        scheduler = settings.new_scheduler(gen.scheduler_config)
    return scoremix_sample(gen, scheduler, torch.as_tensor(classes), torch.as_tensor(weights, dtype=torch.float32),
                           list(seeds), settings.steps, settings.guidance, weak, settings.schedule,
                           return_latents=return_latents, mixing=settings.mixing, noise=noise)


def sample_batches(gen: ClassConditionalGenerator, settings: SamplingSettings, classes, weights, seeds: Sequence[int],
                   *, weak: ClassConditionalGenerator | None = None) -> Iterator[torch.Tensor]:
    """The images for ``(classes, weights, seeds)`` (indexable, one entry per image), in batches of
    ``settings.batch_size``, in order (images in ``[-1, 1]``, on the generator's device)."""
    for start in range(0, len(seeds), settings.batch_size):
        sl = slice(start, start + settings.batch_size)
        yield sample_batch(gen, settings, classes[sl], weights[sl], seeds[sl], weak=weak)


def sample_images(gen: ClassConditionalGenerator, settings: SamplingSettings, classes: np.ndarray, weights: np.ndarray,
                  seeds: list[int], *, weak: ClassConditionalGenerator | None = None,
                  on_batch: Callable[[int], None] | None = None) -> list[np.ndarray]:
    """uint8 HxWxC images for ``(classes, weights, seeds)`` (the build's preview, ``folder``); ``on_batch`` gets
    each batch's image count."""
    out: list[np.ndarray] = []
    for x in sample_batches(gen, settings, classes, weights, seeds, weak=weak):
        imgs = list(to_uint8(x))
        out.extend(imgs)
        if on_batch is not None:
            on_batch(len(imgs))
    return out
