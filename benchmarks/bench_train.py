"""Trainer overhead: ``scoremix-ds train``'s step throughput against a plain hand-written torch loop on the same
model, batch and data, and the data pipeline alone against the training steps it feeds (all in one process).

- ratio 1: trainer images/s (steady state: the last logging window) / hand loop images/s (target >= 0.9);
- ratio 2: data pipeline batches/s (sampler + DataLoader + preprocessing, no model) / trainer steps/s (target >= 3).

Model: the demo's small CNN (32x32 grey, 64-d) with an ArcFace head over mnist-5k-train, batch 128, SGD.

    python benchmarks/bench_train.py [--steps 60] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from scoremix_ds.realdata.mixture import make_loader, open_mixture
from scoremix_ds.realdata.preprocess import PreprocessConfig
from scoremix_ds.realdata.openers import read_real_data
from scoremix_ds.realdata.sources import SourceSpec
from scoremix_ds.realdata.transforms import to_model_tensor
from scoremix_ds.maths.margins import ArcFaceHead
from scoremix_ds.models.discriminator import SmallCNN
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
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
