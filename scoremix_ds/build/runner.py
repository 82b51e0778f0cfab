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

from ..dataset.manifest import Manifest
from ..dataset.writer import shard_path, write_shard
from ..errors import ModelError
from ..models.generator import load_generator
from ..outputs import OutputLock
from ..validate import device_name
from .config import BuildConfig
from .finalize import PREVIEW_ROWS, collect_units, finalize, preview_row
from .layout import Layout, ProcessGroup
from .outdir import completed_build, open_out_dir
from .plan import MixPlan
from .planner import plan_build, with_plan
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


def load_models(config: BuildConfig, device: str):
    device_name("device", device, available=True)
    gen = load_generator(config.generator, config.generator_revision, null_class=config.null_class).to(
        device, TORCH_DTYPES[config.dtype])
    weak = None
    if config.weak_generator:
        weak = load_generator(config.weak_generator, null_class=config.null_class, flag="--weak-generator").to(
            device, TORCH_DTYPES[config.dtype])
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
    config = with_plan(config)
    done = completed_build(config)
    if done is not None:
        return BuildResult(Path(config.out), done.rows(), done.counts["mix"]["identities"], time.perf_counter() - started, 0,
                           len(done.shards.get("mix", {})))
    group = ProcessGroup()
    layout = Layout(rank=group.rank, world=group.world, part=config.shard, parts=config.num_shards)
    gen, weak = load_models(config, group.device or config.device)
    plan, provenance = plan_build(config, gen, progress and layout.is_main)
    units = units_of(plan, config.shard_size)
    out = Path(config.out)

    lock = OutputLock(out) if layout.is_main else None  # one build at a time writes a folder
    try:
        if layout.is_main:
            manifest = open_out_dir(config, {"shard_size": config.shard_size, "units": len(units)}, provenance, lock)
        return _sample_units(config, out, layout, group, plan, units, gen, weak, manifest if layout.is_main else None,
                             progress, started)
    finally:
        if lock is not None:
            lock.release()


def _sample_units(config: BuildConfig, out: Path, layout: Layout, group: ProcessGroup, plan: MixPlan,
                  units: list[range], gen, weak, manifest: Manifest | None, progress: bool, started: float) -> BuildResult:
    """Every process samples its share of the units not yet done; process 0 then finalizes the folder."""
    group.barrier()
    if not layout.is_main:
        manifest = Manifest.read(out)
    part_units = layout.part_units(len(units))
    done = done_units(out, part_units)
    group.barrier()  # everyone has read the markers before anyone writes new ones
    mine = layout.my_units([u for u in part_units if u not in done])

    import datasets

    configs = ("mix", "repro") if config.repro else ("mix",)
    total = sum(len(plan.identities[i].seeds) * (1 + len(plan.identities[i].parents) * config.repro)
                for u in part_units if u not in done for i in units[u])
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
                     sample_preview=lambda: _sample_preview(plan, gen, weak, config), plan=config.plan)
            rows = manifest.rows()
    group.barrier()
    return BuildResult(out, rows, len(plan.identities), time.perf_counter() - started, sampled, len(done), complete)


def _sample_preview(plan: MixPlan, gen, weak, config: BuildConfig):
    """Parent A alone | mix | parent B alone [...] from each identity's first seed (when there is no repro config)."""
    ids = plan.identities[:PREVIEW_ROWS]
    seeds = [i.seeds[0] for i in ids]
    mixes = sample_images(gen, weak, config, np.array([i.parents for i in ids]), np.array([i.weights for i in ids]), seeds)
    flat = [(p, s) for i, s in zip(ids, seeds) for p in i.parents]
    singles = iter(sample_images(gen, weak, config, np.array([[p] for p, _ in flat]), np.ones((len(flat), 1)), [s for _, s in flat]))
    return [preview_row([next(singles) for _ in i.parents], m) for i, m in zip(ids, mixes)]
