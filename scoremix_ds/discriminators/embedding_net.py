"""The base of every recognition backbone (:class:`EmbeddingNet`: forward, safetensors save and load) and the
smallest one, :class:`SmallCNN`. The other backbones subclass it in their own modules (:mod:`.iresnet`,
:mod:`.hf_backbone`); :data:`scoremix_ds.discriminators.BACKBONES` names them all.

A saved backbone is a folder with ``config.json`` (the constructor kwargs plus ``"backbone"``, its name in
``BACKBONES``) and ``model.safetensors``, written by ``save_pretrained`` of ``huggingface_hub``'s
``PyTorchModelHubMixin``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

from ..core.errors import ModelError

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"


class EmbeddingNet(nn.Module, PyTorchModelHubMixin, library_name="scoremix-ds", tags=["face-recognition", "scoremix"]):
    """Base of every backbone: ``forward(x)`` maps float NCHW in [-1, 1] to ``(N, embedding_dim)`` features.

    Subclasses set ``backbone_name`` (their key in :data:`scoremix_ds.discriminators.BACKBONES`) and the attributes ``in_channels``,
    ``image_size`` and ``embedding_dim`` that :func:`~scoremix_ds.discriminators.loading.embed_images` uses to prepare inputs.
    """

    backbone_name: str = ""
    in_channels: int
    image_size: int
    embedding_dim: int

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """Load a saved recognition model: ``EmbeddingNet.from_pretrained("org/name", revision="v1")`` (or a local
        folder) picks the backbone its ``config.json`` names, as :func:`~scoremix_ds.discriminators.loading.load_discriminator` does (safetensors only,
        eval mode). On a backbone class (``SmallCNN.from_pretrained``) it is ``huggingface_hub``'s mixin loader."""
        if cls is not EmbeddingNet:
            return super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        revision = kwargs.pop("revision", None)
        if args or kwargs:
            raise TypeError(f"EmbeddingNet.from_pretrained takes a folder or Hub id and revision=, not {sorted(kwargs) or args}")
        from .loading import load_discriminator  # the loader dispatches on BACKBONES, which holds subclasses

        return load_discriminator(str(pretrained_model_name_or_path), revision)

    def _save_pretrained(self, save_directory: Path) -> None:
        """Weights as safetensors, and a ``config.json`` that also names the backbone so loading can dispatch."""
        from safetensors.torch import save_model

        save_model(self, str(save_directory / WEIGHTS_NAME))
        (save_directory / WEIGHTS_NAME).chmod(0o644)  # safetensors writes 0600; shipped weights must be readable
        config = {"backbone": self.backbone_name, **(self._hub_mixin_config or {})}
        (save_directory / CONFIG_NAME).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")

    @classmethod
    def _from_pretrained(
        cls,
        *,
        model_id: str,
        revision: str | None,
        cache_dir: str | Path | None,
        force_download: bool,
        local_files_only: bool,
        token: str | bool | None,
        map_location: str = "cpu",
        strict: bool = True,
        **model_kwargs,
    ):
        """Safetensors only and strict by default (the mixin's own loader falls back to pickle and to non-strict)."""
        from huggingface_hub import hf_hub_download
        from safetensors.torch import load_model

        model = cls(**model_kwargs)
        if os.path.isdir(model_id):
            weights = os.path.join(model_id, WEIGHTS_NAME)
        else:
            weights = hf_hub_download(
                repo_id=model_id,
                filename=WEIGHTS_NAME,
                revision=revision,
                cache_dir=cache_dir,
                force_download=force_download,
                token=token,
                local_files_only=local_files_only,
            )
        load_model(model, weights, strict=strict, device=map_location)
        return model.eval()


class SmallCNN(EmbeddingNet):
    """Three conv stages (32/64/128 channels, each halving the resolution), a linear layer and BatchNorm1d.

    Sized for 32x32 digits or small faces: ~0.23M parameters at the defaults (< 1 MB of float32 weights). The
    output layout (BN2d, flatten, FC, BN1d) follows insightface's IResNet head.
    """

    backbone_name = "small-cnn"

    def __init__(self, in_channels: int = 1, image_size: int = 32, embedding_dim: int = 64) -> None:
        super().__init__()
        if image_size % 8 or image_size < 8:
            raise ModelError(f"SmallCNN needs an image size divisible by 8, got {image_size}", hint="check `image_size`", field="image_size")
        self.in_channels = in_channels
        self.image_size = image_size
        self.embedding_dim = embedding_dim

        def stage(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(cin, cout, 3, padding=1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            )

        self.body = nn.Sequential(stage(in_channels, 32), stage(32, 64), stage(64, 128))
        self.bn2 = nn.BatchNorm2d(128)
        self.fc = nn.Linear(128 * (image_size // 8) ** 2, embedding_dim)
        self.features = nn.BatchNorm1d(embedding_dim)  # the "BN-ed feature" of insightface's backbones

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn2(self.body(x))
        return self.features(self.fc(torch.flatten(x, 1)))
