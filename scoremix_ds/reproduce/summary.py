"""The strategy table's numbers (pure, no IO): per arm, mean and standard deviation over training seeds.

For ``n`` seeds with values ``x_1..x_n``::

    mean = (1/n) sum_i x_i          std = sqrt( sum_i (x_i - mean)^2 / (n - 1) )   (sample std; None when n < 2)

Each benchmark contributes ONE headline number per seed: 10-fold verification accuracy (``.bin`` files and held-out
pairs), TAR at ``ijb_far`` (IJB-B/C), rank-1 accuracy (TinyFace), TAR at ``openset_far`` over every pair
(``openset:``; its TAR@1e-4, TAR@1e-5 and rank-1 are reported beside it). ``Avg`` is, per seed, the mean of the headline
numbers over benchmarks (or those named in ``avg_over``, e.g. the paper's five ``.bin`` sets), then mean/std over
seeds. A comparison of two arms reports
the difference of means and its standard error ``se = sqrt(s_a^2/n_a + s_b^2/n_b)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence


@dataclass(frozen=True)
class Stat:
    mean: float | None
    std: float | None  # sample std over seeds (n - 1); None for fewer than 2 values
    n: int
    values: tuple[float, ...]


def summarise(values: Sequence[float | None]) -> Stat:
    """Mean and sample std of the finite values (``None`` / NaN are dropped)."""
    xs = tuple(float(v) for v in values if v is not None and math.isfinite(float(v)))
    if not xs:
        return Stat(None, None, 0, ())
    mean = sum(xs) / len(xs)
    std = math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else None
    return Stat(mean, std, len(xs), xs)


def _tar(bench: Mapping[str, Any], far: float) -> float | None:
    for t in bench.get("tar_at_far", ()):
        if math.isclose(t["far"], far, rel_tol=1e-9):
            return t["tar"]
    return None


def far_key(far: float) -> str:
    return f"tar@{far:g}"


OPEN_SET_REPORTED = (1e-4, 1e-5)  # TAR@FAR columns of an open-set benchmark, beside its headline FAR


def metrics_of(bench: Mapping[str, Any], far: float, ijb_far: float, openset_far: float = 1e-4
               ) -> dict[str, float | None]:
    """The scalar metrics of one benchmark result (``evaluation.report.to_dict`` form) that the table reports."""
    if bench["kind"] == "openset":
        fars = sorted({openset_far, *OPEN_SET_REPORTED}, reverse=True)
        return {**{far_key(f): _tar(bench, f) for f in fars}, "rank1": bench["rank_accuracy"].get("1")}
    if bench["kind"] == "verification":
        return {"accuracy": bench["accuracy"]["mean"], "auc": bench["auc"], "eer": bench["eer"],
                far_key(far): _tar(bench, far)}
    if bench["kind"] == "ijb":
        return {far_key(ijb_far): _tar(bench, ijb_far), "auc": bench["auc"]}
    return {"rank1": bench["rank_accuracy"].get("1")}


def headline_key(kind: str, ijb_far: float, openset_far: float = 1e-4) -> str:
    return {"verification": "accuracy", "ijb": far_key(ijb_far), "openset": far_key(openset_far)}.get(kind, "rank1")


def arm_table(evals: Mapping[str, Mapping[int, Sequence[Mapping[str, Any]]]], far: float, ijb_far: float,
              avg_over: Sequence[str] = (), openset_far: float = 1e-4) -> dict[str, Any]:
    """``evals[arm][seed]`` = that model's benchmark results -> per arm: per benchmark metric ``Stat`` and ``avg``
    (the mean of the headline numbers of the benchmarks named in ``avg_over``; all when empty)."""
    rows: dict[str, Any] = {}
    headlines: dict[str, str] = {}
    for arm, by_seed in evals.items():
        per_metric: dict[str, dict[str, list]] = {}
        per_seed_avg = []
        for seed in sorted(by_seed):
            heads = []
            for bench in by_seed[seed]:
                key = headline_key(bench["kind"], ijb_far, openset_far)
                headlines[bench["name"]] = key
                values = metrics_of(bench, far, ijb_far, openset_far)
                for metric, value in values.items():
                    per_metric.setdefault(bench["name"], {}).setdefault(metric, []).append(value)
                if not avg_over or bench["name"] in avg_over:
                    heads.append(values[key])
            finite = [h for h in heads if h is not None]
            per_seed_avg.append(sum(finite) / len(finite) if finite else None)
        rows[arm] = {"seeds": sorted(by_seed),
                     "benchmarks": {b: {m: summarise(v) for m, v in ms.items()} for b, ms in per_metric.items()},
                     "avg": summarise(per_seed_avg)}
    return {"headline": headlines, "avg_over": list(avg_over) or sorted(headlines), "arms": rows}


@dataclass(frozen=True)
class Comparison:
    a: str
    b: str
    diff: float  # mean(a) - mean(b)
    se: float | None  # sqrt(s_a^2/n_a + s_b^2/n_b); None without a spread on both sides

    @property
    def ratio(self) -> float | None:
        return self.diff / self.se if self.se else None


def compare(a: str, sa: Stat, b: str, sb: Stat) -> Comparison | None:
    if sa.mean is None or sb.mean is None:
        return None
    se = math.sqrt(sa.std ** 2 / sa.n + sb.std ** 2 / sb.n) if sa.std is not None and sb.std is not None else None
    return Comparison(a, b, sa.mean - sb.mean, se)


COMPARISONS = (("distant", "close"), ("distant", "condition-mixing"), ("distant", "random"), ("distant", "real"),
               ("distant", "distant-triplets"), ("distant-condition", "close-condition"))


def comparisons(table: Mapping[str, Any]) -> list[Comparison]:
    """The paper's questions, where both arms ran: far vs close, score vs condition mixing, vs random, vs real,
    pairs vs triplets, far vs close in the condition space."""
    arms = table["arms"]
    out = []
    for a, b in COMPARISONS:
        if a in arms and b in arms:
            c = compare(a, arms[a]["avg"], b, arms[b]["avg"])
            if c is not None:
                out.append(c)
    return out
