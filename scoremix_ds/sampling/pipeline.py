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

An EDM2 folder (``edm2/`` [+ ``edm2_guide/``], :mod:`scoremix_ds.generators.edm2.folder`) loads the same way and
samples with EDM's Heun sampler (:func:`scoremix_ds.generators.edm2.generator.edm2_sample`: the folder's steps,
sigma_min, sigma_max, rho and guidance unless the call gives them), autoguided by its guide::

    pipe = ScoreMixPipeline.from_pretrained("my-edm2")
    x = pipe(classes=[(3, 7)], weights=[(0.5, 0.5)], latents=torch.randn(1, 3, 64, 64), guidance_scale=1.7,
             output_type="pt").images                        # (x / 2 + 0.5) clipped to [0, 1]
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
from ..generators.edm2.generator import SAMPLER_DEFAULTS, EDMHeunScheduler, edm2_generator
from ..generators.edm2.precond import EDM2Denoiser  # imported here: diffusers finds a folder's EDM2 networks in it
from ..generators.loading import ClassConditionalGenerator
from .batches import SamplingSettings, sample_batch

MODEL_INDEX = "model_index.json"
COMPONENTS = ("unet", "transformer", "vae", "scheduler")
EDM2_SETTINGS = ("sigma_min", "sigma_max", "rho")  # edm-heun's settings a call may override
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

    An EDM2 folder (:mod:`scoremix_ds.generators.edm2.folder`) has instead the denoiser ``edm2``
    (:class:`~scoremix_ds.generators.edm2.EDM2Denoiser`), its optional autoguidance guide ``edm2_guide`` (and ``vae``
    for a latent-space network) and no scheduler: it samples with EDM's Heun sampler (``edm-heun``), its settings
    (steps, sigma_min, sigma_max, rho, guidance) in the config's ``sampler`` and, for latent networks, EDM2's latent
    scale and bias in ``latent``.
    """

    _optional_components = ["unet", "transformer", "vae", "scheduler", "edm2", "edm2_guide"]
    model_cpu_offload_seq = "transformer->unet->edm2_guide->edm2->vae"

    def __init__(self, scheduler=None, unet=None, transformer=None, vae=None, edm2=None, edm2_guide=None,
                 num_classes: int | None = None, null_class: int | None = None,
                 id2label: dict[str, str] | list[str] | None = None, sampler: dict[str, Any] | None = None,
                 latent: dict[str, Any] | None = None) -> None:
        super().__init__()
        if sum(m is not None for m in (unet, transformer, edm2)) != 1:
            raise ValueError("ScoreMixPipeline needs exactly one denoiser: unet, transformer or edm2")
        if edm2 is None and scheduler is None:
            raise ValueError("ScoreMixPipeline needs the denoiser's scheduler (its noise schedule)")
        if edm2 is None and (edm2_guide is not None or sampler is not None or latent is not None):
            raise ValueError("edm2_guide, sampler and latent belong to an EDM2 denoiser (edm2)")
        if edm2 is not None and scheduler is not None:
            raise ValueError("an EDM2 denoiser samples with edm-heun: give its settings as `sampler`, not a scheduler")
        self.register_modules(unet=unet, transformer=transformer, vae=vae, scheduler=scheduler, edm2=edm2,
                              edm2_guide=edm2_guide)
        self._loaded_scheduler = scheduler  # the folder's (training) scheduler: see ``sampler`` in __call__
        if edm2 is not None:
            num_classes = int(edm2.label_dim) if num_classes is None else int(num_classes)
            if num_classes != int(edm2.label_dim) or null_class not in (None, num_classes):
                raise ValueError(f"an EDM2 denoiser with {edm2.label_dim} labels has num_classes {edm2.label_dim} "
                                 f"and null class None or {edm2.label_dim} (the zero label)")
            self.register_to_config(sampler={**SAMPLER_DEFAULTS, **(sampler or {})}, latent=latent)
        elif num_classes is None:
            denoiser = unet if unet is not None else transformer
            num_classes = int(denoiser.config.get("num_class_embeds") or denoiser.config.get("num_embeds_ada_norm"))
        self.register_to_config(num_classes=int(num_classes), null_class=null_class,
                                id2label=class_table(id2label, int(num_classes)))

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs) -> "ScoreMixPipeline":
        """diffusers' loader (``DiffusionPipeline.from_pretrained`` gives the same pipeline). A local EDM2 folder
        whose ``model_index.json`` predates the networks' module path (which diffusers cannot resolve) is read here
        instead: its networks (safetensors) and ``scoremix.json``'s sampler settings (no loading options apply)."""
        root = Path(str(pretrained_model_name_or_path)).expanduser()
        older = _older_edm2_folder(root)
        if older is not None:
            pipe = cls(**older)
            pipe.register_to_config(_name_or_path=str(pretrained_model_name_or_path))
            return pipe
        return super().from_pretrained(pretrained_model_name_or_path, **kwargs)

    @property
    def is_edm2(self) -> bool:
        """An EDM2 denoiser, sampled with ``edm-heun``."""
        return getattr(self, "edm2", None) is not None

    @property
    def class_names(self) -> list[str]:
        """The name of each class id ``0..num_classes-1``."""
        return [self.config.id2label[str(i)] for i in range(self.config.num_classes)]

    # ------------------------------------------------------------------------------------------ the generator

    def as_generator(self) -> ClassConditionalGenerator:
        """The components as the library's :class:`ClassConditionalGenerator` (same modules, no copy)."""
        source = str(self.config.get("_name_or_path", ""))
        if self.is_edm2:
            latent = self.config.get("latent")
            return edm2_generator(self.edm2, tuple(self.class_names), self.config.null_class, self.config.sampler,
                                  guide_net=self.edm2_guide, vae=self.vae,
                                  metadata={"latent": latent} if latent is not None else {}, source=source,
                                  guide_source=f"{source}/edm2_guide")
        denoiser = self.unet if self.unet is not None else self.transformer
        cfg = denoiser.config
        return ClassConditionalGenerator(
            denoiser=denoiser, kind="unet" if self.unet is not None else "dit", num_classes=self.config.num_classes,
            null_class=self.config.null_class, class_names=tuple(self.class_names),
            sample_shape=(int(cfg.get("in_channels", 3)), int(cfg.get("sample_size", 32)), int(cfg.get("sample_size", 32))),
            scheduler_config=dict(self.scheduler.config), vae=self.vae, source=source,
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
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
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
        sigma_min: float | None = None,
        sigma_max: float | None = None,
        rho: float | None = None,
    ) -> ScoreMixPipelineOutput | tuple:
        """Sample ``num_images_per_prompt`` images per mix.

        Args:
            classes: one tuple per mix (the "prompt") of the K class ids (or class names) to mix, e.g.
                ``[(3, 7), (1, 2)]``; a 1-tuple samples that class alone.
            weights: one tuple of K mixing weights per mix (convex: >= 0, sum 1); ``None``: equal weights.
            seeds: one seed per image (the same seed gives the same image, whatever else is in the batch, and the
                image ``scoremix-ds build`` writes for that mix and seed); ``None``: ``0, 1, ..., N-1``.
            num_inference_steps: sampler steps (default 25; an EDM2 folder's own, ``sampler["steps"]``).
            guidance_scale: ``g``; 1 disables guidance, otherwise classifier-free guidance against the null class
                (the model must have one, ``model_index.json`` ``null_class``). Default 3; an EDM2 folder's own
                (``sampler["guidance"]``). EDM2: ``w`` of autoguidance with the folder's ``edm2_guide``,
                D = D_guide + w (D_main - D_guide) (applied to each class's denoiser output, then mixed); without a
                guide, classifier-free guidance against the zero label (needs ``null_class``).
            sampler: ``None`` (default): the scheduler this pipeline holds, ``pipe.scheduler`` (set it the
                diffusers way, ``pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)``).
                A loaded folder holds its *training* schedule (``DDPMScheduler``); until ``pipe.scheduler`` is
                replaced, that schedule is sampled with DDIM, the build's default sampler, so the pipeline gives
                the build's images (a ``scheduler=`` given to ``from_pretrained`` counts as the folder's: assign
                ``pipe.scheduler`` after loading to sample with it). A name (``ddim``, ``dpm++``, ``heun``;
                ``edm-heun``, the only one, for EDM2) builds that sampler from the held scheduler's config instead (a
                fresh one per batch). ``euler`` is refused: on these discrete
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
                scales it to the scheduler's ``init_noise_sigma`` (EDM2: to ``sigma_max``). Sampling is then a pure
                function of ``latents`` (and, for a stochastic sampler, of ``generator`` or ``seeds``).
            callback_on_step_end: ``callback(pipe, step, timestep, callback_kwargs) -> dict`` after every sampler
                step, as in diffusers; ``callback_kwargs`` holds ``callback_on_step_end_tensor_inputs``
                (``"latents"``: the current ``x_t`` of the batch being sampled; ``step`` counts from 0 in each batch
                of ``batch_size``); a returned ``"latents"`` replaces it.
            callback_on_step_end_tensor_inputs: the tensors passed to the callback (``["latents"]`` only).
            sigma_min, sigma_max, rho: EDM2 only: the Karras noise levels of ``edm-heun`` (default: the folder's,
                ``sampler``), sigma_i = (sigma_max^(1/rho) + i/(N-1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho.

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
        overrides = {k: float(v) for k, v in zip(EDM2_SETTINGS, (sigma_min, sigma_max, rho)) if v is not None}
        if self.is_edm2:
            defaults = self.config.sampler
            if sampler not in (None, "edm-heun"):
                raise ValueError(f"an EDM2 denoiser samples with sampler='edm-heun' (or None), not {sampler!r}")
            if callback_on_step_end is not None:
                raise ValueError("callback_on_step_end is not available with the edm-heun sampler")
            sampler = "edm-heun"
        else:
            defaults = {"steps": 25, "guidance": 3.0}
            if overrides:
                raise ValueError(f"{', '.join(overrides)} apply to an EDM2 denoiser (edm-heun) only")
        num_inference_steps = int(defaults["steps"] if num_inference_steps is None else num_inference_steps)
        guidance_scale = float(defaults["guidance"] if guidance_scale is None else guidance_scale)
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
                                    schedule=weight_schedule, mixing=mixing, batch_size=batch_size, **overrides)
        if self.is_edm2:  # the settings, checked before any sampling (sigma_min < sigma_max, >= 2 steps)
            settings.new_scheduler(gen.scheduler_config).sigmas(num_inference_steps)
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
        if self.is_edm2:  # edm-heun on the folder's settings (and the call's sigma_min / sigma_max / rho)
            return settings.new_scheduler(gen.scheduler_config)
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


def _older_edm2_folder(root: Path) -> dict[str, Any] | None:
    """The pipeline's arguments for a local EDM2 folder whose ``model_index.json`` names its networks
    ``["scoremix_ds", "EDM2Denoiser"]``, as folders written before the pipeline read EDM2 did (diffusers cannot
    resolve that name): its networks (safetensors), VAE, classes and ``scoremix.json``'s sampler and latent.
    None for any other folder."""
    index_file, meta_file = root / MODEL_INDEX, root / "scoremix.json"
    if not ((root / "edm2" / "config.json").is_file() and index_file.is_file() and meta_file.is_file()):
        return None
    index = json.loads(index_file.read_text(encoding="utf-8"))
    if index.get("edm2") != ["scoremix_ds", "EDM2Denoiser"]:
        return None
    meta = json.loads(meta_file.read_text(encoding="utf-8"))
    nets = {name: EDM2Denoiser.from_pretrained(root / name, use_safetensors=True).eval()
            if (root / name / "config.json").is_file() else None for name in ("edm2", "edm2_guide")}
    vae = None
    if (root / "vae" / "config.json").is_file():
        from diffusers import AutoencoderKL

        vae = AutoencoderKL.from_pretrained(root / "vae", use_safetensors=True).eval()
    return dict(**nets, vae=vae, num_classes=meta.get("num_classes"), null_class=meta.get("null_class"),
                id2label=class_table(meta.get("class_names"), int(nets["edm2"].label_dim)),
                sampler=meta.get("sampler"), latent=meta.get("latent"))


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

