"""The model card (README.md) of a trained generator, from ``cards/generator_card.md`` (diffusers UNet / DiT
denoisers) or ``cards/edm2_generator_card.md`` (EDM2 folders: preconditioning, the autoguidance guide, the folder's
Heun sampler settings and EDM2's training settings).

It states what the generator is (architecture, classes, null class), how to load it (``DiffusionPipeline`` with the
``ScoreMixPipeline`` this folder declares in ``model_index.json``), the data it was trained on exactly as recorded in
``scoremix.json`` (source, commit, licence) and the training configuration. Hub-readable YAML: library (diffusers),
tags (including the paper's ``arxiv:`` id), datasets (Hub ids only), licence of the training data where known.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from huggingface_hub import ModelCard, ModelCardData

from ..dataset.card import PAPER_ARXIV, PAPER_URL, hub_licence
from ..core.card_text import card_safe
from ..core.refs import is_local_path
from ..core.resources import resource_dir

TEMPLATE = "generator_card.md"
EDM2_TEMPLATE = "edm2_generator_card.md"
CARD = "README.md"


def _is_edm2(meta: dict[str, Any]) -> bool:
    return (meta.get("sampler") or {}).get("scheduler") == "edm-heun"


def generator_card(meta: dict[str, Any], denoiser_class: str, load_path: str, revision: str | None = None) -> ModelCard:
    """The card of a generator whose ``scoremix.json`` is ``meta``; ``load_path`` (at ``revision``) is what the
    snippets load."""
    config = meta["trained_with"]["config"]
    real = config.get("real_data") or ""
    hub_data = real if meta.get("real_data_commit") and "/" in real and not is_local_path(real) else None
    names = [str(n) for n in meta.get("class_names") or range(meta["num_classes"])]
    edm2 = _is_edm2(meta)
    data = ModelCardData(
        library_name="diffusers",
        license=hub_licence(meta.get("licence")),
        tags=["scoremix", "scoremix-ds", "class-conditional", "diffusion", "image-generation", *(["edm2"] if edm2 else []),
              f"arxiv:{PAPER_ARXIV}"],
        datasets=[hub_data.split("[")[0].split("@")[0]] if hub_data else None,
    )
    preview = ", ".join(f"`{n}`" for n in card_safe(names[:8])) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
    guide_steps = config.get("guide_steps")
    guide_steps = guide_steps if guide_steps is not None else max(1, int(config.get("steps") or 8) // 8)
    return ModelCard.from_template(
        data, template_path=str(resource_dir("cards") / (EDM2_TEMPLATE if edm2 else TEMPLATE)),
        sampler=card_safe(meta.get("sampler") or {}), guide_steps=guide_steps,
        title=card_safe(f"ScoreMix generator: {meta.get('architecture', denoiser_class)} over {meta['num_classes']} classes"),
        meta=card_safe(meta), config=card_safe(config), kind=denoiser_class, denoiser_class=denoiser_class, version=meta["trained_with"]["version"],
        load_path=load_path, revision=revision, first_names=(names * 2)[:2], class_preview=preview, paper_url=PAPER_URL,
        paper_arxiv=PAPER_ARXIV, config_json=json.dumps(config, indent=2, sort_keys=True),
    )


def write_generator_card(out: Path, meta: dict[str, Any], denoiser_class: str, load_path: str | None = None) -> Path:
    from ..core.outputs import atomic_write

    path = Path(out) / CARD
    atomic_write(path, str(generator_card(meta, denoiser_class, load_path or str(out))))
    return path
