"""``scoremix-ds plan``: write the mixing plan (parquet) and its distance histogram, for review before a build."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from .cache_option import with_cache_option

from ..synthesis.config import BuildConfig
from ..core.recipes import config_from
from .options import ProgressOpt, RecipeOpt
from .planning_options import with_planning_options


@with_cache_option
@with_planning_options
def plan(
    planning: dict[str, Any],
    recipe: RecipeOpt = None,
    out: Annotated[str, typer.Option("--out", help="The plan file to write (parquet); the histogram goes beside it (.png).")] = "plan.parquet",
    progress: ProgressOpt = True,
) -> None:
    """Choose the tuples to mix and write them, with weights, both spaces' distances and seeds, to a plan file."""
    from ..synthesis.planning.make_plan import make_plan_file

    config = config_from(BuildConfig, recipe, planning)
    typer.echo(make_plan_file(config, out, progress=progress).summary())
    typer.echo(f"build it with: scoremix-ds build --plan {out}")
