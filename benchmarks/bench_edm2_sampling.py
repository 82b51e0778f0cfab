"""Issue 22, part 5b: what EDM2 sampling costs on CPU, as ratios measured in ONE run.

PROCESS CPU seconds per image (``time.process_time``, ``torch.set_num_threads(1)``: other jobs on the machine do not
count) of ``scoremix_sample`` on the glyph size (32x32, 1 channel, 200 classes), ``--images`` images per setting:

1. **Pair mix vs plain, with autoguidance**: an equal-weight 2-class ScoreMix against one class, both autoguided at
   w = 1.7, once with the preset's smaller guide (edm2-cpu-guide, 0.43M parameters) and once with a same-size guide
   (a second edm2-cpu, as the early-EMA guide is): ``pair / plain`` per guide. A mix evaluates both networks on
   both classes (one batched forward each), so the ratio's floor is 2.0 whatever the guide; the guide's share of a
   plain sample, ``guided / unguided``, is what the smaller guide saves (2.0 for a same-size guide).
2. **Heun vs DDIM**: edm2-cpu with ``edm-heun`` at 16 and 32 steps (2N - 1 network evaluations, autoguided with
   the smaller guide at w = 1.7) against unet-small with DDIM at the glyph build's 20 steps and classifier-free
   guidance 3 (one batched forward of 2 conditions per step). Which settings give equal fidelity is measured by
   ``benchmarks/edm2_quality.py`` (docs/performance.md, "EDM2").

The networks are freshly initialised (the cost of a forward does not depend on the weights); ``--unet DIR`` measures
a trained unet-small folder instead of the embedded default (unet-small, MNIST: 10 classes, same size).

    python benchmarks/bench_edm2_sampling.py [--images 20] [--steps 16] [--repeats 1]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from scoremix_ds.generators.architectures import get_architecture
from scoremix_ds.generators.edm2.generator import edm2_generator
from scoremix_ds.generators.loading import load_generator
from scoremix_ds.sampling.schedulers import make_scheduler
from scoremix_ds.sampling.scoremix import scoremix_sample

CLASSES, SIZE, W = 200, 32, 1.7


def _net(name: str, seed: int) -> torch.nn.Module:
    arch = get_architecture(name)
    torch.manual_seed(seed)
    return arch.build(SIZE, 1, CLASSES, arch.resolve(name, {})).eval()


REPEATS = 1  # set by --repeats: the least of that many runs (other jobs only ever add CPU time: shared caches)


def cpu_per_image(gen, scheduler: str, k: int, images: int, steps: int, guidance: float, weak=None) -> float:
    classes = torch.stack([torch.arange(images) % gen.num_classes, (torch.arange(images) + 1) % gen.num_classes],
                          dim=1)[:, :k]
    weights = torch.full(classes.shape, 1.0 / k)
    best = float("inf")
    for _ in range(REPEATS):
        t0 = time.process_time()
        scoremix_sample(gen, make_scheduler(scheduler, gen.scheduler_config), classes, weights, list(range(images)),
                        steps, guidance, weak=weak)
        best = min(best, time.process_time() - t0)
    return best / images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--steps", type=int, default=16, help="edm-heun steps of part 1")
    parser.add_argument("--unet", default=None, help="a unet-small folder (default: the embedded one)")
    parser.add_argument("--repeats", type=int, default=1, help="runs per setting; the least CPU time counts")
    args = parser.parse_args()
    global REPEATS
    REPEATS = args.repeats
    torch.set_num_threads(1)
    names = tuple(f"c{i}" for i in range(CLASSES))
    main_net = _net("edm2-cpu", 0)
    small = edm2_generator(main_net, names, None, {}, guide_net=_net("edm2-cpu-guide", 1))
    same = edm2_generator(main_net, names, None, {}, guide_net=_net("edm2-cpu", 2))
    n, s = args.images, args.steps
    cpu_per_image(small, "edm-heun", 1, 2, 2, W)  # warm-up (allocator, first-call paths)
    cost = {
        "edm2_plain_unguided": cpu_per_image(small, "edm-heun", 1, n, s, 1.0),
        "edm2_pair_unguided": cpu_per_image(small, "edm-heun", 2, n, s, 1.0),
        "edm2_plain_small_guide": cpu_per_image(small, "edm-heun", 1, n, s, W),
        "edm2_pair_small_guide": cpu_per_image(small, "edm-heun", 2, n, s, W),
        "edm2_plain_same_size_guide": cpu_per_image(same, "edm-heun", 1, n, s, W),
        "edm2_pair_same_size_guide": cpu_per_image(same, "edm-heun", 2, n, s, W),
    }
    unet = load_generator(args.unet)
    cpu_per_image(unet, "ddim", 1, 2, 2, 3.0)
    cost["unet_small_ddim20_cfg3_plain"] = cpu_per_image(unet, "ddim", 1, n, 20, 3.0)
    cost["edm2_heun16_small_guide_plain"] = cost["edm2_plain_small_guide"] if s == 16 else \
        cpu_per_image(small, "edm-heun", 1, n, 16, W)
    cost["edm2_heun32_small_guide_plain"] = cpu_per_image(small, "edm-heun", 1, n, 32, W)
    ratios = {
        "pair_over_plain_small_guide": cost["edm2_pair_small_guide"] / cost["edm2_plain_small_guide"],
        "pair_over_plain_same_size_guide": cost["edm2_pair_same_size_guide"] / cost["edm2_plain_same_size_guide"],
        "pair_over_plain_unguided": cost["edm2_pair_unguided"] / cost["edm2_plain_unguided"],
        "small_guided_over_unguided_plain": cost["edm2_plain_small_guide"] / cost["edm2_plain_unguided"],
        "same_size_guided_over_unguided_plain": cost["edm2_plain_same_size_guide"] / cost["edm2_plain_unguided"],
        "pair_same_size_over_pair_small_guide": cost["edm2_pair_same_size_guide"] / cost["edm2_pair_small_guide"],
        "heun16_over_ddim20": cost["edm2_heun16_small_guide_plain"] / cost["unet_small_ddim20_cfg3_plain"],
        "heun32_over_ddim20": cost["edm2_heun32_small_guide_plain"] / cost["unet_small_ddim20_cfg3_plain"],
    }
    print(json.dumps({"threads": 1, "images_per_setting": n, "repeats": args.repeats, "edm_heun_steps": s, "w": W,
                      "cpu_seconds_per_image": {k: round(v, 4) for k, v in cost.items()},
                      "ratios": {k: round(v, 3) for k, v in ratios.items()}}, indent=2))


if __name__ == "__main__":
    main()
