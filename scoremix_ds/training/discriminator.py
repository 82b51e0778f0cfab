"""Train a recognition backbone with an ArcFace head and save it in the layout ``load_discriminator`` reads.

Layout written to ``out``::

    config.json, model.safetensors   the backbone (``save_pretrained``; the ArcFace head is not kept)
    README.md                        the model card written by huggingface_hub's mixin
    scoremix.json                    class names, data provenance, held-out accuracy and this config

``holdout_per_class`` images of every class are kept out of training; the reported accuracy classifies each of
them by its nearest class centre (mean of L2-normalised training embeddings, DESIGN.md §2), which is how the
embedding space is used to choose pairs to mix.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .. import __version__
from ..data.readers import read_real_data
from ..data.splits import split_holdout  # noqa: F401  (re-exported: the trainer's split)
from ..data.transforms import to_model_tensor
from ..errors import ConfigError, DataError
from ..maths.centres import class_centres
from ..maths.margins import ArcFaceHead
from ..models.discriminator import BACKBONES, build_backbone, embed_images
from ..recipes import to_dict

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DiscriminatorTrainConfig:
    out: str = "discriminator"
    real_data: str = "mnist-5k"
    real_data_revision: str | None = None
    backbone: str = "small-cnn"  # a key of models.discriminator.BACKBONES
    embedding_dim: int = 64
    image_size: int = 32  # MNIST 28x28 is centre-padded to 32, as for the generator
    channels: int = 1
    steps: int = 800  # ~23 epochs of 4.5K digits at batch 128: ~99% held-out, ~2 min on one CPU core
    batch_size: int = 128
    learning_rate: float = 0.1  # SGD + momentum, as insightface's arcface_torch trains its backbones
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_steps: int = 100  # ArcFace from scratch diverges without a short warm-up
    margin: float = 0.5  # ArcFace additive angular margin m (radians)
    scale: float = 30.0  # ArcFace s; 64 is for 10^4+ classes, few classes train better with a smaller radius
    flip: bool = False  # horizontal flips: right for faces, wrong for digits (not mirror-symmetric)
    shift_pixels: int = 2  # random translation up to this many pixels (cheap augmentation for 4.5K images)
    holdout_per_class: int = 50  # held out of training for the nearest-centre accuracy report (0: no report)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ConfigError(
                f"unknown backbone '{self.backbone}'", hint=f"--backbone takes one of {', '.join(BACKBONES)}"
            )
        if self.steps <= 0 or self.batch_size <= 0:
            raise ConfigError("steps and batch size must be positive", hint="check --steps / --batch-size")
        if self.batch_size < 2:
            raise ConfigError("batch size must be at least 2 (BatchNorm needs a batch)", hint="check --batch-size")
        if self.embedding_dim <= 0:
            raise ConfigError("embedding_dim must be positive", hint="check --embedding-dim")
        if self.image_size <= 0 or self.image_size % 8:
            raise ConfigError(
                f"image_size must be a positive multiple of 8, got {self.image_size}", hint="check --image-size"
            )
        if self.channels not in (1, 3):
            raise ConfigError(f"channels must be 1 or 3, got {self.channels}", hint="check --channels")
        if self.learning_rate <= 0 or self.weight_decay < 0 or not 0 <= self.momentum < 1:
            raise ConfigError("learning_rate must be > 0, weight_decay >= 0, momentum in [0, 1)", hint="check the recipe")
        if not 0 <= self.warmup_steps < self.steps:
            raise ConfigError("warmup_steps must be in [0, steps)", hint="check --warmup-steps")
        if not 0.0 <= self.margin < math.pi / 2:
            raise ConfigError(f"margin must be in [0, pi/2) radians, got {self.margin}", hint="check --margin")
        if self.scale <= 0:
            raise ConfigError("scale must be positive", hint="check --scale")
        if self.shift_pixels < 0 or self.holdout_per_class < 0:
            raise ConfigError("shift_pixels and holdout_per_class must be >= 0", hint="check the recipe")


def nearest_centre_accuracy(
    train_emb: np.ndarray, train_labels: np.ndarray, test_emb: np.ndarray, test_labels: np.ndarray, num_classes: int
) -> float:
    """Fraction of ``test_emb`` whose closest class centre (cosine) is their own class."""
    centres = class_centres(train_emb, train_labels, num_classes)
    centres = centres / np.maximum(np.linalg.norm(centres, axis=1, keepdims=True), 1e-12)
    pred = np.argmax(test_emb @ centres.T, axis=1)
    return float(np.mean(pred == test_labels))


def _augment(x: torch.Tensor, config: DiscriminatorTrainConfig, gen: torch.Generator) -> torch.Tensor:
    """Random per-image translation (background-padded) and, if asked, horizontal flips."""
    if config.shift_pixels:
        p = config.shift_pixels
        padded = F.pad(x, (p, p, p, p), value=-1.0)
        offsets = torch.randint(0, 2 * p + 1, (len(x), 2), generator=gen).tolist()
        size = x.shape[-1]
        x = torch.stack([padded[i, :, dy : dy + size, dx : dx + size] for i, (dy, dx) in enumerate(offsets)])
    if config.flip:
        flip = torch.rand(len(x), generator=gen) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    return x


def train_discriminator(config: DiscriminatorTrainConfig, progress: bool = True) -> Path:
    """Train the backbone described by ``config`` and return the output folder.

    Every process draws the same global batch from a seeded generator and takes its own slice, so the images seen
    per step do not depend on the number of processes.
    """
    from accelerate import Accelerator

    out = Path(config.out)
    if out.exists() and not out.is_dir():
        raise DataError(f"output '{out}' exists and is not a folder", hint="check --out")
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    torch.manual_seed(config.seed)
    data = read_real_data(config.real_data, config.real_data_revision)
    train_idx, held_idx = split_holdout(data.labels, config.holdout_per_class, config.seed)
    x_all = to_model_tensor(data.images[train_idx], config.image_size, config.channels)
    y_all = torch.from_numpy(data.labels[train_idx])

    model = build_backbone(
        config.backbone, in_channels=config.channels, image_size=config.image_size, embedding_dim=config.embedding_dim
    )
    head = ArcFaceHead(data.num_classes, config.embedding_dim, scale=config.scale, margin=config.margin)
    optimizer = torch.optim.SGD(
        [*model.parameters(), *head.parameters()],
        lr=config.learning_rate,
        momentum=config.momentum,
        weight_decay=config.weight_decay,
    )
    lr_sched = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _warmup_cosine(s, config.warmup_steps, config.steps))
    model, head, optimizer, lr_sched = accelerator.prepare(model, head, optimizer, lr_sched)
    gen = torch.Generator().manual_seed(config.seed)
    rank, world = accelerator.process_index, accelerator.num_processes

    model.train()
    losses: list[float] = []
    bar = tqdm(range(config.steps), disable=not (progress and accelerator.is_main_process), desc="train-discriminator")
    running = 0.0
    for step in bar:
        idx = torch.randint(0, len(x_all), (config.batch_size,), generator=gen)
        x = _augment(x_all[idx], config, gen)[rank::world].to(accelerator.device)
        y = y_all[idx][rank::world].to(accelerator.device)
        loss = F.cross_entropy(head(model(x), y), y)
        accelerator.backward(loss)
        optimizer.step()
        lr_sched.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        running = 0.98 * running + 0.02 * losses[-1] if step else losses[-1]
        bar.set_postfix(loss=f"{running:.3f}")
        if step % 250 == 0:
            logger.info("step %d loss %.4f lr %.2e", step, running, lr_sched.get_last_lr()[0])

    backbone = accelerator.unwrap_model(model)
    if accelerator.is_main_process:
        accuracy = None
        if len(held_idx):
            train_emb = embed_images(backbone, data.images[train_idx], device=accelerator.device)
            held_emb = embed_images(backbone, data.images[held_idx], device=accelerator.device)
            accuracy = nearest_centre_accuracy(
                train_emb, data.labels[train_idx], held_emb, data.labels[held_idx], data.num_classes
            )
            logger.info("held-out nearest-centre accuracy %.4f on %d images", accuracy, len(held_idx))
        backbone.to("cpu")
        out.mkdir(parents=True, exist_ok=True)
        backbone.save_pretrained(out)
        window = max(1, min(10, len(losses) // 3))
        meta = {
            "backbone": config.backbone,
            "embedding_dim": config.embedding_dim,
            "image_size": config.image_size,
            "channels": config.channels,
            "num_classes": data.num_classes,
            "class_names": list(data.class_names),
            "real_data": data.source,
            "licence": data.licence,
            "attribution": data.attribution,
            "heldout": {
                "per_class": config.holdout_per_class,
                "images": int(len(held_idx)),
                "nearest_centre_accuracy": accuracy,
            },
            "loss": {"first": float(np.mean(losses[:window])), "last": float(np.mean(losses[-window:]))},
            "trained_with": {"package": "scoremix-ds", "version": __version__, "config": to_dict(config)},
        }
        (out / "scoremix.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        logger.info("saved discriminator to %s", out)
    accelerator.wait_for_everyone()
    return out


def _warmup_cosine(step: int, warmup: int, total: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * progress))
