"""EDM2 constructor arguments read back from a state dict's names and shapes, for files that do not store them
(``training-state-*.pt`` holds state dicts only).

Owns: :func:`infer_denoiser_kwargs`.

Facts relied on (the layout of :mod:`.unet`): ``enc.<r>x<r>_conv`` is level 0 (its output width is
model_channels x channel_mult[0]; channel_mult[0] is taken as 1, as in every EDM2 preset), every level has
``_block<i>`` encoder blocks, attention resolutions are those whose encoder blocks have ``attn_qkv``, the noise
embedding width is ``emb_fourier.freqs``' length and the embedding width ``emb_noise``'s output. Not recoverable
from shapes: channels_per_head (heads have no parameters of their own: EDM2's 64 unless given), the
balances, clip_act, dropout, sigma_data and use_fp16 (EDM2's defaults apply).
"""

from __future__ import annotations

import re

from ...core.errors import DataError

_ENC = re.compile(r"^(?:unet\.)?enc\.(\d+)x\1_(conv|down|block(\d+))\.")


def _multiple(width: int, base: int, what: str) -> int:
    if width % base:
        raise DataError(f"EDM2 state dict: {what} width {width} is not a multiple of {base}", field="snapshot")
    return width // base


def infer_denoiser_kwargs(state_dict: dict, channels_per_head: int = 64) -> dict:
    """:class:`~.precond.EDM2Denoiser` keyword arguments matching ``state_dict`` (with or without ``unet.``);
    ``channels_per_head`` is not in the shapes and is passed through (checked: every attention level has a head)."""
    pre = "unet." if any(k.startswith("unet.") for k in state_dict) else ""
    levels: dict[int, set] = {}
    for key in state_dict:
        match = _ENC.match(key)
        if match:
            levels.setdefault(int(match.group(1)), set()).add(match.group(2))
    conv = [r for r, parts in levels.items() if "conv" in parts]
    if len(conv) != 1 or f"{pre}out_conv.weight" not in state_dict:
        raise DataError("not an EDM2 state dict (no single enc.<r>x<r>_conv and out_conv)", field="snapshot")
    resolutions = sorted(levels, reverse=True)
    top = conv[0]
    model_channels = state_dict[f"{pre}enc.{top}x{top}_conv.weight"].shape[0]
    blocks = {r: sorted(int(p[5:]) for p in parts if p.startswith("block")) for r, parts in levels.items()}
    num_blocks = len(blocks[top])
    widths = [state_dict[f"{pre}enc.{r}x{r}_block{num_blocks - 1}.conv_res1.weight"].shape[0] for r in resolutions]
    noise_ch = state_dict[f"{pre}emb_fourier.freqs"].numel()
    emb_ch = state_dict[f"{pre}emb_noise.weight"].shape[0]
    label = state_dict.get(f"{pre}emb_label.weight")
    kwargs = dict(
        img_resolution=top, img_channels=state_dict[f"{pre}out_conv.weight"].shape[0],
        label_dim=0 if label is None else label.shape[1], model_channels=model_channels,
        channel_mult=[_multiple(w, model_channels, "level") for w in widths], num_blocks=num_blocks,
        attn_resolutions=[r for r in resolutions
                          if any(f"{pre}enc.{r}x{r}_block{i}.attn_qkv.weight" in state_dict for i in blocks[r])],
        channel_mult_noise=None if noise_ch == widths[0] else _multiple(noise_ch, model_channels, "noise"),
        channel_mult_emb=None if emb_ch == max(widths) else _multiple(emb_ch, model_channels, "embedding"))
    attended = [w for r, w in zip(resolutions, widths) if r in kwargs["attn_resolutions"]] + [widths[-1]]
    if min(attended) < channels_per_head:  # the lowest level always attends (dec in0)
        raise DataError(f"EDM2 state dict: attention at width {min(attended)} needs channels_per_head <= it, "
                        f"got {channels_per_head}", field="channels_per_head")
    kwargs["channels_per_head"] = channels_per_head
    if "logvar_fourier.freqs" in state_dict:
        kwargs["logvar_channels"] = state_dict["logvar_fourier.freqs"].numel()
    return kwargs
