"""Named EDM2 architecture presets, looked up by name (``edm2-xs``, ``edm2-s``, ``edm2-cpu`` and their guides).

Owns: :class:`EDM2Preset` (a frozen dataclass: the architecture only; training settings live with the trainer) and
the :data:`PRESETS` table with :func:`preset`.

Facts relied on (EDM2 paper Table/Appendix, issue 22): at 64x64 XS/S/M have 128/192/256 base channels,
channel_mult (1, 2, 3, 4), 3 blocks per level, attention at 16 and 8. Faces here are 112x112, whose levels are
112/56/28/14, so attention is named at 28 and 14. Autoguidance uses a smaller guide (XS guides S); each preset names
its guide preset. ``edm2-cpu`` (32x32 greyscale glyphs/MNIST) and its guide are this project's small presets, with
32 channels per attention head so their narrow levels still get heads.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional

from ...core.errors import ConfigError


@dataclass(frozen=True)
class EDM2Preset:
    name: str
    img_resolution: int
    img_channels: int
    model_channels: int
    channel_mult: tuple[int, ...] = (1, 2, 3, 4)
    num_blocks: int = 3
    attn_resolutions: tuple[int, ...] = (16, 8)
    channels_per_head: int = 64
    dropout: float = 0.0
    guide: Optional[str] = None

    def denoiser_kwargs(self, label_dim: int) -> dict:
        """Keyword arguments of :class:`~.precond.EDM2Denoiser` for ``label_dim`` classes."""
        kwargs = asdict(self)
        for key in ("name", "guide"):
            kwargs.pop(key)
        kwargs.update(channel_mult=list(self.channel_mult), attn_resolutions=list(self.attn_resolutions),
                      label_dim=int(label_dim))
        return kwargs


_FACES = dict(img_resolution=112, img_channels=3, attn_resolutions=(28, 14))
_GLYPHS = dict(img_resolution=32, img_channels=1, channel_mult=(1, 2, 2), num_blocks=2, attn_resolutions=(8,),
               channels_per_head=32)

PRESETS: dict[str, EDM2Preset] = {p.name: p for p in (
    EDM2Preset("edm2-xxs", model_channels=64, **_FACES),
    EDM2Preset("edm2-xs", model_channels=128, guide="edm2-xxs", **_FACES),
    EDM2Preset("edm2-s", model_channels=192, guide="edm2-xs", **_FACES),
    EDM2Preset("edm2-cpu-guide", model_channels=16, **_GLYPHS),
    EDM2Preset("edm2-cpu", model_channels=32, guide="edm2-cpu-guide", **_GLYPHS),
)}


def preset(name: str) -> EDM2Preset:
    """The preset called ``name``; a ConfigError naming the known ones otherwise."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown EDM2 preset {name!r}", hint="one of " + ", ".join(sorted(PRESETS)),
                          field="architecture") from None
