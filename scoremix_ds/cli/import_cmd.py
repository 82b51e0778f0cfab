"""``scoremix-ds import-generator``: an NVlabs EDM2 snapshot as a generator folder (safetensors), read without
running anything from the file (:mod:`scoremix_ds.generators.edm2.importer`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer


def import_generator(
    snapshot: Annotated[Path, typer.Argument(help="An EDM2 network-snapshot-*.pkl or training-state-*.pt.")],
    out: Annotated[Path, typer.Option("--out", help="New (or empty) folder for the generator.")],
    guide: Annotated[Optional[Path], typer.Option("--guide", help="The autoguidance guide's snapshot (a smaller or earlier network).")] = None,
    class_names: Annotated[Optional[str], typer.Option("--class-names", help="Comma-separated class names, one per label (default: 0, 1, ...).")] = None,
    vae: Annotated[Optional[Path], typer.Option("--vae", help="A diffusers VAE folder, for a latent-space snapshot.")] = None,
    guidance: Annotated[float, typer.Option("--guidance", help="The folder's default autoguidance weight w (1 = none).")] = 1.0,
    channels_per_head: Annotated[int, typer.Option("--channels-per-head", help="Attention channels per head (only a training-state file needs it).")] = 64,
) -> None:
    """Import an EDM2 snapshot (and its guide) as a generator folder that every command reads."""
    from ..generators.edm2.importer import ImportConfig, import_snapshot

    names = tuple(n.strip() for n in class_names.split(",")) if class_names else ()
    config = ImportConfig(snapshot=str(snapshot), out=str(out), guide=None if guide is None else str(guide),
                          class_names=names, vae=None if vae is None else str(vae), channels_per_head=channels_per_head,
                          guidance=guidance)
    typer.echo(f"imported {snapshot.name} -> {import_snapshot(config)}")
