"""``scoremix-ds train-generator`` and ``train-discriminator``: the trainers behind the embedded default."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from ..recipes import config_from
from .options import BatchOpt, OutOpt, ProgressOpt, RealDataOpt, RecipeOpt, SeedOpt, StepsOpt


def train_generator(
    recipe: RecipeOpt = None,
    real_data: RealDataOpt = None,
    steps: StepsOpt = None,
    batch_size: BatchOpt = None,
    learning_rate: Annotated[Optional[float], typer.Option(help="Peak learning rate.")] = None,
    seed: SeedOpt = None,
    out: OutOpt = None,
    progress: ProgressOpt = True,
) -> None:
    """Train a class-conditional UNet generator (diffusers layout, safetensors) on real labelled images."""
    from ..training.generator import GeneratorTrainConfig, train_generator as run

    overrides = dict(real_data=real_data, steps=steps, batch_size=batch_size, learning_rate=learning_rate, seed=seed, out=out)
    config = config_from(GeneratorTrainConfig, recipe, overrides)
    path = run(config, progress=progress)
    typer.echo(f"saved generator to {path}")


def train_discriminator(
    recipe: RecipeOpt = None,
    real_data: RealDataOpt = None,
    steps: StepsOpt = None,
    batch_size: BatchOpt = None,
    learning_rate: Annotated[Optional[float], typer.Option(help="Peak learning rate.")] = None,
    seed: SeedOpt = None,
    out: OutOpt = None,
    progress: ProgressOpt = True,
) -> None:
    """Train the minimal discriminator (small CNN + ArcFace head) on real labelled images."""
    from ..training.discriminator import DiscriminatorTrainConfig, train_discriminator as run

    overrides = dict(real_data=real_data, steps=steps, batch_size=batch_size, learning_rate=learning_rate, seed=seed, out=out)
    config = config_from(DiscriminatorTrainConfig, recipe, overrides)
    path = run(config, progress=progress)
    typer.echo(f"saved discriminator to {path}")
