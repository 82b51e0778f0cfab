"""``ScoreMixPipeline``: a generator folder as a diffusers pipeline, sampling K-way score mixes.

A folder written by ``scoremix-ds train-generator`` (and the embedded default) holds ``model_index.json`` next to its
``unet/`` (or ``transformer/`` [+ ``vae/``]) and ``scheduler/``, so diffusers loads it as this pipeline::

    import scoremix_ds                          # registers ScoreMixPipeline with diffusers (no code loaded)
    from diffusers import DiffusionPipeline

    pipe = DiffusionPipeline.from_pretrained("my-generator")      # or scoremix_ds.ScoreMixPipeline.from_pretrained
    images = pipe(classes=[(3, 7), ("alice", "bob")], weights=[(0.5, 0.5), (0.7, 0.3)], seeds=[0, 1],
                  num_inference_steps=25, guidance_scale=3.0).images   # PIL images

``model_index.json`` names the class ``ScoreMixPipeline`` and, as a diffusers pipeline's config, the class count,
the null class (for classifier-free guidance) and the class names (``id2label``: ``{"0": name, ...}``). diffusers resolves a pipeline class name in its
own namespace only (a name it does not ship needs ``custom_pipeline`` + ``trust_remote_code``, i.e. code executed
from the model folder); ``import scoremix_ds`` registers the class there instead
(:func:`scoremix_ds.register_diffusers_pipelines`, a lazy attribute), so no code is ever loaded from a folder or a
Hub repository. The pipeline samples through the library's batches (:mod:`.batches`), so for the
same classes, weights, seeds and settings it returns exactly what ``scoremix-ds build`` writes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

import diffusers
import numpy as np
import PIL.Image
import torch
from diffusers import DiffusionPipeline
from diffusers.utils import BaseOutput

from ..maths.image_tensors import to_uint8
from ..maths.mixing import WeightSchedule, validate_weights
from ..generators.loading import ClassConditionalGenerator
from .batches import SamplingSettings, sample_batch

MODEL_INDEX = "model_index.json"
COMPONENTS = ("unet", "transformer", "vae", "scheduler")
OUTPUT_TYPES = ("pil", "np", "pt", "latent")


@dataclass
class ScoreMixPipelineOutput(BaseOutput):
    """``images``: PIL images, a uint8 ``(B, H, W, C)`` array (``"np"``) or a float ``(B, C, H, W)`` tensor in
    ``[-1, 1]`` (``"pt"``), one per requested mix, in order."""

    images: list[PIL.Image.Image] | np.ndarray | torch.Tensor


class ScoreMixPipeline(DiffusionPipeline):
    """Class-conditional sampling with ScoreMix: the K classes' conditioned outputs mixed at every step.

    Components: a class-conditional ``unet`` (``UNet2DModel`` with ``num_class_embeds``) or ``transformer``
    (``DiTTransformer2DModel``), an optional ``vae`` (latent models) and the training ``scheduler`` (its noise
    schedule, sampled with DDIM as a build samples it, until ``pipe.scheduler`` is replaced: then the replacement
    samples; a ``sampler`` named in ``__call__`` is built from the held scheduler's config). ``num_classes``,
    ``null_class`` and ``id2label`` (the class names) are saved in ``model_index.json``.
    """

    _optional_components = ["unet", "transformer", "vae"]
    model_cpu_offload_seq = "transformer->unet->vae"

    def __init__(self, scheduler, unet=None, transformer=None, vae=None, num_classes: int | None = None,
                 null_class: int | None = None, id2label: dict[str, str] | list[str] | None = None) -> None:
        super().__init__()
        if (unet is None) == (transformer is None):
            raise ValueError("ScoreMixPipeline needs exactly one denoiser: unet or transformer")
        self.register_modules(unet=unet, transformer=transformer, vae=vae, scheduler=scheduler)
        self._loaded_scheduler = scheduler  # the folder's (training) scheduler: see ``sampler`` in __call__
        denoiser = unet if unet is not None else transformer
        if num_classes is None:
            num_classes = int(denoiser.config.get("num_class_embeds") or denoiser.config.get("num_embeds_ada_norm"))
        self.register_to_config(num_classes=int(num_classes), null_class=null_class,
                                id2label=class_table(id2label, int(num_classes)))

    @property
    def class_names(self) -> list[str]:
        """The name of each class id ``0..num_classes-1``."""
        return [self.config.id2label[str(i)] for i in range(self.config.num_classes)]

    # ------------------------------------------------------------------------------------------ the generator

    def as_generator(self) -> ClassConditionalGenerator:
        """The components as the library's :class:`ClassConditionalGenerator` (same modules, no copy)."""
        denoiser = self.unet if self.unet is not None else self.transformer
        cfg = denoiser.config
        return ClassConditionalGenerator(
            denoiser=denoiser, kind="unet" if self.unet is not None else "dit", num_classes=self.config.num_classes,
            null_class=self.config.null_class, class_names=tuple(self.class_names),
            sample_shape=(int(cfg.get("in_channels", 3)), int(cfg.get("sample_size", 32)), int(cfg.get("sample_size", 32))),
            scheduler_config=dict(self.scheduler.config), vae=self.vae, source=str(self.config.get("_name_or_path", "")),
        )

    def class_ids(self, classes: Sequence[Sequence[int | str]]) -> torch.Tensor:
        """``(B, K)`` class ids from tuples of ids or class names (all tuples of one size)."""
        names = {n: i for i, n in enumerate(self.class_names)}
        rows = []
        for tup in classes:
            row = []
            for c in tup:
                if isinstance(c, str):
                    if c not in names:
                        raise ValueError(f"unknown class name {c!r}; this generator's classes are {list(names)[:10]}...")
                    c = names[c]
                row.append(int(c))
            rows.append(row)
        if not rows or len({len(r) for r in rows}) != 1 or len(rows[0]) < 1:
            raise ValueError("classes must be a non-empty list of tuples of one size (K >= 1 classes each)")
        return torch.tensor(rows, dtype=torch.int64)

    # ---------------------------------------------------------------------------------------------- sampling

    @torch.inference_mode()
    def __call__(
        self,
        classes: Sequence[Sequence[int | str]],
        weights: Sequence[Sequence[float]] | None = None,
        seeds: Sequence[int] | None = None,
        num_inference_steps: int = 25,
        guidance_scale: float = 3.0,
        sampler: str | None = None,
        mixing: Literal["score", "condition"] = "score",
        weight_schedule: WeightSchedule = WeightSchedule(),
        batch_size: int = 64,
        output_type: Literal["pil", "np", "pt", "latent"] = "pil",
        return_dict: bool = True,
        num_images_per_prompt: int = 1,
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        callback_on_step_end: Callable[..., dict] | None = None,
        callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",),
    ) -> ScoreMixPipelineOutput | tuple:
        """Sample ``num_images_per_prompt`` images per mix.

        Args:
            classes: one tuple per mix (the "prompt") of the K class ids (or class names) to mix, e.g.
                ``[(3, 7), (1, 2)]``; a 1-tuple samples that class alone.
            weights: one tuple of K mixing weights per mix (convex: >= 0, sum 1); ``None``: equal weights.
            seeds: one seed per image (the same seed gives the same image, whatever else is in the batch, and the
                image ``scoremix-ds build`` writes for that mix and seed); ``None``: ``0, 1, ..., N-1``.
            num_inference_steps: sampler steps.
            guidance_scale: ``g``; 1 disables guidance, otherwise classifier-free guidance against the null class
                (the model must have one, ``model_index.json`` ``null_class``).
            sampler: ``None`` (default): the scheduler this pipeline holds, ``pipe.scheduler`` (set it the
                diffusers way, ``pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)``).
                A loaded folder holds its *training* schedule (``DDPMScheduler``); until ``pipe.scheduler`` is
                replaced, that schedule is sampled with DDIM, the build's default sampler, so the pipeline gives
                the build's images (a ``scheduler=`` given to ``from_pretrained`` counts as the folder's: assign
                ``pipe.scheduler`` after loading to sample with it). A name (``ddim``, ``dpm++``, ``heun``;
                ``edm-heun`` for EDM2) builds that sampler from the held scheduler's config instead (a fresh one per
                batch). ``euler`` is refused: on these discrete
                schedules deterministic DDIM *is* Euler's method on the rescaled ODE, so it would return ddim's
                images (assign an Euler scheduler with other sigmas, e.g. ``use_karras_sigmas=True``, instead).
            mixing: ``score`` (ScoreMix) or ``condition`` (mix the class-condition vectors, the AugGen baseline).
            weight_schedule: how the weights vary along the trajectory (default: constant).
            batch_size: images per forward batch (no effect on the images).
            output_type: ``pil`` (the build's uint8 pixels), ``np`` (float ``(N, H, W, C)`` in ``[0, 1]``), ``pt``
                (float ``(N, C, H, W)`` in ``[0, 1]``: ``x / 2 + 0.5`` clipped, as diffusers pipelines return) or
                ``latent`` (the sampler's output before any VAE decoding, unscaled).
            return_dict: return a :class:`ScoreMixPipelineOutput` (else a 1-tuple).
            num_images_per_prompt: images per mix; image ``j`` of mix ``i`` is at ``i * num_images_per_prompt + j``.
            generator: a ``torch.Generator`` (all the noise drawn from it) or one per image, used instead of
                ``seeds`` (the initial noise and any stochastic sampler noise come from it).
            latents: standard-normal initial noise ``(N, C, H, W)`` (the denoiser's sample shape); the pipeline
                scales it to the scheduler's ``init_noise_sigma``. Sampling is then a pure function of ``latents``
                (and, for a stochastic sampler, of ``generator`` or ``seeds``).
            callback_on_step_end: ``callback(pipe, step, timestep, callback_kwargs) -> dict`` after every sampler
                step, as in diffusers; ``callback_kwargs`` holds ``callback_on_step_end_tensor_inputs``
                (``"latents"``: the current ``x_t`` of the batch being sampled; ``step`` counts from 0 in each batch
                of ``batch_size``); a returned ``"latents"`` replaces it.
            callback_on_step_end_tensor_inputs: the tensors passed to the callback (``["latents"]`` only).

        Returns:
            :class:`ScoreMixPipelineOutput` with ``images``, in the order of ``classes``.

        Example (the embedded default generator, MNIST digits)::

            >>> from scoremix_ds import ScoreMixPipeline
            >>> from scoremix_ds.core.resources import default_model_dir
            >>> pipe = ScoreMixPipeline.from_pretrained(default_model_dir("generator"))
            >>> out = pipe(classes=[(3, 7)], seeds=[0], num_inference_steps=2, output_type="np")
            >>> out.images.shape
            (1, 32, 32, 1)
        """
        if num_images_per_prompt < 1:
            raise ValueError("num_images_per_prompt must be >= 1")
        bad_inputs = [k for k in callback_on_step_end_tensor_inputs if k not in self._callback_tensor_inputs]
        if bad_inputs:
            raise ValueError(f"callback_on_step_end_tensor_inputs may name {self._callback_tensor_inputs}, not {bad_inputs}")
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type must be one of {OUTPUT_TYPES}, got {output_type!r}")
        ids = self.class_ids(classes)
        b, k = ids.shape
        w = torch.full((b, k), 1.0 / k, dtype=torch.float32) if weights is None else torch.tensor(weights, dtype=torch.float32)
        if w.shape != (b, k):
            raise ValueError(f"weights must be {b} tuples of {k}, got shape {tuple(w.shape)}")
        for row in w.tolist():
            validate_weights(tuple(row), k, False)
        ids, w = ids.repeat_interleave(num_images_per_prompt, 0), w.repeat_interleave(num_images_per_prompt, 0)
        n = b * num_images_per_prompt
        if seeds is not None and generator is not None:
            raise ValueError("give seeds or generator, not both")
        seeds = list(range(n)) if seeds is None else [int(s) for s in seeds]
        if len(seeds) != n:
            raise ValueError(f"seeds must give one seed per image ({b} mixes x {num_images_per_prompt}), got {len(seeds)}")
        if isinstance(generator, list) and len(generator) != n:
            raise ValueError(f"generator: a list must hold one torch.Generator per image ({n}), got {len(generator)}")
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        gen = self.as_generator()
        noise = self._initial_noise(gen, n, seeds, generator, latents)
        settings = SamplingSettings(steps=num_inference_steps, guidance=guidance_scale, scheduler=sampler or "ddim",
                                    schedule=weight_schedule, mixing=mixing, batch_size=batch_size)
        chunks = []
        with self.progress_bar(total=-(-n // batch_size)) as bar:
            for start in range(0, n, batch_size):
                sl = slice(start, start + batch_size)
                scheduler = self._scheduler_for_call(settings, gen, sampler)
                if callback_on_step_end is not None:
                    scheduler = _StepCallback(scheduler, self, callback_on_step_end, callback_on_step_end_tensor_inputs)
                batch_noise = None
                if noise is not None:
                    x0, gens = noise
                    batch_noise = (x0[sl], gens[sl] if isinstance(gens, list) else gens)
                x = sample_batch(gen, settings, ids[sl], w[sl], seeds[sl], scheduler=scheduler, noise=batch_noise,
                                 return_latents=output_type == "latent")
                chunks.append(x.cpu())
                bar.update()
        x = torch.cat(chunks)
        if output_type in ("latent", "pil"):
            images: Any = x if output_type == "latent" else [
                PIL.Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a) for a in to_uint8(x)]
        else:
            x = (x.float() / 2 + 0.5).clamp(0, 1)
            images = x if output_type == "pt" else x.permute(0, 2, 3, 1).numpy()
        return ScoreMixPipelineOutput(images=images) if return_dict else (images,)

    _callback_tensor_inputs = ["latents"]

    def _scheduler_for_call(self, settings: SamplingSettings, gen: ClassConditionalGenerator, sampler: str | None):
        """A fresh scheduler for one batch (schedulers keep per-run state): the named ``sampler`` on the held
        scheduler's config; else a copy of ``pipe.scheduler`` once it has been replaced; else (the folder's own
        training scheduler) DDIM on its schedule, exactly as a build samples."""
        if sampler == "euler":
            raise ValueError(
                "sampler='euler' cannot differ from 'ddim' here: on the same discrete timesteps deterministic DDIM is "
                "Euler's method on the rescaled ODE dx/dsigma (Song et al. 2021, sec. 4.3; Karras et al. 2022), so it "
                "would return ddim's images. Use sampler='heun' or 'dpm++', or assign a differently spaced Euler "
                "scheduler: pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config, "
                "use_karras_sigmas=True)")
        if sampler is None and self.scheduler is not self._loaded_scheduler:
            return type(self.scheduler).from_config(self.scheduler.config)
        return settings.new_scheduler(dict(self.scheduler.config) if sampler else gen.scheduler_config)

    def _initial_noise(self, gen: ClassConditionalGenerator, n: int, seeds: list[int],
                       generator: torch.Generator | list[torch.Generator] | None, latents: torch.Tensor | None):
        """``(noise, generators)`` for the sampler from ``latents`` / ``generator``; ``None``: drawn from ``seeds``
        (the build's noise, :func:`~scoremix_ds.sampling.scoremix.initial_noise`)."""
        shape = tuple(gen.sample_shape)
        if latents is not None:
            latents = torch.as_tensor(latents)
            if tuple(latents.shape) != (n, *shape):
                raise ValueError(f"latents must be standard-normal noise of shape {(n, *shape)} (N, C, H, W), "
                                 f"got {tuple(latents.shape)}")
            latents = latents.detach().to("cpu", torch.float32)
            if generator is None:  # any stochastic sampler noise comes from the seeds: still a pure function
                generator = [torch.Generator(device="cpu").manual_seed(s) for s in seeds]
            return latents, generator
        if generator is None:
            return None
        if isinstance(generator, list):
            noise = torch.stack([torch.randn(shape, generator=g, device=g.device, dtype=torch.float32).cpu()
                                 for g in generator])
        else:
            noise = torch.randn((n, *shape), generator=generator, device=generator.device, dtype=torch.float32).cpu()
        return noise, generator


class _StepCallback:
    """A scheduler that calls diffusers' ``callback_on_step_end(pipe, step, timestep, kwargs)`` after each ``step``
    (the library's sampler loop is shared with the build, so the hook sits on the scheduler it steps)."""

    def __init__(self, scheduler, pipe: "ScoreMixPipeline", callback: Callable[..., dict], inputs: Sequence[str]):
        self._scheduler, self._pipe, self._callback, self._inputs, self._step = scheduler, pipe, callback, list(inputs), 0

    def __getattr__(self, name: str):
        return getattr(self._scheduler, name)

    def step(self, model_output, timestep, sample, generator=None, **kwargs):
        if generator is not None:
            kwargs["generator"] = generator
        out = self._scheduler.step(model_output, timestep, sample, **kwargs)
        given = {"latents": out.prev_sample}
        returned = self._callback(self._pipe, self._step, timestep, {k: given[k] for k in self._inputs}) or {}
        self._step += 1
        if "latents" in returned:
            out.prev_sample = returned["latents"]
        return out


def model_index(folder: str | Path, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``model_index.json`` of a generator folder in the layout ``load_generator`` reads, from its
    components' ``config.json`` / ``scheduler_config.json`` and its ``scoremix.json`` (class count, null class,
    names; or ``meta``, the same dict, before it is written), in the form ``DiffusionPipeline.save_config`` writes."""
    folder = Path(folder)
    index: dict[str, Any] = {"_class_name": ScoreMixPipeline.__name__, "_diffusers_version": diffusers.__version__}
    for name in COMPONENTS:
        file = folder / name / ("scheduler_config.json" if name == "scheduler" else "config.json")
        cls = json.loads(file.read_text(encoding="utf-8")).get("_class_name") if file.is_file() else None
        index[name] = ["diffusers", cls] if cls else [None, None]
    if index["scheduler"][0] is None:
        raise ValueError(f"{folder} has no scheduler/scheduler_config.json")
    meta_file = folder / "scoremix.json"
    if meta is None:
        meta = json.loads(meta_file.read_text(encoding="utf-8")) if meta_file.is_file() else {}
    index["num_classes"], index["null_class"] = meta.get("num_classes"), meta.get("null_class")
    if index["num_classes"] is not None:
        index["id2label"] = class_table(meta.get("class_names"), int(index["num_classes"]))
    return index


def class_table(names: dict[str, str] | Sequence[str] | None, num_classes: int) -> dict[str, str]:
    """Class names as ``{"0": name, ...}`` (the ``id2label`` convention of transformers configs). A mapping, not a
    list: diffusers reads every list in ``model_index.json`` as a ``[library, class]`` component."""
    if isinstance(names, dict):
        return {str(i): str(names.get(str(i), i)) for i in range(num_classes)}
    names = list(names or [])
    return {str(i): str(names[i]) if i < len(names) else str(i) for i in range(num_classes)}


def write_model_index(folder: str | Path, meta: dict[str, Any] | None = None) -> Path:
    """Write ``folder/model_index.json`` (see :func:`model_index`)."""
    from ..core.outputs import atomic_write

    path = Path(folder) / MODEL_INDEX
    atomic_write(path, json.dumps(model_index(folder, meta), indent=2, sort_keys=True) + "\n")
    return path

