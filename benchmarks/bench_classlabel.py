"""Where the ``label`` ClassLabel's names live: in every parquet shard's schema, or once in the card.

    python benchmarks/bench_classlabel.py

For builds of 1K, 10K and 100K identities: (a) bytes and write time of one shard with the names in its schema,
as ratios against the same shard with a plain int64 label (what the build writes; the card declares the names);
(b) the size of the card's ``dataset_info`` YAML that declares them. One shard as the build writes it: 16
identities x 8 images of 32x32 grey noise (PNG), the default shard size.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from scoremix_ds.dataset.schema import FEATURES, features_for
from scoremix_ds.dataset.writer import encode_png, write_shard


def shard_rows(rng: np.random.Generator) -> dict[str, list]:
    n = 16 * 8
    return {
        "image": [encode_png(rng.integers(0, 256, size=(32, 32, 1), dtype=np.uint8)) for _ in range(n)],
        "label": [i // 8 for i in range(n)], "identity": [f"mix:{i // 8}" for i in range(n)],
        "parents": [[0, 1]] * n, "parent_names": [["a", "b"]] * n, "weights": [[0.5, 0.5]] * n,
        "embedding_distance": [0.5] * n, "condition_distance": [0.5] * n, "strategy": ["distant"] * n,
        "mixing": ["score"] * n, "seed": list(range(n)), "sample_index": [i % 8 for i in range(n)],
        "mix_identity": [f"mix:{i // 8}" for i in range(n)],
    }


def write_with(root: Path, name: str, rows: dict, features) -> None:
    """``write_shard`` with ``features`` in place of the schema's (the design the build does not use)."""
    import datasets

    columns = dict(rows, image=[{"bytes": b, "path": None} for b in rows["image"]])
    datasets.Dataset.from_dict(columns, features=features).to_parquet(str(root / name))


def best_of(fn, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    import datasets

    datasets.disable_progress_bars()
    rows = shard_rows(np.random.default_rng(0))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        base_s = best_of(lambda: write_shard(root, "plain.parquet", rows))
        base_b = (root / "plain.parquet").stat().st_size
        print(f"baseline (int64 label, what the build writes): {base_b / 1e3:.1f} kB, {1e3 * base_s:.1f} ms per shard")
        print("| identities | names in each shard: kB | ratio | write ms | ratio | names once in the card: YAML kB |")
        print("|---|---|---|---|---|---|")
        for n in (1_000, 10_000, 100_000):
            feats = features_for([f"mix:person{i:06d}+person{i + 1:06d}" for i in range(n)])
            s = best_of(lambda: write_with(root, f"names{n}.parquet", rows, feats))
            b = (root / f"names{n}.parquet").stat().st_size
            card = len(yaml.safe_dump({"features": feats._to_yaml_list()}, sort_keys=False).encode())
            print(f"| {n:,} | {b / 1e3:.1f} | {b / base_b:.2f} | {1e3 * s:.1f} | {s / base_s:.2f} | {card / 1e3:.0f} |")


if __name__ == "__main__":
    main()
