"""``run_reproduce``: the paper's experiment from one recipe, every finished stage cached (a re-run continues).

Order: generator -> real-only discriminator -> plan per strategy -> build per arm -> train + evaluate per arm x seed
-> report. Every arm trains for the same ``[train]`` steps with the same seeds and, with ``arm_init =
"discriminator"`` (the default), starts from the real-only discriminator and fine-tunes on real + its synthetic set,
so the arms differ only in the synthetic data they add (``real`` fine-tunes on real data alone for the same budget).
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.outputs import OutputLock, atomic_write, claim_folder
from ..core.recipes import to_dict
from . import stages
from .cache import DONE, STAGES, Stage
from .config import ARM_BUILDS, ReproduceConfig
from .report import write_report
from .summary import arm_table

logger = logging.getLogger(__name__)

MARKER = ".scoremix-reproduce"  # written into OUT when reproduce claims it: the folder is this tool's from then on
_STAGE_ID = re.compile(r"[a-z0-9-]+-[0-9a-f]{12}")  # a cached stage's folder: name-fingerprint


@dataclass(frozen=True)
class ReproduceResult:
    out: Path
    files: dict[str, Path]  # markdown, json, plot
    stages_run: int
    stages_cached: int
    seconds: float

    def summary(self) -> str:
        return (f"wrote {self.files['markdown']}, {self.files['json'].name} and {self.files['plot'].name} "
                f"({self.stages_run} stages run, {self.stages_cached} cached, {self.seconds:.0f}s)")


class _EvalInputs:
    """The evaluation inputs, opened once per image size and only when an evaluation stage runs."""

    def __init__(self, config: ReproduceConfig) -> None:
        self.config = config
        self.cache: dict[int, list] = {}

    def __call__(self, image_size: int) -> list:
        if image_size not in self.cache:
            from .benchmarks import open_benchmark

            ev = self.config.eval
            self.cache[image_size] = [open_benchmark(spec, image_size, ev.pair_seed) for spec in ev.benchmarks]
        return self.cache[image_size]


def run_reproduce(config: ReproduceConfig, progress: bool = True, title: str = "ScoreMix strategy table"
                  ) -> ReproduceResult:
    """Run (or continue) every stage of ``config`` and write the report into ``config.out``."""
    started = time.perf_counter()
    root = claim_folder(config.out, "reproduce", signature=_written_by_reproduce)
    with OutputLock(root):
        if not (root / MARKER).is_file():
            atomic_write(root / MARKER, json.dumps({"written_by": "scoremix-ds reproduce"}) + "\n")
        return _run(config, root, progress, title, started)


def _written_by_reproduce(out: Path) -> bool:
    """A folder `reproduce` wrote: its marker, or (folders from before the marker) a stage cache holding at least
    one stage this tool finished. A report.md and a report.json alone are NOT a signature: any tool writes those."""
    if (out / MARKER).is_file():
        return True
    stages_dir = out / STAGES
    return stages_dir.is_dir() and any(_STAGE_ID.fullmatch(p.name) and (p / DONE).is_file()
                                       for p in stages_dir.iterdir())


def _run(config: ReproduceConfig, root: Path, progress: bool, title: str, started: float) -> ReproduceResult:
    done: list[Stage] = []

    def keep(ref_stage):
        ref, stage = ref_stage
        if stage is not None:
            done.append(stage)
        return ref

    gen = keep(stages.generator(config, root, progress))
    disc = keep(stages.discriminator(config, root, progress))
    plans, builds = {}, {}
    for arm in config.build_arms:
        strategy = ARM_BUILDS[arm][0]
        if strategy not in plans:
            plans[strategy] = keep(stages.plan(config, root, strategy, gen, disc))
        repro = config.builds_repro(arm)
        builds[arm] = keep(stages.build(config, root, arm, plans[strategy], gen, disc, repro, progress))

    init = disc if config.arm_init == "discriminator" else None
    inputs = _EvalInputs(config)
    evals: dict[str, dict[int, list]] = {}
    for arm in config.arms:
        for seed in config.seeds:
            model = keep(stages.train(config, root, arm, seed, stages.arm_sources(arm, builds), init, progress))
            stage = stages.evaluate(config, root, arm, seed, model, inputs)
            done.append(stage)
            evals.setdefault(arm, {})[seed] = stage.result["benchmarks"]

    table = arm_table(evals, config.eval.far, config.eval.ijb_far, config.eval.avg_over, config.eval.openset_far)
    files = write_report(root, table, title, _context(config), {"recipe": to_dict(config), "stages": _stages(done)})
    cached = sum(s.cached for s in done)
    result = ReproduceResult(root, files, len(done) - cached, cached, time.perf_counter() - started)
    logger.info(result.summary())
    return result


def _context(config: ReproduceConfig) -> list[str]:
    t = config.train
    init = "fine-tunes the real-only discriminator" if config.arm_init == "discriminator" else "trains from scratch"
    gen = config.generator or f"trained here ({config.generator_train.steps} steps)"
    return [f"- real data (generator and discriminator): `{config.real_data}`",
            f"- generator: {gen}; pairs per arm: {config.build.pairs} x {config.build.per_identity} images, "
            f"{config.build.steps} {config.build.scheduler} steps, guidance {config.build.guidance:g}",
            f"- every arm {init}: {t.backbone} + {t.head}, {t.steps} steps of {t.batch_size}, "
            f"synthetic_ratio {t.synthetic_ratio:g}, seeds {list(config.seeds)}",
            f"- evaluation: {', '.join(config.eval.benchmarks)} (held-out pairs drawn with seed {config.eval.pair_seed})"]


def _stages(done: list[Stage]) -> list[dict[str, Any]]:
    return [{"id": s.id, "cached": s.cached, "seconds": round(s.seconds, 2)} for s in done]
