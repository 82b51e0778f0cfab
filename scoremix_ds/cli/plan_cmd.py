"""``scoremix-ds plan``: write the mixing plan (parquet) and its distance histogram, for review before a build."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from ..build.config import BuildConfig
from ..recipes import config_from
from .options import BandOpt, MaxUsesOpt, RealDataOpt, RecipeOpt, SeedOpt, STRATEGY_HELP
from .parsing import parse_band, parse_floats, parse_ints


def plan(
    strategy: Annotated[Optional[str], typer.Option(help=STRATEGY_HELP)] = None,
    generator: Annotated[Optional[str], typer.Option(help="Generator folder or Hub id ('default': embedded).")] = None,
    generator_revision: Annotated[Optional[str], typer.Option(help="Hub revision of --generator.")] = None,
    discriminator: Annotated[Optional[str], typer.Option(help="Discriminator folder, Hub id, .onnx file ('default': embedded).")] = None,
    discriminator_revision: Annotated[Optional[str], typer.Option(help="Hub revision of --discriminator.")] = None,
    real_data: RealDataOpt = None,
    real_data_revision: Annotated[Optional[str], typer.Option(help="Hub revision of --real-data.")] = None,
    classes: Annotated[Optional[str], typer.Option(help="Candidate classes to mix, e.g. 0,1,2 (default: all).")] = None,
    pairs: Annotated[Optional[int], typer.Option(help="Number of synthetic identities (distinct tuples).")] = None,
    per_identity: Annotated[Optional[int], typer.Option(help="Images (seeds) per synthetic identity.")] = None,
    weights: Annotated[Optional[str], typer.Option(help="Mixing weights, one per mixed class (default: equal).")] = None,
    allow_nonconvex: Annotated[Optional[bool], typer.Option("--allow-nonconvex", help="Accept non-convex weights.")] = None,
    band: BandOpt = None,
    max_uses: MaxUsesOpt = None,
    seed: SeedOpt = None,
    recipe: RecipeOpt = None,
    out: Annotated[str, typer.Option("--out", help="The plan file to write (parquet); the histogram goes beside it (.png).")] = "plan.parquet",
) -> None:
    """Choose the tuples to mix and write them, with weights, both spaces' distances and seeds, to a plan file."""
    from ..build.planreport import make_plan_file

    overrides = dict(
        strategy=strategy, generator=generator, generator_revision=generator_revision, discriminator=discriminator,
        discriminator_revision=discriminator_revision, real_data=real_data, real_data_revision=real_data_revision,
        classes=parse_ints(classes, "--classes"), pairs=pairs, per_identity=per_identity,
        weights=parse_floats(weights, "--weights"), allow_nonconvex=allow_nonconvex, band=parse_band(band),
        max_uses=max_uses, seed=seed,
    )
    config = config_from(BuildConfig, recipe, overrides)
    typer.echo(make_plan_file(config, out).summary())
    typer.echo(f"build it with: scoremix-ds build --plan {out}")
