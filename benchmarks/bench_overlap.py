"""Does the accelerator wait on the CPU? A build whose model forward is a stub that holds the GIL for nothing.

The sampler (``scoremix_sample``, as the build pipeline calls it) is replaced by a stub that takes ``--stub-ms`` per
batch and returns smooth images derived from the batch's seeded initial noise, so PNG encoding, parquet writing,
noise drawing and bookkeeping are real. The stub's time per batch is fixed and includes making its output (a device
computes its output inside its kernel time); the rest of it is ``time.sleep``, which releases the GIL as a GPU
launch-and-wait does. (Until 2026-12-01 the stub computed its output on the host AFTER a full ``--stub-ms`` sleep,
adding ~0.3-2 ms of host work per batch that a GPU does not put on the host; the table in docs/performance.md keeps
that setting's figures.) The stub is synchronous, so it is pessimistic: on a GPU the pipeline's sampling thread does
not wait for a batch's images (the encoder threads do), and the device can run one batch while the next is queued.
This is the one mock here: a GPU cannot exist on this machine, and it is what the stub stands in for.

The same build (112x112 RGB, tiny real generator folder and discriminator made in code, ``repro`` on) runs twice in
one command: the pipeline (``ENCODE_WORKERS`` threads) and the serial path (``ENCODE_WORKERS = 0``: encode and
write after each batch, no noise prefetch). Prints, for each, the pipeline's wall time over the total stub time
(target <= 1.05: the CPU work hides behind the "GPU"), and where the rest went: before the first batch ("head"),
between stub calls on the sampling thread ("between"), after the last one ("drain": the last encodes and shard
write); and checks that both wrote byte-identical shards. ``--compare-nice`` adds the pipeline with its helper
threads at the sampling thread's priority (``pipeline.HELPER_NICE = 0``).

    python benchmarks/bench_overlap.py [--pairs 84 --per-identity 8 --batch-size 16 --stub-ms 20 --compare-nice]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import scoremix_ds.sampling.batches as sampling_batches
import scoremix_ds.synthesis.rows as pipeline
import scoremix_ds.synthesis.runner as runner
from scoremix_ds.synthesis.config import BuildConfig
from scoremix_ds.sampling.scoremix import initial_noise


def make_models(root: Path, size: int, classes: int = 16) -> tuple[Path, Path, Path]:
    import datasets
    from diffusers import DDPMScheduler, UNet2DModel
    from PIL import Image

    from scoremix_ds.discriminators.loading import SmallCNN

    torch.manual_seed(0)
    unet = UNet2DModel(sample_size=size, in_channels=3, out_channels=3, block_out_channels=(8, 16), layers_per_block=1,
                       down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
                       norm_num_groups=4, num_class_embeds=classes + 1)
    gen = root / "gen"
    unet.save_pretrained(gen / "unet", safe_serialization=True)
    DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", clip_sample=False).save_pretrained(gen / "scheduler")
    names = [f"c{i}" for i in range(classes)]
    (gen / "scoremix.json").write_text(json.dumps({"num_classes": classes, "null_class": classes, "class_names": names,
                                                   "image_size": size, "channels": 3}))
    disc = root / "disc"
    SmallCNN(in_channels=3, image_size=32, embedding_dim=16).save_pretrained(disc)
    rng = np.random.default_rng(0)
    images = [Image.fromarray(np.clip(rng.normal(40 + 50 * c, 30, size=(size, size, 3)), 0, 255).astype("uint8"))
              for c in range(classes) for _ in range(4)]
    labels = [c for c in range(classes) for _ in range(4)]
    feats = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=names)})
    real = root / "real"
    (real / "data").mkdir(parents=True)
    datasets.Dataset.from_dict({"image": images, "label": labels}, features=feats).to_parquet(str(real / "data" / "train-00000.parquet"))
    return gen, disc, real


SLEPT = [0.0]  # seconds actually spent in the stub (a loaded machine oversleeps)


def stub_sampler(stub_s: float, size: int):
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    base = torch.stack([0.8 - 1.2 * (xx ** 2 + yy ** 2), 0.5 * xx, 0.5 * yy])  # a smooth "face"

    def sample(generator, scheduler, classes, weights, seeds, num_steps, guidance=1.0, weak=None, schedule=None,
               return_latents=False, mixing="score", noise=None):
        t = time.perf_counter()
        x, _ = noise if noise is not None else initial_noise(seeds, generator.sample_shape)
        # cheap, deterministic per seed: the smooth base, a per-image tint, and a little grain (PNG pays for it)
        out = (base + 0.3 * x[:, :, :1, :1] + 0.04 * x).clamp(-1, 1)
        # The "GPU": the batch costs stub_s in all, its output included (a device computes its output inside its
        # kernel time); the rest of it is a sleep, which releases the GIL as a launch-and-wait does.
        time.sleep(max(0.0, stub_s - (time.perf_counter() - t)))
        SLEPT[0] += time.perf_counter() - t
        return out
    return sample


def run(config: BuildConfig, workers: int, nice: int = pipeline.HELPER_NICE) -> dict:
    captured = {}
    real_run_units, real_nice = pipeline.run_units, pipeline.HELPER_NICE
    pipeline.HELPER_NICE = nice

    def run_units(*args, **kwargs):
        kwargs["encode_workers"] = workers
        captured["stats"] = real_run_units(*args, **kwargs)
        return captured["stats"]

    runner.run_units = run_units
    SLEPT[0] = 0.0
    try:
        t = time.perf_counter()
        result = runner.run_build(config, progress=False)
        wall = time.perf_counter() - t
    finally:
        runner.run_units, pipeline.HELPER_NICE = real_run_units, real_nice
    stats = captured["stats"]
    shards = json.loads((Path(config.out) / "manifest.json").read_text())["shards"]
    return {"stats": stats, "build_s": wall, "slept": SLEPT[0], "images": result.images_sampled, "shards": shards}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=84)
    parser.add_argument("--per-identity", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--shard-size", type=int, default=16)
    parser.add_argument("--stub-ms", type=float, default=20.0)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--workers", type=int, default=runner.ENCODE_WORKERS)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (1: on a shared 2-core machine, OpenMP spinning dominates small ops)")
    parser.add_argument("--compare-nice", action="store_true",
                        help=f"also run the pipeline with its helper threads at nice 0 (default {pipeline.HELPER_NICE})")
    args = parser.parse_args()
    stub_s = args.stub_ms / 1000
    torch.set_num_threads(args.threads)
    sampling_batches.scoremix_sample = stub_sampler(stub_s, args.size)  # the sampler every batch calls
    with tempfile.TemporaryDirectory() as tmp:
        gen, disc, real = make_models(Path(tmp), args.size)
        base = dict(generator=str(gen), discriminator=str(disc), real_data=str(real), pairs=args.pairs,
                    per_identity=args.per_identity, batch_size=args.batch_size, shard_size=args.shard_size, steps=1)
        results = {}
        paths = [("pipeline", args.workers, pipeline.HELPER_NICE), ("serial", 0, 0)]
        if args.compare_nice:
            paths.insert(1, ("nice 0", args.workers, 0))
        for name, workers, nice in paths:
            results[name] = run(BuildConfig(**base, out=f"{tmp}/{name.replace(' ', '')}"), workers, nice)
        print(f"{args.size}x{args.size} RGB, {results['serial']['images']} images, batch {args.batch_size}, "
              f"stub {args.stub_ms:g} ms per batch, {args.workers} encode threads, torch threads {torch.get_num_threads()}")
        print(f"{'path':>9} {'batches':>7} {'full':>5} {'stub s (in stub)':>16} {'pipeline s':>10} {'ratio':>6} "
              f"{'vs stub':>7} {'head s':>6} {'between s':>9} {'drain s':>7} {'whole build s':>13}")
        for name, r in results.items():
            s = r["stats"]
            stub_total = s.batches * stub_s
            print(f"{name:>9} {s.batches:>7} {s.full_batches:>5} {stub_total:>7.2f} ({r['slept']:>6.2f}) "
                  f"{s.seconds:>10.2f} {s.seconds / stub_total:>6.3f} {s.seconds / r['slept']:>7.3f} "
                  f"{s.head_seconds:>6.2f} {s.between_seconds:>9.2f} {s.drain_seconds:>7.2f} {r['build_s']:>13.1f}")
        print(f"serial / pipeline wall time: {results['serial']['stats'].seconds / results['pipeline']['stats'].seconds:.2f}x")
        same = all(r["shards"] == results["serial"]["shards"] for r in results.values())
        print(f"shards byte-identical between the paths: {'yes' if same else 'NO'}")


if __name__ == "__main__":
    main()
