"""``scoremix-ds plan``: write the mixing plan (parquet) and its distance histogram, for review before a build."""

from __future__ import annotations

from typing import Annotated

import typer

from ..synthesis.config import BuildConfig
from ..synthesis.planning.choose import check_real_data
from ..core.recipes import config_from
from .options import (
    AllowNonconvexOpt,
    BandOpt,
    ClassesOpt,
    DiscriminatorOpt,
    DiscriminatorRevisionOpt,
    GeneratorOpt,
    GeneratorRevisionOpt,
    NullClassOpt,
    MaxUsesOpt,
    PairsOpt,
    PerIdentityOpt,
    ProgressOpt,
    RealDataOpt,
    RealDataRevisionOpt,
    RecipeOpt,
    SeedOpt,
    StrategyOpt,
    WeightsOpt,
)
from .parsing import parse_band, parse_class_ids, parse_floats


def plan(
    strategy: StrategyOpt = None,
    generator: GeneratorOpt = None,
    generator_revision: GeneratorRevisionOpt = None,
    null_class: NullClassOpt = None,
    discriminator: DiscriminatorOpt = None,
    discriminator_revision: DiscriminatorRevisionOpt = None,
    real_data: RealDataOpt = None,
    real_data_revision: RealDataRevisionOpt = None,
    classes: ClassesOpt = None,
    pairs: PairsOpt = None,
    per_identity: PerIdentityOpt = None,
    weights: WeightsOpt = None,
    allow_nonconvex: AllowNonconvexOpt = None,
    band: BandOpt = None,
    max_uses: MaxUsesOpt = None,
    seed: SeedOpt = None,
    recipe: RecipeOpt = None,
    out: Annotated[str, typer.Option("--out", help="The plan file to write (parquet); the histogram goes beside it (.png).")] = "plan.parquet",
    progress: ProgressOpt = True,
) -> None:
    """Choose the tuples to mix and write them, with weights, both spaces' distances and seeds, to a plan file."""
    from ..synthesis.planning.make_plan import make_plan_file

    overrides = dict(
        strategy=strategy, generator=generator, generator_revision=generator_revision, null_class=null_class,
        discriminator=discriminator,
        discriminator_revision=discriminator_revision, real_data=real_data, real_data_revision=real_data_revision,
        classes=parse_class_ids(classes), pairs=pairs, per_identity=per_identity,
        weights=parse_floats(weights, "--weights"), allow_nonconvex=allow_nonconvex, band=parse_band(band),
        max_uses=max_uses, seed=seed,
    )
    config = config_from(BuildConfig, recipe, overrides)
    check_real_data(config)  # before any model is loaded
    typer.echo(make_plan_file(config, out, progress=progress).summary())
    typer.echo(f"build it with: scoremix-ds build --plan {out}")
