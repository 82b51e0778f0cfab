"""``scoremix-ds export``: a finished build as insightface ``train.rec`` / ``.idx`` / ``property`` or an image folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .options import ProgressOpt


def export(
    build: Annotated[Path, typer.Argument(help="A finished build's --out folder.")],
    out: Annotated[Path, typer.Option("--out", help="New folder for the exported set.")],
    format: Annotated[str, typer.Option("--format", help="rec (insightface train.rec + train.idx + property) or imagefolder (one folder per identity).")] = "rec",
    configs: Annotated[str, typer.Option("--configs", help="mix, repro, or both (mix,repro).")] = "mix",
    label_offset: Annotated[int, typer.Option("--label-offset", help="Added to every mix label: the real data's class count, to concatenate with it.")] = 0,
    progress: ProgressOpt = True,
) -> None:
    """Export a build for face trainers (arcface_torch, DALI, torchvision ImageFolder); verified against its manifest
    first, streamed, and resumed by re-running the same command."""
    from ..dataset.export import ExportConfig, export_build

    names = ("mix", "repro") if configs == "both" else tuple(c.strip() for c in configs.split(",") if c.strip())
    config = ExportConfig(build=str(build), out=str(out), format=format, configs=names, label_offset=label_offset)
    typer.echo(export_build(config, progress=progress).summary())


def export_discriminator(
    model: Annotated[str, typer.Argument(help="A trained discriminator: a folder, ORG/NAME[@REV] or 'default'.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for backbone.pth and model.onnx.")],
) -> None:
    """Export a trained discriminator for insightface: backbone.pth (arcface_torch's get_model(...).load_state_dict)
    and model.onnx (onnxruntime / insightface's model zoo; float NCHW input in [-1, 1])."""
    from ..core.errors import ConfigError
    from ..core.outputs import claim_folder
    from ..discriminators.arcface_torch import export_arcface
    from ..discriminators.embedding_net import EmbeddingNet
    from ..discriminators.loading import load_discriminator

    loaded = load_discriminator(model)
    if not isinstance(loaded, EmbeddingNet):
        raise ConfigError(f"{model} is already an ONNX embedder", hint="export a model trained by scoremix-ds train",
                          field="discriminator")
    folder = claim_folder(out, "export-discriminator",
                          signature=lambda p: {e.name for e in p.iterdir()} <= {"backbone.pth", "model.onnx"})
    files = export_arcface(loaded, folder)
    typer.echo(f"wrote {files['state_dict']} and {files['onnx'].name} ({type(loaded).__name__}, "
               f"{loaded.in_channels}x{loaded.image_size}x{loaded.image_size} -> {loaded.embedding_dim})")
