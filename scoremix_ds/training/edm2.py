"""``train-generator --architecture edm2-*``: an EDM2 generator (Karras et al., CVPR 2024) and its autoguidance
guide, trained on the shared loop (:mod:`.loop`) and saved as the EDM2 generator folder every command reads
(:func:`scoremix_ds.generators.edm2.folder.write_edm2_folder`, the layout ``import-generator`` writes).

Owns: the EDM2 batches (:class:`EDM2Batches`), the pair of networks trained together (:class:`EDM2Pair`), EDM2's
checkpoint contents and :func:`train_edm2`. The objective is :mod:`.edm2_loss`'s; the config and its fingerprint
are :class:`~.generator_config.GeneratorTrainConfig`'s (its EDM2 fields); the setup (accelerate, the data, resume
checks) is :func:`.generator.train_generator`'s, which calls this for the ``edm2`` family.

- **Loss**: ln sigma ~ N(p_mean, p_std^2), EDM2's weight and learned uncertainty (:func:`.edm2_loss.edm2_loss`);
  labels are one-hot, a dropped label (probability ``label_dropout``) the zero vector (classifier-free guidance).
  Forced weight normalisation happens inside the MP layers in train mode (:class:`~..generators.edm2.unet.MPConv`).
- **Optimiser**: Adam, betas (0.9, 0.99), eps 1e-8, learning rate ``learning_rate / sqrt(max(step / t_ref, 1))``
  with ``t_ref = lr_decay_steps`` (optimizer steps; default ``steps``: no decay within the run) after a linear
  warm-up of ``warmup_steps`` (:func:`.loop.inverse_sqrt_factors`).
- **EMA**: power-function EMA (:class:`.loop.PowerEMA`) of relative std ``ema_sigma_rel``; the saved networks are
  the EMAs.
- **Guide** (``guide_source``): ``smaller`` (the default): the smaller preset (``guide_architecture``, default the
  preset's guide, e.g. ``edm2-cpu-guide``) is trained in the same loop on the same batches for the first
  ``guide_steps`` steps (default ``steps // 8``): its loss is added to the main one, and since Adam updates each
  parameter from its own gradient, each network gets exactly its own update; afterwards it takes no forward, has no
  gradient (Adam skips it) and its EMA stops. ``early-ema``: no second network; the main network's EMA at step
  ``guide_steps`` is kept (:class:`EarlyEMA`, in the checkpoints too) and is the guide (the main run's weights are
  those of the ``smaller`` run: without gradient clipping nothing couples the two networks). Either is saved as the
  folder's ``edm2_guide/``; docs/performance.md ("EDM2") compares them.
- **Resume**: every draw of sample i of step s comes from a generator seeded by (seed, s, i), the learning rate is a
  function of the step, and a checkpoint holds both networks, both EMAs and the optimizer, so a resumed run equals
  an uninterrupted one bit for bit (``tests/test_edm2_train.py``).
"""

from __future__ import annotations

import copy
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import __version__
from ..core.recipes import to_dict
from ..generators.architectures import FOLDERS, count_parameters, get_architecture
from ..maths.image_tensors import to_model_tensor
from ..sources.source import Source
from .checkpoints import CHECKPOINTS, Checkpoint, write_checkpoint
from .edm2_loss import edm2_loss, edm2_sigma, onehot_labels
from .generator_steps import LossRecord, StepBatches, draw_seed, process_share, step_micro_batches
from .generator_card import write_generator_card
from .generator_config import GeneratorTrainConfig
from .loop import EMA, Callback, PowerEMA, Precision, Track, TrainingLoop, inverse_sqrt_factors

logger = logging.getLogger(__name__)

ADAM = {"betas": (0.9, 0.99), "eps": 1e-8}


class EDM2Batches(StepBatches):
    """``self[step]``: this process's samples of step ``step``: ``x0`` (n, C, H, W) in [-1, 1], ``labels`` (n,)
    (``num_classes`` where dropped), ``noise`` like ``x0`` (standard normal) and ``sigma`` (n,).

    Sample ``i`` draws, from its own generator seeded by :func:`~.generator.draw_seed`, in this order: the data row,
    label dropout, flip, the standard normal of ln sigma, the noise; all draws happen whatever the config."""

    def draw(self, step: int, index: int):
        c = self.config
        g = torch.Generator().manual_seed(draw_seed(c.seed, step, index))
        row = int(torch.randint(len(self.source), (1,), generator=g))
        drop = bool(torch.rand(1, generator=g) < c.label_dropout)
        flip = bool(torch.rand(1, generator=g) < 0.5)
        normal = torch.randn(1, generator=g)
        noise = torch.randn((c.channels, c.image_size, c.image_size), generator=g)
        image, label = self.source[row]
        x0 = to_model_tensor(image[None], c.image_size, c.channels)[0]
        if c.flip and flip:
            x0 = x0.flip(-1)
        return x0, (self.null_class if drop else int(label)), noise, edm2_sigma(normal, c.p_mean, c.p_std)[0]

    def __getitem__(self, step: int) -> dict[str, torch.Tensor]:
        x0, labels, noise, sigma = zip(*(self.draw(step, i) for i in self.share))
        return {"x0": torch.stack(x0), "labels": torch.tensor(labels, dtype=torch.long), "noise": torch.stack(noise),
                "sigma": torch.stack(sigma)}


class EDM2Pair(nn.Module):
    """The main denoiser and its guide (or None), trained as one module by one optimizer. ``forward`` returns the
    sum of the main loss and, with ``with_guide``, the guide's loss on the same batch."""

    def __init__(self, main: nn.Module, guide: nn.Module | None) -> None:
        super().__init__()
        self.main, self.guide = main, guide

    def forward(self, x0: torch.Tensor, sigma: torch.Tensor, noise: torch.Tensor, labels: torch.Tensor,
                with_guide: bool) -> torch.Tensor:
        y = onehot_labels(labels, int(self.main.label_dim))
        loss = edm2_loss(self.main, x0, sigma, noise, y)
        if with_guide and self.guide is not None:
            loss = loss + edm2_loss(self.guide, x0, sigma, noise, y)
        return loss


class EarlyEMA(Callback):
    """``guide_source`` early-ema: a copy of the main EMA's parameters after step ``at`` (the guide)."""

    def __init__(self, ema, at: int) -> None:
        self.ema, self.at, self.params = ema, at, None

    def on_step_end(self, loop: TrainingLoop) -> None:
        if loop.step == self.at:
            self.params = [p.detach().clone() for p in self.ema.shadow_params]


def ddp_handlers(config: GeneratorTrainConfig) -> tuple:
    """accelerate kwargs handlers: the guide stops receiving gradients after its steps, which DDP must be told."""
    if not config.trains_guide():
        return ()
    from accelerate.utils import DistributedDataParallelKwargs

    return (DistributedDataParallelKwargs(find_unused_parameters=True),)


def _build(name: str, config: GeneratorTrainConfig, num_classes: int) -> nn.Module:
    arch = get_architecture(name)
    return arch.build(config.image_size, config.channels, num_classes, arch.resolve(name, {}))


def train_edm2(config: GeneratorTrainConfig, accelerator, source: Source, data_id: dict[str, Any], fingerprint: str,
               ckpt: Checkpoint | None, progress: bool) -> Path:
    """Train (or resume) the EDM2 run of ``config`` on ``source``; ``ckpt``: the checked checkpoint to resume."""
    out = Path(config.out)
    rank, world = accelerator.process_index, accelerator.num_processes
    micro = config.batch_size // (world * config.gradient_accumulation_steps)  # checked by the caller
    guide_name, guide_steps = config.guide_name(), config.guide_step_count()
    with torch.random.fork_rng(devices=[]):  # the initial weights depend on the seed only
        torch.manual_seed(config.seed)
        main = _build(config.architecture, config, source.num_classes)
        guide = _build(guide_name, config, source.num_classes) if config.trains_guide() else None
    pair = EDM2Pair(main, guide)
    if accelerator.is_main_process:
        logger.info("%s: %s parameters (guide %s: %s for %d steps), %d classes, %d processes", config.architecture,
                    f"{count_parameters(main):,}", guide_name, f"{count_parameters(guide):,}" if guide else "-",
                    guide_steps, source.num_classes, world)
    optimizer = torch.optim.Adam(pair.parameters(), lr=config.learning_rate, **ADAM)
    losses = LossRecord(accelerator)
    loop = TrainingLoop(accelerator, pair, optimizer, Precision(config.mixed_precision, accelerator.device),
                        total=config.steps, accumulation=config.gradient_accumulation_steps,
                        learning_rate=config.learning_rate,
                        lr_factor=inverse_sqrt_factors(config.lr_decay_steps or config.steps, config.warmup_steps),
                        max_grad_norm=config.max_grad_norm, checkpoint_every=config.checkpoint_every)
    net = loop.unwrapped
    ema = PowerEMA(net.main.parameters(), config.ema_sigma_rel)
    guide_ema = PowerEMA(net.guide.parameters(), config.ema_sigma_rel) if guide is not None else None
    early = EarlyEMA(ema, guide_steps) if config.guide_source == "early-ema" and guide_steps else None
    start = 0
    if ckpt is not None:
        start = _restore(ckpt, loop, ema, guide_ema, losses, early)
        logger.info("resuming from %s (step %d of %d)", ckpt.path, start, config.steps)
    state = {"fingerprint": fingerprint, "config": config.fingerprint_payload(), "data": data_id,
             "world_size": world, "package_version": __version__}
    loop.callbacks = [EMA(ema, select=lambda m: m.main.parameters()), losses]
    if guide_ema is not None:
        loop.callbacks.insert(1, EMA(guide_ema, select=lambda m: m.guide.parameters(), until=guide_steps))
    if early is not None:
        loop.callbacks.insert(1, early)  # after the main EMA's update of the same step
    if config.report_to:
        loop.callbacks.append(Track(accelerator, out.resolve().name, to_dict(config), every=25,
                                    images=lambda batch: len(batch["labels"])))
    ckpt_root = out / CHECKPOINTS
    loop.save = lambda done: _save_checkpoint(ckpt_root, done, loop, ema, guide_ema,
                                              {**state, "loss": losses.record}, config.keep_checkpoints, early)

    stop = min(config.steps, config.stop_after or config.steps)
    share = process_share(config.batch_size, rank, world)
    step_batches = step_micro_batches(EDM2Batches(source, config, share), start, stop,
                                      config.gradient_accumulation_steps, micro, accelerator.device, config.num_workers)

    def micro_batches(step: int):
        for part in step_batches(step):
            yield {**part, "with_guide": step < guide_steps}  # the guide trains for its first guide_steps only

    def loss(part: dict) -> torch.Tensor:
        return loop.model(part["x0"], part["sigma"], part["noise"], part["labels"], part["with_guide"])

    loop.run(start, stop, micro_batches, loss, progress=progress, desc="train-generator")
    if stop < config.steps:
        logger.info("stopped after step %d of %d; run the same config again to continue", stop, config.steps)
        return out
    if accelerator.is_main_process:
        _save_folder(out, net, ema, guide_ema, source, config, fingerprint, losses.record, early)
        if ckpt_root.exists():
            shutil.rmtree(ckpt_root)
    accelerator.wait_for_everyone()
    return out


def _named_shadow(module: nn.Module, ema) -> dict[str, torch.Tensor]:
    return dict(zip([name for name, _ in module.named_parameters()], ema.shadow_params))


def _ema_state(ema) -> dict[str, Any]:
    state = dict(ema.state_dict())
    state.pop("shadow_params")
    return state


def _save_checkpoint(root: Path, done: int, loop: TrainingLoop, ema, guide_ema, state: dict, keep: int,
                     early: "EarlyEMA | None" = None) -> None:
    """Process 0 writes both networks, both EMAs and the optimizer (and fp16 grad-scaler) state; all wait."""
    main = loop.accelerator.is_main_process
    tensors, objects = {}, {}
    if main:
        net = loop.unwrapped
        state = {**state, "ema": _ema_state(ema)}
        tensors = {"model": net.state_dict(), "ema": _named_shadow(net.main, ema)}
        if guide_ema is not None:
            state["guide_ema"] = _ema_state(guide_ema)
            tensors["guide_ema"] = _named_shadow(net.guide, guide_ema)
        if early is not None and early.params is not None:
            tensors["early_ema"] = dict(zip([name for name, _ in net.main.named_parameters()], early.params))
        objects = {"optimizer": {"optimizer": loop.raw_optimizer.state_dict(), "scaler": loop.precision.state_dict()}}
    write_checkpoint(root, done, state, tensors, objects, keep, main=main, barrier=loop.accelerator.wait_for_everyone)
    if main:
        logger.info("checkpoint %s", root / f"step-{done:08d}")


def _restore_ema(ckpt: Checkpoint, module: nn.Module, ema, name: str) -> None:
    shadow = ckpt.tensors(name)
    device = next(module.parameters()).device
    ema.load_state_dict({**ckpt.state()[name],
                         "shadow_params": [shadow[n].to(device) for n, _ in module.named_parameters()]})


def _restore(ckpt: Checkpoint, loop: TrainingLoop, ema, guide_ema, losses: LossRecord,
             early: "EarlyEMA | None" = None) -> int:
    net = loop.unwrapped
    net.load_state_dict(ckpt.tensors("model"))
    _restore_ema(ckpt, net.main, ema, "ema")
    if guide_ema is not None:
        _restore_ema(ckpt, net.guide, guide_ema, "guide_ema")
    if early is not None and not ckpt.missing(["early_ema.safetensors"]):
        kept = ckpt.tensors("early_ema")
        device = next(net.main.parameters()).device
        early.params = [kept[n].to(device) for n, _ in net.main.named_parameters()]
    saved = ckpt.objects("optimizer")
    loop.optimizer.load_state_dict(saved["optimizer"])
    loop.precision.load_state_dict(saved.get("scaler"))
    state = ckpt.state()
    losses.restore(dict(state.get("loss", {"first": [], "running": None})))
    return int(state["step"])


def _save_folder(out: Path, net: EDM2Pair, ema, guide_ema, source: Source, config: GeneratorTrainConfig,
                 fingerprint: str, losses: dict[str, Any], early: "EarlyEMA | None" = None) -> None:
    """The EMA networks as an EDM2 generator folder; ``scoremix.json`` records the data and this config."""
    from ..generators.edm2.folder import write_edm2_folder

    ema.copy_to(net.main.parameters())
    if guide_ema is not None:
        guide_ema.copy_to(net.guide.parameters())
    for other in set(FOLDERS.values()) - {FOLDERS["edm2"]}:
        if (out / other).exists():  # another family's denoiser from an earlier run would shadow this one
            logger.warning("removing %s (another architecture's denoiser)", out / other)
            shutil.rmtree(out / other)
    for stale in ("scoremix.json", "scheduler"):
        path = out / stale
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    main = net.main.to("cpu").eval()
    guide = net.guide.to("cpu").eval() if guide_ema is not None else None
    if early is not None:  # the main network (its buffers) with the EMA kept at step guide_steps
        guide = copy.deepcopy(main)
        with torch.no_grad():
            for p, kept in zip(guide.parameters(), early.params):
                p.copy_(kept)
    extra = {"real_data": source.provenance, "real_data_commit": source.info.commit, "licence": source.info.licence,
             "attribution": source.info.attribution or source.provenance, "loss": losses,
             "guide_architecture": config.guide_name() if guide is not None else None,
             **({"guide_source": config.guide_source} if guide is not None and config.guide_source != "smaller"
                else {}),
             "trained_with": {"package": "scoremix-ds", "version": __version__, "config": to_dict(config),
                              "fingerprint": fingerprint}}
    write_edm2_folder(out, main, list(source.class_names),
                      null_class=source.num_classes if config.label_dropout > 0 else None,
                      architecture=config.architecture, guide=guide, extra=extra)
    for weights in out.glob("edm2*/*.safetensors"):
        weights.chmod(0o644)
    write_generator_card(out, json.loads((out / "scoremix.json").read_text(encoding="utf-8")), "EDM2Denoiser")
    logger.info("saved EDM2 generator to %s", out)
