"""``scoremix-ds reproduce RECIPE``: the paper's strategy table (all arms, all seeds) from one recipe, cached."""

from __future__ import annotations

import logging
from typing import Annotated, Optional

import typer

from .cache_option import with_cache_option

from .options import OutOpt, ProgressOpt
from .parsing import parse_ints
from .preflight import preflight_reproduce

logger = logging.getLogger(__name__)


@with_cache_option
def reproduce(
    recipe: Annotated[str, typer.Argument(help="A reproduce recipe: a TOML file or a name in builders/ (reproduce-glyphs, reproduce-demo, reproduce-paper, ...).")],
    out: OutOpt = None,
    seeds: Annotated[Optional[str], typer.Option(help="Training seeds of every arm, e.g. 0,1,2 (overrides the recipe).")] = None,
    arms: Annotated[Optional[str], typer.Option(help="Arms to run, e.g. real,close,distant (overrides the recipe).")] = None,
    report_to: Annotated[Optional[str], typer.Option("--report-to", help="Experiment trackers of every training stage (as train's --report-to): none, tensorboard, wandb, all, or a comma list.", show_default="the recipe's, else none")] = None,
    logging_dir: Annotated[Optional[str], typer.Option("--logging-dir", help="Where trackers write, one folder per training stage.", show_default="OUT/logs")] = None,
    check: Annotated[bool, typer.Option("--check", help="Validate the recipe and print its stages; run nothing.")] = False,
    progress: ProgressOpt = True,
) -> None:
    """Train the generator and the real-only discriminator, build each arm's synthetic set, train every arm x seed
    with the same budget, evaluate all on the same pairs and write report.md / report.json / report.png.
    Finished stages are cached in OUT/stages/: a re-run after an interruption continues."""
    from ..reproduce import load_reproduce_config, run_reproduce
    from ..training.loop import require_trackers
    from .train_cmd import trackers

    overrides = {"out": out, "seeds": parse_ints(seeds, "--seeds") if seeds else None,
                 "arms": [a.strip() for a in arms.split(",") if a.strip()] if arms else None,
                 "report_to": trackers(report_to), "logging_dir": logging_dir}
    config = load_reproduce_config(recipe, overrides)
    require_trackers(config.report_to)  # before any stage runs
    # every stage's device and the report folder, before any stage runs; --check validates the recipe only (it may
    # be checked on another machine than the one it runs on): what this machine lacks is a note there, not a refusal
    notes = preflight_reproduce(config, refuse=not check)
    if check:
        for note in notes:  # the recipe's fields, as the recipe names them (out: --out)
            logger.warning("note: on this machine a run would stop here (--check refuses nothing): %s", note)
        builds = ", ".join(config.build_arms) or "none"
        typer.echo(f"recipe OK: {len(config.arms)} arms x {len(config.seeds)} seeds = "
                   f"{len(config.arms) * len(config.seeds)} trainings; builds: {builds}; report in {config.out}")
        return
    result = run_reproduce(config, progress=progress, title=f"ScoreMix strategy table ({recipe})")
    typer.echo(result.summary())
