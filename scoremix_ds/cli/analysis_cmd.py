"""``scoremix-ds align``: the paper's alignment analysis between the generator and the discriminator."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from .cache_option import with_cache_option

from .options import ProgressOpt, RealDataOpt, SeedOpt
from .parsing import parse_class_ids


@with_cache_option
def align(
    generator: Annotated[str, typer.Option(help="Generator folder or Hub id ('default': the embedded MNIST model).")] = "default",
    generator_revision: Annotated[Optional[str], typer.Option(help="Hub revision of --generator.")] = None,
    discriminator: Annotated[str, typer.Option(help="Discriminator folder or Hub id ('default': embedded).")] = "default",
    discriminator_revision: Annotated[Optional[str], typer.Option(help="Hub revision of --discriminator.")] = None,
    other_discriminator: Annotated[
        Optional[str], typer.Option(help="Compare this discriminator's centres with --discriminator's (not the generator's).")
    ] = None,
    real_data: RealDataOpt = None,
    real_data_revision: Annotated[Optional[str], typer.Option(help="Hub revision of --real-data.")] = None,
    classes: Annotated[Optional[str], typer.Option(help="Classes to compare, e.g. 0,1,2,3 or 0-7 (default: all).")] = None,
    k: Annotated[Optional[int], typer.Option("--k", help="Neighbours for mutual kNN and CKNNA (default: min(10, classes // 4)).")] = None,
    seed: SeedOpt = None,
    progress: ProgressOpt = True,
) -> None:
    """Linear CKA, debiased CKA, mutual kNN, CKNNA and distance Spearman between the generator's class
    conditions and the discriminator's class centres, beside a random reference."""
    from ..analysis.align import AlignConfig, align_spaces

    config = AlignConfig(
        generator=generator,
        generator_revision=generator_revision,
        discriminator=discriminator,
        discriminator_revision=discriminator_revision,
        other_discriminator=other_discriminator,
        real_data=real_data,
        real_data_revision=real_data_revision,
        classes=parse_class_ids(classes) or (),
        k=k,
        seed=0 if seed is None else seed,
    )
    typer.echo(align_spaces(config, progress=progress).summary())


@with_cache_option
def audit(
    folder: Annotated[str, typer.Argument(help="A finished build folder (the --out of `scoremix-ds build`).")],
    discriminator: Annotated[Optional[str], typer.Option(help="Embed with this discriminator (default: the build's).")] = None,
    discriminator_revision: Annotated[Optional[str], typer.Option(help="Hub revision of --discriminator.")] = None,
    real_data: Annotated[Optional[str], typer.Option("--real-data", help="Real classes to check against (default: the build's).")] = None,
    real_data_revision: Annotated[Optional[str], typer.Option(help="Hub revision of --real-data.")] = None,
    threshold: Annotated[Optional[float], typer.Option(help="Flag identities whose images' mean cosine to a real centre reaches this (default: per class, its own images' median).")] = None,
    quantile: Annotated[float, typer.Option(help="Per-class default threshold: this quantile of the real images' own-centre cosine.")] = 0.5,
    update_card: Annotated[bool, typer.Option("--update-card/--no-update-card", help="Add the audit summary to the dataset card.")] = True,
    progress: ProgressOpt = True,
) -> None:
    """Identity-leakage audit: each synthetic identity against the nearest real class and its parents; flagged
    identities listed in audit.json, a plot in audit.png, the summary in the card."""
    from ..analysis.audit_run import AuditConfig, run_audit

    config = AuditConfig(folder=folder, discriminator=discriminator, discriminator_revision=discriminator_revision,
                         real_data=real_data, real_data_revision=real_data_revision, threshold=threshold,
                         quantile=quantile, update_card=update_card, progress=progress)
    typer.echo(run_audit(config).text())
