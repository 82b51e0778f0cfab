"""The typed configuration of ``scoremix-ds train`` (a recipe in ``builders/`` is a saved one; flags override it)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..core.errors import ConfigError
from ..core.fingerprints import config_fingerprint
from ..maths.margins import HEADS
from ..core.recipes import to_dict, without_added_fields
from ..core.validate import device_name, in_range, positive_count
from .loop import check_report_to

OPTIMIZERS = ("sgd", "adamw")
LR_SCHEDULES = ("cosine", "poly", "constant")
PRECISIONS = ("auto", "no", "bf16", "fp16")

# Fields that change where, how fast or how often things are reported, never the trained weights.
RUN_FIELDS = frozenset({"out", "device", "num_workers", "checkpoint_every", "keep_checkpoints", "eval_every", "val",
                        "log_every", "resume", "report_to", "logging_dir"})
# Fields added after configs were fingerprinted, with the value older configs behaved as (none yet): a config that
# leaves them there keeps its fingerprint (:func:`~scoremix_ds.core.recipes.without_added_fields`).
ADDED_FIELDS: dict = {"allow_partial": False}  # added after fingerprints existed: old runs keep theirs


def resolve_mixed_precision(value: str, device: str | None) -> str:
    """``auto`` -> ``bf16`` when the run lands on a CUDA device that supports bfloat16 (``device`` cuda / cuda:N, or
    auto / None with CUDA present: core.devices.names_cuda), else ``no`` (fp32: CPU, MPS); other values are returned
    as given."""
    if value != "auto":
        return value
    import torch

    from ..core.devices import names_cuda

    cuda = torch.cuda.is_available() and names_cuda(device)
    return "bf16" if cuda and torch.cuda.is_bf16_supported() else "no"


@dataclass(frozen=True)
class RecognitionTrainConfig:
    out: str = "recognition-model"
    # Sources: "mnist-5k-train", a datasets folder, an image-folder tree (one folder per identity), an insightface
    # train.rec/.idx folder, a scoremix-ds build folder (its `mix` config; "DIR::repro" for its `repro` config), or a
    # Hub id ("org/name" or "org/name@revision"); NAME[0-6] keeps some classes. Real and synthetic labels never mix.
    real: tuple[str, ...] = ("mnist-5k-train",)
    synthetic: tuple[str, ...] = ()
    synthetic_ratio: float = 1.0  # synthetic draws per real draw in every batch (exact over batches)
    label_column: str | None = None
    image_column: str | None = None
    strict_images: bool = False  # refuse rows of another mode or size instead of converting them
    skip_corrupt: bool = False  # drop (and count) rows that do not decode instead of failing on them
    allow_partial: bool = False  # read a build folder that is unfinished as it stands (a damaged one never)
    init: str | None = None  # fine-tune: "default", a saved model folder or a Hub id; its architecture wins
    init_revision: str | None = None
    backbone: str = "iresnet50"  # a key of scoremix_ds.discriminators.BACKBONES
    embedding_dim: int = 512
    image_size: int = 112
    channels: int = 3
    flip: bool = True  # random horizontal flips (faces: yes; digits: no)
    shift_pixels: int = 0  # random translation of up to N pixels per axis, black-padded (the demo digits use 2)
    head: str = "arcface"  # arcface, cosface, adaface
    scale: float = 64.0
    margin: float | None = None  # None: the head's default (ArcFace 0.5, CosFace 0.4, AdaFace 0.4)
    sample_rate: float = 1.0  # Partial FC: fraction of class centres scored per step (1: all)
    steps: int = 2000  # optimizer steps
    batch_size: int = 128  # GLOBAL images per optimizer step: split over all processes and the grad_accum micro-batches
    grad_accum: int = 1  # micro-batches per optimizer step (each process takes batch_size / (processes * grad_accum))
    optimizer: str = "sgd"
    learning_rate: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_steps: int = 0
    lr_schedule: str = "cosine"
    mixed_precision: str = "auto"  # auto: bf16 on CUDA (when it supports it), no (fp32) elsewhere; or no / bf16 / fp16
    seed: int = 0
    checkpoint_every: int = 500  # 0: no intermediate checkpoints
    keep_checkpoints: int = 2
    eval_every: int = 0  # run the `val` benchmarks every N steps (and at the end when any are given)
    val: tuple[str, ...] = ()  # benchmark specs, as `scoremix-ds eval --benchmark` (e.g. "heldout:mnist-5k-heldout:1000")
    log_every: int = 50
    num_workers: int | None = None  # DataLoader workers; None: 0 on CPU, min(8, cores per process) on CUDA
    device: str | None = None  # None: accelerate's choice (GPU when present)
    resume: bool = True  # continue from out/checkpoints of the SAME config; False: discard them and start over
    report_to: tuple[str, ...] = ()  # experiment trackers (accelerate's log_with): tensorboard, wandb, all; () none
    logging_dir: str | None = None  # where trackers write (TensorBoard: LOGGING_DIR/<out's name>/); None: out

    def __post_init__(self) -> None:
        if not self.real and not self.synthetic:
            raise ConfigError("no training data given", hint="set real and/or synthetic", fields=("real", "synthetic"))
        if self.head not in HEADS:
            raise ConfigError(f"unknown head '{self.head}'", hint=f"set head to one of {', '.join(HEADS)}", field="head")
        for name, choices in (("optimizer", OPTIMIZERS), ("lr_schedule", LR_SCHEDULES), ("mixed_precision", PRECISIONS)):
            if getattr(self, name) not in choices:
                raise ConfigError(f"unknown {name} '{getattr(self, name)}'", hint=f"set {name} to one of {', '.join(choices)}",
                                  field=name)
        for name in ("steps", "batch_size", "grad_accum", "embedding_dim", "image_size", "keep_checkpoints", "log_every"):
            positive_count(name, getattr(self, name))
        if self.channels not in (1, 3):
            raise ConfigError(f"channels must be 1 or 3, got {self.channels}", hint="set channels to 3 (RGB) or 1", field="channels")
        device_name("device", self.device)
        check_report_to(self.report_to)
        # with synthetic data a ratio of 0 would draw none of it: > 0 then (without, the ratio is unused)
        in_range("synthetic_ratio", self.synthetic_ratio, lo=0.0, lo_open=bool(self.synthetic), example="1")
        in_range("scale", self.scale, lo=0.0, lo_open=True, example="64")
        in_range("margin", self.margin, lo=0.0, optional=True, example="0.5")
        in_range("learning_rate", self.learning_rate, lo=0.0, lo_open=True, example="0.1")
        in_range("momentum", self.momentum, lo=0.0, hi=1.0, hi_open=True, example="0.9")
        in_range("weight_decay", self.weight_decay, lo=0.0, example="5e-4")
        if not 0.0 < self.sample_rate <= 1.0:
            raise ConfigError(f"sample_rate must be in (0, 1], got {self.sample_rate}", hint="set sample_rate to e.g. 0.3",
                              field="sample_rate")
        if not 0 <= self.warmup_steps < self.steps:
            raise ConfigError(f"warmup_steps must be in [0, {self.steps})", hint="lower warmup_steps below steps",
                              fields=("warmup_steps", "steps"))
        if not 0 <= self.shift_pixels < self.image_size:
            raise ConfigError(f"shift_pixels must be in [0, {self.image_size}), got {self.shift_pixels}",
                              hint="lower shift_pixels below image_size", fields=("shift_pixels", "image_size"))
        if self.checkpoint_every < 0 or self.eval_every < 0 or (self.num_workers is not None and self.num_workers < 0):
            raise ConfigError("checkpoint_every, eval_every and num_workers must be >= 0", hint="set them to 0 or more",
                              fields=("checkpoint_every", "eval_every", "num_workers"))

    def resolved(self) -> "RecognitionTrainConfig":
        """This config with ``mixed_precision`` ``auto`` replaced by what it means on the device the run gets
        (:func:`resolve_mixed_precision`); the trainer records and fingerprints the resolved config."""
        if self.mixed_precision != "auto":
            return self
        return replace(self, mixed_precision=resolve_mixed_precision(self.mixed_precision, self.device))

    def fingerprint_payload(self) -> dict:
        """What determines the trained weights: every field but :data:`RUN_FIELDS` (and :data:`ADDED_FIELDS` at
        their old value), with ``mixed_precision`` resolved (``auto`` on a CPU hashes as ``no``, as before it
        existed, so CPU fingerprints are those of the runs made before ``auto`` was the default)."""
        values = {k: v for k, v in to_dict(self.resolved()).items() if k not in RUN_FIELDS}
        return without_added_fields(values, ADDED_FIELDS)

    def fingerprint(self) -> str:
        """Hash of the fields that determine the weights: a checkpoint resumes only under the same fingerprint."""
        return config_fingerprint(self.fingerprint_payload())
