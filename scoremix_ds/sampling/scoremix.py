"""The ScoreMix sampler: an explicit reverse-diffusion loop that mixes class-conditioned outputs every step.

Pure: tensors in, tensors out. No IO, no logging. Each sample has its own seeded ``torch.Generator`` (its
initial noise, and any stochastic scheduler noise, are drawn from it alone), so an image can be regenerated from
its seed and never depends on what else shares its batch.
"""

from __future__ import annotations

import inspect
from contextlib import ExitStack, contextmanager
from typing import Iterator, Sequence

import torch

from ..core.errors import ModelError
from ..maths.mixing import WeightSchedule, guide, mix
from ..generators.edm2.generator import EDMHeunScheduler, edm2_sample
from ..generators.loading import ClassConditionalGenerator
from .condition_mix import mixed_class_embeddings

MIXING_MODES = ("score", "condition")


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
    mixing: str = "score",
    noise: tuple[torch.Tensor, list[torch.Generator]] | None = None,
) -> torch.Tensor:
    """Sample a batch of K-way score mixes (or, with ``mixing="condition"``, condition mixes).

    Args:
        generator: the class-conditional denoiser (on its device and dtype).
        scheduler: a fresh diffusers scheduler instance, or for an EDM2 generator an ``EDMHeunScheduler``
            (``edm-heun``: :func:`scoremix_ds.generators.edm2.generator.edm2_sample` samples it, the generator's
            folder guide being the weak network unless ``weak`` is given).
        classes: ``(B, K)`` class ids to mix per sample (``K = 1`` is plain class-conditional sampling).
        weights: ``(B, K)`` mixing weights (validated by the caller).
        seeds: ``B`` per-sample seeds.
        num_steps: number of scheduler steps.
        guidance: ``g``; 1 disables guidance. With ``weak`` it is autoguidance, else classifier-free guidance
            against the generator's null class.
        weak: optional weaker checkpoint for autoguidance.
        schedule: how weights vary along the trajectory.
        return_latents: skip VAE decoding.
        mixing: ``"score"`` (ScoreMix: K conditioned outputs per step, mixed) or ``"condition"`` (AugGen: one output
            per step on the mixed class-condition vector, :mod:`scoremix_ds.sampling.condition_mix`).
        noise: ``initial_noise(seeds, generator.sample_shape)`` drawn ahead of time (e.g. in another thread while
            the previous batch samples); the same values and generator states as drawing it here.

    Returns:
        ``(B, C, H, W)`` images in ``[-1, 1]`` (float32, on the generator's device).

    >>> # x = scoremix_sample(gen, make_scheduler("ddim", gen.scheduler_config),
    >>> #                     torch.tensor([[3, 7]]), torch.tensor([[.5, .5]]), [1234], num_steps=25)
    """
    b, k = classes.shape
    if len(seeds) != b or weights.shape != (b, k):
        raise ValueError("classes, weights and seeds must describe the same batch")
    if mixing not in MIXING_MODES:
        raise ValueError(f"mixing must be one of {MIXING_MODES}, got {mixing!r}")
    generator.check_classes(classes)
    if isinstance(scheduler, EDMHeunScheduler) or generator.kind == "edm2":  # EDM2: sigma-space Heun, its own loop
        return _edm_sample(generator, scheduler, classes, weights, seeds, num_steps, guidance, weak, schedule,
                           return_latents, mixing, noise)
    cfg = guidance != 1.0 and weak is None
    if cfg and generator.null_class is None:
        raise ModelError(
            "classifier-free guidance needs a null class, and this generator has none",
            hint="use `guidance` 1, or a generator trained with label dropout (scoremix.json null_class)", field="guidance",
        )
    device = generator.device
    noise, gens = noise if noise is not None else initial_noise(seeds, generator.sample_shape)
    # The scheduler's bookkeeping (timesteps, alphas, sigmas) stays on the host, so indexing it never waits for the
    # accelerator; the model gets every timestep from ONE copy made before the loop: no host-device sync per step.
    # Host -> device copies are non_blocking: a blocking one would make the host wait for the device's queue (the
    # previous batch) before it could queue this one. Source buffers stay valid (pinned ones are kept by torch's
    # host allocator until their copy is done; pageable ones are staged at once).
    scheduler.set_timesteps(num_steps, device="cpu")
    x = noise.to(device, non_blocking=True) * scheduler.init_noise_sigma
    weights = weights.to(device=device, dtype=torch.float32, non_blocking=True)

    by_condition = mixing == "condition"
    if by_condition:  # one forward per step on the mixed condition; the labels only fill the batch
        k_out, labels = 1, classes[:, 0]
    else:  # all K conditions (plus the null class) in ONE batched forward: labels laid out condition-major
        k_out, labels = k, classes.t().reshape(-1)
    if cfg:
        labels = torch.cat([labels, torch.full((b,), generator.null_class, dtype=labels.dtype)])
    labels = labels.to(device, non_blocking=True)
    n_cond = k_out + int(cfg)
    step_kwargs = {"generator": gens} if "generator" in inspect.signature(scheduler.step).parameters else {}

    timesteps = scheduler.timesteps
    model_timesteps = timesteps.to(device, non_blocking=True)
    for i, t in enumerate(timesteps):
        t_model = model_timesteps[i]
        x_in = scheduler.scale_model_input(x, t)
        # Progress counts scheduler steps, not model calls: both evaluations of a 2nd-order (Heun) step share it.
        w = schedule(weights, (i // scheduler.order) / num_steps)
        with _conditions(generator, weak, classes, w, by_condition):
            out = generator.predict(x_in.repeat(n_cond, 1, 1, 1), t_model, labels).view(n_cond, b, *x.shape[1:])
            cond = out[:k_out]
            if cfg:
                cond = guide(cond, out[k_out:], guidance)  # Classifier-free guidance, per condition.
            elif weak is not None and guidance != 1.0:
                base = weak.predict(x_in.repeat(k_out, 1, 1, 1), t_model, labels).view(k_out, b, *x.shape[1:])
                cond = guide(cond, base, guidance)  # Autoguidance against the weaker checkpoint.
        eps = cond[0] if by_condition else mix(cond, w)  # ScoreMix: convex mix of the K outputs.
        x = scheduler.step(eps, t, x, **step_kwargs).prev_sample
    return x if return_latents else generator.decode(x)


def _edm_sample(generator, scheduler, classes, weights, seeds, num_steps, guidance, weak, schedule, return_latents,
                mixing, noise) -> torch.Tensor:
    """An EDM2 generator with the ``edm-heun`` sampler; the folder's guide is the weak network unless one is given."""
    if not isinstance(scheduler, EDMHeunScheduler) or generator.kind != "edm2":
        raise ModelError("the edm-heun scheduler samples EDM2 generators, and only it does" if generator.kind == "edm2"
                         else f"scheduler edm-heun samples EDM2 generators only, not a {generator.kind} one",
                         hint="set `scheduler` to edm-heun for an EDM2 folder, else to ddim, dpm++, euler or heun",
                         field="scheduler")
    weak = weak if weak is not None else getattr(generator, "guide", None)
    noise_t = (noise if noise is not None else initial_noise(seeds, generator.sample_shape))[0]
    x = edm2_sample(generator, scheduler, classes, weights, noise_t, num_steps, guidance, weak, schedule, mixing)
    return x.float() if return_latents else generator.decode(x.float())


@contextmanager
def _conditions(generator, weak, classes: torch.Tensor, weights: torch.Tensor, by_condition: bool) -> Iterator[None]:
    """Condition mixing: hook the class tables of the generator (and the weak one) for this step's weights."""
    if not by_condition:
        yield
        return
    with ExitStack() as stack:
        for g in (generator, weak):
            if g is not None:
                stack.enter_context(mixed_class_embeddings(g.denoiser, g.kind, classes, weights))
        yield
