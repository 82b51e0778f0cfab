"""Train a class-conditional diffusers denoiser (UNet or DiT) and save it in the layout ``build`` loads; an EDM2
architecture (``edm2-*``) is handed, after the shared setup below, to :mod:`.edm2` (its own loss and folder).

The run is described by :class:`.generator_config.GeneratorTrainConfig` (its validation and fingerprint live there);
this module owns the generator's data, loss, checkpoint contents and saved output; the loop itself (accelerate,
accumulation, mixed precision, LR schedule, checkpoint timing) is :mod:`.loop`'s.

Layout written to ``out``::

    unet/ | transformer/   the denoiser (config.json + diffusion_pytorch_model.safetensors), EMA weights
    scheduler/             the training noise schedule (scheduler_config.json)
    model_index.json       the folder as a diffusers pipeline (ScoreMixPipeline, scoremix_ds/sampling/pipeline.py)
    README.md              the model card (cards/generator_card.md)
    scoremix.json          class count, null class, class names, data provenance, this config and its fingerprint
    checkpoints/           while training only: step-NNNNNNNN folders (:mod:`.checkpoints`), removed once saved

Objective (DDPM): for a real image ``x0`` of class ``c``, a timestep ``t ~ U{0..T-1}`` and noise ``e ~ N(0, I)``,
``x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) e`` and the loss is the mean over the global batch of
``|f(x_t, t, c') - target|^2`` with target ``e`` (epsilon), ``sqrt(abar_t) e - sqrt(1 - abar_t) x0`` (v) or ``x0``
(sample). Label dropout sets ``c'`` to the null class (row ``K`` of the class table) with probability
``label_dropout``, so the same network also predicts the unconditional score classifier-free guidance needs.
With ``snr_gamma`` set, sample ``i``'s squared error is weighted by :func:`snr_weights` (min-SNR-gamma) before the
mean.

Why the result does not depend on how the work is split, and why resume is exact:

- every random quantity of sample ``i`` of step ``s`` (its data row, label dropout, flip, ``t``, ``e``) comes from a
  generator seeded by ``(seed, s, i)`` alone (:func:`.generator_steps.draw_seed`). Process ``r`` of ``w`` takes samples
  ``[rB/w, (r+1)B/w)`` of the global batch ``B``, split again into micro-batches for gradient accumulation; DDP
  averages the gradients, so each update is that of the global mean loss (up to float summation order);
- the learning rate is a pure function of the step (warm-up, then cosine over ``steps``), so ``stop_after`` or a
  crash never shortens the schedule;
- a checkpoint holds the model, EMA, optimizer (and fp16 grad-scaler) state and the step; a resumed run repeats
  exactly what an uninterrupted one does (``tests/test_generator_trainer.py`` checks the weights bit for bit).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from .. import __version__
from ..sources.source import Source, SourceSpec
from ..sources.openers import open_source
from ..core.errors import ConfigError, DataError
from ..core.recipes import to_dict
from ..core.validate import device_name
from ..generators.architectures import FOLDERS, count_parameters, denoise, get_architecture
from .checkpoints import CHECKPOINTS, Checkpoint, prepare_checkpoints, write_checkpoint
from .generator_config import GeneratorTrainConfig
from .generator_steps import LossRecord, StepBatches, process_share, step_micro_batches
from .loop import (EMA, Precision, Track, TrainingLoop, accelerator_for, lr_factors, micro_batch_size,
                   require_trackers)

logger = logging.getLogger(__name__)

LR_FLOOR = 0.05  # the cosine decay ends at 5% of the peak learning rate


# ------------------------------------------------------------------------------------------- pure pieces


def noise_schedule(config: GeneratorTrainConfig):
    """The DDPM forward process the model is trained on, saved as ``scheduler/`` for the sampler."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(
        num_train_timesteps=config.num_train_timesteps,
        beta_schedule=config.beta_schedule,
        prediction_type=config.prediction_type,
        clip_sample=False,
        # "leading" spacing: with the cosine schedule, alpha_bar(T-1) ~ 0 and a sampler that starts exactly at
        # t = T-1 ("trailing") divides by ~0 in its x0 estimate (measured: 35% vs 75% recognisable digits).
        timestep_spacing="leading",
    )


# ------------------------------------------------------------------------------------------- the trainer


def train_generator(config: GeneratorTrainConfig, progress: bool = True) -> Path:
    """Train the generator described by ``config`` (resuming from its checkpoints) and return the output folder.

    Run it in N processes with ``accelerate launch --multi_gpu --num_processes N -m scoremix_ds train-generator``
    (gloo on CPUs, NCCL on GPUs). With ``stop_after`` the run ends early with a checkpoint and no model; running
    the same config again continues it. A finished output of the same config is returned as it is.
    """
    from ..core.outputs import OutputLock, claim_folder

    device_name("device", config.device, available=True)
    require_trackers(config.report_to)
    if os.environ.get("RANK", "0") != "0":
        return _train_generator(config, progress)
    out = claim_folder(config.out, "train-generator", signature=_written_by_train_generator)
    with OutputLock(out):
        return _train_generator(config, progress)


def _written_by_train_generator(out: Path) -> bool:
    """A folder `train-generator` wrote before folders were marked: its checkpoints or its finished model, or the
    tracker run it writes first (``--report-to``, stopped before the first checkpoint)."""
    return ((out / "checkpoints").is_dir() or (out / "scoremix.json").is_file() and (out / "scheduler").is_dir()
            or (out / "scoremix.json").is_file() and (out / "edm2").is_dir()
            or any((out / out.resolve().name).glob("events.out.tfevents.*")) or (out / "wandb").is_dir())


def _train_generator(config: GeneratorTrainConfig, progress: bool) -> Path:
    out = Path(config.out)
    arch = get_architecture(config.architecture)
    handlers = ()
    if arch.family == "edm2":
        from .edm2 import ddp_handlers

        handlers = ddp_handlers(config)
    accelerator = accelerator_for(config.device == "cpu" or (config.device is None and not torch.cuda.is_available()),
                                  config.report_to, config.logging_dir or out, kwargs_handlers=handlers)
    rank, world = accelerator.process_index, accelerator.num_processes
    micro = micro_batch_size(config.batch_size, world, config.gradient_accumulation_steps, "gradient_accumulation_steps")
    source = open_source(SourceSpec(config.real_data, config.real_data_revision,
                                    mode="L" if config.channels == 1 else "RGB"))
    data_id = {"provenance": source.provenance, "commit": source.info.commit, "num_rows": len(source),
               "num_classes": source.num_classes}
    fingerprint = config.fingerprint()
    if config.resume and _already_trained(out, fingerprint, data_id):
        logger.info("%s already holds this generator (config %s); pass --no-resume to train it again", out, fingerprint)
        if accelerator.is_main_process and not (out / "model_index.json").is_file():  # trained by an older version
            write_pipeline_files(out, json.loads((out / "scoremix.json").read_text(encoding="utf-8")))
        accelerator.wait_for_everyone()
        return out

    ckpt_root = out / CHECKPOINTS
    ckpt = prepare_checkpoints(ckpt_root, config.resume, accelerator)
    if ckpt is not None:
        _check_resumable(ckpt, config, fingerprint, data_id)
    if arch.family == "edm2":  # EDM2's loss, optimizer, EMA and folder on the same loop (training/edm2.py)
        from .edm2 import train_edm2

        return train_edm2(config, accelerator, source, data_id, fingerprint, ckpt, progress)

    with torch.random.fork_rng(devices=[]):  # the initial weights depend on the seed only
        torch.manual_seed(config.seed)
        model = arch.build(config.image_size, config.channels, source.num_classes, config.architecture_params())
    if accelerator.is_main_process:
        logger.info("%s: %s parameters, %d classes + null, %d processes", config.architecture,
                    f"{count_parameters(model):,}", source.num_classes, world)
    schedule = noise_schedule(config)
    # Min-SNR weights depend on the timestep alone: one table, on the device, indexed each step (no host round trip)
    loss_weights = None if config.snr_gamma is None else snr_weights(
        schedule, torch.arange(config.num_train_timesteps), config.prediction_type, config.snr_gamma).to(accelerator.device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    from diffusers.training_utils import EMAModel

    losses = LossRecord(accelerator)
    loop = TrainingLoop(accelerator, model, optimizer, Precision(config.mixed_precision, accelerator.device),
                        total=config.steps, accumulation=config.gradient_accumulation_steps,
                        learning_rate=config.learning_rate,
                        lr_factor=lr_factors("cosine", config.warmup_steps, config.steps, LR_FLOOR),
                        max_grad_norm=config.max_grad_norm, checkpoint_every=config.checkpoint_every)
    ema = EMAModel(loop.unwrapped.parameters(), decay=config.ema_decay, use_ema_warmup=True)
    start = 0
    if ckpt is not None:
        start = _restore(ckpt, loop, ema, losses)
        logger.info("resuming from %s (step %d of %d)", ckpt.path, start, config.steps)
    state = {"fingerprint": fingerprint, "config": config.fingerprint_payload(), "data": data_id,
             "world_size": world, "package_version": __version__}
    loop.callbacks = [EMA(ema), losses]
    if config.report_to:  # loss, lr and images/s every 25 steps (LossRecord's) and at the last
        loop.callbacks.append(Track(accelerator, out.resolve().name, to_dict(config), every=25,
                                    images=lambda batch: len(batch["labels"])))
    loop.save = lambda done: _save_checkpoint(ckpt_root, done, loop, ema, {**state, "loss": losses.record},
                                              config.keep_checkpoints)

    stop = min(config.steps, config.stop_after or config.steps)
    share = process_share(config.batch_size, rank, world)
    micro_batches = step_micro_batches(StepBatches(source, config, share), start, stop,
                                       config.gradient_accumulation_steps, micro, accelerator.device, config.num_workers)

    loop.run(start, stop, micro_batches,
             lambda part: _loss(loop.model, arch.family, schedule, config.prediction_type, part, loss_weights),
             progress=progress, desc="train-generator")

    if stop < config.steps:
        logger.info("stopped after step %d of %d; run the same config again to continue", stop, config.steps)
        return out
    if accelerator.is_main_process:
        _save_generator(out, arch.folder, loop.unwrapped, ema, schedule, source, config, fingerprint, losses.record)
        if ckpt_root.exists():  # a longer run is another config: these can no longer be resumed into anything
            shutil.rmtree(ckpt_root)
    accelerator.wait_for_everyone()
    return out


def _loss(model, family: str, schedule, prediction_type: str, batch: dict[str, torch.Tensor],
          loss_weights: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared error of the model output against its target (see the module docstring); with
    ``loss_weights`` (one weight per timestep, :func:`snr_weights`), each sample's error is weighted by its own."""
    x0, noise, t = batch["x0"], batch["noise"], batch["timesteps"]
    xt = schedule.add_noise(x0, noise, t)  # Forward process: x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) e.
    if prediction_type == "epsilon":
        target = noise
    elif prediction_type == "v_prediction":
        target = schedule.get_velocity(x0, noise, t)
    else:
        target = x0
    pred = denoise(model, family, xt, t, batch["labels"])
    if loss_weights is None:
        return F.mse_loss(pred.float(), target.float())
    per_sample = F.mse_loss(pred.float(), target.float(), reduction="none").mean(dim=tuple(range(1, pred.ndim)))
    return (per_sample * loss_weights[t]).mean()


def snr_weights(schedule, timesteps: torch.Tensor, prediction_type: str, gamma: float) -> torch.Tensor:
    """Min-SNR-gamma weights (Hang et al. 2023) of ``timesteps``: ``min(SNR, gamma)`` divided by ``SNR`` for
    epsilon targets and by ``SNR + 1`` for v targets, where ``SNR_t = abar_t / (1 - abar_t)`` (diffusers'
    ``compute_snr``). Every weight is 1 for epsilon where ``SNR <= gamma``."""
    from diffusers.training_utils import compute_snr

    snr = compute_snr(schedule, timesteps.cpu()).double()
    clipped = torch.clamp(snr, max=gamma)
    if prediction_type == "epsilon":
        return (clipped / snr).float()
    if prediction_type == "v_prediction":
        return (clipped / (snr + 1)).float()
    return clipped.float()


def _already_trained(out: Path, fingerprint: str, data_id: dict[str, Any]) -> bool:
    meta_file = out / "scoremix.json"
    if not meta_file.is_file() or not any((out / f / "config.json").is_file() for f in FOLDERS.values()):
        return False
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
        trained = meta["trained_with"]["fingerprint"]
    except (ValueError, KeyError, TypeError):
        return False
    commit = meta.get("real_data_commit")
    same_data = commit is None or data_id["commit"] is None or commit == data_id["commit"]
    return trained == fingerprint and same_data and meta.get("num_classes") == data_id["num_classes"]


def _check_resumable(ckpt: Checkpoint, config: GeneratorTrainConfig, fingerprint: str, data_id: dict) -> None:
    """Refuse, in one line, a checkpoint of another config or other data."""
    state = ckpt.state()
    if state.get("fingerprint") != fingerprint:
        theirs, ours = state.get("config", {}), config.fingerprint_payload()
        differ = sorted(k for k in set(theirs) | set(ours) if theirs.get(k) != ours.get(k))
        what = ", ".join(differ) or "its fingerprint"
        raise ConfigError(f"checkpoint {ckpt.path} is of another config (differs in {what})",
                          hint="train with the same recipe, choose another --out, or pass --no-resume to discard it")
    theirs = state.get("data", {})
    changed = [k for k in ("num_rows", "num_classes", "commit")
               if theirs.get(k) is not None and data_id[k] is not None and theirs.get(k) != data_id[k]]
    if changed:
        raise DataError(f"checkpoint {ckpt.path} was trained on other data ({', '.join(changed)} changed since)",
                        hint="pin `real_data_revision` to its data, choose another `out`, or turn `resume` off",
                        fields=("real_data_revision", "out", "resume"))


def _save_checkpoint(root: Path, done: int, loop: TrainingLoop, ema, state: dict, keep: int) -> None:
    """Process 0 writes the model, the EMA weights and the optimizer (and fp16 grad-scaler) state; all wait."""
    main = loop.accelerator.is_main_process
    tensors, objects = {}, {}
    if main:
        net = loop.unwrapped
        ema_state = dict(ema.state_dict())
        shadow = ema_state.pop("shadow_params")
        names = [name for name, _ in net.named_parameters()]
        state = {**state, "ema": ema_state}
        tensors = {"model": net.state_dict(), "ema": dict(zip(names, shadow))}
        objects = {"optimizer": {"optimizer": loop.raw_optimizer.state_dict(), "scaler": loop.precision.state_dict()}}
    write_checkpoint(root, done, state, tensors, objects, keep, main=main, barrier=loop.accelerator.wait_for_everyone)
    if main:
        logger.info("checkpoint %s", root / f"step-{done:08d}")


def _restore(ckpt: Checkpoint, loop: TrainingLoop, ema, losses: LossRecord) -> int:
    """Load every piece of training state from ``ckpt``; returns the step to continue from."""
    net = loop.unwrapped
    net.load_state_dict(ckpt.tensors("model"))
    state = ckpt.state()
    shadow = ckpt.tensors("ema")
    device = next(net.parameters()).device
    ema.load_state_dict({**state["ema"],
                         "shadow_params": [shadow[name].to(device) for name, _ in net.named_parameters()]})
    saved = ckpt.objects("optimizer")
    loop.optimizer.load_state_dict(saved["optimizer"])
    loop.precision.load_state_dict(saved.get("scaler"))
    if state.get("world_size") != loop.accelerator.num_processes:
        logger.info("checkpoint written by %s processes, resumed by %d (same batches)", state.get("world_size"),
                    loop.accelerator.num_processes)
    losses.restore(dict(state.get("loss", {"first": [], "running": None})))
    return int(state["step"])


def _save_generator(out: Path, folder: str, net, ema, schedule, source: Source, config: GeneratorTrainConfig,
                    fingerprint: str, losses: dict[str, Any]) -> None:
    """The EMA weights in the diffusers layout, the noise schedule, and ``scoremix.json`` last (it marks done)."""
    ema.copy_to(net.parameters())
    out.mkdir(parents=True, exist_ok=True)
    for other in set(FOLDERS.values()) - {folder}:
        if (out / other).exists():  # a denoiser of another family from an earlier run would shadow this one
            logger.warning("removing %s (another architecture's denoiser)", out / other)
            shutil.rmtree(out / other)
    (out / "scoremix.json").unlink(missing_ok=True)
    net.to("cpu").save_pretrained(out / folder, safe_serialization=True)
    for weights in (out / folder).glob("*.safetensors"):
        weights.chmod(0o644)  # safetensors writes 0600; shipped weights must be readable
    schedule.save_pretrained(out / "scheduler")
    meta = {
        "num_classes": source.num_classes,
        "null_class": source.num_classes if config.label_dropout > 0 else None,  # an untrained row is no null class
        "class_names": list(source.class_names),
        "image_size": config.image_size,
        "channels": config.channels,
        "architecture": config.architecture,
        "real_data": source.provenance,
        "real_data_commit": source.info.commit,
        "licence": source.info.licence,
        "attribution": source.info.attribution or source.provenance,  # who made the data; else where it came from
        "loss": losses,
        "trained_with": {"package": "scoremix-ds", "version": __version__, "config": to_dict(config),
                         "fingerprint": fingerprint},
    }
    write_pipeline_files(out, meta)
    (out / "scoremix.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    logger.info("saved generator to %s", out)


def write_pipeline_files(out: Path, meta: dict[str, Any]) -> None:
    """``model_index.json`` (the folder as a diffusers ``ScoreMixPipeline``) and the model card ``README.md``."""
    from ..sampling.pipeline import write_model_index
    from .generator_card import write_generator_card

    index = json.loads(write_model_index(out, meta).read_text(encoding="utf-8"))
    denoiser = next(v[1] for k, v in index.items() if k in ("unet", "transformer") and isinstance(v, list) and v[0])
    write_generator_card(out, meta, denoiser)
