"""``scoremix-ds train``: fine-tune or train a recognition network on real + synthetic identities, on accelerate.

Data: :mod:`scoremix_ds.training.mixture` (separate label namespaces) and :mod:`scoremix_ds.training.batching` (an exact
synthetic:real ratio, a sampler that is a pure function of ``(seed, step)``). Loss: a margin head
(:mod:`scoremix_ds.maths.margins`) through Partial FC (:mod:`scoremix_ds.training.partial_fc`), whose class matrix
is sharded over processes and whose sampled classes are a function of ``(seed, step, rank)``. Every source of
randomness is a function of the step, so a run resumed from a checkpoint (:mod:`scoremix_ds.training.resume`) gives
the same weights as one that never stopped.

Written to ``out``: ``config.json`` + ``model.safetensors`` (``save_pretrained``, loadable by ``load_discriminator``
and ``scoremix-ds eval``), ``README.md`` (model card: data with exact revisions, label spaces, results),
``scoremix.json``, ``train_log.jsonl`` and ``checkpoints/``.
"""

from __future__ import annotations

import json
import logging
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from .. import __version__
from ..core.errors import ConfigError, DataError, ModelError
from ..core.outputs import read_json_object
from ..core.recipes import to_dict
from ..core.validate import device_name
from . import resume
from .lr_schedule import lr_factor
from .partial_fc import PartialFC
from .recognition_config import RecognitionTrainConfig

logger = logging.getLogger(__name__)

LOG = "train_log.jsonl"


@dataclass(frozen=True)
class TrainResult:
    out: Path
    steps: int
    seconds: float
    metrics: dict[str, Any]  # the last evaluation of the `val` benchmarks (empty without any)
    resumed_from: int = 0


def source_spec(text: str, config: RecognitionTrainConfig):
    """``"org/name@rev"`` / ``"DIR::repro"`` / a plain location -> a :class:`SourceSpec`."""
    from ..sources.source import SourceSpec

    from ..core.refs import split_revision

    location, _, sub = text.partition("::")
    location, revision = split_revision(location, "--real / --synthetic")  # the one NAME@REV grammar
    return SourceSpec(location, revision=revision, config=sub or None, label_column=config.label_column,
                      image_column=config.image_column, strict=config.strict_images, skip_corrupt=config.skip_corrupt)


def _backbone(config: RecognitionTrainConfig):
    """A fresh backbone, or the ``init`` model (whose architecture then replaces the config's)."""
    from ..discriminators.loading import EmbeddingNet, build_backbone, load_discriminator

    if config.init is None:
        return build_backbone(config.backbone, in_channels=config.channels, image_size=config.image_size,
                              embedding_dim=config.embedding_dim), config
    model = load_discriminator(config.init, config.init_revision, flag="--init")
    if not isinstance(model, EmbeddingNet):
        raise ModelError(f"--init {config.init} is a frozen embedder and cannot be fine-tuned", hint="--init takes a saved model folder or Hub id")
    arch = dict(backbone=model.backbone_name, channels=model.in_channels, image_size=model.image_size,
                embedding_dim=model.embedding_dim)
    changed = {k: v for k, v in arch.items() if getattr(config, k) != v}
    if changed:
        logger.info("--init %s fixes the architecture: %s", config.init, changed)
    return model.train(), replace(config, **arch)


def _val_benchmarks(config: RecognitionTrainConfig) -> list:
    from ..evaluation.specs import benchmarks_from

    return benchmarks_from(list(config.val), seed=config.seed) if config.val else []


def _evaluate(model, benchmarks: list, device) -> dict[str, Any]:
    from ..evaluation import evaluate
    from ..evaluation.report import to_dict as report_dict

    was = model.training
    result = report_dict(evaluate(model, benchmarks, device=device))
    model.train(was)
    return result


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


def _open_log(out: Path, resume_step: int):
    """The JSONL log, truncated to the records up to ``resume_step`` so a resumed run never duplicates lines."""
    path = out / LOG
    kept = []
    if resume_step and path.is_file():
        kept = [line for line in path.read_text().splitlines() if line and _record_step(path, line) <= resume_step]
    path.write_text("".join(line + "\n" for line in kept))
    return path.open("a", encoding="utf-8")


def _written_by_train(out: Path) -> bool:
    """A folder `scoremix-ds train` wrote before folders were marked: it has the run's log or checkpoints."""
    return (out / LOG).is_file() or (out / resume.CHECKPOINTS).is_dir()


def train_recognition(config: RecognitionTrainConfig, progress: bool = True) -> TrainResult:
    """Train (or resume) the run described by ``config``; returns where the model was saved.

    Process 0 claims ``config.out`` (a new folder, or one this command wrote; never a folder of other files) and
    holds its lock for the whole run, so a second training into the same folder is refused in one line.
    """
    from ..core.outputs import OutputLock, claim_folder

    device_name("device", config.device, available=True)
    if os.environ.get("RANK", "0") != "0":
        return _train(config, progress)
    out = claim_folder(config.out, "train", signature=_written_by_train)
    with OutputLock(out):
        return _train(config, progress)


def default_workers(cuda: bool, world: int) -> int:
    """DataLoader workers per process when ``--num-workers`` is not given: on CUDA ``min(8, cores per process)``
    (IR-50 at thousands of images/s needs several decoding cores per GPU); on a CPU 0, since every core a worker
    takes is a core the model's own kernels lose."""
    return min(8, max(1, (os.cpu_count() or 1) // world)) if cuda else 0


def _train(config: RecognitionTrainConfig, progress: bool) -> TrainResult:
    from accelerate import Accelerator

    from .mixture import make_loader, open_mixture
    from ..sources.preprocess import PreprocessConfig, normalise

    started = time.perf_counter()
    out = Path(config.out)
    if out.exists() and not out.is_dir():
        raise DataError(f"--out {out} is a file", hint="give --out a folder")
    cpu = config.device == "cpu" or (config.device is None and not torch.cuda.is_available())
    accelerator = Accelerator(cpu=cpu, mixed_precision=config.mixed_precision if not cpu else "no")
    rank, world = accelerator.process_index, accelerator.num_processes
    # --batch-size is the GLOBAL batch of one optimizer step: split over the processes and the accumulation steps
    if config.batch_size % (world * config.grad_accum):
        raise ConfigError(f"--batch-size {config.batch_size} does not split over {world} processes x {config.grad_accum} "
                          "accumulation steps", hint=f"use a multiple of {world * config.grad_accum} for --batch-size")
    micro = config.batch_size // (world * config.grad_accum)
    cuda = accelerator.device.type == "cuda"
    workers = config.num_workers if config.num_workers is not None else default_workers(cuda, world)

    torch.manual_seed(config.seed)  # initial weights; everything later is drawn from (seed, step) streams
    model, arch = _backbone(config)
    fingerprint = config.fingerprint()
    data = open_mixture([source_spec(s, config) for s in config.real], [source_spec(s, config) for s in config.synthetic],
                        PreprocessConfig(arch.image_size, arch.channels, config.flip, config.shift_pixels), progress=progress and accelerator.is_main_process)
    space = data.label_space
    margin = {} if config.margin is None else {"margin": config.margin}
    head = PartialFC(config.head, space.num_classes, arch.embedding_dim, config.sample_rate, rank, world, config.seed,
                     scale=config.scale, **margin).to(accelerator.device)
    params = [*model.parameters(), *head.parameters()]
    if config.optimizer == "sgd":
        optimizer = torch.optim.SGD(params, lr=config.learning_rate, momentum=config.momentum, weight_decay=config.weight_decay)
    else:
        optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, config.warmup_steps, config.steps, config.lr_schedule))

    start = 0
    ckpt = resume.latest_checkpoint(out)
    if ckpt is not None:  # the backbone is restored BEFORE DDP wraps it; the head stays unwrapped (sharded by rank)
        start = resume.load_checkpoint(ckpt, {"backbone": model, f"head-rank{rank}": head},
                                       {"optimizer": optimizer, "schedule": schedule}, fingerprint, f"rank{rank}")["step"]
        logger.info("resuming %s from step %d", out, start)
    if start >= config.steps and (out / "model.safetensors").is_file():
        logger.info("%s already finished %d steps", out, config.steps)
        return TrainResult(out, start, time.perf_counter() - started, _last_eval(out), start)
    model, optimizer = accelerator.prepare(model, optimizer)
    sampler = data.batch_sampler(micro, config.synthetic_ratio if config.synthetic and config.real else 1.0,
                                 config.seed, start_step=start * config.grad_accum,
                                 num_steps=(config.steps - start) * config.grad_accum, rank=rank, world_size=world)
    # uint8 NHWC batches from the workers (pinned on CUDA): a quarter of float32's bytes cross the bus, and the
    # float conversion runs on the device (on a CPU: the same bits as converting in the loader)
    batches = iter(make_loader(data, sampler, num_workers=workers, pin_memory=cuda, uint8=True))
    benchmarks = _val_benchmarks(config) if accelerator.is_main_process else []
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
    accelerator.wait_for_everyone()
    log = _open_log(out, start) if accelerator.is_main_process else None
    metrics: dict[str, Any] = {}
    if benchmarks and start == 0:  # the starting point (random init or --init), so the log shows what training changed
        initial = _evaluate(accelerator.unwrap_model(model), benchmarks, accelerator.device)
        log.write(json.dumps({"step": 0, "eval": _summary(initial)}) + "\n")
        log.flush()
    model.train()
    bar = tqdm(range(start, config.steps), initial=start, total=config.steps, desc="train",
               disable=not (progress and accelerator.is_main_process))
    window_loss, window_images, window_steps, window_start = 0.0, 0, 0, time.perf_counter()
    for step in bar:
        for micro in range(config.grad_accum):
            x, y = next(batches)
            x = normalise(x.to(accelerator.device, non_blocking=True), arch.image_size, arch.channels)
            y = y.to(accelerator.device, non_blocking=True)
            sync = micro == config.grad_accum - 1
            with (nullcontext() if sync else accelerator.no_sync(model)), accelerator.autocast():
                loss = head(model(x).float(), y) / config.grad_accum
            accelerator.backward(loss)
            window_loss = window_loss + loss.detach()  # no host sync per step: read when the log is written
            window_images += len(y) * world
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        done, window_steps = step + 1, window_steps + 1
        if log is not None and (done % config.log_every == 0 or done == config.steps):
            record = {"step": done, "loss": float(window_loss) / window_steps, "lr": schedule.get_last_lr()[0],
                      "images_per_s": window_images / (time.perf_counter() - window_start),
                      "global_batch": window_images // window_steps}
            log.write(json.dumps(record) + "\n")
            log.flush()
            logger.info("step %d loss %.4f lr %.3g %.0f img/s", done, record["loss"], record["lr"], record["images_per_s"])
            bar.set_postfix(loss=f"{record['loss']:.3f}")
            window_loss, window_images, window_steps, window_start = 0.0, 0, 0, time.perf_counter()
        if benchmarks and config.eval_every and done % config.eval_every == 0 and done != config.steps:
            metrics = _evaluate(accelerator.unwrap_model(model), benchmarks, accelerator.device)
            log.write(json.dumps({"step": done, "eval": _summary(metrics)}) + "\n")
            log.flush()
        if config.checkpoint_every and done % config.checkpoint_every == 0 or done == config.steps:
            _checkpoint(accelerator, out, done, model, head, optimizer, schedule, fingerprint, config)
    if log is not None:
        if benchmarks:
            metrics = _evaluate(accelerator.unwrap_model(model), benchmarks, accelerator.device)
            log.write(json.dumps({"step": config.steps, "eval": _summary(metrics)}) + "\n")
        log.close()
        _save(accelerator.unwrap_model(model), out, config, arch, data, metrics, time.perf_counter() - started)
    accelerator.wait_for_everyone()
    return TrainResult(out, config.steps, time.perf_counter() - started, metrics, start)


def _checkpoint(accelerator, out, step, model, head, optimizer, schedule, fingerprint, config) -> None:
    """Every process writes its head shard (Partial FC) and its optimizer state (momentum of its shard); process 0
    also the backbone, then seals the checkpoint."""
    rank = accelerator.process_index
    if accelerator.is_main_process:
        resume.begin(out, step)
    accelerator.wait_for_everyone()
    modules = {f"head-rank{rank}": head, **({"backbone": accelerator.unwrap_model(model)} if accelerator.is_main_process else {})}
    resume.write_part(resume.staging_dir(out, step), modules, {"optimizer": optimizer, "schedule": schedule}, f"rank{rank}")
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        resume.commit(out, step, fingerprint, config.keep_checkpoints, {"processes": accelerator.num_processes})
    accelerator.wait_for_everyone()


def _summary(metrics: dict[str, Any]) -> dict[str, Any]:
    """benchmark -> {accuracy (10-fold mean), auc, eer} for the JSONL log."""
    from ..evaluation.report import headline

    return {name: {k: h[k] for k in ("accuracy", "auc", "eer")} for name, h in headline(metrics).items()}


def _last_eval(out: Path) -> dict[str, Any]:
    meta = out / "scoremix.json"
    return read_json_object(meta).get("results", {}) if meta.is_file() else {}


def _save(model, out: Path, config: RecognitionTrainConfig, arch: RecognitionTrainConfig, data, metrics, seconds) -> None:
    from .model_card import write_model_card

    model = model.to("cpu").eval()
    model.save_pretrained(out)
    sources = [s.info.to_dict() for s in data.sources]
    meta = {"scoremix_ds": __version__, "config": to_dict(config), "architecture": {k: getattr(arch, k) for k in
            ("backbone", "embedding_dim", "image_size", "channels")}, "sources": sources,
            "label_space": data.label_space.to_dict(), "results": metrics, "train_seconds": round(seconds, 1)}
    (out / "scoremix.json").write_text(json.dumps(meta, indent=2, sort_keys=True, default=str) + "\n")
    write_model_card(out, meta)
