"""``ScoreMixPipeline``: a generator folder as a diffusers pipeline, sampling K-way score mixes.

A folder written by ``scoremix-ds train-generator`` (and the embedded default) holds ``model_index.json`` next to its
``unet/`` (or ``transformer/`` [+ ``vae/``]) and ``scheduler/``, so diffusers loads it as this pipeline::

    from diffusers import DiffusionPipeline
    from scoremix_ds import ScoreMixPipeline    # importing it makes the class known to diffusers

    pipe = DiffusionPipeline.from_pretrained("my-generator")      # or scoremix_ds.ScoreMixPipeline.from_pretrained
    images = pipe(classes=[(3, 7), ("alice", "bob")], weights=[(0.5, 0.5), (0.7, 0.3)], seeds=[0, 1],
                  num_inference_steps=25, guidance_scale=3.0).images   # PIL images

``model_index.json`` names the class ``ScoreMixPipeline`` and, as a diffusers pipeline's config, the class count,
the null class (for classifier-free guidance) and the class names (``id2label``: ``{"0": name, ...}``). diffusers resolves a pipeline class name in its
own namespace only (a name it does not ship needs ``custom_pipeline`` + ``trust_remote_code``, i.e. code executed
from the model folder); importing this module registers the class there instead, so no code is ever loaded from a
folder or a Hub repository. The pipeline samples through the library's batches (:mod:`.batches`), so for the
same classes, weights, seeds and settings it returns exactly what ``scoremix-ds build`` writes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Sequence

import diffusers
import numpy as np
import PIL.Image
import torch
from diffusers import DiffusionPipeline
from diffusers.utils import BaseOutput

from ..maths.image_tensors import to_uint8
from ..maths.mixing import WeightSchedule, validate_weights
from ..generators.loading import ClassConditionalGenerator
from .batches import SamplingSettings, sample_batches

MODEL_INDEX = "model_index.json"
COMPONENTS = ("unet", "transformer", "vae", "scheduler")


@dataclass
class ScoreMixPipelineOutput(BaseOutput):
    """``images``: PIL images, a uint8 ``(B, H, W, C)`` array (``"np"``) or a float ``(B, C, H, W)`` tensor in
    ``[-1, 1]`` (``"pt"``), one per requested mix, in order."""

    images: list[PIL.Image.Image] | np.ndarray | torch.Tensor


class ScoreMixPipeline(DiffusionPipeline):
    """Class-conditional sampling with ScoreMix: the K classes' conditioned outputs mixed at every step.

    Components: a class-conditional ``unet`` (``UNet2DModel`` with ``num_class_embeds``) or ``transformer``
    (``DiTTransformer2DModel``), an optional ``vae`` (latent models) and the training ``scheduler`` (its noise
    schedule; the sampler named in ``__call__`` is built from its config). ``num_classes``, ``null_class`` and
    ``id2label`` (the class names) are saved in ``model_index.json``.
    """

    _optional_components = ["unet", "transformer", "vae"]
    model_cpu_offload_seq = "transformer->unet->vae"

    def __init__(self, scheduler, unet=None, transformer=None, vae=None, num_classes: int | None = None,
                 null_class: int | None = None, id2label: dict[str, str] | list[str] | None = None) -> None:
        super().__init__()
        if (unet is None) == (transformer is None):
            raise ValueError("ScoreMixPipeline needs exactly one denoiser: unet or transformer")
        self.register_modules(unet=unet, transformer=transformer, vae=vae, scheduler=scheduler)
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
        sampler: str = "ddim",
        mixing: Literal["score", "condition"] = "score",
        weight_schedule: WeightSchedule = WeightSchedule(),
        batch_size: int = 64,
        output_type: Literal["pil", "np", "pt"] = "pil",
        return_dict: bool = True,
    ) -> ScoreMixPipelineOutput | tuple:
        """Sample one image per mix.

        Args:
            classes: one tuple per image of the K class ids (or class names) to mix, e.g. ``[(3, 7), (1, 2)]``;
                a 1-tuple samples that class alone.
            weights: one tuple of K mixing weights per image (convex: >= 0, sum 1); ``None``: equal weights.
            seeds: one seed per image (the same seed gives the same image, whatever else is in the batch);
                ``None``: ``0, 1, ..., B-1``.
            num_inference_steps: sampler steps.
            guidance_scale: ``g``; 1 disables guidance, otherwise classifier-free guidance against the null class
                (the model must have one, ``model_index.json`` ``null_class``).
            sampler: ``ddim``, ``dpm++``, ``euler`` or ``heun``, built from the saved scheduler's config.
            mixing: ``score`` (ScoreMix) or ``condition`` (mix the class-condition vectors, the AugGen baseline).
            weight_schedule: how the weights vary along the trajectory (default: constant).
            batch_size: images per forward batch (no effect on the images).
            output_type: ``pil``, ``np`` (uint8 ``(B, H, W, C)``) or ``pt`` (float ``(B, C, H, W)`` in ``[-1, 1]``).
            return_dict: return a :class:`ScoreMixPipelineOutput` (else a 1-tuple).

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
        ids = self.class_ids(classes)
        b, k = ids.shape
        w = torch.full((b, k), 1.0 / k, dtype=torch.float32) if weights is None else torch.tensor(weights, dtype=torch.float32)
        if w.shape != (b, k):
            raise ValueError(f"weights must be {b} tuples of {k}, got shape {tuple(w.shape)}")
        for row in w.tolist():
            validate_weights(tuple(row), k, False)
        seeds = list(range(b)) if seeds is None else [int(s) for s in seeds]
        if len(seeds) != b:
            raise ValueError(f"seeds must give one seed per image ({b}), got {len(seeds)}")
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        settings = SamplingSettings(steps=num_inference_steps, guidance=guidance_scale, scheduler=sampler,
                                    schedule=weight_schedule, mixing=mixing, batch_size=batch_size)
        chunks = []
        with self.progress_bar(total=-(-b // batch_size)) as bar:
            for x in sample_batches(self.as_generator(), settings, ids, w, seeds):
                chunks.append(x.cpu())
                bar.update()
        x = torch.cat(chunks)
        if output_type == "pt":
            images: Any = x
        else:
            arr = to_uint8(x)
            images = arr if output_type == "np" else [PIL.Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a) for a in arr]
        return ScoreMixPipelineOutput(images=images) if return_dict else (images,)


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


# diffusers looks a pipeline's ``_class_name`` up in its own namespace; registering the class there lets
# ``DiffusionPipeline.from_pretrained(folder)`` load a scoremix-ds generator without executing any folder's code.
if getattr(diffusers, ScoreMixPipeline.__name__, None) is None:
    setattr(diffusers, ScoreMixPipeline.__name__, ScoreMixPipeline)
