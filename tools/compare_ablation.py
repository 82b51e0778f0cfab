"""An ablation's arm against the main table's arms on the same seeds: the difference of means and its standard error,
by the table's own rule (``summarise`` and ``compare`` of ``scoremix_ds/reproduce/summary.py``), for every open-set
metric.

    python tools/compare_ablation.py docs/reproduce-glyphs.json docs/reproduce-glyphs-ablate-generator.json \\
        --arm distant --against real,distant --seeds 0,1,2

Prints one line per metric and reference arm; ``--json FILE`` also writes them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from scoremix_ds.reproduce.summary import Stat, compare, summarise

BENCHMARK = "openset:glyphs-han-verify"


def on_seeds(arm: dict, metric: str, seeds: set[int], benchmark: str) -> Stat:
    """Mean and sample std of ``metric`` over the arm's runs with one of ``seeds``."""
    values = arm["benchmarks"][benchmark][metric]["values"]
    return summarise([v for s, v in zip(arm["seeds"], values) if s in seeds])


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
        new = on_seeds(ablation, metric, seeds, args.benchmark)
        for ref in args.against.split(","):
            old = on_seeds(main_arms[ref], metric, seeds, args.benchmark)
            c = compare(args.arm, new, ref, old)
            rows.append({"metric": metric, "arm": args.arm, "against": ref, "seeds": sorted(seeds),
                         "ablation": {"mean": new.mean, "std": new.std}, "main": {"mean": old.mean, "std": old.std},
                         "difference": c.diff, "se": c.se})
            print(f"{metric}: {args.arm} (ablation) {100 * new.mean:.2f} ± {100 * new.std:.2f} - {ref} (main) "
                  f"{100 * old.mean:.2f} ± {100 * old.std:.2f} = {100 * c.diff:+.2f} pts (SE {100 * c.se:.2f})")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
