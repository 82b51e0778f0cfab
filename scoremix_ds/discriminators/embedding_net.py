"""The base of every recognition backbone (:class:`EmbeddingNet`: forward, safetensors save and load) and the
smallest one, :class:`SmallCNN`. The other backbones subclass it in their own modules (:mod:`.iresnet`,
:mod:`.hf_backbone`); each backbone class adds itself to :data:`BACKBONES` under its ``backbone_name`` as it is
defined, so the base class loads any saved backbone without importing its subclasses' modules.

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
DEFAULT_BACKBONE = "small-cnn"  # what a config.json without "backbone" (written before it named one) holds

# Every backbone class by its ``backbone_name``, in the order they are defined: ``scoremix_ds.discriminators``
# imports this module, then :mod:`.iresnet`, then :mod:`.hf_backbone`, the order ``--backbone`` lists them.
BACKBONES: dict[str, type[EmbeddingNet]] = {}


class EmbeddingNet(nn.Module, PyTorchModelHubMixin, library_name="scoremix-ds", tags=["face-recognition", "scoremix"]):
    """Base of every backbone: ``forward(x)`` maps float NCHW in [-1, 1] to ``(N, embedding_dim)`` features.

    Subclasses set ``backbone_name`` (their key in :data:`scoremix_ds.discriminators.BACKBONES`) and the attributes ``in_channels``,
    ``image_size`` and ``embedding_dim`` that :func:`~scoremix_ds.discriminators.loading.embed_images` uses to prepare inputs.
    """

    backbone_name: str = ""
    in_channels: int
    image_size: int
    embedding_dim: int

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("backbone_name"):  # a concrete backbone (not an intermediate base such as IResNet)
            BACKBONES[cls.backbone_name] = cls

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """Load a saved recognition model: ``EmbeddingNet.from_pretrained("org/name", revision="v1")`` (or a local
        folder) picks the backbone its ``config.json`` names in :data:`BACKBONES` (safetensors only, strict, eval
        mode). On a backbone class (``SmallCNN.from_pretrained``) it is ``huggingface_hub``'s mixin loader.
        :func:`~scoremix_ds.discriminators.loading.load_discriminator` is the same with the embedded default, ONNX
        models and one-line errors."""
        if cls is not EmbeddingNet:
            return super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        revision = kwargs.pop("revision", None)
        if args or kwargs:
            raise TypeError(f"EmbeddingNet.from_pretrained takes a folder or Hub id and revision=, not {sorted(kwargs) or args}")
        source = str(pretrained_model_name_or_path)
        if os.path.isdir(source):
            config_file = os.path.join(source, CONFIG_NAME)
        else:
            from huggingface_hub import hf_hub_download

            config_file = hf_hub_download(source, CONFIG_NAME, revision=revision)
        return backbone_class(Path(config_file)).from_pretrained(source, revision=revision).eval()

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


def backbone_class(config_file: Path, field: str = "discriminator") -> type[EmbeddingNet]:
    """The backbone class a saved model's ``config.json`` names (``"backbone"``; :data:`DEFAULT_BACKBONE` when it names
    none); a one-line ModelError naming ``field`` when the file is not JSON or the name is unknown."""
    folder = config_file.parent
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelError(f"discriminator {folder}/{config_file.name} is not valid JSON: {exc}", hint=f"check `{field}`",
                         field=field) from exc
    name = config.get("backbone", DEFAULT_BACKBONE) if isinstance(config, dict) else None
    if name not in BACKBONES:
        raise ModelError(f"discriminator {folder} has unknown backbone '{name}'", hint=f"known: {', '.join(BACKBONES)}")
    return BACKBONES[name]


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
