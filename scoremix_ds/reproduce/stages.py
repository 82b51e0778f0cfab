"""The stages of ``reproduce``, each a cached call of one library function (``cache.run_stage``).

generator (train_generator) -> discriminator on real data only (train_recognition) -> one plan per pair strategy
(make_plan_file) -> one build per arm (run_build on that plan; ``condition-mixing`` builds the ``distant`` plan) ->
one discriminator per arm x seed (train_recognition: real + the arm's synthetic set, same steps and seeds for every
arm) -> evaluation of each on the same pairs (evaluate).

Builds and trainings are ``resumable``: an interrupted one keeps its folder and continues from its own finished shards
(``run_build``) or checkpoints (``train_generator`` / ``train_recognition``, every ``checkpoint_every`` steps); the
others restart.

A :class:`Ref` names what a stage made twice: ``id`` (the stage id, location-independent, used in the fingerprints
of the stages that read it) and ``path`` (what the library function takes).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..synthesis.config import BuildConfig
from ..synthesis.planning.choose import PLAN_FIELDS
from ..core.errors import DataError
from ..evaluation.metrics import DEFAULT_FARS
from ..core.recipes import to_dict
from ..training.recognition_config import RUN_FIELDS, RecognitionTrainConfig
from .cache import Stage, run_stage
from .config import ARM_BUILDS, ReproduceConfig

REPRO_SUFFIX = "::repro"  # a build folder's `repro` config as a training source (RecognitionTrainConfig)
_SOURCE_FIELDS = ("out", "real", "synthetic", "init", "init_revision")


@dataclass(frozen=True)
class Ref:
    id: str
    path: str


def _given(path: str) -> Ref:
    return Ref(f"given:{path}", path)


def real_source(config: ReproduceConfig) -> str:
    """The real data as a training source string (``org/name@revision`` for a Hub revision)."""
    rev = config.real_data_revision
    return f"{config.real_data}@{rev}" if rev else config.real_data


def recognition_spec(cfg: RecognitionTrainConfig) -> dict[str, Any]:
    """The fields that decide a trained model's weights, sources left out (the caller adds them as stage ids)."""
    return {k: v for k, v in to_dict(cfg.resolved()).items() if k not in RUN_FIELDS and k not in _SOURCE_FIELDS}


def tracking(config: ReproduceConfig, root: Path, folder: Path) -> dict[str, Any]:
    """A training stage's tracker fields (run fields: no stage spec holds them): the recipe's ``report_to``, and a
    logging folder of its own, named after the stage, under ``logging_dir`` (default ``OUT/logs``)."""
    if not config.report_to:
        return {}
    logs = Path(config.logging_dir) if config.logging_dir else Path(root) / "logs"
    return {"report_to": tuple(config.report_to), "logging_dir": str(logs / folder.name)}


def generator(config: ReproduceConfig, root: Path, progress: bool) -> tuple[Ref, Stage | None]:
    if config.generator is not None:
        return _given(config.generator), None
    cfg = dataclasses.replace(config.generator_train, out="", real_data=config.real_data,
                              real_data_revision=config.real_data_revision)

    def body(folder: Path) -> dict:
        from ..training.generator import train_generator

        train_generator(dataclasses.replace(cfg, out=str(folder / "model"), **tracking(config, root, folder)),
                        progress=progress)
        return {"model": "model"}

    # The trainer's own payload (run-only fields such as checkpoint_every left out) where it has one.
    payload = cfg.fingerprint_payload() if hasattr(cfg, "fingerprint_payload") else to_dict(cfg)
    spec = {"generator_train": {k: v for k, v in payload.items() if k not in ("out", "real_data", "real_data_revision")},
            "real": real_source(config)}
    stage = run_stage(root, "generator", spec, body, resumable=True)  # train_generator resumes its checkpoints
    return Ref(stage.id, str(stage.folder / "model")), stage


def _train(cfg: RecognitionTrainConfig, progress: bool, track: Callable[[Path], dict]) -> Callable[[Path], dict]:
    def body(folder: Path) -> dict:
        from ..training.recognition import train_recognition  # the trainer imports lazily: it is heavy

        result = train_recognition(dataclasses.replace(cfg, out=str(folder / "model"), **track(folder)),
                                   progress=progress)
        return {"model": "model", "steps": result.steps, "train_seconds": result.seconds, "metrics": result.metrics}

    return body


def discriminator(config: ReproduceConfig, root: Path, progress: bool) -> tuple[Ref, Stage | None]:
    """The real-only discriminator: it chooses the pairs, and the arms start from it (``arm_init``)."""
    if config.discriminator is not None:
        return _given(config.discriminator), None
    cfg = dataclasses.replace(config.discriminator_train, out="", real=(real_source(config),), synthetic=(),
                              init=None, init_revision=None)
    spec = {"discriminator_train": recognition_spec(cfg), "real": cfg.real}
    stage = run_stage(root, "discriminator", spec, _train(cfg, progress, lambda f: tracking(config, root, f)),
                      resumable=True)
    return Ref(stage.id, str(stage.folder / "model")), stage


def _build_config(config: ReproduceConfig, strategy: str, gen: Ref, disc: Ref, **fields: Any) -> BuildConfig:
    return dataclasses.replace(config.build, strategy=strategy, generator=gen.path, generator_revision=None,
                               discriminator=disc.path, discriminator_revision=None, real_data=config.real_data,
                               real_data_revision=config.real_data_revision, **fields)


def plan(config: ReproduceConfig, root: Path, strategy: str, gen: Ref, disc: Ref) -> tuple[Ref, Stage]:
    """One plan file per strategy (tuples, weights, seeds), built as it is by every arm that uses it."""
    bc = _build_config(config, strategy, gen, disc)
    spec = {"plan": {f: getattr(bc, f) for f in PLAN_FIELDS}, "real_data": real_source(config),
            "generator": gen.id, "discriminator": disc.id}

    def body(folder: Path) -> dict:
        from ..synthesis.planning.make_plan import make_plan_file

        s = make_plan_file(bc, folder / "plan.parquet")
        return {"plan": "plan.parquet", "identities": s.identities, "images": s.images, "space": s.space,
                "chosen_mean_distance": s.chosen_mean, "all_mean_distance": s.all_mean,
                "chosen_percentile": s.chosen_percentile}

    stage = run_stage(root, f"plan-{strategy}", spec, body)
    return Ref(stage.id, str(stage.folder / "plan.parquet")), stage


def build(config: ReproduceConfig, root: Path, arm: str, plan_ref: Ref, gen: Ref, disc: Ref, repro: bool,
          progress: bool) -> tuple[Ref, Stage]:
    """The arm's synthetic set; resumable: an interrupted build keeps its finished shards (run_build resumes)."""
    strategy, mixing = ARM_BUILDS[arm]
    bc = _build_config(config, strategy, gen, disc, mixing=mixing, repro=repro, plan=plan_ref.path)
    spec = {**bc.content_config(), "generator": gen.id, "discriminator": disc.id, "plan": plan_ref.id}

    def body(folder: Path) -> dict:
        from ..synthesis.runner import run_build

        result = run_build(dataclasses.replace(bc, out=str(folder / "dataset")), progress=progress)
        if not result.complete:
            raise DataError(f"build {folder} did not complete", hint="re-run `scoremix-ds reproduce` to resume it")
        return {"dataset": "dataset", "rows": result.rows, "identities": result.identities}

    stage = run_stage(root, f"build-{arm}", spec, body, resumable=True, pinned=True)  # its manifest names the models
    return Ref(stage.id, str(stage.folder / "dataset")), stage


def arm_sources(arm: str, builds: dict[str, Ref]) -> tuple[Ref, ...]:
    """The synthetic sources an arm adds to the real data."""
    if arm == "real":
        return ()
    if arm == "repro":
        b = builds["distant"]
        return (Ref(b.id + REPRO_SUFFIX, b.path + REPRO_SUFFIX),)
    return (builds[arm],)


def train(config: ReproduceConfig, root: Path, arm: str, seed: int, synthetic: tuple[Ref, ...], init: Ref | None,
          progress: bool) -> tuple[Ref, Stage]:
    cfg = dataclasses.replace(config.train, out="", real=(real_source(config),),
                              synthetic=tuple(s.path for s in synthetic), init=init.path if init else None,
                              init_revision=None, seed=seed)
    spec = {"train": recognition_spec(cfg), "real": cfg.real, "synthetic": [s.id for s in synthetic],
            "init": init.id if init else None}
    # its checkpoints' fingerprint holds the synthetic sets' and the init model's absolute paths
    stage = run_stage(root, f"train-{arm}-s{seed}", spec, _train(cfg, progress, lambda f: tracking(config, root, f)),
                      resumable=True, pinned=bool(cfg.synthetic or cfg.init))
    return Ref(stage.id, str(stage.folder / "model")), stage


def evaluate(config: ReproduceConfig, root: Path, arm: str, seed: int, model: Ref,
             inputs: Callable[[int], list]) -> Stage:
    """Score ``model`` on the recipe's held-out pairs and benchmarks; ``inputs(image_size)`` opens them (once)."""
    settings = {k: v for k, v in to_dict(config.eval).items() if k not in ("device", "batch_size")}

    def body(folder: Path) -> dict:
        from ..evaluation import evaluate as run_eval
        from ..evaluation.report import to_dict as eval_dict
        from ..discriminators.loading import load_discriminator

        net = load_discriminator(model.path)
        fars = tuple(sorted(set(DEFAULT_FARS) | {config.eval.far, config.eval.ijb_far, config.eval.openset_far}))
        result = run_eval(net, inputs(getattr(net, "image_size", 112)), flip_tta=config.eval.flip_tta,
                          batch_size=config.eval.batch_size, device=config.eval.device, fars=fars,
                          model_name=f"{arm} seed {seed}")
        out = eval_dict(result)
        (folder / "eval.json").write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
        return out

    return run_stage(root, f"eval-{arm}-s{seed}", {"model": model.id, "eval": settings}, body)
