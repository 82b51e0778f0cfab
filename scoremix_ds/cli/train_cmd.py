"""``scoremix-ds train``, ``train-generator`` and ``train-discriminator`` (an alias of ``train`` with fewer flags).

The three commands name the same things the same way (``--real-data``, ``--gradient-accumulation-steps``,
``--resume/--no-resume``, ``--device``, ``--warmup-steps``, ...) and show each option's default, read from the config
class it fills (a recipe may change it). Older spellings (``train --real``, ``--grad-accum``) still work, hidden from
``--help``, with a deprecation warning.
"""

from __future__ import annotations

import logging
from dataclasses import fields
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ..core.errors import ConfigError
from ..core.processes import (check_num_processes, is_main_process, launched_distributed, owns_side_effects,
                              relaunch_command)
from ..core.recipes import config_from
from ..training.generator_config import GeneratorTrainConfig as G
from ..training.loop import require_trackers
from ..training.recognition_config import RecognitionTrainConfig as R
from .options import ProgressOpt, RealDataOpt
from .preflight import preflight_generator, preflight_recognition

logger = logging.getLogger(__name__)


def shown(config: type, field: str) -> str:
    """``field``'s default in ``config``, as ``--help`` shows it."""
    value = next(f.default for f in fields(config) if f.name == field)
    if value is None:
        return "none"
    if isinstance(value, tuple):
        return ", ".join(map(str, value)) or "none"
    return str(value).lower() if isinstance(value, bool) else str(value)


def opt(config: type, field: str, *names: str, help: str, **kwargs: Any) -> Any:
    """A train option whose ``--help`` shows the config's default for ``field``."""
    return typer.Option(*names, help=help, show_default=shown(config, field), **kwargs)


def deprecated(old: str, new: str, value: Any, replacement: Any) -> Any:
    """The value of a hidden old spelling (with a warning), unless the new one is given too."""
    if value is None:
        return replacement
    logger.warning("%s is deprecated: use %s (it will be removed)", old, new)
    if replacement is not None:
        raise ConfigError(f"{old} and {new} both given", hint=f"give {new} only")
    return value


NumProcessesOpt = Annotated[int, typer.Option(help="Relaunch under accelerate with N processes (one per device; gloo on CPU).")]
RecipeOpt = Annotated[Optional[str], typer.Option("--recipe", help="A TOML recipe (file, or a name in builders/); flags override it.", show_default="none")]
PushToOpt = Annotated[Optional[str], typer.Option("--push-to", help="Push the trained model to this Hub model repo (ORG/NAME).", show_default="none")]
TrainTagOpt = Annotated[Optional[str], typer.Option("--tag", help="Version tag put on the pushed commit, e.g. v1.0.0 (needs --push-to).", show_default="none")]
TrainTokenOpt = Annotated[Optional[str], typer.Option("--token", help="Hub token.", show_default="HF_TOKEN, then `hf auth login`")]
REPORT_TO_HELP = ("Experiment trackers (accelerate's log_with): none, tensorboard, wandb (WANDB_MODE=offline works), "
                  "all, or a comma list.")
LOGGING_DIR_HELP = "Where trackers write (TensorBoard: LOGGING_DIR/<name of --out>/); none: the output folder."


def trackers(text: str | None) -> tuple[str, ...] | None:
    """``--report-to`` as the ``report_to`` field: ``"tensorboard,wandb"`` -> ``("tensorboard", "wandb")``, ``none``
    -> ``()``, not given -> ``None`` (the recipe's or the config's default)."""
    if text is None:
        return None
    names = tuple(name.strip().lower() for name in text.split(",") if name.strip())
    if names == ("none",) or not names:
        return ()
    if "none" in names:
        raise ConfigError(f"report_to '{text}' combines none with trackers", hint="give none alone, or trackers only",
                          field="report_to")
    return names


def _relaunched(num_processes: int) -> bool:
    """``--num-processes N > 1`` outside a launch: run this same command in N processes; True when that ran."""
    check_num_processes(num_processes)
    if num_processes == 1 or launched_distributed():
        return False
    code = relaunch_command(num_processes)
    if code:
        raise typer.Exit(code)
    return True


def _train(kind: str, recipe, progress: bool, num_processes: int = 1, push_to: str | None = None,
           tag: str | None = None, token: str | None = None, **overrides) -> None:
    """One config from the recipe and flags, one trainer call, one summary line (and the push, when asked)."""
    if kind == "generator":
        from ..training.generator import train_generator

        config = config_from(G, recipe, overrides)
        require_trackers(config.report_to)  # before anything is written, in this process (not once per child)
        push = None
        if push_to:  # checked before training, so a bad repo id or tag fails in a second
            from ..hub.push_model import ModelPushConfig

            push = ModelPushConfig(folder=config.out, repo_id=push_to, tag=tag, token=token)
            if config.stop_after is not None and config.stop_after < config.steps:
                raise ConfigError("--push-to needs a finished generator, and --stop-after stops before the last step",
                                  hint="drop --stop-after (or push later with the finishing run)")
        elif tag:
            raise ConfigError("--tag needs --push-to", hint="add --push-to ORG/NAME")
        preflight_generator(config, push)  # device, --out, disk, token / access / tag: before any data or model
        relaunched = _relaunched(num_processes)  # the children train; this parent pushes, after them
        if not relaunched:
            path = train_generator(config, progress=progress)
        if push is not None and owns_side_effects():  # one push for the whole launch
            from ..generators.loading import load_generator
            from ..hub.push_generator import push_generator

            if not (Path(config.out) / "model_index.json").is_file():  # stopped early (--stop-after): no model yet
                raise ConfigError(f"{config.out} holds no finished generator to push (training stopped early)",
                                  hint="run the same command without --stop-after to finish it, then push")
            pushed = push_generator(push, load=load_generator)
            typer.echo(f"pushed {config.out} to {pushed.url} at commit {pushed.commit_sha[:8]}"
                       + (f", tag {pushed.tag}" if pushed.tag else ""))
        if relaunched:
            return
    else:  # the discriminator is trained by the recognition trainer of `scoremix-ds train`
        config = config_from(R, recipe, overrides)
        require_trackers(config.report_to)
        preflight_recognition(config)
        if _relaunched(num_processes):
            return
        from ..training.recognition import train_recognition

        result = train_recognition(config, progress=progress)
        path = result.out
        scores = [f"{b['name']} accuracy {b['accuracy']['mean']:.4f}" for b in result.metrics.get("benchmarks", [])
                  if isinstance(b.get("accuracy"), dict)]
        if scores:
            path = f"{path} ({', '.join(scores)})"
    if is_main_process():  # under accelerate launch / torchrun / --num-processes, one line for the whole run
        typer.echo(f"saved {kind} to {path}")


REAL_DATA_HELP = RealDataOpt.__metadata__[0].help


def train_generator(
    recipe: RecipeOpt = None,
    real_data: Annotated[Optional[str], opt(G, "real_data", "--real-data", help=REAL_DATA_HELP)] = None,
    architecture: Annotated[Optional[str], opt(G, "architecture", help="unet-small (the demo's), unet-face (112x112 RGB), dit-face, dit-small; EDM2: edm2-cpu (grey glyphs/digits), edm2-xs, edm2-s (112x112 faces), trained with EDM2's loss and their guide.")] = None,
    guide_steps: Annotated[Optional[int], opt(G, "guide_steps", help="EDM2: steps the autoguidance guide trains (default steps/8; 0: no guide).")] = None,
    guide_source: Annotated[Optional[str], opt(G, "guide_source", help="EDM2: the guide is a smaller preset trained alongside (smaller, the default) or the main run's EMA at --guide-steps (early-ema).")] = None,
    image_size: Annotated[Optional[int], opt(G, "image_size", help="Training resolution.")] = None,
    channels: Annotated[Optional[int], opt(G, "channels", help="1 (grey) or 3 (RGB).")] = None,
    steps: Annotated[Optional[int], opt(G, "steps", "--steps", help="Optimizer steps; the LR schedule spans all of them.")] = None,
    batch_size: Annotated[Optional[int], opt(G, "batch_size", "--batch-size", help="Global batch of one optimizer step (all processes and micro-batches).")] = None,
    gradient_accumulation_steps: Annotated[Optional[int], opt(G, "gradient_accumulation_steps", help="Micro-batches per optimizer step.")] = None,
    learning_rate: Annotated[Optional[float], opt(G, "learning_rate", help="Peak learning rate.")] = None,
    warmup_steps: Annotated[Optional[int], opt(G, "warmup_steps", help="Linear warm-up steps (then cosine to 5% of the peak).")] = None,
    mixed_precision: Annotated[Optional[str], opt(G, "mixed_precision", help="no, bf16 or fp16 (GPU).")] = None,
    checkpoint_every: Annotated[Optional[int], opt(G, "checkpoint_every", help="Checkpoint every N steps; a re-run resumes from the last.")] = None,
    resume: Annotated[Optional[bool], opt(G, "resume", "--resume/--no-resume", help="Continue from the last checkpoint of the same config, or discard it.")] = None,
    stop_after: Annotated[Optional[int], opt(G, "stop_after", help="Stop (with a checkpoint) after this many steps; the schedule still spans --steps.")] = None,
    device: Annotated[Optional[str], opt(G, "device", "--device", help="cpu, or none for accelerate's choice (a GPU when there is one).")] = None,
    seed: Annotated[Optional[int], opt(G, "seed", "--seed", help="Seed of the whole run.")] = None,
    out: Annotated[Optional[str], opt(G, "out", "--out", help="Output folder.")] = None,
    report_to: Annotated[Optional[str], opt(G, "report_to", "--report-to", help=REPORT_TO_HELP)] = None,
    logging_dir: Annotated[Optional[str], opt(G, "logging_dir", "--logging-dir", help=LOGGING_DIR_HELP)] = None,
    push_to: PushToOpt = None,
    tag: TrainTagOpt = None,
    token: TrainTokenOpt = None,
    num_processes: NumProcessesOpt = 1,
    progress: ProgressOpt = True,
) -> None:
    """Train a class-conditional UNet or DiT generator (diffusers layout, safetensors) on real labelled images, on
    accelerate (DDP under `accelerate launch`), with EMA weights, label dropout for the null class and exact resume.
    The folder is a diffusers pipeline (model_index.json, ScoreMixPipeline) with a model card."""
    _train("generator", recipe, progress, num_processes, push_to=push_to, tag=tag, token=token, real_data=real_data, architecture=architecture, image_size=image_size,
           channels=channels, steps=steps, batch_size=batch_size, gradient_accumulation_steps=gradient_accumulation_steps,
           learning_rate=learning_rate, warmup_steps=warmup_steps, mixed_precision=mixed_precision,
           checkpoint_every=checkpoint_every, resume=resume, stop_after=stop_after, device=device, seed=seed, out=out,
           report_to=trackers(report_to), logging_dir=logging_dir, guide_steps=guide_steps, guide_source=guide_source)


def train_discriminator(
    recipe: RecipeOpt = None,
    real: Annotated[Optional[str], opt(R, "real", "--real-data", help=REAL_DATA_HELP)] = None,
    steps: Annotated[Optional[int], opt(R, "steps", "--steps", help="Optimizer steps.")] = None,
    batch_size: Annotated[Optional[int], opt(R, "batch_size", "--batch-size", help="Global batch of one optimizer step (all processes and micro-batches).")] = None,
    grad_accum: Annotated[Optional[int], opt(R, "grad_accum", "--gradient-accumulation-steps", help="Micro-batches per optimizer step.")] = None,
    learning_rate: Annotated[Optional[float], opt(R, "learning_rate", help="Peak learning rate.")] = None,
    warmup_steps: Annotated[Optional[int], opt(R, "warmup_steps", help="Linear warm-up steps.")] = None,
    resume: Annotated[Optional[bool], opt(R, "resume", "--resume/--no-resume", help="Continue from the last checkpoint of the same config, or discard it.")] = None,
    device: Annotated[Optional[str], opt(R, "device", "--device", help="torch device, e.g. cpu, cuda (none: accelerate's choice).")] = None,
    seed: Annotated[Optional[int], opt(R, "seed", "--seed", help="Seed of the whole run.")] = None,
    out: Annotated[Optional[str], opt(R, "out", "--out", help="Output folder.")] = None,
    report_to: Annotated[Optional[str], opt(R, "report_to", "--report-to", help=REPORT_TO_HELP)] = None,
    logging_dir: Annotated[Optional[str], opt(R, "logging_dir", "--logging-dir", help=LOGGING_DIR_HELP)] = None,
    num_processes: NumProcessesOpt = 1,
    progress: ProgressOpt = True,
) -> None:
    """Alias of `scoremix-ds train` with fewer flags; the embedded default is `--recipe default-discriminator`.
    Without a recipe: the defaults of `train`."""
    _train("discriminator", recipe, progress, num_processes, real=(real,) if real else None, steps=steps,
           batch_size=batch_size, grad_accum=grad_accum, learning_rate=learning_rate,
           warmup_steps=warmup_steps, resume=resume, device=device, seed=seed, out=out,
           report_to=trackers(report_to), logging_dir=logging_dir)


def train(
    real: Annotated[Optional[list[str]], opt(R, "real", "--real-data", help="Real data (repeatable): mnist-5k-train, a dataset/image folder, a train.rec folder, or ORG/NAME[@REV]; NAME[0-6] keeps some classes.")] = None,
    real_old: Annotated[Optional[list[str]], typer.Option("--real", hidden=True, help="Deprecated spelling of --real-data.")] = None,
    synthetic: Annotated[Optional[list[str]], opt(R, "synthetic", "--synthetic", help="Synthetic data (repeatable): a scoremix-ds build folder (DIR::repro for its repro config), a folder or ORG/NAME[@REV].")] = None,
    synthetic_ratio: Annotated[Optional[float], opt(R, "synthetic_ratio", help="Synthetic images drawn per real image.")] = None,
    init: Annotated[Optional[str], opt(R, "init", "--init", help="Fine-tune this model ('default', a folder or a Hub id); its architecture wins.")] = None,
    init_revision: Annotated[Optional[str], opt(R, "init_revision", help="Hub revision of --init.")] = None,
    backbone: Annotated[Optional[str], opt(R, "backbone", help="iresnet18/34/50/100, small-cnn, or hf (a transformers vision backbone).")] = None,
    embedding_dim: Annotated[Optional[int], opt(R, "embedding_dim", help="Embedding width.")] = None,
    image_size: Annotated[Optional[int], opt(R, "image_size", help="Input size.")] = None,
    channels: Annotated[Optional[int], opt(R, "channels", help="3 (RGB) or 1 (grey).")] = None,
    flip: Annotated[Optional[bool], opt(R, "flip", "--flip/--no-flip", help="Random horizontal flips.")] = None,
    shift_pixels: Annotated[Optional[int], opt(R, "shift_pixels", help="Random translation by up to N pixels (seeded per sample).")] = None,
    head: Annotated[Optional[str], opt(R, "head", help="arcface, cosface or adaface.")] = None,
    margin: Annotated[Optional[float], opt(R, "margin", help="Margin m (none: the head's own).")] = None,
    scale: Annotated[Optional[float], opt(R, "scale", help="Scale s of the logits.")] = None,
    sample_rate: Annotated[Optional[float], opt(R, "sample_rate", help="Partial FC: fraction of class centres scored per step.")] = None,
    steps: Annotated[Optional[int], opt(R, "steps", "--steps", help="Optimizer steps.")] = None,
    batch_size: Annotated[Optional[int], opt(R, "batch_size", "--batch-size", help="Global batch of one optimizer step (all processes and micro-batches).")] = None,
    grad_accum: Annotated[Optional[int], opt(R, "grad_accum", "--gradient-accumulation-steps", help="Micro-batches per optimizer step.")] = None,
    grad_accum_old: Annotated[Optional[int], typer.Option("--grad-accum", hidden=True, help="Deprecated spelling of --gradient-accumulation-steps.")] = None,
    learning_rate: Annotated[Optional[float], opt(R, "learning_rate", help="Peak learning rate.")] = None,
    warmup_steps: Annotated[Optional[int], opt(R, "warmup_steps", help="Linear warm-up steps.")] = None,
    lr_schedule: Annotated[Optional[str], opt(R, "lr_schedule", help="cosine, poly or constant.")] = None,
    optimizer: Annotated[Optional[str], opt(R, "optimizer", help="sgd or adamw.")] = None,
    mixed_precision: Annotated[Optional[str], opt(R, "mixed_precision", help="auto (bf16 on CUDA, fp32 on CPU), no, bf16 or fp16 (GPU).")] = None,
    checkpoint_every: Annotated[Optional[int], opt(R, "checkpoint_every", help="Checkpoint every N steps (a re-run resumes from the last).")] = None,
    resume: Annotated[Optional[bool], opt(R, "resume", "--resume/--no-resume", help="Continue from the last checkpoint of the same config, or discard it.")] = None,
    eval_every: Annotated[Optional[int], opt(R, "eval_every", help="Run the --val benchmarks every N steps.")] = None,
    val: Annotated[Optional[list[str]], opt(R, "val", "--val", help="Benchmark during training (repeatable), as eval --benchmark.")] = None,
    label_column: Annotated[Optional[str], opt(R, "label_column", "--label-column", help="The label column when it is not found by name.")] = None,
    image_column: Annotated[Optional[str], opt(R, "image_column", "--image-column", help="The image column when there are several.")] = None,
    strict_images: Annotated[Optional[bool], opt(R, "strict_images", "--strict-images", help="Refuse rows of another mode or size instead of converting them.")] = None,
    skip_corrupt: Annotated[Optional[bool], opt(R, "skip_corrupt", "--skip-corrupt", help="Skip (and count) rows that do not decode.")] = None,
    allow_partial: Annotated[Optional[bool], opt(R, "allow_partial", "--allow-partial", help="Read an unfinished build folder as it stands (a damaged one is always refused).")] = None,
    num_workers: Annotated[Optional[int], opt(R, "num_workers", help="DataLoader workers (none: 0 on CPU, min(8, cores per process) on CUDA).")] = None,
    device: Annotated[Optional[str], opt(R, "device", "--device", help="torch device, e.g. cpu, cuda (none: accelerate's choice).")] = None,
    seed: Annotated[Optional[int], opt(R, "seed", "--seed", help="Seed of the whole run.")] = None,
    recipe: RecipeOpt = None,
    out: Annotated[Optional[str], opt(R, "out", "--out", help="Output folder.")] = None,
    report_to: Annotated[Optional[str], opt(R, "report_to", "--report-to", help=REPORT_TO_HELP)] = None,
    logging_dir: Annotated[Optional[str], opt(R, "logging_dir", "--logging-dir", help=LOGGING_DIR_HELP)] = None,
    push_to: PushToOpt = None,
    tag: TrainTagOpt = None,
    token: TrainTokenOpt = None,
    num_processes: NumProcessesOpt = 1,
    progress: ProgressOpt = True,
) -> None:
    """Train or fine-tune a recognition network on real + synthetic identities (accelerate; resumes from checkpoints)."""
    from ..training.recognition import train_recognition

    # the parameters are named after the config fields they set, so errors about a field name the new flag
    real = deprecated("--real", "--real-data", real_old, real)
    accumulation = deprecated("--grad-accum", "--gradient-accumulation-steps", grad_accum_old, grad_accum)
    overrides = dict(
        real=tuple(real) if real else None, synthetic=tuple(synthetic) if synthetic else None,
        synthetic_ratio=synthetic_ratio, init=init, init_revision=init_revision, backbone=backbone,
        embedding_dim=embedding_dim, image_size=image_size, channels=channels, flip=flip, shift_pixels=shift_pixels,
        head=head, margin=margin,
        scale=scale, sample_rate=sample_rate, steps=steps, batch_size=batch_size, grad_accum=accumulation,
        learning_rate=learning_rate, warmup_steps=warmup_steps, lr_schedule=lr_schedule, optimizer=optimizer,
        mixed_precision=mixed_precision, checkpoint_every=checkpoint_every, resume=resume, eval_every=eval_every,
        val=tuple(val) if val else None, label_column=label_column, image_column=image_column,
        strict_images=strict_images, skip_corrupt=skip_corrupt, allow_partial=allow_partial, num_workers=num_workers, device=device, seed=seed, out=out,
        report_to=trackers(report_to), logging_dir=logging_dir,
    )
    config = config_from(R, recipe, overrides)
    require_trackers(config.report_to)  # before anything is written, in this process (not once per child)
    push = None
    if push_to:  # checked before training, so a bad repo id fails in a second
        from ..hub.push_model import ModelPushConfig

        push = ModelPushConfig(folder=config.out, repo_id=push_to, tag=tag, token=token)
    elif tag:
        raise ConfigError("--tag needs --push-to", hint="add --push-to ORG/NAME")
    preflight_recognition(config, push)  # device, --out, disk, token / access / tag: before any data or model
    if not _relaunched(num_processes):
        result = train_recognition(config, progress=progress)
        if is_main_process():  # rank 0 of any launch: the summary once
            lines = [f"saved model to {result.out} ({result.steps} steps, {result.seconds:.0f}s"
                     + (f", resumed at step {result.resumed_from}" if result.resumed_from else "") + ")"]
            from ..evaluation.report import headline

            for name, h in headline(result.metrics).items():
                if h["accuracy_std"] is not None:  # 1:1 verification benchmarks
                    lines.append(f"{name}: accuracy {h['accuracy']:.4f} ± {h['accuracy_std']:.4f}, AUC {h['auc']:.4f}, "
                                 f"EER {h['eer']:.4f}")
            typer.echo("\n".join(lines))
    # The push: once, from the process that owns the run (rank 0 of the user's launch, or --num-processes' parent).
    if push is not None and owns_side_effects():
        from ..discriminators.loading import load_discriminator
        from ..hub.push_model import push_model

        pushed = push_model(push, load=load_discriminator)
        typer.echo(f"pushed {config.out} to {pushed.url} at commit {pushed.commit_sha[:8]}" + (f", tag {pushed.tag}" if pushed.tag else ""))
