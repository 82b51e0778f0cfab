"""Run a build: load models, choose pairs, sample unit by unit, then finalize the folder.

The sampler stays pure (``sampling/scoremix.py``); this module owns the IO and the division of work. Under
``accelerate launch`` / ``torchrun`` every process takes its share of the units and writes its own shards; process
0 alone creates the folder, shows progress and writes the manifest, preview and card.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..data.readers import read_real_data
from ..dataset.manifest import Manifest
from ..dataset.writer import shard_path, write_shard
from ..errors import ConfigError, DataError, ModelError
from ..maths.centres import class_centres, cosine_distances
from ..maths.pairs import select_pairs
from ..models.discriminator import embed_images, load_discriminator
from ..models.generator import ClassConditionalGenerator, load_generator
from .config import BuildConfig
from .finalize import PREVIEW_ROWS, collect_units, finalize, public_ref
from .layout import Layout, ProcessGroup
from .outdir import completed_build, open_out_dir
from .plan import MixPlan, make_plan
from .rows import sample_images, unit_columns
from .units import done_units, write_marker

logger = logging.getLogger(__name__)

TORCH_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True)
class BuildResult:
    out: Path
    rows: dict[str, int]
    identities: int
    seconds: float
    images_sampled: int  # by this process
    shards_reused: int  # units found complete on disk when the run started
    complete: bool = True

    @property
    def images_per_second(self) -> float:
        return self.images_sampled / self.seconds if self.seconds > 0 else 0.0


def _candidate_classes(config: BuildConfig, gen: ClassConditionalGenerator) -> np.ndarray:
    if not config.classes:
        return np.arange(gen.num_classes)
    bad = [c for c in config.classes if c >= gen.num_classes]
    if bad:
        raise ConfigError(f"--classes has id {bad[0]}, outside this generator's classes 0..{gen.num_classes - 1}", hint="check --classes")
    return np.asarray(config.classes, dtype=np.int64)


def plan_build(config: BuildConfig, gen: ClassConditionalGenerator) -> tuple[MixPlan, dict]:
    """Class centres -> distances in both spaces -> pairs -> plan. Returns the plan and provenance facts."""
    classes = _candidate_classes(config, gen)
    if len(classes) < 2:
        raise ConfigError(f"mixing needs at least 2 classes, got {len(classes)}", hint="give --classes at least two ids")
    real = read_real_data(config.real_data, config.real_data_revision)
    if real.labels.max() >= gen.num_classes:
        raise DataError(
            f"--real-data has {real.num_classes} classes but the generator knows {gen.num_classes}",
            hint="use the real data the generator was trained on (--real-data)",
        )
    disc = load_discriminator(config.discriminator, config.discriminator_revision)
    centres = class_centres(embed_images(disc, real.images), real.labels, gen.num_classes)
    emb_d = cosine_distances(centres)
    cond_d = cosine_distances(gen.condition_table().numpy())
    pairs = select_pairs(config.strategy, config.pairs, classes, emb_d, cond_d, seed=config.seed)
    plan = make_plan(pairs, config.weights, emb_d, cond_d, config.per_identity, config.seed)
    provenance = {
        "real_data": public_ref(real.source),
        "licence": real.licence,
        "attribution": public_ref(real.attribution),
        "generator": public_ref(config.generator),
        "generator_training_data": public_ref(gen.metadata.get("real_data")),
        "discriminator": public_ref(config.discriminator),
        "num_real_classes": int(real.num_classes),
    }
    return plan, provenance


def load_models(config: BuildConfig, device: str):
    gen = load_generator(config.generator, config.generator_revision).to(device, TORCH_DTYPES[config.dtype])
    weak = None
    if config.weak_generator:
        weak = load_generator(config.weak_generator).to(device, TORCH_DTYPES[config.dtype])
    if config.guidance != 1.0 and weak is None and gen.null_class is None:
        raise ModelError(
            "classifier-free guidance needs a null class, and this generator has none",
            hint="use --guidance 1, give --weak-generator for autoguidance, or train with label dropout",
        )
    return gen, weak


def units_of(plan: MixPlan, shard_size: int) -> list[range]:
    n = len(plan.identities)
    return [range(s, min(s + shard_size, n)) for s in range(0, n, shard_size)]


def run_build(config: BuildConfig, progress: bool = True) -> BuildResult:
    """Build (or resume) the dataset described by ``config`` into ``config.out``."""
    import datasets

    started = time.perf_counter()
    done = completed_build(config)
    if done is not None:
        return BuildResult(Path(config.out), done.rows(), done.counts["mix"]["identities"], time.perf_counter() - started, 0,
                           len(done.shards.get("mix", {})))
    group = ProcessGroup()
    layout = Layout(rank=group.rank, world=group.world, part=config.shard, parts=config.num_shards)
    gen, weak = load_models(config, group.device or config.device)
    plan, provenance = plan_build(config, gen)
    units = units_of(plan, config.shard_size)
    out = Path(config.out)

    if layout.is_main:
        manifest = open_out_dir(config, {"shard_size": config.shard_size, "units": len(units)}, provenance)
    group.barrier()
    if not layout.is_main:
        manifest = Manifest.read(out)
    part_units = layout.part_units(len(units))
    done = done_units(out, part_units)
    group.barrier()  # everyone has read the markers before anyone writes new ones
    mine = layout.my_units([u for u in part_units if u not in done])

    configs = ("mix", "repro") if config.repro else ("mix",)
    per_identity_images = config.per_identity * (3 if config.repro else 1)
    total = sum(len(units[u]) for u in part_units if u not in done) * per_identity_images
    datasets.disable_progress_bars()
    sampled = 0
    with tqdm(total=total, unit="img", desc="scoremix build", disable=not (progress and layout.is_main),
              smoothing=0.1) as bar:
        # Process 0 sees only its own share; scaled by the process count it estimates the whole launch's rate.
        on_batch = (lambda n: bar.update(n * layout.world)) if layout.is_main else None
        for u in mine:
            columns = unit_columns(plan, units[u], gen, config, weak, on_batch)
            shards = {}
            for name in configs:
                rel = shard_path(name, u)
                shards[name] = {"relpath": rel, "rows": len(columns[name]["label"]), "sha256": write_shard(out, rel, columns[name])}
            write_marker(out, u, shards)  # the shards are on disk before the marker names them
            sampled += sum(len(c["label"]) for c in columns.values())
    group.barrier()

    complete = False
    rows: dict[str, int] = {}
    if layout.is_main:
        markers = done_units(out, part_units, verify=False)
        complete = len(markers) == len(part_units)
        if complete:
            collect_units(manifest, markers)
            identities = [plan.identities[i] for u in part_units for i in units[u]]
            finalize(out, manifest, len(identities), {p for i in identities for p in i.parents},
                     sample_preview=lambda: _sample_preview(plan, gen, weak, config))
            rows = manifest.rows()
    group.barrier()
    return BuildResult(out, rows, len(plan.identities), time.perf_counter() - started, sampled, len(done), complete)


def _sample_preview(plan: MixPlan, gen, weak, config: BuildConfig):
    """Parent A alone | mix | parent B alone from each identity's first seed (when there is no repro config)."""
    ids = plan.identities[:PREVIEW_ROWS]
    seeds = [plan.seeds(i.index)[0] for i in ids]
    mixes = sample_images(gen, weak, config, np.array([i.parents for i in ids]), np.array([i.weights for i in ids]), seeds)
    singles = sample_images(gen, weak, config, np.array([[p] for i in ids for p in i.parents]), np.ones((2 * len(ids), 1)),
                            [s for s in seeds for _ in range(2)])
    return [(singles[2 * r], mixes[r], singles[2 * r + 1]) for r in range(len(ids))]
