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
RealDataOpt = Annotated[Optional[str], typer.Option("--real-data", help=(
    "Real labelled data: a built-in name (mnist-5k, ...), an image folder (one folder per identity), a datasets "
    "parquet/arrow or save_to_disk folder, an insightface train.rec folder, a scoremix-ds build folder, or a Hub id; "
    "NAME[0-6] keeps some classes, ORG/NAME@REV pins a revision."))]
STRATEGY_HELP = ("Which classes to mix: random, distant, close, band (with --band), distant-condition, close-condition, "
                 "distant-triplets, close-triplets.")
BandOpt = Annotated[Optional[str], typer.Option("--band", help="Strategy band: percentile range LO,HI of the candidate distances, e.g. 40,60.")]
MaxUsesOpt = Annotated[Optional[int], typer.Option("--max-uses", help="The most identities one class may join.")]

# The selection and model options shared by `plan` and `build`.
GeneratorOpt = Annotated[Optional[str], typer.Option("--generator", help="Class-conditional diffusers model: a folder or ORG/NAME[@REV] ('default': the embedded MNIST model).")]
GeneratorRevisionOpt = Annotated[Optional[str], typer.Option("--generator-revision", help="Hub revision of --generator (alias of --generator ORG/NAME@REV).")]
NullClassOpt = Annotated[Optional[int], typer.Option("--null-class", help="The generator's unconditional class id, when its folder does not declare one.")]
DiscriminatorOpt = Annotated[Optional[str], typer.Option("--discriminator", help="Discriminator folder, Hub id, sface or an .onnx file ('default': embedded).")]
DiscriminatorRevisionOpt = Annotated[Optional[str], typer.Option("--discriminator-revision", help="Hub revision of --discriminator (alias of ORG/NAME@REV).")]
RealDataRevisionOpt = Annotated[Optional[str], typer.Option("--real-data-revision", help="Hub revision of --real-data (alias of ORG/NAME@REV).")]
ClassesOpt = Annotated[Optional[str], typer.Option("--classes", help="Candidate classes to mix, e.g. 0,1,2 or 0-7 (default: all).")]
PairsOpt = Annotated[Optional[int], typer.Option("--pairs", help="Number of synthetic identities (distinct class pairs, or triplets).")]
PerIdentityOpt = Annotated[Optional[int], typer.Option("--per-identity", help="Images (seeds) per synthetic identity.")]
WeightsOpt = Annotated[Optional[str], typer.Option("--weights", help="Mixing weights, one per mixed class, e.g. 0.5,0.5 (default: equal).")]
AllowNonconvexOpt = Annotated[Optional[bool], typer.Option("--allow-nonconvex", help="Accept weights that are negative or do not sum to 1.")]
StrategyOpt = Annotated[Optional[str], typer.Option("--strategy", help=STRATEGY_HELP)]
