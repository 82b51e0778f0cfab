"""The typed recipe of ``scoremix-ds reproduce``: one TOML file in ``builders/`` names the whole experiment.

Top-level keys are :class:`ReproduceConfig`'s scalar fields; the sections are the library's own configs used as
templates, so a recipe can set every knob the trainers and the builder have, and is checked by their own rules::

    [generator_train]      GeneratorTrainConfig  (out / real_data are set by the pipeline)
    [discriminator_train]  RecognitionTrainConfig for the real-only discriminator (sources / init / out: pipeline)
    [build]                BuildConfig for every arm's synthetic set (strategy, mixing, plan, models: pipeline)
    [train]                RecognitionTrainConfig for every arm x seed (sources, init, seed, out: pipeline)
    [eval]                 EvalSettings: the held-out pairs and benchmarks every arm is scored on

Arms (the rows of the paper's strategy table) and what each adds to the real training data:

| arm                 | synthetic source                                                         |
|---------------------|--------------------------------------------------------------------------|
| ``real``            | none (real only)                                                         |
| ``repro``           | the ``distant`` build's ``repro`` config: each parent class sampled alone |
| ``random`` ... ``distant-condition`` | a ScoreMix build with that pair strategy            |
| ``condition-mixing``| AugGen-style condition mixing on the SAME plan (pairs, seeds) as ``distant`` |
| ``distant-triplets``| a ScoreMix build of 3-class mixes with the largest summed distance (K=3)  |
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from ..synthesis.config import BuildConfig
from ..core.errors import ConfigError
from ..maths.pair_strategies import get_strategy
from ..discriminators import BACKBONES
from ..core.recipes import check_mapping, load_recipe, resolve_recipe
from ..training.generator_config import GeneratorTrainConfig
from ..training.loop import check_report_to
from ..training.recognition_config import RecognitionTrainConfig
from .benchmarks import expected_name

logger = logging.getLogger(__name__)

# arm -> (pair strategy, mixing mode) of its build; "real" has no build, "repro" reads the distant build.
ARM_BUILDS: dict[str, tuple[str, str]] = {
    "random": ("random", "score"),
    "close": ("close", "score"),
    "distant": ("distant", "score"),
    "close-condition": ("close-condition", "score"),
    "distant-condition": ("distant-condition", "score"),
    "condition-mixing": ("distant", "condition"),  # one plan with `distant`: identical pairs and seeds
    "distant-triplets": ("distant-triplets", "score"),  # the paper's K=3 (pairs - triplets)
}
ARMS = ("real", "repro", *ARM_BUILDS)
ARM_INITS = ("discriminator", "scratch")

# Keys of each section that the pipeline sets itself (a recipe giving them would be silently overridden).
_OWNED = {
    "generator_train": ("out", "real_data", "real_data_revision", "stop_after",  # stop_after: an unfinished model
                        "report_to", "logging_dir"),  # trackers: the top-level keys, for every training stage
    "discriminator_train": ("out", "real", "synthetic", "init", "init_revision", "report_to", "logging_dir"),
    "build": ("strategy", "generator", "generator_revision", "discriminator", "discriminator_revision", "real_data",
              "real_data_revision", "plan", "plan_sha256", "mixing", "repro", "out", "shard", "num_shards"),
    "train": ("out", "real", "synthetic", "init", "init_revision", "seed", "report_to", "logging_dir"),
}


@dataclass(frozen=True)
class EvalSettings:
    # benchmarks.py forms; open set: "heldout:mnist-5k[7-9]:6000" draws pairs from classes NEITHER model saw
    benchmarks: tuple[str, ...] = ("heldout:mnist-5k[7-9]:3000",)
    pair_seed: int = 0  # held-out pairs are drawn with this seed: the same pairs for every arm and seed
    far: float = 1e-3  # the TAR@FAR column reported for pair benchmarks
    ijb_far: float = 1e-4  # the FAR of IJB-B/C's headline TAR in the table
    openset_far: float = 1e-4  # the FAR of an openset: benchmark's headline TAR (every pair of unseen identities)
    avg_over: tuple[str, ...] = ()  # benchmark names averaged into the table's Avg column (empty: all)
    flip_tta: bool = False  # faces: embed each image and its mirror (doubles the cost)
    batch_size: int = 256
    device: str = "cpu"

    def __post_init__(self) -> None:
        if not self.benchmarks:
            raise ConfigError("[eval] names no benchmark", hint='e.g. benchmarks = ["heldout:mnist-5k[7-9]:3000"]')
        if self.batch_size < 1:
            raise ConfigError("[eval] batch_size must be >= 1", hint="check the recipe's [eval]")
        for name in ("far", "ijb_far", "openset_far"):
            if not 0.0 < getattr(self, name) < 1.0:
                raise ConfigError(f"[eval] {name} must be in (0, 1), got {getattr(self, name)}", hint="e.g. 1e-3")
        names = [expected_name(spec) for spec in self.benchmarks]
        unknown = [n for n in self.avg_over if n not in names]
        if unknown and None not in names:
            raise ConfigError(f"[eval] avg_over names '{unknown[0]}', which is not among the benchmarks {names}",
                              hint="avg_over takes benchmark names: a .bin file's stem, ijbb, ijbc, tinyface, NAME")


@dataclass(frozen=True)
class _Top:
    out: str = "reproduce-report"  # report folder; finished stages are cached under OUT/stages/
    real_data: str = "mnist-5k-train[0-6]"  # what the generator AND the discriminator train on (one dataset)
    real_data_revision: str | None = None
    seeds: tuple[int, ...] = (0, 1, 2)  # training seeds of every arm (the table's mean +- std is over these)
    arms: tuple[str, ...] = ARMS
    arm_init: str = "discriminator"  # every arm fine-tunes the real-only discriminator, or "scratch"
    generator: str | None = None  # a given generator (folder / Hub id) instead of training one
    discriminator: str | None = None  # a given real-only discriminator instead of training one
    # experiment trackers of every training stage it runs (accelerate's log_with: tensorboard, wandb, all; () none),
    # each stage a run in LOGGING_DIR/<stage>/ (None: OUT/logs); run-only, so no stage's fingerprint changes
    report_to: tuple[str, ...] = ()
    logging_dir: str | None = None


@dataclass(frozen=True)
class ReproduceConfig(_Top):
    """The whole experiment: the top-level fields above plus one template config per section (module docstring)."""

    generator_train: GeneratorTrainConfig | None = None
    discriminator_train: RecognitionTrainConfig | None = None
    build: BuildConfig = BuildConfig()
    train: RecognitionTrainConfig = RecognitionTrainConfig()
    eval: EvalSettings = EvalSettings()

    def __post_init__(self) -> None:
        if not self.arms or len(set(self.arms)) != len(self.arms):
            raise ConfigError("arms must list each arm once", hint=f"arms take {', '.join(ARMS)}")
        unknown = [a for a in self.arms if a not in ARMS]
        if unknown:
            raise ConfigError(f"unknown arm '{unknown[0]}'", hint=f"arms take {', '.join(ARMS)}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ConfigError("seeds must list at least one seed, each once", hint="e.g. seeds = [0, 1, 2]")
        check_report_to(self.report_to)
        if self.arm_init not in ARM_INITS:
            raise ConfigError(f"unknown arm_init '{self.arm_init}'", hint=f"arm_init takes {', '.join(ARM_INITS)}")
        if (self.generator is None) == (self.generator_train is None):
            raise ConfigError("give exactly one of `generator` (a model) and [generator_train]", hint="check the recipe")
        if (self.discriminator is None) == (self.discriminator_train is None):
            raise ConfigError("give exactly one of `discriminator` (a model) and [discriminator_train]",
                              hint="check the recipe")
        for name, cfg in (("discriminator_train", self.discriminator_train), ("train", self.train)):
            if cfg is not None and cfg.backbone not in BACKBONES:
                raise ConfigError(f"[{name}] unknown backbone '{cfg.backbone}'", hint=f"backbones: {', '.join(BACKBONES)}")
        for arm in self.arms:
            if arm in ARM_BUILDS:
                get_strategy(ARM_BUILDS[arm][0])
        if len(self.seeds) < 3:
            logger.warning("%d seed(s): the table's standard deviation needs at least 3", len(self.seeds))

    @property
    def build_arms(self) -> tuple[str, ...]:
        """Arms that need a build (``repro`` needs the ``distant`` one)."""
        need = [a for a in self.arms if a in ARM_BUILDS]
        if "repro" in self.arms and "distant" not in need:
            need.append("distant")
        return tuple(need)

    def builds_repro(self, arm: str) -> bool:
        """Whether ``arm``'s build also writes the ``repro`` rows: only the ``distant`` build, when ``repro`` is run."""
        return arm == "distant" and "repro" in self.arms


def _section(cls: type, data: dict[str, Any], name: str, source: str) -> Any:
    values = data.get(name)
    if not isinstance(values, dict):
        raise ConfigError(f"{source}: [{name}] must be a table", hint=f"write it as a [{name}] section")
    owned = sorted(set(values) & set(_OWNED.get(name, ())))
    if owned:
        raise ConfigError(f"{source}: [{name}] sets {', '.join(owned)}, which reproduce decides for each stage",
                          hint=f"remove {', '.join(owned)} from [{name}]")
    return cls(**check_mapping(cls, values, f"{source} [{name}]"))


def config_from_mapping(data: dict[str, Any], source: str = "recipe") -> ReproduceConfig:
    """Check every key and type (top level and sections) and build the config; one line per problem."""
    sections = {"generator_train": GeneratorTrainConfig, "discriminator_train": RecognitionTrainConfig,
                "build": BuildConfig, "train": RecognitionTrainConfig, "eval": EvalSettings}
    top = {k: v for k, v in data.items() if k not in sections}
    kwargs = check_mapping(_Top, top, source)
    for name, cls in sections.items():
        if name in data:
            kwargs[name] = _section(cls, data, name, source)
    return ReproduceConfig(**kwargs)


def load_reproduce_config(recipe: str, overrides: dict[str, Any] | None = None) -> ReproduceConfig:
    """The recipe (a file, or a name in ``builders/``) with top-level ``overrides`` (``None`` = not given)."""
    path = resolve_recipe(recipe)
    data = load_recipe(path)
    data.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return config_from_mapping(data, f"recipe {path.name}")

