"""ScoreMix per-image sampling time over plain class-conditional sampling, same model/steps/batch/scheduler.

Prints two ratios measured in this one process (absolute times on shared machines mean little):

* pair mix without guidance / plain            (arithmetic floor 2.0: two conditions per step; target <= 2.1)
* pair mix with classifier-free guidance / plain with CFG
                                               (floor 1.5: three evaluations against two; target <= 1.6)

Runs are interleaved (plain, mix, plain, mix, ...) and the median of each is used.

    python benchmarks/bench_sampling.py [--generator default] [--batch 64] [--steps 25] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from scoremix_ds.generators.loading import load_generator
from scoremix_ds.sampling.schedulers import make_scheduler
from scoremix_ds.sampling.scoremix import scoremix_sample


def timed(gen, classes, weights, seeds, steps, guidance, scheduler) -> float:
    start = time.perf_counter()
    scoremix_sample(gen, make_scheduler(scheduler, gen.scheduler_config), classes, weights, seeds, steps, guidance)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--generator", default="default")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--scheduler", default="ddim")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    gen = load_generator(args.generator)
    b = args.batch
    seeds = list(range(b))
    single = torch.arange(b).remainder(gen.num_classes)[:, None]
    pair = torch.stack([single[:, 0], (single[:, 0] + 1).remainder(gen.num_classes)], dim=1)
    w1, w2 = torch.ones(b, 1), torch.full((b, 2), 0.5)

    print(f"generator={args.generator} batch={b} steps={args.steps} scheduler={args.scheduler} threads={args.threads}")
    timed(gen, pair, w2, seeds, 2, 1.0, args.scheduler)  # warm-up
    results = {}
    for guidance in (1.0, 2.0):
        if guidance != 1.0 and gen.null_class is None:
            continue
        plain, mixed = [], []
        for _ in range(args.repeats):
            plain.append(timed(gen, single, w1, seeds, args.steps, guidance, args.scheduler))
            mixed.append(timed(gen, pair, w2, seeds, args.steps, guidance, args.scheduler))
        p, m = statistics.median(plain), statistics.median(mixed)
        results[guidance] = m / p
        label = "no guidance" if guidance == 1.0 else f"CFG g={guidance}"
        print(f"{label:>14}: plain {1000 * p / b:7.2f} ms/img  mix {1000 * m / b:7.2f} ms/img  ratio {m / p:.3f}")
    # The floors assume a forward's cost is linear in its rows; on a CPU it is not, so show the per-row cost at the
    # batch sizes the four runs use (B, 2B, 3B rows per forward).
    x = torch.randn(b, *gen.sample_shape)
    per_row = {}
    with torch.inference_mode():
        for mult in (1, 2, 3):
            xs, ts = x.repeat(mult, 1, 1, 1), []
            labels = torch.zeros(len(xs), dtype=torch.long)
            gen.predict(xs, torch.tensor(500), labels)
            for _ in range(args.repeats):
                start = time.perf_counter()
                gen.predict(xs, torch.tensor(500), labels)
                ts.append(time.perf_counter() - start)
            per_row[mult] = statistics.median(ts) / len(xs)
    print("forward cost per row: " + ", ".join(f"{m * b} rows {1e3 * c:.3f} ms ({c / per_row[1]:.2f}x of {b} rows)"
                                              for m, c in per_row.items()))
    print(f"RATIO pair/plain (no guidance) = {results[1.0]:.3f}  (target <= 2.1, floor 2.0)")
    if 2.0 in results:
        print(f"RATIO pair/plain (CFG)         = {results[2.0]:.3f}  (target <= 1.6, floor 1.5)")


if __name__ == "__main__":
    main()
