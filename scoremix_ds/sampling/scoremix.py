"""The ScoreMix sampler: an explicit reverse-diffusion loop that mixes class-conditioned outputs every step.

Pure: tensors in, tensors out. No IO, no logging. Each sample has its own seeded ``torch.Generator`` (its
initial noise, and any stochastic scheduler noise, are drawn from it alone), so an image can be regenerated from
its seed and never depends on what else shares its batch.
"""

from __future__ import annotations

import inspect
from typing import Sequence

import torch

from ..errors import ModelError
from ..maths.mixing import WeightSchedule, guide, mix
from ..models.generator import ClassConditionalGenerator


def initial_noise(seeds: Sequence[int], shape: tuple[int, ...]) -> tuple[torch.Tensor, list[torch.Generator]]:
    """One CPU generator per sample; noise drawn on CPU in float32 so it is the same on every device."""
    gens = [torch.Generator(device="cpu").manual_seed(int(s)) for s in seeds]
    noise = torch.stack([torch.randn(shape, generator=g, dtype=torch.float32) for g in gens])
    return noise, gens


@torch.inference_mode()
def scoremix_sample(
    generator: ClassConditionalGenerator,
    scheduler,
    classes: torch.Tensor,
    weights: torch.Tensor,
    seeds: Sequence[int],
    num_steps: int,
    guidance: float = 1.0,
    weak: ClassConditionalGenerator | None = None,
    schedule: WeightSchedule = WeightSchedule(),
    return_latents: bool = False,
) -> torch.Tensor:
    """Sample a batch of K-way score mixes.

    Args:
        generator: the class-conditional denoiser (on its device and dtype).
        scheduler: a fresh diffusers scheduler instance.
        classes: ``(B, K)`` class ids to mix per sample (``K = 1`` is plain class-conditional sampling).
        weights: ``(B, K)`` mixing weights (validated by the caller).
        seeds: ``B`` per-sample seeds.
        num_steps: number of scheduler steps.
        guidance: ``g``; 1 disables guidance. With ``weak`` it is autoguidance, else classifier-free guidance
            against the generator's null class.
        weak: optional weaker checkpoint for autoguidance.
        schedule: how weights vary along the trajectory.
        return_latents: skip VAE decoding.

    Returns:
        ``(B, C, H, W)`` images in ``[-1, 1]`` (float32, on the generator's device).

    >>> # x = scoremix_sample(gen, make_scheduler("ddim", gen.scheduler_config),
    >>> #                     torch.tensor([[3, 7]]), torch.tensor([[.5, .5]]), [1234], num_steps=25)
    """
    b, k = classes.shape
    if len(seeds) != b or weights.shape != (b, k):
        raise ValueError("classes, weights and seeds must describe the same batch")
    generator.check_classes(classes)
    cfg = guidance != 1.0 and weak is None
    if cfg and generator.null_class is None:
        raise ModelError(
            "classifier-free guidance needs a null class, and this generator has none",
            hint="use --guidance 1, or a generator trained with label dropout (scoremix.json null_class)",
        )
    device = generator.device
    noise, gens = initial_noise(seeds, generator.sample_shape)
    scheduler.set_timesteps(num_steps, device=device)
    x = noise.to(device) * scheduler.init_noise_sigma
    weights = weights.to(device=device, dtype=torch.float32)

    # All K conditions (plus the null class) in ONE batched forward: labels laid out condition-major.
    labels = classes.t().reshape(-1)
    if cfg:
        labels = torch.cat([labels, torch.full((b,), generator.null_class, dtype=labels.dtype)])
    labels = labels.to(device)
    n_cond = k + int(cfg)
    step_kwargs = {"generator": gens} if "generator" in inspect.signature(scheduler.step).parameters else {}

    timesteps = scheduler.timesteps
    for i, t in enumerate(timesteps):
        x_in = scheduler.scale_model_input(x, t)
        out = generator.predict(x_in.repeat(n_cond, 1, 1, 1), t, labels).view(n_cond, b, *x.shape[1:])
        cond = out[:k]
        if cfg:
            cond = guide(cond, out[k:], guidance)  # Classifier-free guidance, per condition.
        elif weak is not None and guidance != 1.0:
            base = weak.predict(x_in.repeat(k, 1, 1, 1), t, labels).view(k, b, *x.shape[1:])
            cond = guide(cond, base, guidance)  # Autoguidance against the weaker checkpoint.
        # Progress counts scheduler steps, not model calls: both evaluations of a 2nd-order (Heun) step share it.
        progress = (i // scheduler.order) / num_steps
        eps = mix(cond, schedule(weights, progress))  # ScoreMix: convex mix of the K outputs.
        x = scheduler.step(eps, t, x, **step_kwargs).prev_sample
    return x if return_latents else generator.decode(x)
