"""``scoremix-ds train``: fine-tune or train a recognition network on real + synthetic identities, on accelerate.

Data: :mod:`scoremix_ds.training.mixture` (separate label namespaces) and :mod:`scoremix_ds.training.batching` (an exact
synthetic:real ratio, a sampler that is a pure function of ``(seed, step)``). Loss: a margin head
(:mod:`scoremix_ds.maths.margins`) through Partial FC (:mod:`scoremix_ds.training.partial_fc`), whose class matrix
is sharded over processes and whose sampled classes are a function of ``(seed, step, rank)``. Every source of
randomness is a function of the step, so a run resumed from a checkpoint (:mod:`scoremix_ds.training.checkpoints`)
gives the same weights as one that never stopped. The loop (accelerate, accumulation, LR schedule, log, checkpoint
timing, evaluation while the other processes wait) is :mod:`scoremix_ds.training.loop`'s; this module keeps the
recognition data, model, loss and output.

Written to ``out``: ``config.json`` + ``model.safetensors`` (``save_pretrained``, loadable by ``load_discriminator``
and ``scoremix-ds eval``), ``README.md`` (model card: data with exact revisions, label spaces, results),
``scoremix.json``, ``train_log.jsonl`` and ``checkpoints/``.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..core.errors import ConfigError, DataError, ModelError
from ..core.outputs import read_json_object
from ..core.recipes import to_dict
from ..core.validate import device_name
from .checkpoints import CHECKPOINTS, Checkpoint, prepare_checkpoints, write_checkpoint
from .loop import (Evaluate, JsonlLog, Precision, Track, TrainingLoop, accelerator_for, lr_factors, micro_batch_size,
                   require_trackers)
from .partial_fc import PartialFC
from .recognition_config import RecognitionTrainConfig

logger = logging.getLogger(__name__)

LOG = JsonlLog.NAME


@dataclass(frozen=True)
class TrainResult:
    out: Path
    steps: int
    seconds: float
    metrics: dict[str, Any]  # the last evaluation of the `val` benchmarks (empty without any)
    resumed_from: int = 0


def source_spec(text: str, config: RecognitionTrainConfig):
    """``"org/name@rev"`` / ``"DIR::repro"`` / a plain location -> a :class:`SourceSpec`. The location keeps its
    ``@REV`` and ``[classes]``: :func:`~scoremix_ds.sources.openers.open_source` reads both, in either order (split
    here, ``org/name@rev[0-7]`` became the revision ``rev[0-7]``)."""
    from ..sources.source import SourceSpec

    location, _, sub = text.partition("::")
    return SourceSpec(location, config=sub or None, label_column=config.label_column,
                      image_column=config.image_column, strict=config.strict_images, skip_corrupt=config.skip_corrupt,
                      allow_partial=config.allow_partial)


def _backbone(config: RecognitionTrainConfig):
    """A fresh backbone, or the ``init`` model (whose architecture then replaces the config's)."""
    from ..discriminators.loading import EmbeddingNet, build_backbone, load_discriminator

    if config.init is None:
        return build_backbone(config.backbone, in_channels=config.channels, image_size=config.image_size,
                              embedding_dim=config.embedding_dim), config
    model = load_discriminator(config.init, config.init_revision, flag="--init")
    if not isinstance(model, EmbeddingNet):
        raise ModelError(f"init {config.init} is a frozen embedder and cannot be fine-tuned",
                         hint="`init` takes a saved model folder or Hub id", field="init")
    arch = dict(backbone=model.backbone_name, channels=model.in_channels, image_size=model.image_size,
                embedding_dim=model.embedding_dim)
    changed = {k: v for k, v in arch.items() if getattr(config, k) != v}
    if changed:
        logger.info("--init %s fixes the architecture: %s", config.init, changed)
    return model.train(), replace(config, **arch)


VAL_FOLDS = 10  # the verification protocol's folds for the `val` benchmarks (insightface's 10)


def _val_benchmarks(config: RecognitionTrainConfig) -> list:
    """The ``val`` benchmarks, loaded and checked (:func:`check_val_benchmarks`): before the first step."""
    from ..evaluation.specs import benchmarks_from

    benchmarks = benchmarks_from(list(config.val), seed=config.seed) if config.val else []
    check_val_benchmarks(benchmarks)
    return benchmarks


def _pair_count(benchmark) -> int | None:
    """How many verification pairs ``benchmark`` scores (without embedding anything); None: not a pair benchmark."""
    from ..evaluation.runner import HeldOutSet
    from ..evaluation.verification_pairs import VerificationPairs, make_pairs_from_labels

    if isinstance(benchmark, (str, Path)) and Path(benchmark).suffix == ".bin":
        from ..evaluation.binfile import read_bin

        return read_bin(benchmark).num_pairs
    if isinstance(benchmark, VerificationPairs):
        return benchmark.num_pairs
    if isinstance(benchmark, HeldOutSet):
        return len(make_pairs_from_labels(benchmark.labels, benchmark.num_pairs, benchmark.seed)[2])
    return None


def check_val_benchmarks(benchmarks: list, num_folds: int = VAL_FOLDS) -> None:
    """Every pair benchmark has the pairs its ``num_folds``-fold protocol needs (the rule of
    :func:`scoremix_ds.evaluation.metrics.kfold_indices`), so a bad evaluation set fails before the first training
    step, not at the first evaluation with a log already written."""
    from ..evaluation.metrics import kfold_indices

    for benchmark in benchmarks:
        pairs = _pair_count(benchmark)
        if pairs is None:
            continue
        try:
            kfold_indices(pairs, num_folds)
        except DataError as exc:
            name = getattr(benchmark, "name", None) or Path(str(benchmark)).stem
            raise DataError(f"val benchmark {name}: {exc.message}",
                            hint=f"give `val` a benchmark of {num_folds} pairs or more", field="val") from None


def _evaluate(model, benchmarks: list, device) -> dict[str, Any]:
    from ..evaluation import evaluate
    from ..evaluation.report import to_dict as report_dict

    was = model.training
    result = report_dict(evaluate(model, benchmarks, device=device, num_folds=VAL_FOLDS))
    model.train(was)
    return result


def _written_by_train(out: Path) -> bool:
    """A folder `scoremix-ds train` wrote before folders were marked: it has the run's log or checkpoints."""
    return (out / LOG).is_file() or (out / CHECKPOINTS).is_dir()


def train_recognition(config: RecognitionTrainConfig, progress: bool = True) -> TrainResult:
    """Train (or resume) the run described by ``config``; returns where the model was saved.

    Process 0 claims ``config.out`` (a new folder, or one this command wrote; never a folder of other files) and
    holds its lock for the whole run, so a second training into the same folder is refused in one line.
    """
    from ..core.outputs import OutputLock, claim_folder

    device_name("device", config.device, available=True)
    config = config.resolved()  # mixed_precision auto -> bf16 / no, before anything records or hashes the config
    require_trackers(config.report_to)
    if os.environ.get("RANK", "0") != "0":
        return _train(config, progress, [])
    benchmarks = _val_benchmarks(config)  # loaded and checked before the folder is claimed: a bad set writes nothing
    out = claim_folder(config.out, "train", signature=_written_by_train)
    with OutputLock(out):
        return _train(config, progress, benchmarks)


def default_workers(cuda: bool, world: int) -> int:
    """DataLoader workers per process when ``--num-workers`` is not given: on CUDA ``min(8, cores per process)``
    (IR-50 at thousands of images/s needs several decoding cores per GPU); on a CPU 0, since every core a worker
    takes is a core the model's own kernels lose."""
    return min(8, max(1, (os.cpu_count() or 1) // world)) if cuda else 0


def _train(config: RecognitionTrainConfig, progress: bool, benchmarks: list) -> TrainResult:
    """The run; ``benchmarks``: the checked ``val`` benchmarks on process 0 (evaluation runs there), [] elsewhere."""
    from .mixture import make_loader, open_mixture
    from ..sources.preprocess import PreprocessConfig, normalise

    started = time.perf_counter()
    out = Path(config.out)
    if out.exists() and not out.is_dir():
        raise DataError(f"out {out} is a file", hint="give out a folder", field="out")
    cpu = config.device == "cpu" or (config.device is None and not torch.cuda.is_available())
    accelerator = accelerator_for(cpu, config.report_to, config.logging_dir or out)
    precision = Precision(config.mixed_precision if not cpu else "no", accelerator.device)
    rank, world = accelerator.process_index, accelerator.num_processes
    micro = micro_batch_size(config.batch_size, world, config.grad_accum, "grad_accum")
    cuda = accelerator.device.type == "cuda"
    workers = config.num_workers if config.num_workers is not None else default_workers(cuda, world)

    torch.manual_seed(config.seed)  # initial weights; everything later is drawn from (seed, step) streams
    model, arch = _backbone(config)
    memory_format = torch.channels_last if cuda else torch.contiguous_format  # NHWC convolutions on a GPU
    model = model.to(memory_format=memory_format)
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

    root = out / CHECKPOINTS
    start = 0
    ckpt = prepare_checkpoints(root, config.resume, accelerator)
    if ckpt is not None:  # the backbone is restored BEFORE DDP wraps it; the head stays unwrapped (sharded by rank)
        start = _restore(ckpt, model, head, optimizer, fingerprint, rank)
        logger.info("resuming %s from step %d", out, start)
    if start >= config.steps and (out / "model.safetensors").is_file():
        logger.info("%s already finished %d steps", out, config.steps)
        return TrainResult(out, start, time.perf_counter() - started, _last_eval(out), start)

    log = JsonlLog(out, config.log_every, images=lambda batch: len(batch[1]))
    metrics: dict[str, Any] = {}
    callbacks: list = [log]
    if config.val:
        def record(step: int, result: dict[str, Any]) -> None:
            nonlocal metrics
            metrics = result
            log.write({"step": step, "eval": _summary(result)})

        callbacks.append(Evaluate(config.eval_every, lambda net: _evaluate(net, benchmarks, accelerator.device), record))
    if config.report_to:  # after Evaluate: it closes the trackers at the end
        callbacks.append(Track(accelerator, out.resolve().name, to_dict(config), log))
    loop = TrainingLoop(accelerator, model, optimizer, precision, total=config.steps, accumulation=config.grad_accum,
                        learning_rate=config.learning_rate,
                        lr_factor=lr_factors(config.lr_schedule, config.warmup_steps, config.steps),
                        callbacks=callbacks, checkpoint_every=config.checkpoint_every, final_checkpoint=True)
    loop.save = lambda done: _checkpoint(loop, root, done, head, fingerprint, config.keep_checkpoints)
    sampler = data.batch_sampler(micro, config.synthetic_ratio,  # unused without real or synthetic rows
                                 config.seed, start_step=start * config.grad_accum,
                                 num_steps=(config.steps - start) * config.grad_accum, rank=rank, world_size=world)
    # uint8 NHWC batches from the workers (pinned on CUDA): a quarter of float32's bytes cross the bus, and the
    # float conversion runs on the device (on a CPU: the same bits as converting in the loader)
    batches = iter(make_loader(data, sampler, num_workers=workers, pin_memory=cuda, uint8=True))
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
    accelerator.wait_for_everyone()

    def loss(batch) -> torch.Tensor:
        x, y = batch
        x = normalise(x.to(accelerator.device, non_blocking=True), arch.image_size, arch.channels
                      ).contiguous(memory_format=memory_format)
        y = y.to(accelerator.device, non_blocking=True)
        with precision.autocast():
            return head(loop.model(x).float(), y)

    loop.run(start, config.steps, lambda step: (next(batches) for _ in range(config.grad_accum)), loss,
             progress=progress, desc="train")
    log.close()
    if accelerator.is_main_process:
        _save(loop.unwrapped, out, config, arch, data, metrics, time.perf_counter() - started)
    accelerator.wait_for_everyone()
    return TrainResult(out, config.steps, time.perf_counter() - started, metrics, start)


def _checkpoint(loop: TrainingLoop, root: Path, step: int, head, fingerprint: str, keep: int) -> None:
    """Every process writes its head shard (Partial FC) and its optimizer state (momentum of its shard); process 0
    also the backbone, then seals the checkpoint."""
    rank, main = loop.accelerator.process_index, loop.accelerator.is_main_process
    tensors = {f"head-rank{rank}": head, **({"backbone": loop.unwrapped} if main else {})}
    write_checkpoint(root, step, {"fingerprint": fingerprint, "processes": loop.accelerator.num_processes}, tensors,
                     {f"state-rank{rank}": {"optimizer": loop.raw_optimizer.state_dict()}}, keep, main=main,
                     barrier=loop.accelerator.wait_for_everyone)


def _restore(ckpt: Checkpoint, model, head, optimizer, fingerprint: str, rank: int) -> int:
    """Restore the backbone, this process's head shard and its optimizer state; refuses another config's checkpoint.
    (Checkpoints of earlier versions also hold the LR schedule's state: the rate is a function of the step.)"""
    state = ckpt.state()
    if state.get("fingerprint") != fingerprint:
        raise ConfigError(
            f"{ckpt.path.parent.parent} holds checkpoints of a different training config (fingerprint "
            f"{state.get('fingerprint')}, this run {fingerprint})",
            hint="resume with the original settings and process count, choose another out, or turn resume off",
            fields=("out", "resume"))
    missing = ckpt.missing(["backbone.safetensors", f"head-rank{rank}.safetensors", f"state-rank{rank}.pt"])
    if missing:
        raise ConfigError(f"checkpoint {ckpt.path} lacks {missing[0]} (saved with another number of processes?)",
                          hint="resume with the original number of processes, or choose another out", field="out")
    ckpt.load_module("backbone", model)
    ckpt.load_module(f"head-rank{rank}", head)
    optimizer.load_state_dict(ckpt.objects(f"state-rank{rank}")["optimizer"])  # weights_only: no pickle payloads
    return int(state["step"])


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
