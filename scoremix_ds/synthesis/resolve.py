"""What a build settles before any model loads, once: its config with the plan file's fields, the plan file as read,
and the finished build already in ``--out``.

``scoremix-ds build`` makes one :class:`ResolvedBuild` and hands it to :func:`scoremix_ds.synthesis.runner.run_build`, so
the plan file is parsed and hashed once and the output folder checked once per command.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

from ..core.errors import ConfigError
from ..dataset.manifest import Manifest
from .config import BuildConfig
from .planning.parquet_file import PlanFile
from .planning.choose import check_real_data, resolve_plan


@dataclass(frozen=True)
class ResolvedBuild:
    config: BuildConfig  # with the plan file's fields (and its sha256) when there is one
    plan_file: PlanFile | None  # None without --plan
    finished: Manifest | None  # the manifest when --out already holds this complete build: nothing to sample


def resolve_build(config: BuildConfig) -> ResolvedBuild:
    """Read and check the plan file (if any), check that the strategy has the real data it needs, and look for this
    build finished in ``config.out``; no model is loaded."""
    config, plan_file = resolve_plan(config)
    config = with_generator_sampler(config)
    if plan_file is None:
        check_real_data(config)
        check_discriminator(config)
    return ResolvedBuild(config, plan_file, verified_together(config))


def verified_together(config: BuildConfig) -> Manifest | None:
    """The manifest if ``config.out`` already holds this complete build with every shard intact (no model is loaded);
    None when it does not (or a shard is damaged: the build then resumes and re-samples it). Under a launch
    (accelerate / torchrun) the work is shared: each process hashes every N-th shard and the verdicts are gathered
    (one short collective, before any model loads), so a re-run reads each shard once in all, not once per process;
    one process is the world-1 case of the same rule. Every
    process enters the same collectives: whether the folder claims completion is gathered first (the processes read
    the manifest separately, and a shared file system may show them different versions), and the shards are
    verified only when every process saw the claim."""
    from pathlib import Path

    from .layout import Layout, ProcessGroup

    manifest = claimed_complete(config)
    group = ProcessGroup()
    if not all(group.all_gather(manifest is not None)):
        return None
    return verify_finished(Path(config.out), manifest, Layout(rank=group.rank, world=group.world), group)


def verify_finished(out, manifest: Manifest, layout, group) -> Manifest | None:
    """``manifest`` when none of the shards it lists is damaged, each process of ``group`` hashing every
    ``world``-th shard; None (and a warning) when one is: the build then resumes and re-samples exactly those units."""
    import logging

    from ..dataset.integrity import Damage, damage_line, shard_damage

    listed = sorted((rel, str(info.get("sha256", ""))) for files in manifest.shards.values() for rel, info in files.items())
    mine = [(rel, sha) for k, (rel, sha) in enumerate(listed) if k % layout.world == layout.rank]
    found = [(rel, reason) for rel, sha in mine if (reason := shard_damage(out / rel, sha))]
    damage = sorted(d for share in group.all_gather(found) for d in share)
    log = logging.getLogger(__name__)
    if not damage:
        if layout.is_main:
            log.info("%s already holds this complete build; nothing to do", out)
        return manifest
    if layout.is_main:
        log.warning("%s; re-sampling %d damaged shard(s)", damage_line(out, [Damage(*d) for d in damage]), len(damage))
    return None


def claimed_complete(config: BuildConfig) -> Manifest | None:
    """The manifest when ``config.out`` says it holds this complete build (checked to be this build, its shards
    not hashed), else None."""
    from pathlib import Path

    from .outdir import check_same_build

    out = Path(config.out)
    done = Manifest.read(out) if out.is_dir() else None
    if done is None or not done.complete:
        return None
    check_same_build(out, done, config, {"shard_size": config.shard_size})
    return done


def check_discriminator(config: BuildConfig) -> None:
    """The embedded default discriminator (trained on MNIST digits) ranks only the embedded default generator's
    classes: a strategy that picks pairs by class centres, on any other generator, must be given its discriminator
    (one line, before any model loads). Random and condition-space strategies use no discriminator."""
    from .planning.choose import needs_real_data

    if config.discriminator not in ("default", "", None) or _is_default_generator(config.generator):
        return
    if needs_real_data(config.strategy_spec):
        raise ConfigError(
            f"strategy '{config.strategy}' ranks pairs in a discriminator's embedding space, and the embedded default "
            "one knows only MNIST digits, not this generator's classes",
            hint="give `discriminator` (a recognition model for the generator's images), or set `strategy` to random "
                 "/ distant-condition / close-condition", fields=("discriminator", "strategy"))


def _is_default_generator(generator: str | None) -> bool:
    from pathlib import Path

    from ..core.resources import default_model_dir

    if generator in ("default", "", None):
        return True
    try:
        return Path(generator).expanduser().resolve() == default_model_dir("generator").resolve()
    except (OSError, ValueError):
        return False


def with_generator_sampler(config: BuildConfig) -> BuildConfig:
    """An EDM2 generator folder samples with ``edm-heun``: when the config leaves ``scheduler`` at its default
    (ddim, a diffusers scheduler that does not apply to EDM2), the folder's sampler settings replace it, and its
    steps and guidance replace ``steps`` / ``guidance`` left at their defaults; with guidance and no
    ``weak_generator``, the folder's ``edm2_guide/`` becomes the weak generator. Other generators: unchanged."""
    from ..generators.edm2.folder import local_folder_guide, local_folder_sampler

    sampler = local_folder_sampler(config.generator)
    if sampler is None:
        return _check_edm(config)
    defaults = {f.name: f.default for f in fields(BuildConfig)}
    changes: dict = {}
    if config.scheduler == defaults["scheduler"]:
        changes["scheduler"] = str(sampler["scheduler"])
        for name in ("steps", "guidance"):
            if getattr(config, name) == defaults[name]:
                changes[name] = type(defaults[name])(sampler[name])
    guide = local_folder_guide(config.generator)
    if changes.get("guidance", config.guidance) != 1.0 and config.weak_generator is None and guide is not None:
        changes["weak_generator"] = guide  # autoguidance with the folder's guide, named in the manifest and card
    return _check_edm(replace(config, **changes), sampler)


def _check_edm(config: BuildConfig, folder_sampler: dict | None = None) -> BuildConfig:
    """EDM2-only settings on the scheduler they belong to; sigma_min / sigma_max / rho over a local EDM2 folder's
    ``folder_sampler`` give valid noise levels (checked here, before anything is written)."""
    from ..sampling.schedulers import EDM_SCHEDULERS, check_edm_settings

    if config.scheduler in EDM_SCHEDULERS and config.prediction_type is not None:
        raise ConfigError(f"prediction_type {config.prediction_type} does not apply to {config.scheduler} (EDM2 "
                          "predicts the denoised image)", hint="leave `prediction_type` unset",
                          fields=("prediction_type", "scheduler"))
    given = {k: getattr(config, k) for k in ("sigma_min", "sigma_max", "rho")}
    check_edm_settings(config.scheduler, given)
    if folder_sampler is not None and config.scheduler in EDM_SCHEDULERS:
        lo, hi = (given[k] if given[k] is not None else float(folder_sampler[k]) for k in ("sigma_min", "sigma_max"))
        if not lo < hi:
            raise ConfigError(f"sigma_min {lo:g} is not below sigma_max {hi:g} (the generator folder's where not "
                              "given)",
                              hint="set `sigma_min` below `sigma_max`", fields=("sigma_min", "sigma_max"))
    return config
