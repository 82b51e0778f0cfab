"""The paper's alignment analysis: how alike are the generator's condition space and the discriminator's class
centres (or two discriminators' centres)?

Loads the models, takes the generator's class-condition table as the first space and the discriminator's class
centres of the real images as the second (the mean of the L2-normalised embeddings per class,
:func:`scoremix_ds.maths.centres.class_centres`, as ``build`` computes them), and hands them to the pure measures of
:mod:`scoremix_ds.maths.alignment`. A seeded Gaussian space of the first space's shape
gives the chance-level reference in the same run (the paper's "random" row).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.errors import ConfigError
from ..discriminators.loading import load_discriminator
from ..generators.loading import load_generator
from ..maths.alignment import alignment_report
from ..sources.openers import read_real_data


@dataclass(frozen=True)
class AlignConfig:
    generator: str = "default"  # its class-embedding table is the first space, unless `other_discriminator` is set
    generator_revision: str | None = None
    discriminator: str = "default"  # class centres of its embeddings of `real_data` are the second space
    discriminator_revision: str | None = None
    other_discriminator: str | None = None  # compare two discriminators' centres instead of generator vs discriminator
    real_data: str | None = None  # the images whose embeddings give the class centres (None: mnist-5k for the
    real_data_revision: str | None = None  # embedded default generator; any other generator needs it)
    classes: tuple[int, ...] = ()  # which classes to compare; empty = all
    k: int | None = None  # neighbours for mutual kNN / CKNNA; None = min(10, max(2, n // 4)), Huh et al. use 10
    seed: int = 0  # the random reference and the pair sample of the distance correlation

    def __post_init__(self) -> None:
        if self.real_data is None:
            if self.generator not in ("default", "", None) and self.other_discriminator is None:
                raise ConfigError("align compares the generator's conditions with class centres of real images of "
                                  "its classes, and none were given", hint="give `real_data` (the generator's training data)",
                                  field="real_data")
            object.__setattr__(self, "real_data", "mnist-5k")


@dataclass(frozen=True)
class AlignResult:
    first: str
    second: str
    num_classes: int
    dims: tuple[int, int]
    k: int
    measures: dict[str, float]
    reference: dict[str, float]  # the second space against a seeded Gaussian of the first space's shape

    def summary(self) -> str:
        head = (f"alignment of {self.first} ({self.dims[0]}-d) and {self.second} ({self.dims[1]}-d) over "
                f"{self.num_classes} classes (k = {self.k})")
        lines = [
            head,
            f"{'measure':<20}{'value':>10}{'random ref':>12}",
        ]
        lines += [f"{name:<20}{value:>10.4f}{self.reference[name]:>12.4f}" for name, value in self.measures.items()]
        return "\n".join(lines)


def default_k(n: int) -> int:
    return int(min(10, max(2, n // 4)))


def _centres(name: str, revision: str | None, real, flag: str = "discriminator", progress: bool = False) -> np.ndarray:
    from ..core.digest import model_digest
    from ..synthesis.centres_cache import cached_centres

    disc = load_discriminator(name, revision, flag=flag)  # the class-centre cache a build over them shares
    return cached_centres(disc, model_digest(disc), real, real.num_classes,
                          progress=f"embed with {name}" if progress else False)


def align_spaces(config: AlignConfig, progress: bool = False) -> AlignResult:
    """Compute every alignment measure between the two configured spaces over the chosen classes."""
    real = read_real_data(config.real_data, config.real_data_revision, progress=progress)
    second = _centres(config.discriminator, config.discriminator_revision, real, progress=progress)
    if config.other_discriminator:
        first = _centres(config.other_discriminator, None, real, flag="other_discriminator", progress=progress)
        first_name, second_name = f"discriminator '{config.other_discriminator}'", f"discriminator '{config.discriminator}'"
    else:
        gen = load_generator(config.generator, config.generator_revision)
        first = gen.condition_table().numpy().astype(np.float64)
        if real.num_classes != gen.num_classes:
            both = min(real.num_classes, gen.num_classes)
            if not config.classes:
                raise ConfigError(
                    f"real_data has {real.num_classes} classes but the generator has {gen.num_classes}",
                    hint=f"compare only classes both have (`classes` 0-{both - 1}), or give the generator's own "
                         f"training data as `real_data`", fields=("real_data", "classes"))
            if max(config.classes) >= both:
                raise ConfigError(f"classes has id {max(config.classes)}; the real data has {real.num_classes} "
                                  f"classes and the generator {gen.num_classes}", hint=f"use ids in 0..{both - 1}",
                                  field="classes")
        first_name, second_name = f"generator '{config.generator}' conditions", f"discriminator '{config.discriminator}' centres"
    classes = np.asarray(config.classes or range(len(first)), dtype=np.int64)
    if classes.min() < 0 or classes.max() >= len(first):
        raise ConfigError(f"classes must lie in 0..{len(first) - 1}", hint="check `classes`", field="classes")
    if len(np.unique(classes)) < 4:
        raise ConfigError(f"alignment needs at least 4 classes, got {len(np.unique(classes))}", hint="give `classes` at least four ids",
                          field="classes")
    classes = np.unique(classes)
    x, y = first[classes], second[classes]
    k = config.k if config.k is not None else default_k(len(classes))
    measures = alignment_report(x, y, k=k, seed=config.seed)
    noise = np.random.default_rng(config.seed).normal(size=x.shape)
    reference = alignment_report(noise, y, k=k, seed=config.seed)
    return AlignResult(first_name, second_name, len(classes), (x.shape[1], y.shape[1]), k, measures, reference)
