"""The model card (README.md) of a trained recognition model, from ``cards/model_card.md``.

It names every training source with its exact revision or commit, the label range each one occupies, the training
configuration, and the benchmark results of the final evaluation. Hub-readable YAML: library, tags, datasets (Hub
ids only), base model (when fine-tuned from a Hub model).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from huggingface_hub import ModelCard, ModelCardData

from ..evaluation.model_index import eval_results
from ..evaluation.report import headline
from ..core.card_text import card_safe
from ..core.resources import resource_dir

TEMPLATE = "model_card.md"


def _fmt(x: Any) -> str:
    return f"{x:.4f}" if isinstance(x, (int, float)) else "n/a"


def _results(meta: dict[str, Any]) -> list[dict[str, str]]:
    return [{"name": name, "pairs": h["num_pairs"] if h["num_pairs"] is not None else "n/a", "accuracy": _fmt(h["accuracy"]),
             "auc": _fmt(h["auc"]), "eer": _fmt(h["eer"])} for name, h in headline(meta.get("results") or {}).items()]


def write_model_card(out: Path, meta: dict[str, Any], load_path: str | None = None) -> Path:
    config = meta["config"]
    blocks = meta["label_space"]["sources"]  # in the order of meta["sources"]
    sources = [{**s, "role": b["role"], "offset": b["labels"][0]} for s, b in zip(meta["sources"], blocks)]
    hub_ids = [s["location"] for s in meta["sources"] if s.get("kind") == "hub"]
    init = config.get("init")
    results = eval_results(meta.get("results") or {})
    data = ModelCardData(
        library_name="scoremix-ds",
        tags=["face-recognition", "scoremix", "arcface" if config["head"] == "arcface" else config["head"], "safetensors"],
        datasets=hub_ids or None,
        base_model=init if init and "/" in init and not Path(init).exists() else None,
        pipeline_tag="image-feature-extraction",
        eval_results=results or None,  # the final evaluation, as `eval` writes it (model-index)
        model_name=Path(out).name if results else None,
    )
    card = ModelCard.from_template(
        data, template_path=str(resource_dir("cards") / TEMPLATE),
        title=card_safe(f"{meta['architecture']['backbone']} trained with scoremix-ds"), arch=card_safe(meta["architecture"]),
        config=card_safe(config), version=meta["scoremix_ds"], sources=card_safe(sources), results=card_safe(_results(meta)),
        load_path=load_path or str(out), config_json=json.dumps(config, indent=2, sort_keys=True),
    )
    path = Path(out) / "README.md"
    path.write_text(str(card), encoding="utf-8")
    return path
