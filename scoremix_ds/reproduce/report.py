"""The report folder's files: ``report.md`` (the strategy table), ``report.json`` (every number) and ``report.png``
(a bar per arm: mean ``Avg`` over seeds, error bar one standard deviation, a dot per seed).

Percentages in the markdown and the plot; fractions in the JSON (``None`` where a value is undefined).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..core.card_text import plot_safe
from .summary import Comparison, Stat, comparisons

ARM_DATA = {
    "real": "none (real only)",
    "repro": "parents sampled alone (the distant build's repro)",
    "random": "ScoreMix, random pairs",
    "close": "ScoreMix, close pairs (discriminator space)",
    "distant": "ScoreMix, distant pairs (discriminator space)",
    "close-condition": "ScoreMix, close pairs (generator condition space)",
    "distant-condition": "ScoreMix, distant pairs (generator condition space)",
    "condition-mixing": "condition mixing (AugGen), the distant plan",
    "distant-triplets": "ScoreMix, distant triplets (K=3, discriminator space)",
}


def fmt(s: Stat, digits: int = 2) -> str:
    """``mean ± std`` in percent; the mean alone for one seed; ``n/a`` without values."""
    if s.mean is None:
        return "n/a"
    return f"{100 * s.mean:.{digits}f}" + ("" if s.std is None else f" ± {100 * s.std:.{digits}f}")


def verdict(c: Comparison) -> str:
    head = f"{c.a} − {c.b}: {100 * c.diff:+.2f} pts"
    if c.ratio is None:
        return f"{head} (no seed-to-seed spread to compare with: run at least 2 seeds)"
    beyond = "beyond" if abs(c.ratio) >= 2 else "within"
    return (f"{head} (standard error {100 * c.se:.2f} pts, {c.ratio:+.1f} SE): {beyond} two standard errors "
            f"of zero")


def markdown(table: Mapping[str, Any], title: str, context: Sequence[str]) -> str:
    arms, heads = table["arms"], table["headline"]
    names = list(heads)
    lines = [f"# {title}", "", *context, "",
             "Mean ± sample standard deviation over training seeds, in percent. Headline per benchmark: "
             "verification accuracy (10-fold), IJB TAR@FAR, TinyFace rank-1, open-set TAR@FAR over every pair; Avg = the mean of those of "
             f"{', '.join(table['avg_over'])}, per seed.", ""]
    real = arms.get("real", {}).get("avg")
    cols = [f"{n} ({heads[n]})" for n in names]
    lines += ["| arm | synthetic data | " + " | ".join(cols) + " | Avg | Δ Avg vs real |",
              "|---|---|" + "---|" * (len(cols) + 2)]
    for arm, row in arms.items():
        cells = [fmt(row["benchmarks"].get(n, {}).get(heads[n], Stat(None, None, 0, ()))) for n in names]
        delta = "—" if real is None or real.mean is None or row["avg"].mean is None or arm == "real" \
            else f"{100 * (row['avg'].mean - real.mean):+.2f}"
        lines.append(f"| {arm} | {ARM_DATA.get(arm, arm)} | " + " | ".join(cells) + f" | {fmt(row['avg'])} | {delta} |")
    for name in names:
        metrics = list(next(iter(arms.values()))["benchmarks"].get(name, {}))
        if len(metrics) < 2:
            continue
        lines += ["", f"## {name}", "", "| arm | " + " | ".join(metrics) + " |", "|---|" + "---|" * len(metrics)]
        for arm, row in arms.items():
            stats = row["benchmarks"].get(name, {})
            lines.append(f"| {arm} | " + " | ".join(fmt(stats[m]) if m in stats else "n/a" for m in metrics) + " |")
    found = comparisons(table)
    if found:
        lines += ["", "## Comparisons (Avg)", "", *[f"- {verdict(c)}" for c in found]]
    return "\n".join(lines) + "\n"


def plot(table: Mapping[str, Any], path: Path, title: str) -> Path:
    from ..core.plots import agg_figure, save_png

    arms = list(table["arms"])
    stats = [table["arms"][a]["avg"] for a in arms]
    means = [100 * (s.mean or 0.0) for s in stats]
    errs = [100 * (s.std or 0.0) for s in stats]
    fig = agg_figure((max(5.0, 0.9 * len(arms) + 1.5), 3.8))
    ax = fig.add_subplot()
    ax.bar(range(len(arms)), means, yerr=errs, capsize=4, color="#4c72b0", alpha=0.8)
    for i, s in enumerate(stats):
        ax.scatter([i] * len(s.values), [100 * v for v in s.values], color="black", s=10, zorder=3)
    ax.set_xticks(range(len(arms)), arms, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("Avg (%), mean ± std over seeds")
    present = [m for m, s in zip(means, stats) if s.mean is not None]
    if present:
        lo, hi = min(present) - 2 * max(errs + [0.5]), max(present) + 2 * max(errs + [0.5])
        ax.set_ylim(max(0.0, lo), min(100.0, hi))
    ax.set_title(plot_safe(title), fontsize=10)
    fig.tight_layout()
    return save_png(fig, path)


def _plain(value: Any) -> Any:
    if isinstance(value, Stat):
        return {"mean": value.mean, "std": value.std, "n": value.n, "values": list(value.values)}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def write_report(out: Path, table: Mapping[str, Any], title: str, context: Sequence[str], extra: dict[str, Any]
                 ) -> dict[str, Path]:
    """Write ``report.md``, ``report.json`` and ``report.png`` into ``out``; return their paths."""
    from ..core.outputs import atomic_write

    out.mkdir(parents=True, exist_ok=True)  # claimed by run_reproduce before any stage ran
    files = {"markdown": out / "report.md", "json": out / "report.json", "plot": out / "report.png"}
    atomic_write(files["markdown"], markdown(table, title, context))
    data = {"title": title, "table": _plain(table),
            "comparisons": [{**dataclasses.asdict(c), "ratio": c.ratio} for c in comparisons(table)], **extra}
    atomic_write(files["json"], json.dumps(data, indent=2) + "\n")
    plot(table, files["plot"], title)
    return files

