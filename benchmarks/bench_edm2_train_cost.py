"""CPU cost of one generator training step: the glyph benchmark's unet-small recipe (8,000-step min-SNR-5,
builders/reproduce-glyphs-replicate.toml [generator_train]) against edm2-cpu, with and without its guide trained
alongside (edm2-cpu-guide, for the first steps/8). Gives the edm2-cpu step count that costs the same CPU time as
8,000 unet-small steps (issue 22, part 5a: "at equal CPU time").

PROCESS CPU time (``time.process_time``) with ``torch.set_num_threads(1)``, not wall time, so other jobs on the
machine do not count. Each recipe runs the REAL trainer (:func:`scoremix_ds.training.generator.train_generator`)
twice from scratch, to ``--warm`` and to ``--warm + --steps`` steps (``stop_after``, one checkpoint at the stop);
the per-step cost is the difference divided by ``--steps``, so start-up, data loading and the checkpoint cancel
(a first 1-step run, not counted, takes the one-time costs: lazy imports, the data's first read).

    python benchmarks/bench_edm2_train_cost.py [--steps 100] [--warm 20] [--target 8000]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from scoremix_ds.training.generator import train_generator
from scoremix_ds.training.generator_config import GeneratorTrainConfig

DATA = "glyphs-han-train[200-399]"
# builders/reproduce-glyphs-replicate.toml [generator_train]
UNET = GeneratorTrainConfig(architecture="unet-small", real_data=DATA, image_size=32, channels=1, steps=8000,
                            batch_size=64, learning_rate=1e-3, warmup_steps=200, label_dropout=0.1, ema_decay=0.999,
                            seed=0, snr_gamma=5.0, device="cpu", checkpoint_every=0)
# docs/edm2.md's example: EDM2's own learning rate, the preset's guide for steps/8 (guide_steps set below)
EDM2 = GeneratorTrainConfig(architecture="edm2-cpu", real_data=DATA, image_size=32, channels=1, steps=8000,
                            batch_size=64, learning_rate=1e-2, warmup_steps=200, label_dropout=0.0, seed=0,
                            device="cpu", checkpoint_every=0)


def cpu_seconds(config: GeneratorTrainConfig, stop: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.process_time()
        train_generator(replace(config, out=str(Path(tmp) / "g"), stop_after=stop), progress=False)
        return time.process_time() - t0


def per_step(config: GeneratorTrainConfig, warm: int, steps: int) -> float:
    cpu_seconds(config, 1)  # first-call costs (lazy imports, the data's first read) go to a run that is not counted
    return (cpu_seconds(config, warm + steps) - cpu_seconds(config, warm)) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--warm", type=int, default=20)
    parser.add_argument("--target", type=int, default=8000, help="unet-small steps to match")
    args = parser.parse_args()
    torch.set_num_threads(1)
    unet = per_step(UNET, args.warm, args.steps)
    with_guide = per_step(replace(EDM2, guide_steps=EDM2.steps), args.warm, args.steps)  # guide on every timed step
    without = per_step(replace(EDM2, guide_steps=0), args.warm, args.steps)
    budget = unet * args.target
    # n edm2 steps, the guide on the first n // 8: n/8 * with_guide + 7n/8 * without = budget
    n = int(budget / (with_guide / 8 + without * 7 / 8))
    result = {"threads": 1, "batch_size": UNET.batch_size, "timed_steps": args.steps,
              "unet_small_cpu_s_per_step": round(unet, 4), "edm2_cpu_with_guide_cpu_s_per_step": round(with_guide, 4),
              "edm2_cpu_alone_cpu_s_per_step": round(without, 4),
              f"unet_small_{args.target}_steps_cpu_s": round(budget, 1), "edm2_cpu_equal_cpu_steps": n,
              "ratio_edm2_alone_over_unet": round(without / unet, 3),
              "ratio_edm2_with_guide_over_unet": round(with_guide / unet, 3)}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
