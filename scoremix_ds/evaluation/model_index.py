"""Evaluation results as the Hub's ``model-index`` card metadata, written where the model's card is.

``scoremix-ds eval MODEL`` records its results in a model card's YAML (``model-index``, the format the Hub reads
for evaluation results, written through ``huggingface_hub``'s ``EvalResult``):

- into ``MODEL/README.md`` when MODEL is a local folder trained by ``scoremix-ds train`` (it holds the trainer's
  ``scoremix.json``) and the folder is writable: only the YAML's ``model-index`` changes (results of the same
  benchmark and metric are replaced, others kept); the card's text and other metadata stay as they were;
- otherwise (a Hub id, the embedded default, an ONNX file, a folder not written by this tool or not writable)
  into ``--out/README.md``, a card of the evaluation itself naming MODEL.

Values are fractions (accuracy 0.9812), as in ``results.json``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

CARD = "README.md"
TASK = "image-feature-extraction"  # the pipeline tag of scoremix-ds recognition models


def eval_results(report: dict[str, Any]) -> list[EvalResult]:
    """One ``EvalResult`` per benchmark and metric of a ``results.json`` report (non-finite numbers left out)."""
    out: list[EvalResult] = []

    def add(bench: dict, task_name: str, metric: str, value: Any, name: str, config: str | None = None) -> None:
        if value is None:
            return
        out.append(EvalResult(task_type=TASK, task_name=task_name, dataset_type=bench["name"], dataset_name=bench["name"],
                              metric_type=metric, metric_value=float(value), metric_name=name, metric_config=config))

    for b in report.get("benchmarks", []):
        if b.get("kind") == "identification":
            for k, v in sorted((b.get("rank_accuracy") or {}).items(), key=lambda kv: int(kv[0])):
                add(b, "1:N identification", "accuracy", v, f"rank-{k} accuracy", f"rank={k}")
            continue
        task = "1:1 face verification" if b.get("kind") == "verification" else "1:1 template verification (IJB)"
        acc = b.get("accuracy")
        add(b, task, "accuracy", acc.get("mean") if isinstance(acc, dict) else acc, "accuracy (10-fold)")
        add(b, task, "roc_auc", b.get("auc"), "ROC AUC")
        add(b, task, "eer", b.get("eer"), "EER")
        for t in b.get("tar_at_far") or []:
            add(b, task, "tar_at_far", t.get("tar"), f"TAR@FAR={t['far']:g}", f"far={t['far']:g}")
    return out


def _key(r: EvalResult) -> tuple:
    return (r.task_type, r.dataset_type, r.dataset_config, r.dataset_split, r.metric_type, r.metric_config)


def merge_results(old: list[EvalResult] | None, new: list[EvalResult]) -> list[EvalResult]:
    """``old`` without the entries ``new`` replaces (same task, benchmark and metric), then ``new``."""
    fresh = {_key(r) for r in new}
    return [r for r in old or [] if _key(r) not in fresh] + list(new)


def trained_here(model: str, revision: str | None) -> Path | None:
    """The model's folder when it is a writable local folder written by ``scoremix-ds train``, else ``None``."""
    folder = Path(model).expanduser()
    if revision is not None or not folder.is_dir():
        return None
    try:
        meta = json.loads((folder / "scoremix.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    ours = isinstance(meta, dict) and "scoremix_ds" in meta and "architecture" in meta and "config" in meta
    card = folder / CARD
    writable = os.access(card if card.exists() else folder, os.W_OK) and os.access(folder, os.W_OK)
    return folder if ours and writable else None


def write_card_results(card_path: Path, results: list[EvalResult], model_name: str, body: str | None = None) -> Path:
    """Put ``results`` in the ``model-index`` of ``card_path`` (created with ``body`` when missing), atomically."""
    if card_path.is_file():
        card = ModelCard(card_path.read_text(encoding="utf-8"))
    else:
        card = ModelCard(f"---\n{ModelCardData().to_yaml()}\n---\n{body or ''}")
    card.data.eval_results = merge_results(card.data.eval_results, results)
    card.data.model_name = card.data.model_name or model_name
    from ..core.outputs import atomic_write

    atomic_write(card_path, str(card))
    return card_path


def record_results(model: str, revision: str | None, report: dict[str, Any], out_dir: str | Path) -> Path | None:
    """Write the report's ``model-index`` into the model's own card or ``out_dir/README.md`` (module docstring)."""
    results = eval_results(report)
    if not results:
        return None
    folder = trained_here(model, revision)
    if folder is not None:
        return write_card_results(folder / CARD, results, folder.name)
    name = model if revision is None else f"{model}@{revision}"
    body = (f"\n# Evaluation of `{name}`\n\nResults of `scoremix-ds eval` (the `model-index` above; details in "
            "`results.md` and `results.json` beside this card).\n")
    return write_card_results(Path(out_dir) / CARD, results, Path(name).name if Path(name).exists() else name, body)
