"""``scoremix-ds build``: sample a ScoreMix dataset into a local folder."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from .cache_option import with_cache_option

from ..synthesis.config import BuildConfig
from ..synthesis.launch import relaunch
from ..core.processes import launched_distributed
from ..synthesis.resolve import ResolvedBuild, resolve_build
from ..synthesis.status import build_status
from ..core.errors import ConfigError
from ..core.processes import check_num_processes, is_main_process, owns_side_effects
from ..core.recipes import config_from
from .hub_cmd import ForceTagOpt, TagOpt, TokenOpt, summary
from .options import BatchOpt, DeviceOpt, OutOpt, ProgressOpt, RecipeOpt, StepsOpt
from .planning_options import with_planning_options
from .preflight import preflight_build

logger = logging.getLogger(__name__)


@with_cache_option
@with_planning_options
def build(
    planning: dict[str, Any],
    weak_generator: Annotated[Optional[str], typer.Option(help="Weaker checkpoint for autoguidance.")] = None,
    plan: Annotated[Optional[str], typer.Option("--plan", help="Build this plan file (from `scoremix-ds plan`) as it is.")] = None,
    mixing: Annotated[Optional[str], typer.Option(help="score (ScoreMix, default) or condition (mix the class-condition vectors: the AugGen baseline).")] = None,
    weight_schedule: Annotated[Optional[str], typer.Option(help="constant, or window (mix only inside --window-start/--window-end).")] = None,
    window_start: Annotated[Optional[float], typer.Option(help="Window start, fraction of the trajectory (0 = noise).")] = None,
    window_end: Annotated[Optional[float], typer.Option(help="Window end, fraction of the trajectory.")] = None,
    scheduler: Annotated[Optional[str], typer.Option(help="ddim, dpm++, euler or heun; edm-heun for (and by default on) EDM2 generators.")] = None,
    prediction_type: Annotated[Optional[str], typer.Option(help="Override the model's epsilon / v_prediction / sample.")] = None,
    steps: StepsOpt = None,
    sigma_min: Annotated[Optional[float], typer.Option(help="edm-heun (EDM2 generators): the last noise level (default: the folder's, 0.002).")] = None,
    sigma_max: Annotated[Optional[float], typer.Option(help="edm-heun (EDM2 generators): the first noise level (default: the folder's, 80).")] = None,
    rho: Annotated[Optional[float], typer.Option(help="edm-heun (EDM2 generators): the Karras spacing exponent (default: the folder's, 7).")] = None,
    guidance: Annotated[Optional[float], typer.Option(help="Guidance weight g (1 = none).")] = None,
    repro: Annotated[Optional[bool], typer.Option("--repro/--no-repro", help="Also sample each parent alone from the same seeds.")] = None,
    dtype: Annotated[Optional[str], typer.Option(help="auto (bfloat16 on CUDA, else float32), float32, bfloat16 or float16.")] = None,
    compile: Annotated[Optional[bool], typer.Option("--compile/--no-compile", help="torch.compile the denoiser.")] = None,
    device: DeviceOpt = None,
    batch_size: BatchOpt = None,
    shard_size: Annotated[Optional[int], typer.Option(help="Identities per work unit / parquet shard.")] = None,
    shard: Annotated[Optional[int], typer.Option(help="Job arrays: build only part i of --num-shards (no communication).")] = None,
    num_shards: Annotated[Optional[int], typer.Option(help="Job arrays: number of independent parts; join them with `merge`.")] = None,
    push_to: Annotated[Optional[str], typer.Option("--push-to", help="After the build, push it to this Hub dataset repo (ORG/NAME).")] = None,
    tag: TagOpt = None,
    force_tag: ForceTagOpt = False,
    token: TokenOpt = None,
    tags: Annotated[Optional[list[str]], typer.Option("--tags", help="Card tags describing the data, beyond synthetic / scoremix / diffusion / identity-mixing (repeatable or comma-separated), e.g. face-recognition.")] = None,
    num_processes: Annotated[int, typer.Option(help="Relaunch under accelerate with N processes (one per device).")] = 1,
    out: OutOpt = None,
    recipe: RecipeOpt = None,
    progress: ProgressOpt = True,
) -> None:
    """Sample a ScoreMix synthetic-identity dataset (parquet + card) into --out."""

    overrides = dict(
        planning, weak_generator=weak_generator, plan=plan, mixing=mixing, weight_schedule=weight_schedule,
        window_start=window_start, window_end=window_end, scheduler=scheduler, prediction_type=prediction_type,
        steps=steps, guidance=guidance, repro=repro, dtype=dtype, compile=compile, device=device, batch_size=batch_size,
        sigma_min=sigma_min, sigma_max=sigma_max, rho=rho,
        shard_size=shard_size, shard=shard, num_shards=num_shards, out=out,
    )
    resolved = resolve_build(config_from(BuildConfig, recipe, overrides))  # once, before any model is loaded
    config = resolved.config
    preflight_build(resolved)  # device, --out and room for the images (cli/preflight.py), before any model loads
    push = None
    if push_to:  # validated before sampling, so a bad --repo/--tag fails in a second, not after the build
        from ..hub.push import PushConfig

        push = PushConfig(folder=config.out, repo_id=push_to, tag=tag, force_tag=force_tag, token=token)
        if is_main_process() and resolved.finished is None:  # token, write access, tag: before any model loads
            from ..hub.push import preflight, remote_build_fingerprint

            preflight(push, "dataset", remote_build_fingerprint(push_to, config.fingerprint()))
    elif tag or force_tag:
        raise ConfigError("--tag/--force-tag need --push-to", hint="add --push-to ORG/NAME, or use `scoremix-ds push`")
    check_num_processes(num_processes)
    if resolved.finished is not None:  # resuming a finished build costs no model loading
        if is_main_process():
            typer.echo(build_status(Path(config.out)).summary())
        complete = True
    else:
        complete = _build(resolved, num_processes, progress)
    if tags and complete and owns_side_effects():  # card-only: not in the config, so not in the fingerprint
        from ..dataset.card import parse_tags, write_build_card
        from ..dataset.manifest import Manifest

        manifest = Manifest.read(Path(config.out))
        if manifest is not None and (Path(config.out) / "README.md").is_file():
            write_build_card(Path(config.out), manifest, tags=parse_tags(tags))
    # Once, from the process that owns the run: this one, rank 0 of the user's accelerate launch / torchrun, or the
    # parent of --num-processes (whose children never see --push-to), after every unit is on disk.
    if push is not None and complete and owns_side_effects():
        from ..hub.push import push_dataset

        typer.echo(summary(push_dataset(push), push))


def _build(resolved: ResolvedBuild, num_processes: int, progress: bool) -> bool:
    """Run (or relaunch) the build; True in the process that saw it complete (rank 0, or the relaunch's parent)."""
    config = resolved.config
    if num_processes > 1 and not launched_distributed():
        code = relaunch(config, num_processes, progress)
        if code:
            raise typer.Exit(code)
        typer.echo(build_status(Path(config.out)).summary())
        return True
    from ..synthesis.runner import run_build

    result = run_build(resolved, progress=progress)
    if not result.complete:  # a process other than 0, or units of other processes failed
        return False
    counts = ", ".join(f"{name}: {n} rows" for name, n in result.rows.items())
    typer.echo(
        f"built {result.out} — {result.identities} identities ({counts}) in {result.seconds:.1f}s"
        + (f", {result.images_per_second:.1f} img/s" if result.images_sampled else ", nothing left to sample")
        + (f"\npart {config.shard} of {config.num_shards}: join all parts with `scoremix-ds merge PARTS... --out DIR`"
           if config.num_shards > 1 else f"\nload it with: datasets.load_dataset({str(result.out)!r}, 'mix')")
    )
    return True
