"""Reading real data into memory through the one data layer (``read_real_data`` -> ``open_source``), against the
baseline of the old build/plan reader (iterate ``datasets.load_dataset`` rows, ``np.asarray`` each decoded PIL image)
on the same parquet folder, in the same process. Reports images/s of each and their ratio (target >= 0.8: the one
layer must not make ``build``/``plan``/``audit`` noticeably slower to read their real data).

    python benchmarks/bench_data.py [--images 5000] [--size 28] [--repeats 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def make_folder(root: Path, n: int, size: int, classes: int = 100) -> Path:
    import datasets
    from PIL import Image

    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (size, size), dtype=np.uint8), mode="L") for _ in range(n)]
    feats = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(num_classes=classes)})
    ds = datasets.Dataset.from_dict({"image": images, "label": [i % classes for i in range(n)]}, features=feats)
    (root / "data").mkdir(parents=True)
    ds.to_parquet(str(root / "data" / "train-00000.parquet"))
    return root


def baseline(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """The old ``read_hf_dataset``: one decoded PIL image per row, converted and stacked."""
    import datasets

    ds = datasets.load_dataset(str(folder), split="train")
    images, labels = [], []
    for row in ds:
        arr = np.asarray(row["image"].convert("L"))
        images.append(arr[..., None])
        labels.append(int(row["label"]))
    return np.stack(images), np.asarray(labels)


def one_layer(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    from scoremix_ds.sources.openers import read_real_data

    data = read_real_data(str(folder))
    return data.images, data.labels


def best(fn, folder: Path, repeats: int) -> tuple[float, tuple]:
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn(folder)
        times.append(time.perf_counter() - t)
    return min(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--size", type=int, default=28)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import datasets

    datasets.disable_progress_bars()
    with tempfile.TemporaryDirectory() as tmp:
        folder = make_folder(Path(tmp) / "real", args.images, args.size)
        baseline(folder)  # warm: the parquet file is cached by datasets once, for both readers
        t_base, (bi, bl) = best(baseline, folder, args.repeats)
        t_new, (ni, nl) = best(one_layer, folder, args.repeats)
    assert np.array_equal(bi, ni) and np.array_equal(bl, nl), "the two readers disagree"
    n = args.images
    print(f"{n} images {args.size}x{args.size} grey, best of {args.repeats}")
    print(f"baseline (datasets row iteration): {n / t_base:8.0f} img/s ({t_base:.2f}s)")
    print(f"one data layer (read_real_data):   {n / t_new:8.0f} img/s ({t_new:.2f}s)")
    print(f"ratio one layer / baseline: {t_base / t_new:.2f}")


if __name__ == "__main__":
    main()
