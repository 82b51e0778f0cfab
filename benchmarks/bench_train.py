"""Trainer overhead: ``scoremix-ds train``'s step throughput against a plain hand-written torch loop on the same
model, batch and data, and the data pipeline alone against the training steps it feeds (all in one process).

- ratio 1: trainer images/s (steady state: the last logging window) / hand loop images/s (target >= 0.9);
- ratio 2: data pipeline batches/s (sampler + DataLoader + preprocessing, no model) / trainer steps/s (target >= 3).

Model: the demo's small CNN (32x32 grey, 64-d) with an ArcFace head over mnist-5k-train, batch 128, SGD.

``--jpeg`` (issue 13) measures the trainer's input at face scale instead: 112x112 RGB JPEGs (a parquet folder of
``--jpeg-images`` textured images written here), decoded per batch (``cache_bytes = 0``: a training set of
0.2-2M such faces is far beyond the 4 GiB decoded cache), random flips, through the trainer's own loader (uint8 out,
``default_workers`` on this device) -- images/s of the data pipeline alone, against ``scoremix-ds train``'s images/s
on the same data (small CNN at 112x112 RGB, batch 64, CPU). ``--workers N`` adds the pipeline with N workers. It
also prints how many such loader processes one GPU training IR-50 at 3,000 images/s would need at this rate.

    python benchmarks/bench_train.py [--steps 60] [--repeats 2]
    python benchmarks/bench_train.py --jpeg [--steps 30] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from scoremix_ds.training.mixture import make_loader, open_mixture
from scoremix_ds.sources.preprocess import PreprocessConfig
from scoremix_ds.sources.openers import read_real_data
from scoremix_ds.sources.source import SourceSpec
from scoremix_ds.maths.image_tensors import to_model_tensor
from scoremix_ds.maths.margins import ArcFaceHead
from scoremix_ds.discriminators.loading import SmallCNN
from scoremix_ds.training.recognition import train_recognition
from scoremix_ds.training.recognition_config import RecognitionTrainConfig

BATCH = 128


def hand_loop(steps: int) -> float:
    """images/s of the simplest loop: tensors preloaded, random batches, forward, ArcFace, backward, SGD."""
    data = read_real_data("mnist-5k-train")
    x_all, y_all = to_model_tensor(data.images, 32, 1), torch.from_numpy(data.labels)
    torch.manual_seed(0)
    model, head = SmallCNN(1, 32, 64), ArcFaceHead(10, 64, scale=30.0)
    opt = torch.optim.SGD([*model.parameters(), *head.parameters()], lr=0.05, momentum=0.9, weight_decay=5e-4)
    gen = torch.Generator().manual_seed(0)
    warm = 5
    for step in range(steps + warm):
        if step == warm:
            start = time.perf_counter()
        idx = torch.randint(0, len(x_all), (BATCH,), generator=gen)
        loss = F.cross_entropy(head(model(x_all[idx]), y_all[idx]), y_all[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return steps * BATCH / (time.perf_counter() - start)


def trainer(steps: int) -> float:
    """images/s of train_recognition over its last logging window (set-up excluded)."""
    with tempfile.TemporaryDirectory() as tmp:
        config = RecognitionTrainConfig(out=str(Path(tmp) / "m"), real=("mnist-5k-train",), backbone="small-cnn",
                                        embedding_dim=64, image_size=32, channels=1, flip=False, scale=30.0,
                                        steps=steps + 5, batch_size=BATCH, learning_rate=0.05, log_every=5,
                                        checkpoint_every=0, device="cpu")
        train_recognition(config, progress=False)
        records = [json.loads(line) for line in (Path(config.out) / "train_log.jsonl").read_text().splitlines()]
    windows = [r["images_per_s"] for r in records[1:] if "images_per_s" in r]  # the first window holds the warm-up
    return sum(windows) / len(windows)


def pipeline(steps: int) -> float:
    """batches/s of the data pipeline alone (what the trainer iterates), no model."""
    data = open_mixture([SourceSpec("mnist-5k-train")], [], PreprocessConfig(32, 1, False))
    loader = iter(make_loader(data, data.batch_sampler(BATCH, 1.0, 0, num_steps=steps + 5)))
    for _ in range(5):
        next(loader)
    start = time.perf_counter()
    for _ in range(steps):
        next(loader)
    return steps / (time.perf_counter() - start)


JPEG_SIZE, JPEG_BATCH, GPU_IMAGES_PER_S = 112, 64, 3000


def make_jpeg_folder(root: Path, n: int, classes: int = 64) -> Path:
    """A parquet folder of ``n`` 112x112 RGB JPEGs (quality 90; smooth shapes plus grain, so they cost what face
    crops cost to decode), ``classes`` labels."""
    import io

    import datasets
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:JPEG_SIZE, 0:JPEG_SIZE] / JPEG_SIZE
    images = []
    for i in range(n):
        a, b, c = rng.uniform(0.5, 3, 3)
        base = np.stack([np.sin(a * 6 * xx + c), np.cos(b * 6 * yy), np.sin(3 * (xx + yy) * a)], -1)
        img = np.clip(127 + 90 * base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=90)
        images.append({"bytes": buf.getvalue(), "path": None})
    labels = [i % classes for i in range(n)]
    feats = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(num_classes=classes)})
    (root / "data").mkdir(parents=True)
    datasets.Dataset.from_dict({"image": images, "label": labels}, features=feats).to_parquet(
        str(root / "data" / "train-00000.parquet"))
    return root


def jpeg_pipeline(folder: Path, steps: int, workers: int) -> float:
    """images/s of the trainer's loader alone (uint8 batches, no model), decoding every batch from JPEG."""
    data = open_mixture([SourceSpec(str(folder))], [], PreprocessConfig(JPEG_SIZE, 3, True), cache_bytes=0)
    warm = 3
    loader = iter(make_loader(data, data.batch_sampler(JPEG_BATCH, 1.0, 0, num_steps=steps + warm),
                              num_workers=workers, uint8=True))
    for _ in range(warm):  # the workers' start-up is not the steady state
        next(loader)
    start = time.perf_counter()
    for _ in range(steps):
        next(loader)
    return steps * JPEG_BATCH / (time.perf_counter() - start)


def jpeg_trainer(folder: Path, steps: int) -> float:
    """images/s of ``train_recognition`` on the JPEG folder (default workers, decoded per batch), steady state."""
    import functools

    import scoremix_ds.training.mixture as mixture

    real_open = mixture.open_mixture
    mixture.open_mixture = functools.partial(real_open, cache_bytes=0)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            config = RecognitionTrainConfig(out=str(Path(tmp) / "m"), real=(str(folder),), backbone="small-cnn",
                                            embedding_dim=64, image_size=JPEG_SIZE, channels=3, flip=True, scale=30.0,
                                            steps=steps + 5, batch_size=JPEG_BATCH, learning_rate=0.05, log_every=5,
                                            checkpoint_every=0, device="cpu")
            train_recognition(config, progress=False)
            records = [json.loads(line) for line in (Path(config.out) / "train_log.jsonl").read_text().splitlines()]
    finally:
        mixture.open_mixture = real_open
    windows = [r["images_per_s"] for r in records[1:] if "images_per_s" in r]
    return sum(windows) / len(windows)


def main_jpeg(args) -> None:
    from scoremix_ds.training.recognition import default_workers

    workers = default_workers(cuda=False, world=1)
    with tempfile.TemporaryDirectory() as tmp:
        folder = make_jpeg_folder(Path(tmp) / "faces", args.jpeg_images)
        pipe = jpeg_pipeline(folder, args.steps, workers)
        extra = jpeg_pipeline(folder, args.steps, args.workers) if args.workers is not None else None
        train = jpeg_trainer(folder, args.steps)
    print(f"{JPEG_SIZE}x{JPEG_SIZE} RGB JPEG, {args.jpeg_images} images decoded per batch, batch {JPEG_BATCH}, flips, "
          f"torch threads {torch.get_num_threads()}")
    print(f"data pipeline alone, default workers ({workers})  {pipe:8.0f} img/s")
    if extra is not None:
        print(f"data pipeline alone, {args.workers} workers          {extra:8.0f} img/s")
    print(f"scoremix-ds train (small CNN 112x112, CPU)  {train:8.0f} img/s   "
          f"RATIO pipeline / trainer {pipe / train:.1f}")
    print(f"one GPU training IR-50 at {GPU_IMAGES_PER_S} img/s needs ~{GPU_IMAGES_PER_S / pipe:.1f} loader processes "
          f"at this per-process rate (the default on CUDA: min(8, cores per process) workers)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--jpeg", action="store_true", help="the 112x112 JPEG input benchmark (issue 13)")
    parser.add_argument("--jpeg-images", type=int, default=2048)
    parser.add_argument("--workers", type=int, default=None, help="with --jpeg: also the pipeline with N workers")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.jpeg:
        main_jpeg(args)
        return
    hand, ours, data = [], [], []
    for _ in range(args.repeats):  # interleaved: the machine is shared and noisy
        hand.append(hand_loop(args.steps))
        ours.append(trainer(args.steps))
        data.append(pipeline(args.steps))
    h, o, d = max(hand), max(ours), max(data)
    print(f"hand-written loop      {h:8.0f} img/s")
    print(f"scoremix-ds train      {o:8.0f} img/s   ratio {o / h:.2f} (target >= 0.9)")
    print(f"data pipeline alone    {d:8.1f} batches/s vs {o / BATCH:.1f} training steps/s   ratio {d / (o / BATCH):.1f} (target >= 3)")


if __name__ == "__main__":
    main()
