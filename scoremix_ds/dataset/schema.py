"""Row schema shared by every config of a ScoreMix dataset (``mix`` and ``repro``).

``label`` loads as a ``datasets.ClassLabel``: in ``mix`` its names are the synthetic identities' names
(``mix:a+b``), in ``repro`` the parent classes' names (the real data's class names), so ``features["label"].names``,
``int2str`` and ``stratify_by_column`` work on the loaded dataset. The names are declared once, in the card's
``dataset_info`` (:func:`features_for`); the parquet shards store ``label`` as int64 (a ClassLabel's storage), as
repeating every name in every shard's schema made a shard of a 10K-identity build 6x larger and 9x slower to write
(``benchmarks/bench_classlabel.py``).
"""

from __future__ import annotations

from typing import Sequence

import datasets

FEATURES = datasets.Features(
    {
        "image": datasets.Image(),
        "label": datasets.Value("int64"),  # stored int64; a ClassLabel in the card (features_for): identity or parent class
        "identity": datasets.Value("string"),  # stable string id, e.g. "mix:3+7" or "repro:3"
        "parents": datasets.List(datasets.Value("int64")),  # source class ids in the generator's label space
        "parent_names": datasets.List(datasets.Value("string")),
        "weights": datasets.List(datasets.Value("float32")),
        "embedding_distance": datasets.Value("float32"),  # cosine distance of the parents' class centres
        "condition_distance": datasets.Value("float32"),  # cosine distance of the parents' condition vectors
        "strategy": datasets.Value("string"),
        "mixing": datasets.Value("string"),  # "score" (ScoreMix) or "condition" (AugGen-style condition mixing)
        "seed": datasets.Value("int64"),  # per-image seed: regenerates this image alone
        "sample_index": datasets.Value("int32"),  # image index within its identity
        "mix_identity": datasets.Value("string"),  # the mix this row belongs to (itself for mix rows)
    }
)

COLUMN_DOCS = {
    "image": "the generated image (PNG)",
    "label": "`ClassLabel`: the synthetic identity (mix; its names are the identities' names) or the parent class (repro; the real data's class names)",
    "identity": "stable string id of the identity",
    "parents": "class ids of the mixed parents, in the generator's label space",
    "parent_names": "names of the parent classes, as the real data names them (ClassLabel, name column or folder names)",
    "weights": "mixing weight of each parent (convex: >= 0, sum 1)",
    "embedding_distance": "cosine distance between the parents' class centres in the discriminator's embedding space",
    "condition_distance": "cosine distance between the parents' class-condition vectors in the generator",
    "strategy": "pair-selection strategy that chose the parents",
    "mixing": "`score`: ScoreMix, the K class-conditioned outputs mixed at every step; `condition`: the class-condition vectors mixed once per step (AugGen)",
    "seed": "per-image seed; the same seed regenerates the same image",
    "sample_index": "index of the image within its identity",
    "mix_identity": "the mixed identity this row belongs to (repro rows: the mix they reproduce a parent of)",
}

CONFIGS = ("mix", "repro")

COLUMNS = tuple(FEATURES)


def unique_names(names: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """``names`` with any repeat made distinct by a ``#n`` suffix (a ``ClassLabel`` needs distinct names)."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        n = seen.get(name, 0)
        seen[name] = n + 1
        out.append(name if n == 0 else f"{name}#{n}")
    return tuple(out) if len(set(out)) == len(out) else tuple(f"{name}#{i}" for i, name in enumerate(names))


def features_for(label_names: Sequence[str]) -> datasets.Features:
    """The row schema of one config as its card declares it: ``label`` a ``ClassLabel`` over ``label_names``
    (distinct names); the same storage as :data:`FEATURES`."""
    return datasets.Features({**FEATURES, "label": datasets.ClassLabel(names=list(label_names))})
