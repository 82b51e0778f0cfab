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
from ..dataset.writer import datasets_bars_off
from ..core.devices import resolve_device, resolve_dtype
from ..core.errors import ConfigError, ModelError
from ..generators.edm2.generator import check_guide, check_sampler
from ..generators.loading import load_generator
from ..core.outputs import OutputLock
from ..core.processes import WAIT_TIMEOUT, wait_timeout
from ..core.validate import device_name
from .config import BuildConfig
from .finalize import PREVIEW_ROWS, collect_units, finalize, preview_row
from .layout import Layout, ProcessGroup
from .outdir import open_out_dir
from .planning.mix_plan import MixPlan
from .centres_cache import BUILD_CACHE, save_centres
from .planning.choose import plan_and_spaces, plan_build
from .planning.shared_plan import read_state, state_path, wait_for_state, write_state
from .resolve import ResolvedBuild, resolve_build
from .rows import run_units
from ..sampling.batches import sample_images
from .units import done_units

logger = logging.getLogger(__name__)

ENCODE_WORKERS = 2  # PNG-encoding threads beside the sampler (0: the serial path, for comparison)


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


def load_models(config: BuildConfig, device: str | None = None):
    device = resolve_device(device or config.device)
    device_name("device", device, available=True)
    dtype = resolve_dtype(config.dtype, device)
    gen = load_generator(config.generator, config.generator_revision, null_class=config.null_class)
    gen = accelerate_kernels(gen.to(device, dtype), config.compile)
    check_sampler(gen, config.scheduler)  # edm-heun for EDM2 generators, and for them only
    weak = None
    if config.weak_generator:
        weak = load_generator(config.weak_generator, null_class=config.null_class, flag="weak_generator")
        weak = accelerate_kernels(weak.to(device, dtype), config.compile)
        check_guide(gen, weak)  # an EDM2 generator's weak network: EDM2, same sample shape and labels
    if config.guidance != 1.0 and weak is None and gen.null_class is None and getattr(gen, "guide", None) is None:
        last = gen.num_classes - 1  # a label table trained with dropout keeps its null class in the last row
        raise ModelError(
            "classifier-free guidance needs a null class, and this generator declares none",
            hint=f"if row {last} of its label table is the null class label dropout trained, give `null_class` {last}; "
                 "else use `guidance` 1, give a `weak_generator` for autoguidance, or train with label dropout",
            fields=("null_class", "guidance", "weak_generator"),
        )
    return gen, weak


def check_precision(config: BuildConfig, device: str) -> None:
    """The precision the models will run in must be the one the fingerprint names (``config.compute_dtype``): a
    launcher that places the process on a GPU while ``device`` says otherwise is refused, not silently recorded."""
    actual = str(resolve_dtype(config.dtype, device)).removeprefix("torch.")
    if actual != config.compute_dtype:
        raise ConfigError(f"this process runs on {device} in {actual}, but the build's device {config.device} means "
                          f"{config.compute_dtype}", hint=f"set `dtype` to {actual} (or `device` to {device})",
                          fields=("dtype", "device"))


def accelerate_kernels(gen, compile: bool = False):
    """channels_last on CUDA (cuDNN's fast convolution layout; the CPU keeps its default layout, and its bits), and
    with ``compile`` the denoiser through ``torch.compile``."""
    if gen.device.type == "cuda":
        gen.denoiser.to(memory_format=torch.channels_last)
    if compile:
        from ..sampling.compiled import compile_denoiser

        compile_denoiser(gen.denoiser)  # in place, once for every batch size (same state_dict keys, same digest)
    return gen


def units_of(plan: MixPlan, shard_size: int) -> list[range]:
    n = len(plan.identities)
    return [range(s, min(s + shard_size, n)) for s in range(0, n, shard_size)]


def unit_images(plan: MixPlan, ids: range, repro: bool) -> int:
    return sum(len(plan.identities[i].seeds) * (1 + len(plan.identities[i].parents) * repro) for i in ids)


def run_build(build: BuildConfig | ResolvedBuild, progress: bool = True) -> BuildResult:
    """Build (or resume) the dataset described by ``build`` into its ``out``: a config, or the
    :class:`~.resolve.ResolvedBuild` the caller already made of it (then nothing is resolved again).

    Process 0 alone plans (or, resuming, reads the plan it wrote) and writes the plan into the build's state; the
    other processes of a launch wait for that file and never read the real data (:mod:`.planning.shared_plan`)."""
    started = time.perf_counter()
    resolved = build if isinstance(build, ResolvedBuild) else resolve_build(build)
    config, done = resolved.config, resolved.finished
    if done is not None:
        return BuildResult(Path(config.out), done.rows(), done.counts["mix"]["identities"], time.perf_counter() - started, 0,
                           len(done.shards.get("mix", {})))
    group = ProcessGroup()
    layout = Layout(rank=group.rank, world=group.world, part=config.shard, parts=config.num_shards)
    out = Path(config.out)
    device = resolve_device(group.device or config.device)
    check_precision(config, device)
    gen, weak = load_models(config, device)
    fingerprint = config.fingerprint()
    found = read_state(out, fingerprint) if layout.is_main else None
    spaces = None
    if not layout.is_main:  # never the real data: process 0's plan, from the build's state
        plan, provenance = wait_for_state(out, fingerprint, group.timeout or wait_timeout(), layout.rank)
    elif found is not None:
        plan, provenance = found
        logger.info("the plan of this build is in %s: the real data is not read again", state_path(out))
    else:
        plan, provenance, spaces = plan_and_spaces(config, gen, (out / BUILD_CACHE,), None, device,
                                                   progress=progress, plan_file=resolved.plan_file)
        provenance = {**provenance, "compute_dtype": config.compute_dtype}  # what resume and merge compare
    units = units_of(plan, config.shard_size)

    lock = OutputLock(out) if layout.is_main else None  # one build at a time writes a folder
    try:
        if layout.is_main:
            manifest = open_out_dir(config, {"shard_size": config.shard_size, "units": len(units)}, provenance, lock)
            if found is None:  # the folder is this build's now: the other processes may read the plan
                write_state(out, fingerprint, plan, provenance)
            if spaces is not None and spaces.centres_computed:  # kept with the build, as before
                save_centres(out / BUILD_CACHE, spaces.centres_key, spaces.centres)
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
    # Each process hashes only the finished shards of the units it owns (those it would sample if none were done),
    # so a resume reads every shard once in all, not once per process; the verdicts are then shared (the same done
    # set everywhere, so every process divides what is left the same way). The gather also means everyone has read
    # the markers before anyone writes new ones.
    owned = layout.my_units(part_units, [unit_images(plan, units[u], config.repro) for u in part_units])
    done = {u: s for verdicts in group.all_gather(done_units(out, owned)) for u, s in verdicts.items()}
    todo = [u for u in part_units if u not in done]
    mine = layout.my_units(todo, [unit_images(plan, units[u], config.repro) for u in todo])

    total = sum(unit_images(plan, units[u], config.repro) for u in todo)
    sampled = 0
    with datasets_bars_off(), tqdm(total=total, unit="img", desc="scoremix build",
                                   disable=not (progress and layout.is_main), smoothing=0.1) as bar:
        # Process 0 sees only its own share; scaled by the process count it estimates the whole launch's rate.
        on_batch = (lambda n: _advance(bar, n * layout.world)) if layout.is_main else None
        stats = run_units(plan, units, mine, gen, weak, config, out, on_batch, encode_workers=ENCODE_WORKERS)
        sampled = stats.images
    # after the bar is closed: a line logged while it is open makes tqdm draw the finished bar again below it
    logger.info("sampled %d images in %d batches (%d full) in %.1f s, %.1f s of it in the sampler",
                stats.images, stats.batches, stats.full_batches, stats.seconds, stats.sample_seconds)
    group.barrier()

    complete = False
    rows: dict[str, int] = {}
    if layout.is_main:
        markers = done_units(out, part_units, verify=False)
        complete = len(markers) == len(part_units)
        if complete:
            if layout.world > 1:
                logger.info("finalizing %s; the other %d process(es) wait up to %.0f s (%s)", out, layout.world - 1,
                            group.timeout, WAIT_TIMEOUT)
            collect_units(manifest, markers)
            identities = [plan.identities[i] for u in part_units for i in units[u]]
            finalize(out, manifest, len(identities), {p for i in identities for p in i.parents},
                     sample_preview=lambda: sample_preview(plan, gen, weak, config), plan=config.plan)
            rows = manifest.rows()
    group.barrier()
    return BuildResult(out, rows, len(plan.identities), time.perf_counter() - started, sampled, len(done), complete)


def _advance(bar, n: int) -> None:
    """``bar.update(n)``, except the step that finishes it: that one is counted, not drawn, so the finished bar is
    drawn once (when it closes, with the whole run's rate) rather than by the update and again by the close."""
    if bar.total and bar.n + n >= bar.total:
        bar.n += n
    else:
        bar.update(n)


def sample_preview(plan: MixPlan, gen, weak, config: BuildConfig):
    """Parent A alone | mix | parent B alone [...] from each identity's first seed (when there is no repro config)."""
    ids = plan.identities[:PREVIEW_ROWS]
    seeds = [i.seeds[0] for i in ids]
    settings = config.sampling
    mixes = sample_images(gen, settings, np.array([i.parents for i in ids]), np.array([i.weights for i in ids]), seeds,
                          weak=weak)
    flat = [(p, s) for i, s in zip(ids, seeds) for p in i.parents]
    singles = iter(sample_images(gen, settings, np.array([[p] for p, _ in flat]), np.ones((len(flat), 1)),
                                 [s for _, s in flat], weak=weak))
    return [preview_row([next(singles) for _ in i.parents], m) for i, m in zip(ids, mixes)]


def resample_preview(recorded: dict) -> list:
    """The preview of a build from its recorded config (``manifest.json``'s ``config``): load its models, plan it
    again (the same seeds give the same identities) and sample :func:`sample_preview`. What ``merge`` uses when the
    parts have no ``repro`` config to read the preview from."""
    from ..core.recipes import from_mapping

    config = from_mapping(BuildConfig, recorded, "manifest")
    gen, weak = load_models(config, config.device)
    plan, _ = plan_build(config, gen)
    return sample_preview(plan, gen, weak, config)
