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
    from ..build.status import build_status

    typer.echo(build_status(folder, verify=verify).summary())


def merge(
    parts: Annotated[List[Path], typer.Argument(help="The --out folders of every job-array part.")],
    out: Annotated[Path, typer.Option("--out", help="New folder for the merged dataset.")],
    progress: ProgressOpt = True,
) -> None:
    """Join job-array parts (build --shard i --num-shards n) into one dataset with one manifest and card."""
    from ..build.merge import merge_parts

    def sample_preview():  # only when the parts have no repro config to read the preview from
        from ..build.config import BuildConfig
        from ..build.planner import plan_build
        from ..build.runner import _sample_preview, load_models
        from ..dataset.manifest import Manifest
        from ..recipes import from_mapping

        config = from_mapping(BuildConfig, Manifest.read(parts[0]).config, "manifest")
        gen, weak = load_models(config, config.device)
        plan, _ = plan_build(config, gen)
        return _sample_preview(plan, gen, weak, config)

    manifest = merge_parts(parts, out, sample_preview)
    rows = ", ".join(f"{c}: {n} rows" for c, n in manifest.rows().items())
    typer.echo(f"merged {len(parts)} parts into {out} ({rows})")
