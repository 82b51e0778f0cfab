"""The dataset card (README.md): rendered from ``cards/dataset_card.md`` with Hub-understood YAML metadata, and
(:func:`write_build_card`) written for a finished build from its manifest and rows (by the build, ``merge`` and
``audit``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import datasets
from huggingface_hub import DatasetCard, DatasetCardData

import pyarrow.parquet as pq

from .. import __version__
from ..core.card_text import card_safe
from ..core.outputs import atomic_write
from ..core.refs import public_ref
from ..core.resources import resource_dir
from ..maths.pair_strategies import get_strategy
from .manifest import Manifest
from .schema import COLUMN_DOCS, CONFIGS, FEATURES, features_for, unique_names

TEMPLATE = "dataset_card.md"


PAPER_ARXIV = "2506.10226"  # ScoreMix (Rahimi & Marcel): the Hub links a card to the paper by this tag / URL
PAPER_URL = f"https://arxiv.org/abs/{PAPER_ARXIV}"

# The Hub's size categories (rows), smallest first: a category's name and the first row count beyond it.
SIZE_CATEGORIES = (
    ("n<1K", 10**3), ("1K<n<10K", 10**4), ("10K<n<100K", 10**5), ("100K<n<1M", 10**6), ("1M<n<10M", 10**7),
    ("10M<n<100M", 10**8), ("100M<n<1B", 10**9), ("1B<n<10B", 10**10), ("10B<n<100B", 10**11),
    ("100B<n<1T", 10**12),
)


def size_category(n: int) -> str:
    """The Hub's ``size_categories`` value for ``n`` rows."""
    for name, limit in SIZE_CATEGORIES:
        if n < limit:
            return name
    return "n>1T"


# The card's tags describe the data: what every ScoreMix build is. A field such as ``face-recognition`` is added only
# when asked (``build --tags``): a build of MNIST digits is no face data.
DEFAULT_TAGS = ("synthetic", "scoremix", "diffusion", "identity-mixing")


def card_tags(extra: tuple[str, ...] | list[str] = ()) -> list[str]:
    """The card's ``tags``: :data:`DEFAULT_TAGS`, then ``extra`` (the user's), then the paper's ``arxiv:`` tag,
    each once."""
    tags: list[str] = []
    for tag in (*DEFAULT_TAGS, *extra, f"arxiv:{PAPER_ARXIV}"):
        if tag and tag not in tags:
            tags.append(tag)
    return tags


def hub_licence(licence: str | None) -> str:
    """A licence id for the card's YAML: ``other`` where none is known."""
    return licence if licence and licence.lower() not in ("unknown", "none", "") else "other"


# The card declares the ClassLabel names of ``label`` (the shards store int64). Above this many names per config it
# does not (10K names are ~0.5 MB of YAML, 100K ~4.7 MB: benchmarks/bench_classlabel.py); ``label`` then loads as
# int64 and each row's ``identity`` is its name.
CARD_LABEL_NAMES_MAX = 10_000


def _feature_yaml(features: datasets.Features | None) -> list[dict[str, Any]] | None:
    """``dataset_info.features`` in the Hub's YAML form, from the config's datasets Features
    (:func:`schema.features_for`); ``None`` when its ``label`` names are too many to list in the card."""
    features = FEATURES if features is None else features
    label = features["label"]
    if isinstance(label, datasets.ClassLabel) and label.num_classes > CARD_LABEL_NAMES_MAX:
        return None
    return features._to_yaml_list()


def render_card(
    build: dict[str, Any],
    provenance: dict[str, Any],
    counts: dict[str, dict[str, int]],
    package_version: str,
    strategy_space: str,
    pretty_name: str = "ScoreMix synthetic identities",
    load_path: str = "path/to/this/dataset",
    audit: dict[str, Any] | None = None,
    features: dict[str, datasets.Features] | None = None,
    tags: tuple[str, ...] | list[str] = (),
) -> DatasetCard:
    """The card for a build. ``build`` is the content config (no local paths), ``counts`` per config; ``tags`` the
    user's card tags beyond :data:`DEFAULT_TAGS` (kept in the card's ``scoremix.card_tags`` for later re-renders)."""
    configs = [c for c in CONFIGS if c in counts]
    total = sum(c["rows"] for c in counts.values())
    # The images are the generator's: its training data's licence is the one that carries over, where recorded.
    licence = hub_licence(provenance.get("generator_licence"))
    card_data = DatasetCardData(
        license=licence,
        task_categories=["image-classification"],
        tags=card_tags(tags),
        size_categories=[size_category(total)],
        pretty_name=pretty_name,
        configs=[
            {"config_name": c, "data_files": [{"split": "train", "path": f"data/{c}/*.parquet"}], **({"default": True} if c == "mix" else {})}
            for c in configs
        ],
        dataset_info=[
            {
                "config_name": c,
                **({"features": yaml} if (yaml := _feature_yaml((features or {}).get(c))) is not None else {}),
                "splits": [{"name": "train", "num_bytes": counts[c]["bytes"], "num_examples": counts[c]["rows"]}],
            }
            for c in configs
        ],
        scoremix={"build": build, "provenance": provenance, "package_version": package_version,
                  **({"card_tags": list(tags)} if tags else {})},
    )
    return DatasetCard.from_template(
        card_data,
        template_path=str(resource_dir("cards") / TEMPLATE),
        pretty_name=card_safe(pretty_name),
        build=card_safe(build),  # display copies; card_data above keeps the raw values (YAML-quoted by PyYAML)
        provenance=card_safe(provenance),
        counts=[{"name": c, **counts[c]} for c in configs],
        columns=COLUMN_DOCS,
        package_version=package_version,
        strategy_space=strategy_space,
        licence=licence,
        load_path=load_path,
        audit=card_safe(audit),
        paper_url=PAPER_URL,
        paper_arxiv=PAPER_ARXIV,
        recipe_needs_plan=bool(build.get("plan_sha256")),
        names_omitted=[c for c in configs if _feature_yaml((features or {}).get(c)) is None and features],
        names_max=CARD_LABEL_NAMES_MAX,
    )


def write_card(folder: Path, card: DatasetCard) -> None:
    atomic_write(folder / "README.md", str(card))


def names_from_rows(out: Path, config: str, files: dict[str, dict], class_names: list[str] | None = None) -> list[str]:
    """The name of every ``label`` of a config, read back from its rows: a mix label is named by its ``identity``,
    a repro label (a parent's class id) by its ``parent_names``; ids no row shows take ``class_names`` (the
    generator's classes as the real data names them, from the manifest) or the id itself."""
    column = "identity" if config == "mix" else "parent_names"
    seen: dict[int, str] = {}
    for rel in files:
        table = pq.read_table(out / rel, columns=["label", column])
        for label, name in zip(table.column("label").to_pylist(), table.column(column).to_pylist()):
            seen[label] = name if config == "mix" else name[0]
    known = list(class_names or []) if config != "mix" else []
    size = max([len(known), *(label + 1 for label in seen)])
    return [seen.get(i, known[i] if i < len(known) else str(i)) for i in range(size)]


def card_features(out: Path, manifest: Manifest) -> dict[str, datasets.Features]:
    """Each config's Features as the card declares them: ``label`` a ClassLabel named after the identities (mix)
    or the classes (repro). The parquet files keep a plain int64 ``label``: ``datasets`` applies the card's
    features when it loads the folder or the Hub repo, and 10K names in every shard's schema would make each
    shard several times larger (``benchmarks/bench_classlabel.py``)."""
    names = manifest.provenance.get("class_names")
    return {name: features_for(unique_names(names_from_rows(out, name, files, names)))
            for name, files in manifest.shards.items() if files}


def write_build_card(out: Path, manifest: Manifest, tags: tuple[str, ...] | list[str] | None = None) -> None:
    """(Re)render README.md from the manifest: config (local paths reduced), provenance, counts and any audit;
    ``tags``: the user's card tags (``build --tags``), ``None``: those the existing card records, if any."""
    config = manifest.config
    build = dict(config, generator=public_ref(config["generator"]), discriminator=public_ref(config["discriminator"]),
                 weak_generator=public_ref(config["weak_generator"]), real_data=public_ref(config["real_data"]),
                 plan=public_ref(config.get("plan")))
    provenance = {k: v for k, v in manifest.provenance.items() if k != "class_names"}  # in the label features
    tags = recorded_card_tags(out) if tags is None else tags
    card = render_card(build, provenance, manifest.counts, __version__, get_strategy(config["strategy"]).space,
                       audit=manifest.audit, features=card_features(out, manifest), tags=tags)
    write_card(out, card)


def recorded_card_tags(out: Path) -> list[str]:
    """The user's tags the card in ``out`` records (``scoremix.card_tags``), so a re-render (audit, merge) keeps them."""
    path = Path(out) / "README.md"
    if not path.is_file():
        return []
    try:
        recorded = (DatasetCard.load(path).data.to_dict().get("scoremix") or {}).get("card_tags") or []
    except Exception:  # an unreadable card records nothing; the build's own facts come from the manifest
        return []
    return [str(t) for t in recorded]


def parse_tags(values: list[str] | None) -> list[str]:
    """``--tags`` values (repeatable, each comma-separated) as a list, in order, without blanks."""
    return [t.strip() for v in values or [] for t in v.split(",") if t.strip()]
