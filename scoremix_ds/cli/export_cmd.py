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
