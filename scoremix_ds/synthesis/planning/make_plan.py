"""``scoremix-ds plan``: choose the tuples, write them as a plan file, and show where they sit among all pairs.

The histogram compares the chosen identities' distances (mean pairwise, in the strategy's space; the embedding space
for ``random``) with the distances of all candidate pairs (a uniform sample of :data:`HISTOGRAM_PAIRS` when there
are more), so a team sees at a glance whether ``distant`` really took the far tail.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...core.plots import save_histograms
from ...maths.topk import pair_distance_sample
from ...generators.loading import load_generator
from ..config import BuildConfig
from ...core.outputs import claim_file
from ..centres_cache import plan_cache, save_centres
from .parquet_file import is_plan_file, write_plan
from .choose import candidate_classes, check_real_data, choose_plan, class_spaces, plan_meta

logger = logging.getLogger(__name__)

HISTOGRAM_PAIRS = 200_000


@dataclass(frozen=True)
class PlanSummary:
    path: Path
    histogram: Path
    identities: int
    images: int
    space: str
    chosen_mean: float
    all_mean: float
    chosen_percentile: float  # the chosen mean's percentile among all candidate pairs' distances

    def summary(self) -> str:
        return (f"wrote {self.identities} identities ({self.images} images) to {self.path} and {self.histogram}\n"
                f"{self.space} distance: chosen mean {self.chosen_mean:.4f} vs all pairs {self.all_mean:.4f} "
                f"(percentile {self.chosen_percentile:.1f} of all pairs)")


def make_plan_file(config: BuildConfig, path: str | Path, progress: bool = False) -> PlanSummary:
    """Plan ``config`` and write ``path`` (parquet) plus ``path`` with a ``.png`` suffix (the histogram).
    Without real data (``random`` or a condition strategy) the histogram is of the condition space."""
    check_real_data(config)  # before any model is loaded
    from ..resolve import check_discriminator

    check_discriminator(config)  # the embedded MNIST discriminator ranks only the embedded generator
    path = claim_file(path, "out", owned=is_plan_file)
    claim_file(path.with_suffix(".png"), "out", owned=lambda png: path.is_file() and is_plan_file(path))
    gen = load_generator(config.generator, config.generator_revision, null_class=config.null_class)
    cache = plan_cache(path)
    spaces = class_spaces(config, gen, (cache,), progress=progress)
    plan = choose_plan(config, gen, spaces)
    write_plan(path, plan, plan_meta(config, gen, spaces))
    if spaces.centres_computed:  # planning again over the same models and data reuses them
        save_centres(cache, spaces.centres_key, spaces.centres)
    space = config.strategy_spec.space
    if space == "none":
        space = "embedding" if spaces.centres is not None else "condition"
    vectors = spaces.centres if space == "embedding" else spaces.conditions
    classes = candidate_classes(config, gen)
    everything = pair_distance_sample(vectors[classes], HISTOGRAM_PAIRS, config.seed)
    chosen = np.array([getattr(i, f"{space}_distance") for i in plan.identities])
    histogram = save_histograms(
        path.with_suffix(".png"),
        [("all candidate pairs", everything), (f"chosen ({config.strategy})", chosen)],
        xlabel=f"cosine distance ({space} space)",
        title=f"{config.strategy}: {len(chosen)} identities among {len(classes)} classes",
    )
    return PlanSummary(path, histogram, len(plan.identities), plan.num_images, space, float(chosen.mean()),
                       float(everything.mean()), float(np.mean(everything <= chosen.mean()) * 100))
