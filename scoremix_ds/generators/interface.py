"""The one generator interface every command samples through: :class:`ClassConditionalGenerator` (a loaded
class-conditional denoiser and what sampling needs to know about it). :mod:`.loading` makes them from folders;
:mod:`.edm2.generator` subclasses it for EDM2."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from ..core.errors import ModelError


@dataclass
class ClassConditionalGenerator:
    """A loaded generator. ``predict`` returns the model output in its own parametrisation (eps, v or x0)."""

    denoiser: torch.nn.Module
    kind: str  # "unet" or "dit"
    num_classes: int
    null_class: int | None
    class_names: tuple[str, ...]
    sample_shape: tuple[int, int, int]  # (C, H, W) of what the scheduler integrates (latents for latent models)
    scheduler_config: dict[str, Any] | None = None
    vae: torch.nn.Module | None = None
    source: str = ""
    revision: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def dtype(self) -> torch.dtype:
        return next(self.denoiser.parameters()).dtype

    @property
    def device(self) -> torch.device:
        return next(self.denoiser.parameters()).device

    def to(self, device: str | torch.device, dtype: torch.dtype = torch.float32) -> "ClassConditionalGenerator":
        for module in (self.denoiser, self.vae):
            if module is not None:
                module.to(device=device)
                if module.dtype != dtype:  # diffusers warns on any dtype cast, even a no-op one
                    module.to(dtype=dtype)
        return self

    def predict(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """One forward for a batch; ``t`` is a scalar or ``(B,)`` timestep tensor, ``labels`` ``(B,)`` class ids."""
        x = x.to(self.dtype)
        t = t.reshape(-1).expand(x.shape[0]) if t.dim() <= 1 else t
        if self.kind == "unet":
            out = self.denoiser(x, t, class_labels=labels).sample
        else:
            out = self.denoiser(x, timestep=t, class_labels=labels).sample
            if out.shape[1] == 2 * x.shape[1]:  # learned variance (DiT): keep the mean prediction
                out = out[:, : x.shape[1]]
        return out.float()

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """Latents -> images in [-1, 1] (identity for pixel-space models)."""
        if self.vae is None:
            return x.clamp(-1, 1)
        cfg = self.vae.config
        z = x / cfg.scaling_factor + (cfg.shift_factor or 0.0)
        return self.vae.decode(z.to(self.vae.dtype)).sample.float().clamp(-1, 1)

    def condition_table(self) -> torch.Tensor:
        """The learned class-embedding rows of the real classes, ``(num_classes, d)`` — the 'condition space'."""
        if self.kind == "unet":
            weight = self.denoiser.class_embedding.weight
        else:
            weight = self.denoiser.transformer_blocks[0].norm1.emb.class_embedder.embedding_table.weight
        return weight[: self.num_classes].detach().float().cpu()

    def check_classes(self, classes: torch.Tensor) -> None:
        bad = classes[(classes < 0) | (classes >= self.num_classes)]
        if bad.numel():
            raise ModelError(
                f"class id {int(bad[0])} is out of range for this generator (0..{self.num_classes - 1})",
                hint="check `classes`", field="classes",
            )
