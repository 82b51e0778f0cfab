"""insightface ``arcface_torch`` backbones in and out: a plain ``backbone.pth`` state dict, and ONNX.

In: ``arcface_torch`` saves ``torch.save(backbone.module.state_dict(), "model.pt")`` (``backbone.pth`` in its released
models). :func:`load_state_dict_file` reads such a file with ``torch.load(weights_only=True)`` (tensors and plain
containers only: no pickled code runs) and loads it STRICTLY into the backbone the caller names or, unnamed, the
IResNet its tensors describe (depth from the blocks per stage, sizes from ``conv1`` and ``fc``), so a missing or
extra parameter is an error, not a silently half-loaded model. ``--discriminator backbone.pth`` and ``train --init
backbone.pth`` go through it (:func:`~scoremix_ds.discriminators.loading.load_discriminator`). The
project's IResNets use insightface's parameter names. Preprocessing is insightface's: RGB, 112x112 aligned crops,
``(pixel - 127.5) / 127.5`` — what :func:`~scoremix_ds.discriminators.loading.embed_images` does for every backbone.

Out: :func:`export_arcface` writes ``backbone.pth`` (the state dict, loadable with ``load_state_dict`` into
arcface_torch's ``get_model(name)``) and ``model.onnx`` (input ``input``: float NCHW in [-1, 1], dynamic batch; output
``embedding``), the layout insightface's ONNX recognition models have, so onnxruntime and insightface's model zoo
load it.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from ..core.errors import ModelError
from . import BACKBONES
from .embedding_net import EmbeddingNet
from .iresnet import IRESNETS, STAGE_WIDTHS

STATE_DICT_SUFFIXES = (".pth", ".pt")
ONNX_OPSET = 17


def is_state_dict_file(reference: str | None) -> bool:
    """True for an existing ``.pth`` / ``.pt`` file (a plain state dict, not a model folder)."""
    return reference is not None and Path(reference).suffix in STATE_DICT_SUFFIXES and Path(reference).is_file()


def infer_iresnet(state: dict[str, torch.Tensor]) -> dict | None:
    """The IResNet an insightface state dict is, read off its tensors: the blocks per stage give the depth, ``conv1``
    the input channels, ``fc`` the embedding width and (its input is 512 x side x side, side = image_size / 16) the
    image size. None when the tensors are not an IResNet's."""
    try:
        depth = tuple(len({k.split(".")[1] for k in state if k.startswith(f"layer{i}.")}) for i in range(1, 5))
        embedding_dim, flat = state["fc.weight"].shape
        channels = state["conv1.weight"].shape[1]
    except (KeyError, IndexError, ValueError):
        return None
    side = round((flat / STAGE_WIDTHS[-1]) ** 0.5)
    backbone = next((name for name, cls in IRESNETS.items() if cls.layers == depth), None)
    if backbone is None or side * side * STAGE_WIDTHS[-1] != flat:
        return None
    return {"backbone": backbone, "channels": int(channels), "image_size": int(side * 16),
            "embedding_dim": int(embedding_dim)}


def load_state_dict_file(path: str | Path, backbone: str | None = None, image_size: int | None = None,
                         channels: int | None = None, embedding_dim: int | None = None,
                         field: str = "discriminator") -> EmbeddingNet:
    """A ``backbone.pth`` loaded strictly into ``BACKBONES[backbone]`` (eval mode, CPU). Unnamed, the backbone and its
    sizes are read off an IResNet's tensors (:func:`infer_iresnet`); named, they must agree with them."""
    path = Path(path)
    if backbone is not None and backbone not in BACKBONES:
        raise ModelError(f"unknown backbone '{backbone}'", hint=f"backbones: {', '.join(BACKBONES)}", field="backbone")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError for anything but tensors and plain containers, or a damaged file
        raise ModelError(f"{path} is not a plain torch state dict ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})",
                         hint="give the backbone.pth that arcface_torch saved (a state dict)", field=field) from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]  # a training checkpoint that wraps the state dict
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(f"{path} does not hold a state dict of tensors", hint="give arcface_torch's backbone.pth",
                         field=field)
    state = {k.removeprefix("module."): v for k, v in state.items()}  # saved from a DistributedDataParallel wrapper
    found = infer_iresnet(state) or {}
    backbone = backbone or found.get("backbone")
    if backbone is None:
        raise ModelError(f"{path} is a plain state dict whose architecture cannot be read off its tensors",
                         hint=f"name it with `backbone` (one of {', '.join(BACKBONES)})", field="backbone")
    channels = channels or found.get("channels", 3)
    image_size = image_size or found.get("image_size", 112)
    embedding_dim = embedding_dim or found.get("embedding_dim", 512)
    model = BACKBONES[backbone](in_channels=channels, image_size=image_size, embedding_dim=embedding_dim)
    missing, unexpected = _mismatch(model, state)
    if missing or unexpected:
        what = f"lacks {missing[0]}" if missing else f"has {unexpected[0]}, which {backbone} does not"
        more = len(missing) + len(unexpected) - 1
        raise ModelError(f"{path} {what}{f' (and {more} more mismatched keys)' if more else ''}: it is not a {backbone} "
                         f"state dict with embedding_dim {embedding_dim}", hint="name the backbone it was trained as",
                         fields=("backbone", field))
    model.load_state_dict(state, strict=True)
    return model.eval()


def _mismatch(model: torch.nn.Module, state: dict) -> tuple[list[str], list[str]]:
    own = model.state_dict()
    missing = sorted(k for k in own if k not in state or state[k].shape != own[k].shape)
    unexpected = sorted(k for k in state if k not in own)
    return missing, unexpected


def export_arcface(model: EmbeddingNet, out: str | Path) -> dict[str, Path]:
    """``backbone.pth`` and ``model.onnx`` of ``model`` in ``out`` (created); returns their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model = model.eval().to("cpu")
    files = {"state_dict": out / "backbone.pth", "onnx": out / "model.onnx"}
    torch.save(model.state_dict(), files["state_dict"])
    example = torch.zeros(1, model.in_channels, model.image_size, model.image_size)
    with warnings.catch_warnings():  # torch names the TorchScript exporter legacy; the new one needs onnxscript
        warnings.simplefilter("ignore")
        torch.onnx.export(model, example, str(files["onnx"]), input_names=["input"], output_names=["embedding"],
                          dynamic_axes={"input": {0: "batch"}, "embedding": {0: "batch"}}, opset_version=ONNX_OPSET,
                          dynamo=False)
    return files
