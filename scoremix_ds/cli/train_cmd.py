"""``scoremix-ds train-generator`` and ``train-discriminator``: the trainers behind the embedded default."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from ..recipes import config_from
from .options import BatchOpt, OutOpt, ProgressOpt, RealDataOpt, RecipeOpt, SeedOpt, StepsOpt


LearningRateOpt = Annotated[Optional[float], typer.Option(help="Peak learning rate.")]


def _train(kind: str, recipe, progress: bool, **overrides) -> None:
    """One config from the recipe and flags, one trainer call, one summary line."""
    if kind == "generator":
        from ..training.generator import GeneratorTrainConfig as Config, train_generator as run
    else:
        from ..training.discriminator import DiscriminatorTrainConfig as Config, train_discriminator as run
    path = run(config_from(Config, recipe, overrides), progress=progress)
    typer.echo(f"saved {kind} to {path}")


def train_generator(
    recipe: RecipeOpt = None,
    real_data: RealDataOpt = None,
    steps: StepsOpt = None,
    batch_size: BatchOpt = None,
    learning_rate: LearningRateOpt = None,
    seed: SeedOpt = None,
    out: OutOpt = None,
    progress: ProgressOpt = True,
) -> None:
    """Train a class-conditional UNet generator (diffusers layout, safetensors) on real labelled images."""
    _train("generator", recipe, progress, real_data=real_data, steps=steps, batch_size=batch_size,
           learning_rate=learning_rate, seed=seed, out=out)


def train_discriminator(
    recipe: RecipeOpt = None,
    real_data: RealDataOpt = None,
    steps: StepsOpt = None,
    batch_size: BatchOpt = None,
    learning_rate: LearningRateOpt = None,
    seed: SeedOpt = None,
    out: OutOpt = None,
    progress: ProgressOpt = True,
) -> None:
    """Train the minimal discriminator (small CNN + ArcFace head) on real labelled images."""
    _train("discriminator", recipe, progress, real_data=real_data, steps=steps, batch_size=batch_size,
           learning_rate=learning_rate, seed=seed, out=out)
