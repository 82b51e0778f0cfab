"""``scoremix-ds status`` and ``scoremix-ds merge``: inspect a build folder, join job-array parts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, List

import typer

from .options import ProgressOpt


def status(
    folder: Annotated[Path, typer.Argument(help="A build's --out folder.")],
    verify: Annotated[bool, typer.Option(help="Also check every finished shard's sha256.")] = False,
) -> None:
    """Show what a build folder holds and what remains to be sampled."""
    from ..synthesis.status import build_status

    typer.echo(build_status(folder, verify=verify).summary())


def merge(
    parts: Annotated[List[Path], typer.Argument(help="The --out folders of every job-array part.")],
    out: Annotated[Path, typer.Option("--out", help="New folder for the merged dataset.")],
    progress: ProgressOpt = True,
) -> None:
    """Join job-array parts (build --shard i --num-shards n) into one dataset with one manifest and card."""
    from ..synthesis.merge import merge_parts

    manifest = merge_parts(parts, out, progress=progress)
    rows = ", ".join(f"{c}: {n} rows" for c, n in manifest.rows().items())
    typer.echo(f"merged {len(parts)} parts into {out} ({rows})")
