"""Shared CLI options, declared once as ``Annotated`` aliases (the ``hf`` CLI's pattern)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

RecipeOpt = Annotated[Optional[str], typer.Option("--recipe", help="A TOML recipe (file, or a name in builders/); flags override it.")]
SeedOpt = Annotated[Optional[int], typer.Option("--seed", help="Seed of the whole run.")]
OutOpt = Annotated[Optional[str], typer.Option("--out", help="Output folder.")]
DeviceOpt = Annotated[Optional[str], typer.Option("--device", help="torch device, e.g. cpu, cuda, cuda:1.")]
ProgressOpt = Annotated[bool, typer.Option("--progress/--no-progress", help="Show progress bars.")]
StepsOpt = Annotated[Optional[int], typer.Option("--steps", help="Number of steps.")]
BatchOpt = Annotated[Optional[int], typer.Option("--batch-size", help="Batch size.")]
RealDataOpt = Annotated[Optional[str], typer.Option("--real-data", help="Real labelled data: mnist-5k, a dataset folder or a Hub id.")]
STRATEGY_HELP = ("Which classes to mix: random, distant, close, band (with --band), distant-condition, close-condition, "
                 "distant-triplets, close-triplets.")
BandOpt = Annotated[Optional[str], typer.Option("--band", help="Strategy band: percentile range LO,HI of the candidate distances, e.g. 40,60.")]
MaxUsesOpt = Annotated[Optional[int], typer.Option("--max-uses", help="The most identities one class may join.")]
