"""Render the dataset card (README.md) from ``cards/dataset_card.md`` with Hub-understood YAML metadata."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from huggingface_hub import DatasetCard, DatasetCardData

from ..resources import resource_dir
from .schema import COLUMN_DOCS, CONFIGS, FEATURES

TEMPLATE = "dataset_card.md"


def size_category(n: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return name
    return "1M<n<10M"


def _feature_yaml() -> list[dict[str, Any]]:
    """``dataset_info.features`` in the Hub's YAML form, derived from the datasets Features."""
    return FEATURES._to_yaml_list()


def render_card(
    build: dict[str, Any],
    provenance: dict[str, Any],
    counts: dict[str, dict[str, int]],
    package_version: str,
    strategy_space: str,
    pretty_name: str = "ScoreMix synthetic identities",
    load_path: str = "path/to/this/dataset",
    audit: dict[str, Any] | None = None,
) -> DatasetCard:
    """The card for a build. ``build`` is the content config (no local paths), ``counts`` per config."""
    configs = [c for c in CONFIGS if c in counts]
    total = sum(c["rows"] for c in counts.values())
    licence = provenance.get("licence") or "other"
    card_data = DatasetCardData(
        license=licence,
        task_categories=["image-classification"],
        tags=["synthetic", "scoremix", "diffusion", "face-recognition", "identity-mixing"],
        size_categories=[size_category(total)],
        pretty_name=pretty_name,
        configs=[
            {"config_name": c, "data_files": [{"split": "train", "path": f"data/{c}/*.parquet"}], **({"default": True} if c == "mix" else {})}
            for c in configs
        ],
        dataset_info=[
            {
                "config_name": c,
                "features": _feature_yaml(),
                "splits": [{"name": "train", "num_bytes": counts[c]["bytes"], "num_examples": counts[c]["rows"]}],
            }
            for c in configs
        ],
        scoremix={"build": build, "provenance": provenance, "package_version": package_version},
    )
    return DatasetCard.from_template(
        card_data,
        template_path=str(resource_dir("cards") / TEMPLATE),
        pretty_name=pretty_name,
        build=build,
        provenance=provenance,
        counts=[{"name": c, **counts[c]} for c in configs],
        columns=COLUMN_DOCS,
        package_version=package_version,
        strategy_space=strategy_space,
        licence=licence,
        load_path=load_path,
        audit=audit,
    )


def write_card(folder: Path, card: DatasetCard) -> None:
    from ..outputs import atomic_write

    atomic_write(folder / "README.md", str(card))
