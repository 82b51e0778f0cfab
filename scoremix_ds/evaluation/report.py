"""Evaluation results as a JSON-ready dict, a markdown table and a ROC plot (PNG, log-scale FAR).

Percentages in the markdown table; fractions in the JSON. Non-finite numbers become ``null`` so the JSON is strict.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ..core.card_text import plot_safe
from .identification import IdentificationResult
from .ijb import IJBResult
from .metrics import Roc, TarAtFar
from .openset import OpenSetResult
from .runner import BenchmarkResult, EvalResult, VerificationMetrics


def _num(x) -> float | None:
    return float(x) if x is not None and math.isfinite(float(x)) else None


def _tar(t: TarAtFar) -> dict:
    return {"far": t.far, "tar": _num(t.tar), "threshold": _num(t.threshold), "achieved_far": _num(t.achieved_far),
            "reason": t.reason}


def _benchmark_dict(b: BenchmarkResult) -> dict:
    m = b.metrics
    out: dict = {"name": b.name, "kind": b.kind}
    if isinstance(m, VerificationMetrics):
        out.update(num_pairs=m.num_pairs, num_genuine=m.roc.num_genuine, num_impostor=m.roc.num_impostor,
                   accuracy={"mean": m.accuracy.mean, "std": m.accuracy.std, "folds": list(m.accuracy.fold_accuracies),
                             "thresholds": [_num(t) for t in m.accuracy.fold_thresholds]},
                   auc=m.auc, eer=m.eer, tar_at_far=[_tar(t) for t in m.tar_at_far], tar_rule="at_most")
    elif isinstance(m, IJBResult):
        out.update(num_templates=m.num_templates, num_pairs=m.roc.num_genuine + m.roc.num_impostor,
                   num_genuine=m.roc.num_genuine, num_impostor=m.roc.num_impostor, auc=m.auc,
                   tar_at_far=[_tar(t) for t in m.tar_at_far], tar_rule=m.rule)
    elif isinstance(m, IdentificationResult):
        out.update(rank_accuracy={str(k): v for k, v in m.rank_accuracy.items()}, num_probes=m.num_probes,
                   num_gallery=m.num_gallery, num_distractors=m.num_distractors,
                   probes_without_mate=m.probes_without_mate)
    elif isinstance(m, OpenSetResult):
        out.update(num_images=m.num_images, num_identities=m.num_identities, num_genuine=m.num_genuine,
                   num_impostor=m.num_impostor, tar_at_far=[_tar(t) for t in m.tar_at_far], tar_rule="at_most",
                   rank_accuracy={str(k): v for k, v in m.rank_accuracy.items()},
                   genuine_mean=_num(m.genuine_mean), impostor_mean=_num(m.impostor_mean))
    t = b.timing
    out["timing"] = {"load_s": t.load_s, "embed_s": t.embed_s, "images": t.images,
                     "images_per_s": _num(t.images_per_s), "protocol_s": t.protocol_s}
    return out


def to_dict(result: EvalResult) -> dict:
    """Everything but the raw ROC points, as plain JSON types."""
    return {"model": result.model, "flip_tta": result.flip_tta,
            "benchmarks": [_benchmark_dict(b) for b in result.benchmarks]}


def headline(report: dict) -> dict[str, dict]:
    """benchmark name -> {accuracy (10-fold mean), accuracy_std, auc, eer, num_pairs} from a :func:`to_dict` report;
    ``None`` where a benchmark kind has no such number (IJB has no fold accuracy, identification no AUC)."""
    out = {}
    for b in report.get("benchmarks", []):
        acc = b.get("accuracy")
        folds = isinstance(acc, dict)
        out[b["name"]] = {"accuracy": acc["mean"] if folds else acc, "accuracy_std": acc["std"] if folds else None,
                          "auc": b.get("auc"), "eer": b.get("eer"), "num_pairs": b.get("num_pairs")}
    return out


def _pct(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None else f"{100 * x:.{digits}f}"


def markdown_table(result: EvalResult) -> str:
    """One table for 1:1 benchmarks (accuracy ± std, AUC, EER, TAR@FAR, embeddings/s), one for 1:N identification."""
    lines = [f"Model: `{result.model}`, flip TTA: {'on' if result.flip_tta else 'off'}", ""]
    one_to_one = [b for b in result.benchmarks if b.kind in ("verification", "ijb")]
    if one_to_one:
        fars = sorted({t.far for b in one_to_one for t in b.metrics.tar_at_far})
        lines += ["| benchmark | pairs | accuracy % | AUC % | EER % | " + " | ".join(f"TAR@{f:g} %" for f in fars)
                  + " | images/s |", "|---" * (6 + len(fars)) + "|"]
        for b in one_to_one:
            m = b.metrics
            tars = {t.far: t.tar for t in m.tar_at_far}
            acc = f"{_pct(m.accuracy.mean)} ± {_pct(m.accuracy.std)}" if b.kind == "verification" else "—"
            err = _pct(m.eer) if b.kind == "verification" else "—"
            lines.append(f"| {b.name} | {m.roc.num_genuine + m.roc.num_impostor} | {acc} | {_pct(m.auc)} | {err} | "
                         + " | ".join(_pct(tars.get(f)) for f in fars) + f" | {b.timing.images_per_s:.0f} |")
        lines += ["", "n/a: too few impostor pairs to resolve that FAR (see the JSON for the reason)."]
    ident = [b for b in result.benchmarks if b.kind == "identification"]
    if ident:
        ranks = sorted({k for b in ident for k in b.metrics.rank_accuracy})
        lines += ["", "| benchmark | probes | gallery | distractors | " + " | ".join(f"rank-{k} %" for k in ranks)
                  + " |", "|---" * (4 + len(ranks)) + "|"]
        for b in ident:
            m = b.metrics
            lines.append(f"| {b.name} | {m.num_probes} | {m.num_gallery} | {m.num_distractors} | "
                         + " | ".join(_pct(m.rank_accuracy.get(k)) for k in ranks) + " |")
    open_sets = [b for b in result.benchmarks if b.kind == "openset"]
    if open_sets:
        fars = sorted({t.far for b in open_sets for t in b.metrics.tar_at_far})
        ranks = sorted({k for b in open_sets for k in b.metrics.rank_accuracy})
        lines += ["", "| benchmark (every pair) | identities | genuine | impostor | "
                  + " | ".join(f"TAR@{f:g} %" for f in fars) + " | " + " | ".join(f"rank-{k} %" for k in ranks)
                  + " |", "|---" * (4 + len(fars) + len(ranks)) + "|"]
        for b in open_sets:
            m = b.metrics
            tars = {t.far: t.tar for t in m.tar_at_far}
            lines.append(f"| {b.name} | {m.num_identities} | {m.num_genuine} | {m.num_impostor} | "
                         + " | ".join(_pct(tars.get(f), 3) for f in fars) + " | "
                         + " | ".join(_pct(m.rank_accuracy.get(k)) for k in ranks) + " |")
    return "\n".join(lines) + "\n"


def _log_sample(roc: Roc, points: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """At most ``points`` ROC points with FAR > 0, log-spaced in FAR (IJB-C's ROC has millions)."""
    keep = roc.fpr > 0
    fpr, tpr = roc.fpr[keep], roc.tpr[keep]
    if len(fpr) > points:
        idx = np.unique(np.searchsorted(fpr, np.geomspace(fpr[0], 1.0, points), side="right") - 1)
        fpr, tpr = fpr[idx], tpr[idx]
    return fpr, tpr


def plot_roc(result: EvalResult, path: str | Path) -> Path | None:
    """Write the ROC curves of the 1:1 benchmarks (TAR vs log FAR) to a PNG; ``None`` when there are none."""
    from ..core.plots import agg_figure, save_png

    curves = [b for b in result.benchmarks if b.kind in ("verification", "ijb")]
    if not curves:
        return None
    fig = agg_figure((6, 4.5), dpi=120)
    ax = fig.add_subplot()
    low = 1.0
    for b in curves:
        fpr, tpr = _log_sample(b.metrics.roc)
        low = min(low, float(fpr[0]))
        ax.step(fpr, tpr, where="post", label=plot_safe(f"{b.name} (AUC {100 * b.metrics.auc:.2f}%)"))
    ax.set_xscale("log")
    ax.set_xlim(max(min(low, 1e-1), 1e-6), 1.0)
    ax.set_ylim(0.0, 1.01)
    ax.set_xlabel("FAR (false accept rate)")
    ax.set_ylabel("TAR (true accept rate)")
    ax.set_title(plot_safe(f"ROC: {result.model}" + (" (flip TTA)" if result.flip_tta else "")))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return save_png(fig, path)


def _written_by_eval(out: Path) -> bool:
    """A folder `scoremix-ds eval` wrote: its results.md and a results.json that is an eval report."""
    try:
        report = json.loads((out / "results.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (out / "results.md").is_file() and isinstance(report, dict) and "benchmarks" in report and "model" in report


def write_report(result: EvalResult, out_dir: str | Path) -> dict[str, Path]:
    """``results.json``, ``results.md`` and ``roc.png`` (if any 1:1 benchmark) in ``out_dir``; returns their paths."""
    from ..core.outputs import atomic_write, claim_folder

    out = claim_folder(out_dir, "eval", signature=_written_by_eval)
    paths = {"json": out / "results.json", "markdown": out / "results.md"}
    atomic_write(paths["json"], json.dumps(to_dict(result), indent=2, allow_nan=False) + "\n")
    atomic_write(paths["markdown"], markdown_table(result))
    roc = plot_roc(result, out / "roc.png")
    if roc is not None:
        paths["roc"] = roc
    return paths
