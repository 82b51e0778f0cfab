"""The one training loop both trainers run on (``train-generator`` and ``train``), in the manner of minGPT's trainer:
generic, with callbacks instead of wiring. A trainer brings its model, optimizer, loss and micro-batches; this
module owns everything else that used to be written twice:

- the accelerate setup (:func:`accelerator_for`): one ``Accelerator`` per process, ``PartialState(cpu=True)`` on a
  CPU, mixed precision ``"no"`` in accelerate's process-wide state, so that a second trainer in the same process
  (``reproduce``, tests) never meets a precision an earlier one fixed;
- mixed precision (:class:`Precision`): bf16/fp16 autocast around the model's forward and, for fp16 on a GPU, a
  gradient scaler: what accelerate's ``prepare``/``backward``/``clip_grad_norm_`` do, without its global state;
- the global-batch rule (:func:`micro_batch_size`): ``batch_size`` is the global batch of one optimizer step, split
  over the processes and the accumulation steps, checked once, in one wording;
- the learning-rate schedule (:func:`lr_factors`): transformers' schedules, as a pure function of the step, so a
  stop, a crash or a resume never shortens or shifts it; EDM2's inverse-square-root decay (:func:`inverse_sqrt_factors`);
- gradient accumulation (``no_sync`` on all but the last micro-batch of a step), gradient clipping, the optimizer
  step, a progress bar, and checkpoints every N steps (written by :mod:`.checkpoints`);
- callbacks at the end of each optimizer step, where every process is outside the DDP step: the JSONL log
  (:class:`JsonlLog`), EMA (:class:`EMA`, with diffusers' ``EMAModel`` or EDM2's power-function :class:`PowerEMA`),
  evaluation (:class:`Evaluate`: process 0 evaluates while the others wait
  at a barrier, not in the next all-reduce), experiment trackers (:class:`Track`: accelerate's TensorBoard, W&B,
  ...), previews or anything else with the same two methods.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from ..core.errors import ConfigError, DataError

logger = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------- setup


def accelerator_for(cpu: bool, report_to: Sequence[str] = (), logging_dir: str | Path | None = None,
                    kwargs_handlers: Sequence[Any] = ()):
    """accelerate's ``Accelerator`` for a trainer: on ``cpu`` (``PartialState(cpu=True)``, gloo) or accelerate's
    device choice. Mixed precision is :class:`Precision`'s, so every trainer of a process asks accelerate for the
    same state and none has to reset it. ``report_to`` (accelerate's ``log_with`` names, :data:`TRACKERS`) and
    ``logging_dir`` (its ``project_dir``) set up experiment trackers, which :class:`Track` starts."""
    from accelerate import Accelerator

    tracking = {"log_with": list(report_to), "project_dir": str(logging_dir)} if report_to else {}
    if kwargs_handlers:  # e.g. DDP's find_unused_parameters for a network trained only part of the run
        tracking["kwargs_handlers"] = list(kwargs_handlers)
    try:
        return Accelerator(cpu=cpu, mixed_precision="no", **tracking)
    except ValueError as exc:  # e.g. a CPU run after a GPU run in one process: accelerate's device is process-wide
        raise ConfigError(f"accelerate refuses this setup: {exc}", hint="run this training in its own process",
                          field="device") from exc


def micro_batch_size(batch_size: int, processes: int, accumulation: int, accumulation_field: str) -> int:
    """Images per process and micro-batch: ``batch_size`` is the GLOBAL batch of one optimizer step, split over
    ``processes`` and ``accumulation`` micro-batches; a batch that does not split is refused in one line."""
    if batch_size % (processes * accumulation):
        raise ConfigError(f"batch_size {batch_size} does not split over {processes} processes x {accumulation} "
                          "accumulation steps",
                          hint=f"set batch_size to a multiple of {processes * accumulation} (processes x "
                          f"{accumulation_field}), or launch fewer processes",
                          fields=("batch_size", accumulation_field))
    return batch_size // (processes * accumulation)


class Precision:
    """Mixed precision as accelerate's ``Accelerator(mixed_precision=...)`` applies it (same autocast, same scaler),
    without touching accelerate's process-wide state: bf16 autocasts on CPUs and on GPUs that support it; fp16
    autocasts with a gradient scaler on GPUs and, as in accelerate, does nothing on a CPU. Weights, gradients and
    optimizer state stay float32."""

    def __init__(self, mixed_precision: str, device: torch.device) -> None:
        self.device = device
        self.dtype = None
        self.scaler = None
        if mixed_precision == "bf16":
            if device.type in ("cpu", "xpu", "hpu") or torch.cuda.is_bf16_supported():
                self.dtype = torch.bfloat16
            else:
                raise ConfigError("bf16 mixed precision requires a supported device", hint="set mixed_precision to no",
                                  field="mixed_precision")
        elif mixed_precision == "fp16" and device.type != "cpu":
            self.dtype = torch.float16
            self.scaler = torch.amp.GradScaler(device.type)

    def autocast(self):
        return nullcontext() if self.dtype is None else torch.autocast(device_type=self.device.type, dtype=self.dtype)

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """Autocast the model's forward and return float32 outputs (accelerate's ``prepare`` does the same)."""
        if self.dtype is not None:
            from accelerate.utils import convert_outputs_to_fp32

            model.forward = convert_outputs_to_fp32(self.autocast()(model.forward))
        return model

    def backward(self, loss: torch.Tensor) -> None:
        (loss if self.scaler is None else self.scaler.scale(loss)).backward()

    def unscale(self, optimizer: torch.optim.Optimizer) -> None:
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.scaler is None:
            optimizer.step()
        else:
            self.scaler.step(optimizer)
            self.scaler.update()

    def state_dict(self) -> dict[str, Any] | None:
        return None if self.scaler is None else self.scaler.state_dict()

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)


# transformers' schedule names for ours; each is the decay of our schedule, evaluated by transformers
_SCHEDULES = {"cosine": "cosine_with_min_lr", "poly": "polynomial", "constant": "constant_with_warmup"}


def lr_factors(schedule: str, warmup: int, total: int, floor: float = 0.0) -> Callable[[int], float]:
    """The multiplier of the peak learning rate at 0-based optimizer step ``step``: a linear warm-up over ``warmup``
    steps, then ``cosine`` (to ``floor`` x the peak at ``total``), ``poly`` (``(1 - p)^2`` to 0) or ``constant``.

    The values are transformers' (``get_scheduler``: ``cosine_with_min_lr``, ``polynomial`` with power 2 and end 0,
    ``constant_with_warmup``), evaluated on a probe optimizer of learning rate 1, so no ``lr * x / lr`` round trip
    enters them. One difference is kept on purpose: transformers' warm-up starts at 0 (``step / warmup``, a first
    step that learns nothing), this project's at ``1 / warmup`` (``(step + 1) / warmup``, the rule every trained
    model so far was trained with), so warm-up steps are read one step later. The result is bit-identical to the
    former hand-written schedule (``tests/test_training_loop.py`` compares every step)."""
    from transformers import get_scheduler

    kwargs: dict[str, Any] = {
        "cosine": {"min_lr_rate": floor}, "poly": {"power": 2.0, "lr_end": 0.0}, "constant": {}}[schedule]
    probe = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    library = get_scheduler(_SCHEDULES[schedule], probe, num_warmup_steps=warmup,
                            num_training_steps=max(total, warmup + 1) if schedule == "poly" else total,
                            scheduler_specific_kwargs=kwargs).lr_lambdas[0]

    def factor(step: int) -> float:
        return library(step + 1) if step < warmup else library(step)

    return factor


def inverse_sqrt_factors(t_ref: int, warmup: int = 0) -> Callable[[int], float]:
    """EDM2's learning-rate multiplier at 0-based optimizer step ``step`` (Karras et al. 2024, Sec. 3):
    ``1 / sqrt(max(step / t_ref, 1))``, t counted in optimizer steps, times the linear warm-up
    ``min((step + 1) / warmup, 1)`` of :func:`lr_factors` when ``warmup`` > 0. A pure function of the step."""
    if t_ref <= 0:
        raise ConfigError(f"the learning-rate decay reference {t_ref} must be a positive step count",
                          hint="set lr_decay_steps to 1 or more", field="lr_decay_steps")

    def factor(step: int) -> float:
        decay = 1.0 / max(step / t_ref, 1.0) ** 0.5
        return decay * min((step + 1) / warmup, 1.0) if warmup > 0 else decay

    return factor


# ------------------------------------------------------------------------------------------- callbacks


class Callback:
    """Called by every process at the same points. ``on_step_end`` runs after optimizer step ``loop.step`` (1-based:
    steps done), before that step's checkpoint; no process is inside a DDP step there, so a callback may use
    collectives (``accelerator.reduce``, barriers) as long as every process makes the same calls."""

    def on_train_start(self, loop: TrainingLoop) -> None:
        pass

    def on_micro_batch_end(self, loop: TrainingLoop, batch: Any) -> None:
        """After the backward pass of one micro-batch (``loop.micro_losses[-1]`` is its scaled loss)."""

    def on_step_end(self, loop: TrainingLoop) -> None:
        pass

    def on_train_end(self, loop: TrainingLoop) -> None:
        pass


class EMA(Callback):
    """An exponential moving average of the weights (diffusers' ``EMAModel`` or :class:`PowerEMA`), updated after
    every optimizer step: of all the model's parameters, or of ``select(model)``'s (one network of several trained
    together), and only up to step ``until`` when given (a network trained for the first ``until`` steps only)."""

    def __init__(self, ema, select: Callable[[torch.nn.Module], Iterable[torch.nn.Parameter]] | None = None,
                 until: int | None = None) -> None:
        self.ema, self.select, self.until = ema, select, until

    def on_step_end(self, loop: TrainingLoop) -> None:
        if self.until is not None and loop.step > self.until:
            return
        model = loop.unwrapped
        self.ema.step(model.parameters() if self.select is None else self.select(model))


def power_ema_gamma(sigma_rel: float) -> float:
    """EDM2's exponent gamma of the power-function EMA whose relative standard deviation is ``sigma_rel``: the root
    of sigma_rel^2 = (gamma + 1) / ((gamma + 2)^2 (gamma + 3)) (Karras et al. 2024, Sec. 3.1), by bisection in
    float64 (the right side falls monotonically from 1/12 at gamma = 0); sigma_rel 0.10 gives about 6.94."""
    if not 0.0 < sigma_rel < 12 ** -0.5:
        raise ConfigError(f"EMA relative std {sigma_rel} is outside (0, 0.2887)", hint="set ema_sigma_rel, e.g. 0.10",
                          field="ema_sigma_rel")
    target = sigma_rel ** 2

    def excess(gamma: float) -> float:
        return (gamma + 1) / ((gamma + 2) ** 2 * (gamma + 3)) - target

    lo, hi = 0.0, 1.0
    while excess(hi) > 0:
        hi *= 2
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if excess(mid) > 0 else (lo, mid)
    return (lo + hi) / 2


@functools.cache
def _power_ema_class():
    from diffusers.training_utils import EMAModel

    class PowerEMA(EMAModel):
        """EDM2's power-function EMA (Karras et al. 2024, Sec. 3.1): after optimizer step t (1-based),
        shadow <- beta_t shadow + (1 - beta_t) weights with beta_t = (1 - 1/t)^(gamma + 1) (t in optimizer steps;
        beta_1 = 0 copies the weights), gamma from ``sigma_rel`` (:func:`power_ema_gamma`). diffusers' ``EMAModel``
        with its decay replaced, so its ``state_dict``/``load_state_dict``/``copy_to`` and the :class:`EMA`
        callback serve it unchanged."""

        def __init__(self, parameters, sigma_rel: float = 0.10) -> None:
            super().__init__(parameters, decay=1.0, min_decay=0.0)
            self.sigma_rel = float(sigma_rel)
            self.gamma = power_ema_gamma(self.sigma_rel)

        def get_decay(self, optimization_step: int) -> float:
            t = int(optimization_step)
            return 0.0 if t <= 1 else (1.0 - 1.0 / t) ** (self.gamma + 1.0)

        def state_dict(self) -> dict:
            return {**super().state_dict(), "sigma_rel": self.sigma_rel}

        def load_state_dict(self, state_dict: dict) -> None:
            state = dict(state_dict)
            if float(state.pop("sigma_rel", self.sigma_rel)) != self.sigma_rel:
                raise ConfigError("the checkpoint's EMA has another relative std", field="ema_sigma_rel")
            super().load_state_dict(state)

    return PowerEMA


def PowerEMA(parameters, sigma_rel: float = 0.10):  # noqa: N802 - a class, built on first use (diffusers is heavy)
    """A :class:`PowerEMA <_power_ema_class>` over ``parameters`` (see there)."""
    return _power_ema_class()(parameters, sigma_rel)


class Evaluate(Callback):
    """``evaluate(model) -> result`` on process 0 while every other process waits at a barrier (never inside the
    next all-reduce), handed to ``on_result(step, result)``: before the first step of a run that starts at 0
    (``at_start``), every ``every`` steps but the last, and after the last step (``at_end``)."""

    def __init__(self, every: int, evaluate: Callable[[torch.nn.Module], Any], on_result: Callable[[int, Any], None],
                 at_start: bool = True, at_end: bool = True) -> None:
        self.every, self.evaluate, self.on_result = every, evaluate, on_result
        self.at_start, self.at_end = at_start, at_end

    def _run(self, loop: TrainingLoop) -> None:
        if loop.accelerator.is_main_process:
            self.on_result(loop.step, self.evaluate(loop.unwrapped))
        loop.accelerator.wait_for_everyone()

    def on_train_start(self, loop: TrainingLoop) -> None:
        if self.at_start and loop.start == 0:
            self._run(loop)

    def on_step_end(self, loop: TrainingLoop) -> None:
        if self.every and loop.step % self.every == 0 and loop.step != loop.total:
            self._run(loop)

    def on_train_end(self, loop: TrainingLoop) -> None:
        if self.at_end and loop.step == loop.total:
            self._run(loop)


def _record_step(path: Path, line: str) -> int:
    """The step of one line of the JSONL log; a line that is not a record is a DataError naming the log."""
    try:
        record = json.loads(line)
    except ValueError:
        record = None
    if not isinstance(record, dict):
        raise DataError(f"{path} has a line that is not a JSON record: {line[:60]!r}",
                        hint="restore that file, or delete it (a resumed run starts a new log)")
    return record.get("step", 0)


class JsonlLog(Callback):
    """``train_log.jsonl`` (process 0): every ``every`` steps and at the last, the mean loss of the window, the
    learning rate of the next step, images per second and the global batch. A resumed run first truncates the log to
    the records up to its starting step, so no step is logged twice."""

    NAME = "train_log.jsonl"

    def __init__(self, out: Path, every: int, images: Callable[[Any], int]) -> None:
        self.path, self.every, self.images = Path(out) / self.NAME, every, images
        self.file = None
        self.listeners: list[Callable[[dict[str, Any]], None]] = []  # also given each record (:class:`Track`)
        self._reset()

    def on_train_start(self, loop: TrainingLoop) -> None:
        if not loop.accelerator.is_main_process:
            return
        kept = []
        if loop.start and self.path.is_file():
            kept = [line for line in self.path.read_text().splitlines()
                    if line and _record_step(self.path, line) <= loop.start]
        self.path.write_text("".join(line + "\n" for line in kept))
        self.file = self.path.open("a", encoding="utf-8")
        self._reset()

    def _reset(self) -> None:
        self.loss, self.seen, self.steps, self.since = 0.0, 0, 0, time.perf_counter()

    def on_micro_batch_end(self, loop: TrainingLoop, batch: Any) -> None:
        if self.file is not None:
            self.seen += self.images(batch) * loop.accelerator.num_processes

    def write(self, record: dict[str, Any]) -> None:
        if self.file is not None:
            self.file.write(json.dumps(record) + "\n")
            self.file.flush()
            for listener in self.listeners:
                listener(record)

    def on_step_end(self, loop: TrainingLoop) -> None:
        if self.file is None:
            return
        for loss in loop.micro_losses:  # no host sync per step: read when a record is written
            self.loss = self.loss + loss
        self.steps += 1
        if loop.step % self.every == 0 or loop.step == loop.total:
            record = {"step": loop.step, "loss": float(self.loss) / self.steps, "lr": loop.learning_rate(loop.step),
                      "images_per_s": self.seen / (time.perf_counter() - self.since),
                      "global_batch": self.seen // self.steps}
            self.write(record)
            logger.info("step %d loss %.4f lr %.3g %.0f img/s", loop.step, record["loss"], record["lr"],
                        record["images_per_s"])
            loop.bar.set_postfix(loss=f"{record['loss']:.3f}")
            self._reset()

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


# ------------------------------------------------------------------------------------------- trackers

# accelerate's tracker names (its ``log_with``; "all": every tracker whose package is installed)
TRACKERS = ("all", "tensorboard", "wandb", "trackio", "comet_ml", "aim", "mlflow", "clearml", "dvclive", "swanlab")
_PACKAGES = {"comet_ml": "comet-ml"}  # pip names that differ from the tracker's


def check_report_to(report_to: Sequence[str], field: str = "report_to") -> None:
    """``report_to`` names each tracker of :data:`TRACKERS` at most once (empty: no tracking)."""
    for name in report_to:
        if name not in TRACKERS:
            raise ConfigError(f"{field} names an unknown tracker '{name}'",
                              hint=f"`{field}` takes {', '.join(TRACKERS)}, or nothing (none)", field=field)
        if list(report_to).count(name) > 1:
            raise ConfigError(f"{field} names {name} twice", hint=f"name each tracker once in `{field}`", field=field)


def require_trackers(report_to: Sequence[str], field: str = "report_to") -> None:
    """Refuse, in one line and before anything is written, a tracker whose package is not installed (accelerate
    itself would drop it silently); ``all`` with none installed only warns."""
    if not report_to:
        return
    from accelerate.tracking import get_available_trackers

    available = {str(t) for t in get_available_trackers()}
    for name in report_to:
        if name != "all" and name not in available:
            package = _PACKAGES.get(name, name)
            extra = name in ("tensorboard", "wandb")  # the [trackers] extra's packages
            install = "pip install 'scoremix-ds[trackers]'" if extra else f"pip install {package}"
            raise ConfigError(f"{field} names {name}, but the package {package} is not installed",
                              hint=f"{install}, or remove {name} from `{field}`", field=field)
    if "all" in report_to and not available:
        logger.warning("%s is all, but no tracker package (tensorboard, wandb, ...) is installed: nothing is tracked",
                       field)


def _plain(value: Any) -> bool | int | float | str:
    """A config value as a tracker's hyper-parameter: scalars as they are, anything else (None, lists) as JSON."""
    return value if isinstance(value, (bool, int, float, str)) else json.dumps(value)


def _scalars(record: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """A log record's numbers, nested keys joined by ``/`` (``eval/heldout/accuracy``); the step left out."""
    values: dict[str, float] = {}
    for key, value in record.items():
        if isinstance(value, dict):
            values.update(_scalars(value, f"{prefix}{key}/"))
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and (prefix or key != "step"):
            values[f"{prefix}{key}"] = value
    return values


class Track(Callback):
    """accelerate's experiment trackers (``report_to``: TensorBoard, W&B, ...), on the main process only.

    The trackers start (``accelerator.init_trackers(run_name, config)``: the run's config as plain values) before
    the first record; each record then goes to ``accelerator.log(values, step=record's step)``. With ``log`` (the
    loop's :class:`JsonlLog`) the records are exactly the ones ``train_log.jsonl`` gets (loss, lr, images/s, global
    batch, and what the trainer writes through it, such as evaluation results); without one (``train-generator``)
    this callback makes the same step records itself, every ``every`` steps and at the last. At the end the trackers
    are finished. Put it after the callbacks whose results it logs (:class:`Evaluate`): its ``on_train_end`` closes
    the trackers.

    Where ``accelerator.end_training()`` would also destroy the process group, this finishes the trackers only: the
    trainer still meets the other processes at a barrier after the loop, and ``reproduce`` runs further trainings
    in the same process.
    """

    def __init__(self, accelerator, run_name: str, config: dict[str, Any], log: JsonlLog | None = None,
                 every: int = 50, images: Callable[[Any], int] | None = None) -> None:
        self.accelerator, self.run_name = accelerator, run_name
        self.config = {key: _plain(value) for key, value in config.items()}
        self.own = log is None  # make the step records here
        self.every, self.images = every, images
        self.started = False
        if log is not None:
            log.listeners.append(self.send)
        self._reset()

    def _reset(self) -> None:
        self.loss, self.seen, self.steps, self.since = 0.0, 0, 0, time.perf_counter()

    def start(self) -> None:
        if self.started or not self.accelerator.is_main_process:
            return
        self.started = True
        logging_dir = Path(self.accelerator.logging_dir)
        logging_dir.mkdir(parents=True, exist_ok=True)
        self.accelerator.init_trackers(self.run_name, config=self.config,
                                       init_kwargs={"wandb": {"name": self.run_name, "dir": str(logging_dir)}})
        logger.info("tracking to %s (%s)", ", ".join(t.name for t in self.accelerator.trackers), logging_dir)

    def send(self, record: dict[str, Any]) -> None:
        """One log record to every tracker, at its step."""
        self.start()
        values = _scalars(record)
        if values and self.accelerator.is_main_process:
            self.accelerator.log(values, step=int(record.get("step", 0)))

    def on_train_start(self, loop: TrainingLoop) -> None:
        self.start()
        self._reset()

    def on_micro_batch_end(self, loop: TrainingLoop, batch: Any) -> None:
        if self.own and self.started and self.images is not None:
            self.seen += self.images(batch) * loop.accelerator.num_processes

    def on_step_end(self, loop: TrainingLoop) -> None:
        if not (self.own and self.started):
            return
        for loss in loop.micro_losses:  # as JsonlLog: no host sync per step, read when a record is made
            self.loss = self.loss + loss
        self.steps += 1
        if loop.step % self.every == 0 or loop.step == loop.stop:
            record = {"step": loop.step, "loss": float(self.loss) / self.steps, "lr": loop.learning_rate(loop.step),
                      "images_per_s": self.seen / (time.perf_counter() - self.since)}
            if self.images is not None:
                record["global_batch"] = self.seen // self.steps
            self.send(record)
            self._reset()

    def on_train_end(self, loop: TrainingLoop) -> None:
        if self.started:
            for tracker in self.accelerator.trackers:
                tracker.finish()
            self.accelerator.trackers.clear()
            self.started = False


# ------------------------------------------------------------------------------------------- the loop


class TrainingLoop:
    """Optimizer steps ``start .. stop - 1`` of a run of ``total`` steps.

    Each step: the learning rate ``learning_rate * lr_factor(step)``, then for each micro-batch of
    ``micro_batches(step)`` (``accumulation`` of them) the trainer's ``loss(batch)`` divided by ``accumulation`` and
    its backward pass (gradients synchronised on the last one only), clipping, the optimizer step, the callbacks,
    and a checkpoint (``save(step)``) every ``checkpoint_every`` steps and when stopping before ``total`` (or at the
    end with ``final_checkpoint``)."""

    def __init__(self, accelerator, model, optimizer, precision: Precision, *, total: int, accumulation: int,
                 learning_rate: float, lr_factor: Callable[[int], float], max_grad_norm: float | None = None,
                 callbacks: Sequence[Callback] = (), checkpoint_every: int = 0, final_checkpoint: bool = False,
                 save: Callable[[int], None] | None = None) -> None:
        self.accelerator, self.precision = accelerator, precision
        self.raw_optimizer = optimizer
        self.model, self.optimizer = accelerator.prepare(precision.wrap(model), optimizer)
        self.unwrapped = accelerator.unwrap_model(self.model)
        self.total, self.accumulation = total, accumulation
        self.peak_lr, self.lr_factor, self.max_grad_norm = learning_rate, lr_factor, max_grad_norm
        self.callbacks = list(callbacks)
        self.checkpoint_every, self.final_checkpoint, self.save = checkpoint_every, final_checkpoint, save
        self.start = self.step = self.stop = 0
        self.micro_losses: list[torch.Tensor] = []
        self.bar = None

    def learning_rate(self, step: int) -> float:
        return self.peak_lr * self.lr_factor(step)

    def run(self, start: int, stop: int, micro_batches: Callable[[int], Iterable[Any]],
            loss: Callable[[Any], torch.Tensor], progress: bool = True, desc: str = "train") -> None:
        self.start, self.stop, self.step = start, stop, start
        for callback in self.callbacks:
            callback.on_train_start(self)
        self.model.train()
        self.bar = tqdm(total=stop, initial=start, desc=desc,
                        disable=not (progress and self.accelerator.is_main_process))
        for step in range(start, stop):
            for group in self.optimizer.param_groups:
                group["lr"] = self.learning_rate(step)
            self.micro_losses = []
            for m, batch in enumerate(micro_batches(step)):
                last = m == self.accumulation - 1
                with nullcontext() if last else self.accelerator.no_sync(self.model):
                    scaled = loss(batch) / self.accumulation
                    self.precision.backward(scaled)
                self.micro_losses.append(scaled.detach())
                for callback in self.callbacks:
                    callback.on_micro_batch_end(self, batch)
            if self.max_grad_norm is not None:
                self.precision.unscale(self.raw_optimizer)
                self.accelerator.clip_grad_norm_(self.model.parameters(), self.max_grad_norm)
            self.precision.step(self.raw_optimizer)  # the optimizer itself: the scaler keys its state by it
            self.raw_optimizer.zero_grad(set_to_none=True)
            self.step = step + 1
            self.bar.update(1)
            for callback in self.callbacks:
                callback.on_step_end(self)
            if self.save is not None and self.checkpoint_due():
                self.save(self.step)
        self.bar.close()
        for callback in self.callbacks:
            callback.on_train_end(self)

    def checkpoint_due(self) -> bool:
        done = self.step
        if self.checkpoint_every and done % self.checkpoint_every == 0:
            return True
        return done == self.stop and (self.stop < self.total or self.final_checkpoint)
