"""An ablation's arm against the main table's arms on the same seeds: the difference of means and its standard error
``sqrt(s_a^2/n_a + s_b^2/n_b)`` (the rule of ``scoremix_ds/reproduce/summary.py``), for every open-set metric.

    python tools/compare_ablation.py docs/reproduce-glyphs.json docs/reproduce-glyphs-ablate-generator.json \\
        --arm distant --against real,distant --seeds 0,1,2

Prints one line per metric and reference arm; ``--json FILE`` also writes them.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

BENCHMARK = "openset:glyphs-han-verify"


def seed_values(arm: dict, metric: str, seeds: set[int], benchmark: str) -> list[float]:
    values = arm["benchmarks"][benchmark][metric]["values"]
    return [v for s, v in zip(arm["seeds"], values) if s in seeds]


def mean_std(xs: list[float]) -> tuple[float, float, int]:
    m = sum(xs) / len(xs)
    return m, math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)), len(xs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("main_report")
    parser.add_argument("ablation_report")
    parser.add_argument("--arm", default="distant", help="the ablation's arm")
    parser.add_argument("--against", default="real,distant", help="the main table's arms to compare it with")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--benchmark", default=BENCHMARK)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    main_arms = json.loads(Path(args.main_report).read_text())["table"]["arms"]
    ablation = json.loads(Path(args.ablation_report).read_text())["table"]["arms"][args.arm]
    seeds = {int(s) for s in args.seeds.split(",")}
    rows = []
    for metric in ablation["benchmarks"][args.benchmark]:
        new = mean_std(seed_values(ablation, metric, seeds, args.benchmark))
        for ref in args.against.split(","):
            old = mean_std(seed_values(main_arms[ref], metric, seeds, args.benchmark))
            se = math.sqrt(new[1] ** 2 / new[2] + old[1] ** 2 / old[2])
            rows.append({"metric": metric, "arm": args.arm, "against": ref, "seeds": sorted(seeds),
                         "ablation": {"mean": new[0], "std": new[1]}, "main": {"mean": old[0], "std": old[1]},
                         "difference": new[0] - old[0], "se": se})
            print(f"{metric}: {args.arm} (ablation) {100 * new[0]:.2f} ± {100 * new[1]:.2f} - {ref} (main) "
                  f"{100 * old[0]:.2f} ± {100 * old[1]:.2f} = {100 * (new[0] - old[0]):+.2f} pts (SE {100 * se:.2f})")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
