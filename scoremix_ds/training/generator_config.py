"""The typed configuration of ``scoremix-ds train-generator`` (a recipe in ``builders/`` is a saved one; flags
override it): its validation, the architecture it resolves to, and the fingerprint that names the weights it trains.

The fingerprint is ``sha256`` of the sorted JSON of every field except :data:`RUN_FIELDS` (which change how a run is
carried out, not its weights), with the architecture overrides replaced by the resolved ``architecture_params``,
truncated to 16 hex digits. The trainer (:mod:`.generator`) refuses to resume a checkpoint of another fingerprint.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..core.errors import ConfigError
from ..core.fingerprints import config_fingerprint
from ..core.recipes import json_ready, to_dict, without_added_fields
from ..core.validate import device_name, in_range, positive_count
from ..generators.architectures import DIT_FIELDS, UNET_FIELDS, edm2_guide_name, get_architecture
from .loop import check_report_to

ARCH_FIELDS = tuple(dict.fromkeys(UNET_FIELDS + DIT_FIELDS))
# Fields that change how a run is carried out but not the weights it produces: left out of the fingerprint, so a
# run may be resumed with other values (another --out is another run, accumulation only splits the same batch).
RUN_FIELDS = frozenset({"out", "resume", "stop_after", "checkpoint_every", "keep_checkpoints", "num_workers",
                        "gradient_accumulation_steps", "device", "report_to", "logging_dir"})
# Fields added after generators were trained with this code, with the value that reproduces the older behaviour: at
# that value they are left out of the fingerprint, so the embedded default and every cached generator keep theirs.
ADDED_FIELDS: dict[str, Any] = {"snr_gamma": None, "p_mean": -0.8, "p_std": 1.6, "ema_sigma_rel": 0.10,
                                "lr_decay_steps": None, "guide_steps": None, "guide_architecture": None,
                                "guide_source": "smaller"}
# The EDM2 fields (architecture edm2-*): at their default for every other architecture.
EDM2_FIELDS = ("p_mean", "p_std", "ema_sigma_rel", "lr_decay_steps", "guide_steps", "guide_architecture",
               "guide_source")
GUIDE_SOURCES = ("smaller", "early-ema")
BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")
MIXED_PRECISION = ("no", "fp16", "bf16")


@dataclass(frozen=True)
class GeneratorTrainConfig:
    out: str = "generator"
    real_data: str = "mnist-5k"  # anything open_source reads (mnist-5k, a folder, a .rec, a Hub id; NAME[0-6] subsets)
    real_data_revision: str | None = None  # Hub only: branch, tag or commit
    architecture: str = "unet-small"  # a key of generator_arch.ARCHITECTURES
    image_size: int = 32  # MNIST 28x28 is centre-padded to 32 so three UNet levels divide evenly
    channels: int = 1  # 1: grey ("L"), 3: RGB
    # Architecture hyper-parameters: None takes the architecture's preset; a value overrides it.
    block_out_channels: tuple[int, ...] | None = None  # UNet: widths per level (each but the last halves the size)
    layers_per_block: int | None = None  # UNet: ResNet blocks per level
    norm_num_groups: int | None = None  # UNet: GroupNorm groups (divides every width)
    attention_levels: tuple[int, ...] | None = None  # UNet: levels with self-attention (0 = full resolution)
    attention_head_dim: int | None = None  # UNet and DiT: channels per attention head
    patch_size: int | None = None  # DiT: pixels per token side
    num_layers: int | None = None  # DiT: transformer blocks
    num_attention_heads: int | None = None  # DiT: heads per block (width = heads x head dim)
    steps: int = 3000  # optimizer steps; the LR schedule spans all of them
    batch_size: int = 64  # the GLOBAL batch of one optimizer step, over all processes and micro-batches
    gradient_accumulation_steps: int = 1  # micro-batches per process and step: less memory, same samples and update
    learning_rate: float = 1e-3
    warmup_steps: int = 200
    weight_decay: float = 0.0  # AdamW decoupled weight decay
    max_grad_norm: float | None = None  # clip the gradient norm (None: no clipping, as the embedded default)
    label_dropout: float = 0.1  # trains the null class used by classifier-free guidance
    ema_decay: float = 0.999  # sampling uses the EMA weights, as diffusion trainers do
    flip: bool = False  # random horizontal flips: right for faces, wrong for digits
    num_train_timesteps: int = 1000
    beta_schedule: str = "squaredcos_cap_v2"
    prediction_type: str = "epsilon"
    # Min-SNR-gamma loss weighting (Hang et al., ICCV 2023; diffusers' `snr_gamma`): each sample's squared error is
    # weighted by min(SNR_t, gamma) / SNR_t (epsilon), / (SNR_t + 1) (v_prediction) or by min(SNR_t, gamma) (sample),
    # so the nearly clean timesteps no longer dominate the loss. None: plain mean squared error (the bare default, so
    # older recipes keep their weights); builders/default-generator.toml, the embedded default, uses 5.
    snr_gamma: float | None = None
    # EDM2 (architecture edm2-*; Karras et al. 2024): ln(sigma) ~ N(p_mean, p_std^2); Adam (0.9, 0.99) at
    # learning_rate / sqrt(max(step / lr_decay_steps, 1)) after warmup_steps (None: lr_decay_steps = steps, no decay
    # within the run); the saved networks are power-function EMAs of relative std ema_sigma_rel (ema_decay is not
    # used); the autoguidance guide (guide_architecture, None: the preset's guide) is trained in the same run on the
    # same batches for guide_steps steps (None: steps // 8; 0: no guide). guide_source "early-ema": no second
    # network; the guide is the main network's EMA at step guide_steps (the same architecture, less trained).
    p_mean: float = -0.8
    p_std: float = 1.6
    ema_sigma_rel: float = 0.10
    lr_decay_steps: int | None = None
    guide_steps: int | None = None
    guide_architecture: str | None = None
    guide_source: str = "smaller"
    mixed_precision: str = "no"  # "bf16" / "fp16": autocast on GPUs; weights, EMA and optimizer state stay fp32
    seed: int = 0
    checkpoint_every: int = 500  # optimizer steps between checkpoints in out/checkpoints (0: only when stopping)
    keep_checkpoints: int = 2  # the newest ones kept while training
    resume: bool = True  # continue from out/checkpoints of the SAME config; False: discard them and start over
    stop_after: int | None = None  # stop after this many of `steps` (with a checkpoint): time-limited jobs
    num_workers: int = 0  # DataLoader processes that decode images (no effect on the result)
    device: str | None = None  # "cpu", or None: accelerate's choice (a GPU when there is one), as `train`'s
    report_to: tuple[str, ...] = ()  # experiment trackers (accelerate's log_with): tensorboard, wandb, all; () none
    logging_dir: str | None = None  # where trackers write (TensorBoard: LOGGING_DIR/<out's name>/); None: out

    def __post_init__(self) -> None:
        positive_count("steps", self.steps)
        positive_count("batch_size", self.batch_size)
        in_range("label_dropout", self.label_dropout, lo=0.0, hi=1.0, hi_open=True, example="0.1")
        if self.prediction_type not in ("epsilon", "v_prediction", "sample"):
            raise ConfigError(f"unknown prediction_type '{self.prediction_type}'",
                              hint="set prediction_type to epsilon, v_prediction or sample", field="prediction_type")
        if self.beta_schedule not in BETA_SCHEDULES:
            raise ConfigError(f"unknown beta_schedule '{self.beta_schedule}'",
                              hint=f"set beta_schedule to one of {', '.join(BETA_SCHEDULES)}", field="beta_schedule")
        if self.mixed_precision not in MIXED_PRECISION:
            raise ConfigError(f"unknown mixed_precision '{self.mixed_precision}'", hint="set mixed_precision to no, fp16 or bf16",
                              field="mixed_precision")
        if self.image_size <= 0 or self.channels not in (1, 3):
            raise ConfigError(f"image_size must be > 0 and channels 1 or 3, got {self.image_size} and {self.channels}",
                              hint="check image_size / channels", fields=("image_size", "channels"))
        in_range("learning_rate", self.learning_rate, lo=0.0, lo_open=True, example="1e-3")
        in_range("weight_decay", self.weight_decay, lo=0.0, example="0")
        in_range("warmup_steps", self.warmup_steps, lo=0, example="200")
        in_range("num_train_timesteps", self.num_train_timesteps, lo=2, example="1000")
        in_range("ema_decay", self.ema_decay, lo=0.0, hi=1.0, hi_open=True, example="0.999")
        in_range("snr_gamma", self.snr_gamma, lo=0.0, lo_open=True, optional=True, example="5.0")
        in_range("max_grad_norm", self.max_grad_norm, lo=0.0, lo_open=True, optional=True, example="1.0")
        if self.gradient_accumulation_steps < 1 or self.batch_size % self.gradient_accumulation_steps:
            raise ConfigError(f"batch_size {self.batch_size} must be a multiple of gradient_accumulation_steps "
                              f"{self.gradient_accumulation_steps} (>= 1)", hint="set batch_size to a multiple of gradient_accumulation_steps",
                              fields=("batch_size", "gradient_accumulation_steps"))
        if self.checkpoint_every < 0 or self.keep_checkpoints < 1 or self.num_workers < 0:
            raise ConfigError("checkpoint_every and num_workers must be >= 0, keep_checkpoints >= 1",
                              hint="set checkpoint_every / num_workers to 0 or more, keep_checkpoints to 1 or more",
                              fields=("checkpoint_every", "num_workers", "keep_checkpoints"))
        positive_count("stop_after", self.stop_after, optional=True)
        device_name("device", self.device)
        check_report_to(self.report_to)
        architecture = get_architecture(self.architecture)
        architecture.check(self.architecture, self.architecture_params(), self.image_size)
        if architecture.family == "edm2":
            self._check_edm2()
        else:
            changed = [k for k in EDM2_FIELDS if getattr(self, k) != ADDED_FIELDS[k]]
            if changed:
                raise ConfigError(f"{', '.join(changed)} appl{'ies' if len(changed) == 1 else 'y'} to EDM2 "
                                  f"architectures only, not '{self.architecture}'",
                                  hint="drop them, or choose an edm2-* architecture", fields=tuple(changed))

    def _check_edm2(self) -> None:
        from .loop import power_ema_gamma

        in_range("p_std", self.p_std, lo=0.0, lo_open=True, example="1.6")
        power_ema_gamma(self.ema_sigma_rel)
        positive_count("lr_decay_steps", self.lr_decay_steps, optional=True)
        in_range("guide_steps", self.guide_steps, lo=0, hi=self.steps, optional=True, example=str(self.steps // 8))
        if self.snr_gamma is not None or self.weight_decay:
            raise ConfigError("EDM2 is trained with its own loss weighting and plain Adam: snr_gamma and "
                              "weight_decay do not apply", hint="leave snr_gamma unset and weight_decay at 0",
                              fields=("snr_gamma", "weight_decay"))
        if self.guide_source not in GUIDE_SOURCES:
            raise ConfigError(f"unknown guide_source '{self.guide_source}'",
                              hint=f"set guide_source to one of {', '.join(GUIDE_SOURCES)}", field="guide_source")
        if self.guide_source == "early-ema" and self.guide_architecture is not None:
            raise ConfigError("guide_architecture names a second network, and guide_source early-ema has none",
                              hint="drop guide_architecture, or set guide_source to smaller",
                              fields=("guide_architecture", "guide_source"))
        guide = self.guide_name()
        if guide is not None:
            if get_architecture(guide).family != "edm2":
                raise ConfigError(f"guide_architecture '{guide}' is not an EDM2 architecture",
                                  hint="name an edm2-* preset, e.g. edm2-cpu-guide", field="guide_architecture")
            get_architecture(guide).check(guide, get_architecture(guide).resolve(guide, {}), self.image_size)
        elif self.guide_steps:
            raise ConfigError(f"'{self.architecture}' names no guide preset", hint="set guide_architecture",
                              field="guide_architecture")

    def guide_name(self) -> str | None:
        """EDM2: the guide's architecture (``guide_architecture``, else the preset's guide; with ``guide_source``
        early-ema the main one), None for no guide."""
        if self.guide_steps == 0:
            return None
        if self.guide_source == "early-ema":
            return self.architecture
        return self.guide_architecture or edm2_guide_name(self.architecture)

    def trains_guide(self) -> bool:
        """EDM2: whether a second (smaller) network is trained alongside as the guide."""
        return self.guide_source == "smaller" and self.guide_step_count() > 0

    def guide_step_count(self) -> int:
        """EDM2: the steps the guide trains (``guide_steps``, else ``steps // 8``, at least 1); 0 without a guide."""
        if self.guide_name() is None:
            return 0
        return self.guide_steps if self.guide_steps is not None else max(1, self.steps // 8)

    def architecture_params(self) -> dict[str, Any]:
        """The architecture's preset with this config's overrides."""
        overrides = {k: getattr(self, k) for k in ARCH_FIELDS}
        return get_architecture(self.architecture).resolve(self.architecture, overrides)

    def fingerprint_payload(self) -> dict[str, Any]:
        """What determines the trained weights: every field but :data:`RUN_FIELDS`, with resolved architecture."""
        values = {k: v for k, v in to_dict(self).items() if k not in RUN_FIELDS and k not in ARCH_FIELDS}
        values["architecture_params"] = json_ready(self.architecture_params())
        return without_added_fields(values, ADDED_FIELDS)

    def fingerprint(self) -> str:
        """:func:`~scoremix_ds.core.fingerprints.config_fingerprint` of :meth:`fingerprint_payload` (16 digits)."""
        return config_fingerprint(self.fingerprint_payload())
