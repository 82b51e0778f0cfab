"""What every generator trainer (diffusers UNet/DiT in :mod:`.generator`, EDM2 in :mod:`.edm2`) draws and records
per step, shared so neither imports the other: the per-sample seeds (:func:`draw_seed`), each process's share of
the global batch (:func:`process_share`), the DDPM step batches (:class:`StepBatches`, which the EDM2 batches
extend), how a step's batch reaches the loop (:func:`step_micro_batches`) and the loss kept in ``scoremix.json``
and the checkpoints (:class:`LossRecord`)."""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import torch

from ..maths.image_tensors import to_model_tensor
from ..sources.source import Source
from .generator_config import GeneratorTrainConfig
from .loop import Callback, TrainingLoop

logger = logging.getLogger(__name__)

LOG_EVERY = 250
FIRST_LOSSES = 10  # global losses of the first steps kept in scoremix.json


def draw_seed(seed: int, step: int, index: int) -> int:
    """A 63-bit seed for the draws of training sample ``index`` of the global batch of optimizer step ``step``
    (not the per-image seed of a build, :func:`scoremix_ds.synthesis.planning.mix_plan.sample_seed`)."""
    digest = hashlib.blake2b(f"train-generator:{seed}:{step}:{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def process_share(batch_size: int, rank: int, world: int) -> range:
    """Which samples of the global batch process ``rank`` of ``world`` draws (contiguous, equal shares)."""
    per = batch_size // world
    return range(rank * per, (rank + 1) * per)


class StepBatches(torch.utils.data.Dataset):
    """``self[step]``: this process's samples of the global batch of ``step``, as a dict of CPU tensors
    ``x0 (n, C, H, W)`` in [-1, 1], ``labels (n,)`` (the null class where dropped), ``noise`` like ``x0`` and
    ``timesteps (n,)``.

    Sample ``i`` draws, from its own generator seeded by :func:`draw_seed`, in this order: the data row (uniform,
    with replacement), label dropout, flip, timestep, noise. All draws happen whatever the config, so changing
    ``flip`` or ``label_dropout`` does not move the other draws."""

    def __init__(self, source: Source, config: GeneratorTrainConfig, share: range) -> None:
        self.source, self.config, self.share = source, config, share
        self.null_class = source.num_classes

    def __len__(self) -> int:
        return self.config.steps

    def draw(self, step: int, index: int) -> tuple[torch.Tensor, int, torch.Tensor, int]:
        c = self.config
        g = torch.Generator().manual_seed(draw_seed(c.seed, step, index))
        row = int(torch.randint(len(self.source), (1,), generator=g))
        drop = bool(torch.rand(1, generator=g) < c.label_dropout)
        flip = bool(torch.rand(1, generator=g) < 0.5)
        t = int(torch.randint(c.num_train_timesteps, (1,), generator=g))
        noise = torch.randn((c.channels, c.image_size, c.image_size), generator=g)
        image, label = self.source[row]
        x0 = to_model_tensor(image[None], c.image_size, c.channels)[0]
        if c.flip and flip:
            x0 = x0.flip(-1)
        return x0, (self.null_class if drop else int(label)), noise, t

    def __getitem__(self, step: int) -> dict[str, torch.Tensor]:
        x0, labels, noise, t = zip(*(self.draw(step, i) for i in self.share))
        return {"x0": torch.stack(x0), "labels": torch.tensor(labels, dtype=torch.long), "noise": torch.stack(noise),
                "timesteps": torch.tensor(t, dtype=torch.long)}


class LossRecord(Callback):
    """The loss kept in ``scoremix.json`` and the checkpoints: the global loss of each of the first
    :data:`FIRST_LOSSES` steps, and a running mean (0.98 decay) reduced over processes every 25 steps, at the last
    step and at each checkpoint (every process takes part in the reductions at the same steps)."""

    def __init__(self, accelerator) -> None:
        self.accelerator = accelerator
        self.record: dict[str, Any] = {"first": [], "running": None}
        self.running: torch.Tensor | None = None

    def restore(self, record: dict[str, Any]) -> None:
        self.record = record
        if record["running"] is not None:
            self.running = torch.tensor(record["running"], device=self.accelerator.device)

    def on_step_end(self, loop: TrainingLoop) -> None:
        step_loss = torch.zeros((), device=self.accelerator.device)
        for loss in loop.micro_losses:
            step_loss += loss
        self.running = step_loss if self.running is None else 0.98 * self.running + 0.02 * step_loss
        done = loop.step
        if done - 1 < FIRST_LOSSES:
            self.record["first"].append(self.accelerator.reduce(step_loss, reduction="mean").item())
        if done % 25 == 0 or done == loop.stop or loop.checkpoint_due():
            self.record["running"] = self.accelerator.reduce(self.running, reduction="mean").item()
            loop.bar.set_postfix(loss=f"{self.record['running']:.4f}")
            if done % LOG_EVERY == 0:
                logger.info("step %d loss %.4f lr %.2e", done, self.record["running"], loop.learning_rate(done - 1))


def step_micro_batches(dataset: torch.utils.data.Dataset, start: int, stop: int, accumulation: int, micro: int,
                       device: torch.device, num_workers: int):
    """``micro_batches(step)`` for the loop: step ``step``'s batch from ``dataset`` (one item per step, read in step
    order by a DataLoader over ``range(start, stop)``), cut into ``accumulation`` micro-batches of ``micro`` rows and
    moved to ``device``. Both generator trainers read their steps this way."""
    loader = iter(torch.utils.data.DataLoader(dataset, batch_size=None, sampler=range(start, stop),
                                              num_workers=num_workers, pin_memory=torch.cuda.is_available()))

    def micro_batches(step: int):
        batch = next(loader)  # the batch of `step`: the sampler runs over the same steps
        for m in range(accumulation):
            yield {k: v[m * micro:(m + 1) * micro].to(device) for k, v in batch.items()}

    return micro_batches
