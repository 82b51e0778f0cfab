"""One accelerator's throughput for the workloads a scoremix-ds user runs on a GPU node (``benchmarks/device.sh``).

Sections, each written to ``--out-dir``/device.json as soon as it finishes (a timeout keeps what was measured) and
printed as text lines:

1. ``sampling``: images/s, achieved TFLOP/s and peak memory for ``unet-face`` and ``dit-face`` at 3x112x112 (random
   weights: speed does not depend on them), bfloat16 on CUDA, ``channels_last``: plain class-conditional, ScoreMix
   pair, the pair with classifier-free guidance (3 rows per image per step) and the pair with autoguidance (a second,
   same-size network: 2 forwards of 2 rows, the floor of 2.0x plain), eager and ``torch.compile``d, with the first
   compiled call's time. FLOPs per forward are counted by ``torch.utils.flop_counter`` on one batch;
2. ``build``: the fraction of a real build's pipeline wall time the device spends on its batches (on CUDA: CUDA events
   around each sampler call; on a CPU: the time inside the sampler calls), with its images/s;
3. ``train``: ``scoremix-ds train`` itself (its real loader, DataLoader workers, Partial FC, IR-50, bf16) on
   ``glyphs-han-train`` at 112x112 RGB: its logged images/s and the command's wall time;
4. ``eval``: ``scoremix-ds eval`` of that model on ``openset:glyphs-han-verify`` (every pair of 9,600 images):
   pairs scored per second;
5. ``recognition``: IR-50 training images/s in-process (forward + ArcFace + backward + SGD on device-resident uint8
   batches, bf16 autocast) and embedding images/s (``embed_images``), with peak memory;
6. ``edm2``: ``edm2-s`` at 3x112x112 with ``edm-heun`` (random weights, EDM2's fp16 forward on CUDA): plain and
   ScoreMix pair images/s, unguided and autoguided by ``edm2-xs`` (w 1.7), with peak memory per case.

``--tiny`` swaps in tiny models at 16x16 (edm2-cpu guided by edm2-cpu-guide; a small-cnn trainer on 50 glyph
identities) so the whole script runs on a CPU in about a minute (what the test runs).

    python benchmarks/device_bench.py [--tiny] [--device auto] [--batch 64] [--steps 4] [--no-compile] [--out-dir D]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from scoremix_ds.core.devices import resolve_device, resolve_dtype  # noqa: E402
from scoremix_ds.generators.loading import ClassConditionalGenerator  # noqa: E402
from scoremix_ds.generators.architectures import get_architecture  # noqa: E402
from scoremix_ds.sampling.batches import SamplingSettings, sample_batch  # noqa: E402

NUM_CLASSES = 16
TINY = {"unet": dict(block_out_channels=(16, 32), layers_per_block=1, norm_num_groups=8, attention_levels=(),
                     attention_head_dim=None)}
ARCHS = {False: ("unet-face", "dit-face"), True: ("unet-small", "dit-small")}  # full, --tiny


def sync(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def peak_memory(device: str) -> float | None:
    """GiB the allocator held at most since the last reset (CUDA only)."""
    return torch.cuda.max_memory_allocated() / 2**30 if torch.device(device).type == "cuda" else None


def reset_peak(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def make_denoiser(arch_name: str, tiny: bool, size: int, seed: int = 0):
    arch = get_architecture(arch_name)
    params = arch.resolve(arch_name, TINY.get(arch_name.split("-")[0], {}) if tiny and arch_name.startswith("unet") else {})
    torch.manual_seed(seed)
    return arch.build(size, 3, NUM_CLASSES + 1, params).eval()


def as_generator(denoiser, size: int, device: str, dtype) -> ClassConditionalGenerator:
    from diffusers import DDPMScheduler

    sched = dict(DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", clip_sample=False).config)
    kind = "unet" if type(denoiser).__name__.startswith("UNet") else "transformer"
    gen = ClassConditionalGenerator(denoiser, kind, NUM_CLASSES, NUM_CLASSES, tuple(f"c{i}" for i in range(NUM_CLASSES)),
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


CASES = {"plain": (1, 1.0, False), "pair": (2, 1.0, False), "cfg-pair": (2, 3.0, False), "autoguided-pair": (2, 2.0, True)}
ROWS = {"plain": 1, "pair": 2, "cfg-pair": 3, "autoguided-pair": 4}  # network rows per image per step


def sampling(gen, weak, batch: int, steps: int, repeats: int, device: str) -> tuple[dict[str, float], float]:
    """Seconds per batch of each case (best of ``repeats`` after one warm-up), and the first call's seconds."""
    out, first = {}, 0.0
    for name, (k, g, autoguided) in CASES.items():
        classes = torch.arange(batch * k).remainder(NUM_CLASSES).view(batch, k)
        weights = torch.full((batch, k), 1.0 / k)
        settings = SamplingSettings(steps=steps, guidance=g, scheduler="ddim", batch_size=batch)
        best = float("inf")
        for r in range(repeats + 1):
            sync(device)
            t = time.perf_counter()
            sample_batch(gen, settings, classes, weights, list(range(batch)), weak=weak if autoguided else None
                         ).float().cpu()
            sync(device)
            if r:  # the first run warms up (and compiles)
                best = min(best, time.perf_counter() - t)
            elif name == "plain":
                first = time.perf_counter() - t
        out[name] = best
    return out, first


def sampling_table(args, device: str, dtype) -> dict:
    size = 16 if args.tiny else 112
    result = {"size": size, "dtype": str(dtype), "batch": args.batch, "steps": args.steps, "rows": []}
    for arch in ARCHS[args.tiny]:
        modes = [("eager", False)] + ([("compiled", True)] if args.compile else [])
        for mode, compiled in modes:
            reset_peak(device)
            gen = as_generator(make_denoiser(arch, args.tiny, size), size, device, dtype)
            weak = as_generator(make_denoiser(arch, args.tiny, size, seed=1), size, device, dtype)
            flops = forward_flops(gen, args.batch)
            if compiled:
                try:
                    gen.denoiser = torch.compile(gen.denoiser, dynamic=False)
                    weak.denoiser = torch.compile(weak.denoiser, dynamic=False)
                    times, first = sampling(gen, weak, args.batch, args.steps, args.repeats, device)
                except Exception as exc:  # no C++ compiler / Triton on this machine: say so, keep the eager figures
                    result["rows"].append({"arch": arch, "mode": mode, "skipped": f"{type(exc).__name__}: {str(exc)[:160]}"})
                    continue
            else:
                times, first = sampling(gen, weak, args.batch, args.steps, args.repeats, device)
            for name, seconds in times.items():
                result["rows"].append({
                    "arch": arch, "mode": mode, "case": name, "images_per_s": args.batch / seconds,
                    "tflops": flops * ROWS[name] * args.batch * args.steps / seconds / 1e12,
                    "seconds_vs_plain": seconds / times["plain"], "first_call_s": first if name == "plain" else None,
                    "peak_gib": peak_memory(device)})
            del gen, weak
    return result


def sampling_lines(result: dict) -> list[str]:
    lines = [f"sampling at 3x{result['size']}x{result['size']}, {result['dtype']}, batch {result['batch']}, "
             f"{result['steps']} DDIM steps, channels_last",
             f"{'arch':>10} {'mode':>9} {'case':>16} {'images/s':>9} {'TFLOP/s':>8} {'s/img vs plain':>14} {'peak GiB':>8}"]
    for r in result["rows"]:
        if "skipped" in r:
            lines.append(f"{r['arch']:>10} {r['mode']:>9} skipped: {r['skipped']}")
            continue
        peak = f"{r['peak_gib']:.2f}" if r["peak_gib"] is not None else "-"
        lines.append(f"{r['arch']:>10} {r['mode']:>9} {r['case']:>16} {r['images_per_s']:>9.1f} {r['tflops']:>8.3f} "
                     f"{r['seconds_vs_plain']:>14.2f} {peak:>8}")
        if r["first_call_s"] is not None:
            lines.append(f"{r['arch']:>10} {r['mode']:>9} first plain batch (warm-up{', compile' if r['mode'] == 'compiled' else ''}): "
                         f"{r['first_call_s']:.1f} s")
    return lines


EDM2_ARCHS = {False: ("edm2-s", "edm2-xs", 112), True: ("edm2-cpu", "edm2-cpu-guide", 16)}  # main, guide, size
EDM2_CASES = {"plain": (1, 1.0), "pair": (2, 1.0), "autoguided-plain": (1, 1.7), "autoguided-pair": (2, 1.7)}


def edm2_table(args, device: str) -> dict:
    """``edm2-s`` at 3x112x112 (``--tiny``: edm2-cpu at 16x16) with ``edm-heun`` (2N - 1 evaluations for N steps):
    plain and ScoreMix pair images/s, unguided and autoguided by the smaller preset (edm2-xs, w 1.7), with peak
    memory per case. Random weights; EDM2's own ``use_fp16`` forward on CUDA (float32 elsewhere)."""
    from scoremix_ds.generators.edm2.generator import edm2_generator
    from scoremix_ds.sampling.schedulers import make_scheduler
    from scoremix_ds.sampling.scoremix import scoremix_sample

    main_name, guide_name, size = EDM2_ARCHS[args.tiny]

    def net(name: str, seed: int):
        arch = get_architecture(name)
        torch.manual_seed(seed)
        return arch.build(size, 3, NUM_CLASSES, arch.resolve(name, {})).eval()

    gen = edm2_generator(net(main_name, 0), tuple(f"c{i}" for i in range(NUM_CLASSES)), None, {},
                         guide_net=net(guide_name, 1)).to(device)
    params = {name: sum(p.numel() for p in module.parameters())
              for name, module in ((main_name, gen.denoiser), (guide_name, gen.guide.denoiser))}
    result = {"arch": main_name, "guide": guide_name, "parameters": params, "size": size, "batch": args.batch,
              "steps": args.steps, "evaluations": 2 * args.steps - 1, "sampler": "edm-heun", "rows": []}
    seconds = {}
    for name, (k, w) in EDM2_CASES.items():
        classes = torch.arange(args.batch * k).remainder(NUM_CLASSES).view(args.batch, k)
        weights = torch.full((args.batch, k), 1.0 / k)
        reset_peak(device)
        best = float("inf")
        for r in range(args.repeats + 1):  # the first run warms up
            sync(device)
            t = time.perf_counter()
            scoremix_sample(gen, make_scheduler("edm-heun", gen.scheduler_config), classes, weights,
                            list(range(args.batch)), args.steps, w).float().cpu()
            sync(device)
            if r:
                best = min(best, time.perf_counter() - t)
        seconds[name] = best
        result["rows"].append({"case": name, "guidance": w, "images_per_s": args.batch / best,
                               "seconds_vs_plain": best / seconds["plain"], "peak_gib": peak_memory(device)})
    return result


def edm2_lines(result: dict) -> list[str]:
    lines = [f"{result['arch']} (guide {result['guide']}) at 3x{result['size']}x{result['size']}, batch "
             f"{result['batch']}, edm-heun {result['steps']} steps ({result['evaluations']} evaluations)",
             f"{'case':>16} {'w':>4} {'images/s':>9} {'s/img vs plain':>14} {'peak GiB':>8}"]
    for r in result["rows"]:
        peak = f"{r['peak_gib']:.2f}" if r["peak_gib"] is not None else "-"
        lines.append(f"{r['case']:>16} {r['guidance']:>4.1f} {r['images_per_s']:>9.1f} {r['seconds_vs_plain']:>14.2f} "
                     f"{peak:>8}")
    return lines


def build_busy(args, device: str) -> dict:
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
        denoiser = make_denoiser(ARCHS[args.tiny][0], args.tiny, size)
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
    return {"images": s.images, "pairs": pairs, "batch": args.batch, "steps": args.steps,
            "images_per_s": s.images / s.seconds, "sampler_busy": busy_s / s.seconds, "seconds": s.seconds,
            "busy_measured_as": how, "full_batches": s.full_batches, "batches": s.batches,
            "host_head_s": s.head_seconds, "host_between_s": s.between_seconds, "host_drain_s": s.drain_seconds}


def build_lines(r: dict) -> list[str]:
    return [f"build: {r['images']} images ({r['pairs']} pairs x 4, repro), batch {r['batch']}, {r['steps']} steps, "
            f"CFG g=3: {r['images_per_s']:.1f} images/s; sampler busy {r['sampler_busy']:.3f} of the pipeline's "
            f"{r['seconds']:.1f} s ({r['busy_measured_as']}; {r['full_batches']}/{r['batches']} batches full; host: "
            f"head {r['host_head_s']:.2f} s, between batches {r['host_between_s']:.2f} s, drain {r['host_drain_s']:.2f} s)"]


def recognition(args, device: str, dtype) -> dict:
    from scoremix_ds.maths.margins import ArcFaceHead
    from scoremix_ds.discriminators.loading import SmallCNN, embed_images
    from scoremix_ds.discriminators.iresnet import IResNet50

    size = 16 if args.tiny else 112
    torch.manual_seed(0)
    model = (SmallCNN(3, size, 32) if args.tiny else IResNet50(3, size, 512)).to(device).to(memory_format=torch.channels_last)
    head = ArcFaceHead(1000, model.embedding_dim).to(device)
    opt = torch.optim.SGD([*model.parameters(), *head.parameters()], lr=0.01, momentum=0.9)
    batch = args.train_batch
    reset_peak(device)
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
    train_peak = peak_memory(device)
    reset_peak(device)
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
    return {"model": name, "size": size, "batch": batch, "dtype": str(dtype if cuda else torch.float32),
            "train_images_per_s": train, "train_peak_gib": train_peak, "embed_images": len(host),
            "embed_images_per_s": embed, "embed_peak_gib": peak_memory(device)}


def recognition_lines(r: dict) -> list[str]:
    return [f"training: {r['model']} at 3x{r['size']}x{r['size']}, batch {r['batch']}, ArcFace over 1000 classes, "
            f"{r['dtype']}: {r['train_images_per_s']:.1f} images/s (peak {r['train_peak_gib'] or 0:.2f} GiB)",
            f"embedding: {r['model']}, {r['embed_images']} uint8 images from host memory: "
            f"{r['embed_images_per_s']:.1f} images/s"]


def _cli(args: list[str], timeout: float) -> tuple[float, subprocess.CompletedProcess]:
    env = dict(os.environ, SCOREMIX_LOG_LEVEL="WARNING")
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "scoremix_ds", *args], capture_output=True, text=True, env=env,
                          timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"scoremix-ds {args[0]} exited {proc.returncode}: {proc.stderr.strip()[-400:]}")
    return time.perf_counter() - t, proc


def train_cli(args, device: str, work: Path) -> dict:
    """``scoremix-ds train`` as a user runs it: its own loader and workers, Partial FC, bf16 on CUDA."""
    cuda = torch.device(device).type == "cuda"
    real = "glyphs-han-train[0-49]" if args.tiny else "glyphs-han-train"
    model = ["--backbone", "small-cnn", "--image-size", "32", "--channels", "1"] if args.tiny else \
        ["--backbone", "iresnet50", "--image-size", "112", "--channels", "3"]
    batch, steps = (16, 6) if args.tiny else (256, args.cli_train_steps)
    out = work / "trained"
    seconds, _ = _cli(["train", "--real-data", real, *model, "--head", "arcface", "--sample-rate", "0.3",
                       "--batch-size", str(batch), "--steps", str(steps), "--warmup-steps", "1",
                       "--mixed-precision", "bf16" if cuda else "no", "--device", device,
                       "--out", str(out), "--no-progress"], timeout=args.cli_timeout)
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines() if line.strip()]
    rates = [entry["images_per_s"] for entry in log if "images_per_s" in entry]
    return {"real_data": real, "args": model, "batch": batch, "steps": steps, "seconds": seconds,
            "logged_images_per_s": rates[-1] if rates else None, "model": str(out)}


def eval_cli(args, device: str, trained: dict, work: Path) -> dict:
    """``scoremix-ds eval`` of the trained model on every pair of glyphs-han-verify (scored on the device)."""
    verify = "openset:glyphs-han-verify[0-49]" if args.tiny else "openset:glyphs-han-verify"
    seconds, _ = _cli(["eval", trained["model"], "--benchmark", verify, "--device", device,
                       "--out", str(work / "eval")], timeout=args.cli_timeout)
    results = json.loads((work / "eval" / "results.json").read_text())
    bench = next(b for b in results["benchmarks"] if b.get("kind") == "openset")
    pairs = int(bench["num_genuine"]) + int(bench["num_impostor"])
    return {"pairs": pairs, "seconds": seconds, "pairs_per_s": pairs / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny models at 16x16: the whole script in a minute on a CPU")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch", type=int, default=None, help="sampling batch (default 64, tiny 4)")
    parser.add_argument("--steps", type=int, default=None, help="DDIM steps per sample (default 10, tiny 2)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--no-compile", dest="compile", action="store_false")
    parser.add_argument("--train-batch", type=int, default=None, help="IR-50 batch (default 256, tiny 8)")
    parser.add_argument("--train-steps", type=int, default=None, help="timed training steps (default 20, tiny 2)")
    parser.add_argument("--embed-images", type=int, default=None, help="images embedded (default 8192, tiny 32)")
    parser.add_argument("--cli-train-steps", type=int, default=150, help="steps of the `scoremix-ds train` run")
    parser.add_argument("--cli-timeout", type=float, default=150, help="seconds allowed to each CLI run")
    parser.add_argument("--sections", default="sampling,build,train,eval,recognition,edm2")
    parser.add_argument("--out-dir", default=os.environ.get("OUT"), help="write device.json here after each section")
    parser.add_argument("--json", help="also write the text lines to this JSON file at the end")
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
    report: dict = {"device": device, "name": name, "torch": torch.__version__, "tiny": args.tiny, "sections": {}}
    lines = [f"device {device} ({name}), torch {torch.__version__}"]
    print(lines[0], flush=True)
    wanted = args.sections.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        sections = {
            "sampling": (lambda: sampling_table(args, device, dtype), sampling_lines),
            "build": (lambda: build_busy(args, device), build_lines),
            "train": (lambda: train_cli(args, device, work), lambda r: [
                f"scoremix-ds train ({' '.join(r['args'])}, Partial FC 0.3, batch {r['batch']}, {r['steps']} steps): "
                f"{r['logged_images_per_s'] or 0:.1f} images/s logged, {r['seconds']:.1f} s wall"]),
            "eval": (lambda: eval_cli(args, device, report["sections"]["train"], work), lambda r: [
                f"scoremix-ds eval openset:glyphs-han-verify: {r['pairs']} pairs in {r['seconds']:.1f} s, "
                f"{r['pairs_per_s']:.3g} pairs/s"]),
            "recognition": (lambda: recognition(args, device, dtype), recognition_lines),
            "edm2": (lambda: edm2_table(args, device), edm2_lines),
        }
        for section in [s for s in sections if s in wanted]:
            run, describe = sections[section]
            t = time.perf_counter()
            try:
                if section == "eval" and "error" in report["sections"].get("train", {"error": "train not run"}):
                    raise RuntimeError("needs the train section's model")
                result = run()
                new = describe(result)
            except Exception as exc:  # one section failing must not lose the others' figures
                result = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-2000:]}
                new = [f"{section}: FAILED {result['error'][:300]}"]
            result["section_seconds"] = time.perf_counter() - t
            report["sections"][section] = result
            report["total_seconds"] = time.perf_counter() - started
            print("\n".join(new), flush=True)
            lines += new
            if args.out_dir:
                Path(args.out_dir).mkdir(parents=True, exist_ok=True)
                tmp_json = Path(args.out_dir) / ".device.json.tmp"
                tmp_json.write_text(json.dumps(report, indent=1, default=str))
                tmp_json.replace(Path(args.out_dir) / "device.json")  # a timeout keeps every finished section
    lines.append(f"total {time.perf_counter() - started:.1f} s")
    print(lines[-1])
    if args.json:
        Path(args.json).write_text(json.dumps(lines, indent=1))


if __name__ == "__main__":
    main()
