"""One accelerator's throughput for the workloads a scoremix-ds user runs on a GPU node (``benchmarks/device.sh``).

Prints, for the device ``--device`` (``auto``: the accelerator when present):

1. sampling images/s and achieved TFLOP/s for ``unet-face`` at 3x112x112 (random weights: speed does not depend on
   them), bfloat16 on CUDA, ``channels_last``: plain class-conditional, ScoreMix pair, and the pair with
   classifier-free guidance (3 rows per image per step), eager and ``torch.compile``d. FLOPs per forward are
   counted by ``torch.utils.flop_counter`` on one batch; the ratio to plain is in the last column;
2. the fraction of a real build's pipeline wall time the device spends on its batches (on CUDA: CUDA events around
   each sampler call, since the sampling thread no longer waits for a batch's images; on a CPU: the time inside the
   sampler calls), with its images/s and where the host's remaining time went;
3. IR-50 training images/s (forward + ArcFace + backward + SGD on device-resident uint8 batches, bf16 autocast);
4. IR-50 embedding images/s (``embed_images``, bf16 autocast).

``--tiny`` swaps in tiny models at 16x16 so the whole script runs on a CPU in seconds (what the test runs).

    python benchmarks/device_bench.py [--tiny] [--device auto] [--batch 64] [--steps 4] [--no-compile]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from scoremix_ds.core.devices import resolve_device, resolve_dtype  # noqa: E402
from scoremix_ds.generators.loading import ClassConditionalGenerator  # noqa: E402
from scoremix_ds.sampling.schedulers import make_scheduler  # noqa: E402
from scoremix_ds.sampling.scoremix import scoremix_sample  # noqa: E402
from scoremix_ds.generators.architectures import get_architecture  # noqa: E402

NUM_CLASSES = 16
TINY_UNET = dict(block_out_channels=(16, 32), layers_per_block=1, norm_num_groups=8, attention_levels=(),
                 attention_head_dim=None)


def sync(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def make_denoiser(tiny: bool, size: int):
    arch = get_architecture("unet-small" if tiny else "unet-face")
    params = arch.resolve("x", TINY_UNET if tiny else {})
    torch.manual_seed(0)
    return arch.build(size, 3, NUM_CLASSES + 1, params).eval()


def as_generator(denoiser, size: int, device: str, dtype) -> ClassConditionalGenerator:
    from diffusers import DDPMScheduler

    sched = dict(DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", clip_sample=False).config)
    gen = ClassConditionalGenerator(denoiser, "unet", NUM_CLASSES, NUM_CLASSES, tuple(f"c{i}" for i in range(NUM_CLASSES)),
                                    (3, size, size), sched)
    gen.to(device, dtype)
    denoiser.to(memory_format=torch.channels_last)
    return gen


def forward_flops(gen: ClassConditionalGenerator, batch: int) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.randn(batch, *gen.sample_shape, device=gen.device, dtype=gen.dtype)
    labels = torch.zeros(batch, dtype=torch.long, device=gen.device)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        gen.predict(x, torch.tensor(500, device=gen.device), labels)
    return float(counter.get_total_flops()) / batch


def sampling(gen, batch: int, steps: int, repeats: int, device: str) -> dict[str, float]:
    """images/s of plain, pair and CFG pair sampling (best of ``repeats`` after one warm-up)."""
    cases = {"plain": (1, 1.0), "pair": (2, 1.0), "cfg-pair": (2, 3.0)}
    out = {}
    for name, (k, g) in cases.items():
        classes = torch.arange(batch * k).remainder(NUM_CLASSES).view(batch, k)
        weights = torch.full((batch, k), 1.0 / k)
        best = float("inf")
        for r in range(repeats + 1):
            sched = make_scheduler("ddim", gen.scheduler_config)
            sync(device)
            t = time.perf_counter()
            scoremix_sample(gen, sched, classes, weights, list(range(batch)), steps, g).float().cpu()
            sync(device)
            if r:  # the first run warms up (and compiles)
                best = min(best, time.perf_counter() - t)
        out[name] = best
    return out


def sampling_table(args, device: str, dtype) -> list[str]:
    size = 16 if args.tiny else 112
    lines = [f"sampling: {'unet-small (tiny)' if args.tiny else 'unet-face'} at 3x{size}x{size}, {dtype}, "
             f"batch {args.batch}, {args.steps} DDIM steps, channels_last"]
    lines.append(f"{'':>10} {'case':>9} {'images/s':>9} {'TFLOP/s':>8} {'s/img vs plain':>14}")
    modes = [("eager", False)] + ([("compiled", True)] if args.compile else [])
    for mode, compiled in modes:
        gen = as_generator(make_denoiser(args.tiny, size), size, device, dtype)
        flops = forward_flops(gen, args.batch)
        if compiled:
            try:
                gen.denoiser = torch.compile(gen.denoiser)
                times = sampling(gen, args.batch, args.steps, args.repeats, device)
            except Exception as exc:  # no C++ compiler / Triton on this machine: say so, keep the eager figures
                lines.append(f"{mode:>10} skipped: torch.compile failed here ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})")
                continue
        else:
            times = sampling(gen, args.batch, args.steps, args.repeats, device)
        rows = {"plain": 1, "pair": 2, "cfg-pair": 3}
        for name, seconds in times.items():
            tflops = flops * rows[name] * args.batch * args.steps / seconds / 1e12
            lines.append(f"{mode:>10} {name:>9} {args.batch / seconds:>9.1f} {tflops:>8.3f} "
                         f"{seconds / times['plain']:>14.2f}")
    return lines


def build_busy(args, device: str) -> list[str]:
    """A real build (pipeline, real encode + parquet) with the benchmark's generator: sampler share of wall time."""
    import bench_overlap

    import scoremix_ds.sampling.batches as sampling_batches
    import scoremix_ds.synthesis.rows as pipeline
    import scoremix_ds.synthesis.runner as runner
    from scoremix_ds.synthesis.config import BuildConfig

    size = 16 if args.tiny else 112
    captured = {}
    real, real_sample = pipeline.run_units, sampling_batches.scoremix_sample
    cuda = torch.device(device).type == "cuda"
    spans = []  # CUDA: (start, end) events around each batch's work on the stream, read after the build

    def spy(*a, **kw):
        captured["stats"] = real(*a, **kw)
        return captured["stats"]

    def timed_sample(*a, **kw):
        # The pipeline's sampling thread does not wait for a batch's images (the encoders' host copy does), so on
        # CUDA the time inside this call is launch time, not device time: the device's own clock is read instead.
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        out = real_sample(*a, **kw)
        end.record()
        spans.append((start, end))
        return out

    with tempfile.TemporaryDirectory() as tmp:
        gen_dir, disc, real_dir = bench_overlap.make_models(Path(tmp), size, NUM_CLASSES)
        denoiser = make_denoiser(args.tiny, size)
        denoiser.save_pretrained(gen_dir / "unet", safe_serialization=True)
        pairs = 8 if args.tiny else 32
        config = BuildConfig(generator=str(gen_dir), discriminator=str(disc), real_data=str(real_dir), pairs=pairs,
                             per_identity=4, steps=args.steps, batch_size=args.batch, shard_size=4, device=device,
                             dtype="bfloat16" if torch.device(device).type == "cuda" else "float32",
                             out=f"{tmp}/out")
        runner.run_units = spy
        if cuda:
            sampling_batches.scoremix_sample = timed_sample
        try:
            runner.run_build(config, progress=False)
        finally:
            runner.run_units, sampling_batches.scoremix_sample = real, real_sample
    s = captured["stats"]
    sync(device)
    busy_s = sum(a.elapsed_time(b) for a, b in spans) / 1000 if cuda else s.sample_seconds
    how = "device time of the batches (CUDA events)" if cuda else "time in the sampler calls"
    return [f"build: {s.images} images ({pairs} pairs x 4, repro), batch {args.batch}, {args.steps} steps, CFG g=3: "
            f"{s.images / s.seconds:.1f} images/s; sampler busy {busy_s / s.seconds:.3f} of the pipeline's "
            f"{s.seconds:.1f} s ({how}; {s.full_batches}/{s.batches} batches full; host: head {s.head_seconds:.2f} s, "
            f"between batches {s.between_seconds:.2f} s, drain {s.drain_seconds:.2f} s)"]


def recognition(args, device: str, dtype) -> list[str]:
    from scoremix_ds.maths.margins import ArcFaceHead
    from scoremix_ds.discriminators.loading import SmallCNN, embed_images
    from scoremix_ds.discriminators.iresnet import IResNet50

    size = 16 if args.tiny else 112
    torch.manual_seed(0)
    model = (SmallCNN(3, size, 32) if args.tiny else IResNet50(3, size, 512)).to(device).to(memory_format=torch.channels_last)
    head = ArcFaceHead(1000, model.embedding_dim).to(device)
    opt = torch.optim.SGD([*model.parameters(), *head.parameters()], lr=0.01, momentum=0.9)
    batch = args.train_batch
    images = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8, device=device)
    labels = torch.randint(0, 1000, (batch,), device=device)
    cuda = torch.device(device).type == "cuda"
    steps, warm = args.train_steps, 2
    for step in range(steps + warm):
        if step == warm:
            sync(device)
            t = time.perf_counter()
        x = (images.float() / 127.5 - 1.0).contiguous(memory_format=torch.channels_last)  # normalised on the device
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
            loss = torch.nn.functional.cross_entropy(head(model(x), labels).float(), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    sync(device)
    train = steps * batch / (time.perf_counter() - t)
    model.eval()
    host = torch.randint(0, 256, (args.embed_images, size, size, 3), dtype=torch.uint8).numpy()
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
        embed_images(model, host[: args.train_batch], batch_size=args.train_batch, device=device)  # warm-up
        sync(device)
        t = time.perf_counter()
        embed_images(model, host, batch_size=args.train_batch * 2, device=device)
        sync(device)
    embed = len(host) / (time.perf_counter() - t)
    name = "small-cnn (tiny)" if args.tiny else "IR-50"
    return [f"training: {name} at 3x{size}x{size}, batch {batch}, ArcFace over 1000 classes, {dtype if cuda else torch.float32}: "
            f"{train:.1f} images/s",
            f"embedding: {name}, {len(host)} uint8 images from host memory: {embed:.1f} images/s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny models at 16x16: the whole script in seconds on a CPU")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch", type=int, default=None, help="sampling batch (default 64, tiny 4)")
    parser.add_argument("--steps", type=int, default=None, help="DDIM steps per sample (default 10, tiny 2)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--no-compile", dest="compile", action="store_false")
    parser.add_argument("--train-batch", type=int, default=None, help="IR-50 batch (default 256, tiny 8)")
    parser.add_argument("--train-steps", type=int, default=None, help="timed training steps (default 20, tiny 2)")
    parser.add_argument("--embed-images", type=int, default=None, help="images embedded (default 8192, tiny 32)")
    parser.add_argument("--json", help="also write the lines to this JSON file")
    args = parser.parse_args()
    for name, full, tiny in (("batch", 64, 4), ("steps", 10, 2), ("train_batch", 256, 8), ("train_steps", 20, 2),
                             ("embed_images", 8192, 32)):
        if getattr(args, name) is None:
            setattr(args, name, tiny if args.tiny else full)
    device = resolve_device(args.device)
    dtype = resolve_dtype("auto", device)
    if torch.device(device).type == "cuda":
        torch.backends.cudnn.benchmark = True
    started = time.perf_counter()
    name = torch.cuda.get_device_name() if torch.device(device).type == "cuda" else "cpu"
    lines = [f"device {device} ({name}), torch {torch.__version__}"]
    print(lines[0], flush=True)
    for section in (lambda: sampling_table(args, device, dtype), lambda: build_busy(args, device),
                    lambda: recognition(args, device, dtype)):
        new = section()
        print("\n".join(new), flush=True)
        lines += new
    lines.append(f"total {time.perf_counter() - started:.1f} s")
    print(lines[-1])
    if args.json:
        Path(args.json).write_text(json.dumps(lines, indent=1))


if __name__ == "__main__":
    main()
