"""Class-conditional denoiser architectures for ``train-generator``, looked up by name in :data:`ARCHITECTURES`.

An architecture is a diffusers family (``UNet2DModel`` saved under ``unet/``, or ``DiTTransformer2DModel`` saved
under ``transformer/``, the two folders ``generators.loading.load_generator`` reads) plus a preset of its
hyper-parameters; a config field that is not ``None`` overrides the preset. Both families get a class table of
``num_classes + 1`` rows: the last row is the null class that label dropout trains for classifier-free guidance.
Image size and channels come from the training config, not the preset.

=============  ==================================================================  ===============================
name           network                                                             parameters (3x112x112, K classes)
=============  ==================================================================  ===============================
unet-small     UNet widths (16, 32, 64), 1 ResNet per level, attention in the      637,169 at 1x32x32, K=10
               middle block only (2 heads): the embedded default generator
unet-face      UNet widths (128, 128, 256, 256, 512), 2 ResNets per level,         76,695,043 + 512 (K+1)
               self-attention at the two lowest levels (14x14 and 7x7 at 112)      = 81,815,555 at K=10,000
dit-small      DiT, patch 4, 4 layers, 4 heads x 16 (width 64): tests and digits   --
dit-face       DiT-B/8 in pixel space: patch 8 (196 tokens at 112), 12 layers,     138,472,896 + 9,216 (K+1)
               12 heads x 64 (width 768)                                           = 230,642,112 at K=10,000
edm2-cpu       EDM2 (magnitude-preserving UNet, :mod:`.edm2`): the ``edm2-cpu``    --
edm2-xs        preset, ``edm2-xs`` / ``edm2-s`` (faces) and their guides; the
edm2-s         preset's image size and channels give way to the config's
=============  ==================================================================  ===============================

The ``edm2`` family saves an :class:`~.edm2.EDM2Denoiser` under ``edm2/`` (the folder of :mod:`.edm2.folder`);
its label is a one-hot vector, the zero vector for a dropped label (no class-table row), and its overrides are none:
the preset is the architecture (``train-generator`` trains it with EDM2's loss, :mod:`scoremix_ds.training.edm2`).

The DiT count grows by 12 x 768 per class because diffusers keeps one class table per transformer block
(``AdaLayerNormZero``); at K = 10,000 those tables are 92M of the 231M parameters. ``tests/test_generator_trainer.py``
recomputes every number of this table.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import torch
from torch import nn

from ..core.errors import ConfigError

UNET_FIELDS = ("block_out_channels", "layers_per_block", "norm_num_groups", "attention_levels", "attention_head_dim")
DIT_FIELDS = ("patch_size", "num_layers", "num_attention_heads", "attention_head_dim")
FIELDS: dict[str, tuple[str, ...]] = {"unet": UNET_FIELDS, "dit": DIT_FIELDS, "edm2": ()}
FOLDERS: dict[str, str] = {"unet": "unet", "dit": "transformer", "edm2": "edm2"}  # what load_generator looks for


def build_unet(image_size: int, channels: int, num_classes: int, *, block_out_channels: tuple[int, ...],
               layers_per_block: int, norm_num_groups: int, attention_levels: tuple[int, ...],
               attention_head_dim: int) -> nn.Module:
    """A ``UNet2DModel`` with ``len(block_out_channels)`` levels (each but the last halves the resolution) and
    ``AttnDown/UpBlock2D`` at ``attention_levels`` (0 = full resolution)."""
    from diffusers import UNet2DModel

    levels = len(block_out_channels)
    down = tuple("AttnDownBlock2D" if i in attention_levels else "DownBlock2D" for i in range(levels))
    up = tuple("AttnUpBlock2D" if levels - 1 - j in attention_levels else "UpBlock2D" for j in range(levels))
    return UNet2DModel(
        sample_size=image_size,
        in_channels=channels,
        out_channels=channels,
        block_out_channels=tuple(block_out_channels),
        layers_per_block=layers_per_block,
        down_block_types=down,
        up_block_types=up,
        norm_num_groups=norm_num_groups,
        attention_head_dim=attention_head_dim,
        num_class_embeds=num_classes + 1,  # the last row is the null class
    )


def build_dit(image_size: int, channels: int, num_classes: int, *, patch_size: int, num_layers: int,
              num_attention_heads: int, attention_head_dim: int) -> nn.Module:
    """A pixel-space ``DiTTransformer2DModel`` predicting ``channels`` outputs (no learned variance).

    diffusers' DiT adds the null row itself (``LabelEmbedding`` with a dropout probability > 0 has ``K + 1`` rows,
    the last one for dropped labels). Its own label dropout draws from the global RNG in training mode; it is
    switched off here because the trainer draws the null class itself from per-sample seeds (exact resume)."""
    from diffusers import DiTTransformer2DModel
    from diffusers.models.embeddings import LabelEmbedding

    model = DiTTransformer2DModel(
        num_attention_heads=num_attention_heads,
        attention_head_dim=attention_head_dim,
        in_channels=channels,
        out_channels=channels,
        num_layers=num_layers,
        sample_size=image_size,
        patch_size=patch_size,
        num_embeds_ada_norm=num_classes,
    )
    for module in model.modules():
        if isinstance(module, LabelEmbedding):
            module.dropout_prob = 0.0  # the table keeps its null row (it was sized at construction)
    return model


def build_edm2(image_size: int, channels: int, num_classes: int, **params: Any) -> nn.Module:
    """An :class:`~.edm2.EDM2Denoiser` of an EDM2 preset's architecture (``params``: its ``denoiser_kwargs`` less the
    image and label sizes) at ``image_size`` x ``channels`` with ``num_classes`` one-hot labels."""
    from .edm2.precond import EDM2Denoiser

    return EDM2Denoiser(img_resolution=image_size, img_channels=channels, label_dim=num_classes,
                        **{k: list(v) if isinstance(v, tuple) else v for k, v in params.items()})


def edm2_params(name: str) -> Mapping[str, Any]:
    """The EDM2 preset ``name``'s network settings (its denoiser keyword arguments less the sizes)."""
    from .edm2.presets import preset

    kwargs = preset(name).denoiser_kwargs(label_dim=0)
    for key in ("img_resolution", "img_channels", "label_dim"):
        kwargs.pop(key)
    return MappingProxyType({k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()})


BUILDERS: dict[str, Callable[..., nn.Module]] = {"unet": build_unet, "dit": build_dit, "edm2": build_edm2}


@dataclass(frozen=True)
class Architecture:
    """A diffusers family and the preset values of its hyper-parameters (:data:`FIELDS`)."""

    family: str  # "unet" or "dit"
    preset: Mapping[str, Any] = field(default_factory=dict)
    about: str = ""

    @property
    def folder(self) -> str:
        return FOLDERS[self.family]

    def resolve(self, name: str, overrides: Mapping[str, Any]) -> dict[str, Any]:
        """The preset with the non-``None`` ``overrides``; a value for the other family's fields is refused."""
        params = dict(self.preset)
        for key, value in overrides.items():
            if value is None:
                continue
            if key not in FIELDS[self.family]:
                raise ConfigError(f"'{key}' does not apply to architecture '{name}' ({self.family})",
                                  hint=f"drop {key}, or choose an architecture it applies to")
            params[key] = tuple(value) if isinstance(value, list) else value
        if self.family == "unet" and params.get("attention_head_dim") is None:
            params["attention_head_dim"] = max(1, params["block_out_channels"][-1] // 2)  # two heads at the bottom
        return params

    def check(self, name: str, params: Mapping[str, Any], image_size: int) -> None:
        """Refuse, with one line, hyper-parameters diffusers would reject later with a traceback."""
        if self.family == "unet":
            widths, groups = params["block_out_channels"], params["norm_num_groups"]
            stride = 2 ** (len(widths) - 1)
            if not widths or min(widths) <= 0 or groups <= 0 or params["layers_per_block"] <= 0:
                raise ConfigError(f"'{name}': widths, norm groups and layers per block must be positive",
                                  hint="check block_out_channels / norm_num_groups / layers_per_block")
            if any(w % groups for w in widths):
                raise ConfigError(f"'{name}': every width in {tuple(widths)} must be a multiple of norm_num_groups "
                                  f"{groups}", hint="check block_out_channels / norm_num_groups")
            if image_size % stride:
                raise ConfigError(f"'{name}': image_size {image_size} is not divisible by 2^{len(widths) - 1} = "
                                  f"{stride} ({len(widths)} levels)", hint="check image_size / block_out_channels")
            bad = [lv for lv in params["attention_levels"] if not 0 <= lv < len(widths)]
            if bad:
                raise ConfigError(f"'{name}': attention level {bad[0]} is not one of 0..{len(widths) - 1}",
                                  hint="check attention_levels")
            head = params["attention_head_dim"]
            attended = {widths[-1], *(widths[lv] for lv in params["attention_levels"])}  # + the middle block's
            if head <= 0 or any(w % head for w in attended):
                raise ConfigError(f"'{name}': attention_head_dim {head} must divide the attended widths "
                                  f"{sorted(attended)}", hint="check attention_head_dim / block_out_channels")
        elif self.family == "edm2":
            stride = 2 ** (len(params["channel_mult"]) - 1)
            if image_size % stride:
                raise ConfigError(f"'{name}': image_size {image_size} is not divisible by 2^"
                                  f"{len(params['channel_mult']) - 1} = {stride} ({len(params['channel_mult'])} "
                                  "levels)", hint="choose an image_size that halves that many times",
                                  field="image_size")
        else:
            if min(params["patch_size"], params["num_layers"], params["num_attention_heads"],
                   params["attention_head_dim"]) <= 0:
                raise ConfigError(f"'{name}': DiT sizes must be positive",
                                  hint="check patch_size / num_layers / num_attention_heads / attention_head_dim")
            if image_size % params["patch_size"]:
                raise ConfigError(f"'{name}': image_size {image_size} is not divisible by patch_size "
                                  f"{params['patch_size']}", hint="check image_size / patch_size")

    def build(self, image_size: int, channels: int, num_classes: int, params: Mapping[str, Any]) -> nn.Module:
        return BUILDERS[self.family](image_size, channels, num_classes, **params)


def _preset(**values: Any) -> Mapping[str, Any]:
    return MappingProxyType(values)


ARCHITECTURES: dict[str, Architecture] = {
    "unet-small": Architecture("unet", _preset(
        block_out_channels=(16, 32, 64), layers_per_block=1, norm_num_groups=8, attention_levels=(),
        attention_head_dim=None), "the embedded default: 0.64M parameters, trains on 2 CPU cores in ~15 min"),
    "unet-face": Architecture("unet", _preset(
        block_out_channels=(128, 128, 256, 256, 512), layers_per_block=2, norm_num_groups=32, attention_levels=(3, 4),
        attention_head_dim=64), "the paper's setting at 3x112x112: ~77M parameters + 512 per class"),
    "dit-small": Architecture("dit", _preset(
        patch_size=4, num_layers=4, num_attention_heads=4, attention_head_dim=16), "a tiny pixel-space DiT"),
    "dit-face": Architecture("dit", _preset(
        patch_size=8, num_layers=12, num_attention_heads=12, attention_head_dim=64),
        "DiT-B/8 in pixel space at 3x112x112: ~138M parameters + 9,216 per class"),
    **{name: Architecture("edm2", edm2_params(name), f"EDM2 preset {name} (generators/edm2/presets.py)")
       for name in ("edm2-cpu", "edm2-cpu-guide", "edm2-xxs", "edm2-xs", "edm2-s")},
}


def get_architecture(name: str) -> Architecture:
    if name not in ARCHITECTURES:
        raise ConfigError(f"unknown architecture '{name}'",
                          hint=f"architecture takes one of {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[name]


def edm2_guide_name(name: str) -> str | None:
    """The guide architecture an EDM2 preset names (``edm2-cpu`` -> ``edm2-cpu-guide``), None without one."""
    from .edm2.presets import preset

    return preset(name).guide


def denoise(model: nn.Module, family: str, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """One forward of either diffusers family: the model output for noisy ``x`` at timesteps ``t`` (B,) and classes (B,)."""
    if family == "unet":
        return model(x, t, class_labels=labels).sample
    return model(x, timestep=t, class_labels=labels).sample


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
