"""Build batch size on a CPU: kernel time spent mapping fresh pages for big activations.

glibc serves allocations above its mmap threshold (at most 32 MB on 64-bit) with ``mmap`` and returns them with
``munmap``, so a UNet forward whose activations exceed it has the kernel map and zero those pages again at every
call. A CFG pair mix runs 3 rows per image per step, so ``--batch-size 128`` makes 384-row forwards. This script
samples the same images (same seeds, CFG pair mixes) with two build batch sizes, interleaved, and prints per-image
wall, user and system (kernel) time of each and the ratio big / small.

    python benchmarks/bench_cpu_batch.py [--generator default] [--images 128] [--big 128] [--small 32] [--steps 5]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import torch

from scoremix_ds.generators.loading import load_generator
from scoremix_ds.sampling.schedulers import make_scheduler
from scoremix_ds.sampling.scoremix import scoremix_sample


def sample_all(gen, images: int, batch: int, steps: int, guidance: float) -> tuple[float, float, float]:
    """Sample ``images`` CFG pair mixes in batches of ``batch``; (wall, user, sys) seconds."""
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for start in range(0, images, batch):
        seeds = list(range(start, min(images, start + batch)))
        a = torch.tensor(seeds).remainder(gen.num_classes)
        classes = torch.stack([a, (a + 1).remainder(gen.num_classes)], dim=1)
        weights = torch.full((len(seeds), 2), 0.5)
        scoremix_sample(gen, make_scheduler("ddim", gen.scheduler_config), classes, weights, seeds, steps, guidance)
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    return time.perf_counter() - t0, r1.ru_utime - r0.ru_utime, r1.ru_stime - r0.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--generator", default="default")
    parser.add_argument("--images", type=int, default=128)
    parser.add_argument("--big", type=int, default=128)
    parser.add_argument("--small", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--guidance", type=float, default=3.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    gen = load_generator(args.generator)
    if gen.null_class is None:
        raise SystemExit("this benchmark needs a generator with a null class (CFG)")
    print(f"generator={args.generator} images={args.images} steps={args.steps} g={args.guidance} "
          f"threads={args.threads} rows per forward: {3 * args.big} vs {3 * args.small}")
    sample_all(gen, args.small, args.small, 1, args.guidance)  # warm-up
    runs: dict[int, list[tuple[float, float, float]]] = {args.big: [], args.small: []}
    for _ in range(args.repeats):
        for b in (args.big, args.small):
            runs[b].append(sample_all(gen, args.images, b, args.steps, args.guidance))
    per_image = {}
    for b, r in runs.items():
        wall, user, sys_ = (statistics.median(x[i] for x in r) / args.images * 1e3 for i in range(3))
        per_image[b] = wall
        print(f"batch {b:4d}: {wall:7.2f} ms/img wall, {user:7.2f} user, {sys_:7.2f} sys ({sys_ / (user + sys_):.0%} "
              f"of CPU time in the kernel)")
    print(f"RATIO batch {args.big} / batch {args.small} wall per image = {per_image[args.big] / per_image[args.small]:.3f}")


if __name__ == "__main__":
    main()
