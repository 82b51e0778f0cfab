"""Issue 22, part 5a: class fidelity and near-copies of an EDM2 generator (``edm-heun``, autoguided) against the
unet-small that the glyph benchmark uses, measured with :mod:`generator_quality`'s figures and the same real-only
discriminator, classes and seeds.

- The unet-small (``--unet``) is measured by :func:`generator_quality.measure` at its build's settings (DDIM 20
  steps, classifier-free guidance 3): (a) fidelity, (b) distant-pair mixes, (c) near-copies.
- The EDM2 folder (``--edm2``) is sampled on the GRID below, DECLARED BEFORE ANY RESULT: figures (a) and (c) from
  ``--n`` plain samples (classes in turn, seeds 0..n-1: the unet's classes and initial noise) per setting, each with
  its process CPU seconds and its fidelity difference from the unet's, paired (sample i: same class and seed) with
  generator_quality's paired standard error.
- GUIDES: ``small`` is the folder's own guide (the smaller preset trained for the first steps/8); ``early-ema`` (with
  ``--early-ema-checkpoint``, a checkpoint folder of the SAME run at step guide_steps) is the main network's EMA at
  that step. w = 1 is unguided (one setting for both).
- CHOICE RULE (declared): among the settings whose near-copy fraction is at most ``MAX_NEAR_COPIES`` (twice the 0.05
  of a generator that draws new images), the highest fidelity; ties to fewer steps, then smaller w. Figure (b)
  (mixes) is then measured at that setting.

Writes the JSON after every setting (``--json``), so a cut-short run keeps what it measured.

    python benchmarks/edm2_quality.py --edm2 DIR --unet DIR --discriminator DIR --real-data 'glyphs-han-train[200-399]' \
        [--early-ema-checkpoint CKPT] --json docs/generator-quality-glyphs-edm2.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from generator_quality import _measure_one, copy_distances, distant_mixes, mix_figures
from scoremix_ds.analysis.audit import real_reference
from scoremix_ds.discriminators.loading import embed_images, load_discriminator
from scoremix_ds.generators.loading import load_generator
from scoremix_ds.maths.image_tensors import to_uint8
from scoremix_ds.sampling.schedulers import make_scheduler
from scoremix_ds.sampling.scoremix import scoremix_sample
from scoremix_ds.sources.openers import read_real_data
from scoremix_ds.sources.preprocess import resize_uint8
from scoremix_ds.training.checkpoints import Checkpoint

# (guide, steps, w) in the order they run: the small guide at 16 steps, the guide comparison at 16 (the same-size
# early-EMA guide doubles the cost, so two weights), then 32 steps unguided and at EDM2's w = 1.7. Sized to the CPU
# time of one session (about 0.5 CPU s per image at 16 steps unguided).
GRID = ([("small", 16, w) for w in (1.0, 1.4, 1.7, 2.2)] + [("early-ema", 16, w) for w in (1.4, 2.2)]
        + [("small", 32, w) for w in (1.7, 1.0)])
MAX_NEAR_COPIES = 0.10
UNET_STEPS, UNET_GUIDANCE = 20, 3.0  # builders/reproduce-glyphs-replicate.toml [build]


def early_ema_guide(edm2_dir: str, checkpoint: str):
    """The main network's EMA at the checkpoint's step, as an EDM2 generator (buffers from the same checkpoint)."""
    gen = load_generator(edm2_dir)
    ckpt = Checkpoint(Path(checkpoint), 0)
    net = gen.denoiser
    state = {k[len("main."):]: v for k, v in ckpt.tensors("model").items() if k.startswith("main.")}
    state.update(ckpt.tensors("ema"))  # the EMA's parameters over the raw ones
    net.load_state_dict(state, strict=True)
    gen.guide = None
    return gen


def sample(gen, classes: np.ndarray, seeds: list[int], steps: int, w: float, weak, batch: int) -> tuple[np.ndarray, float]:
    """uint8 NHWC images of equal-weight mixes of ``classes`` (N, K), and the process CPU seconds they took."""
    out, t0 = [], time.process_time()
    for s in range(0, len(classes), batch):
        c = torch.as_tensor(classes[s:s + batch], dtype=torch.long)
        x = scoremix_sample(gen, make_scheduler("edm-heun", gen.scheduler_config), c,
                            torch.full(c.shape, 1.0 / c.shape[1]), seeds[s:s + batch], steps, w, weak=weak)
        out.append(to_uint8(x))
    return np.concatenate(out), time.process_time() - t0


def paired(new: np.ndarray, old: np.ndarray) -> dict:
    n = len(new)
    b, c = int(np.sum(new & ~old)), int(np.sum(old & ~new))
    return {"difference": float(new.mean() - old.mean()),
            "paired_se": float(np.sqrt(max(b + c - (b - c) ** 2 / n, 0.0)) / n)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--edm2", required=True)
    parser.add_argument("--unet", required=True)
    parser.add_argument("--discriminator", required=True)
    parser.add_argument("--real-data", required=True)
    parser.add_argument("--early-ema-checkpoint", default=None)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--per-mix", type=int, default=8)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--only", default=None, help="comma-separated GRID indices (default: all; -1: none)")
    parser.add_argument("--unet-from", default=None, help="this script's JSON holding the unet's figures")
    parser.add_argument("--edm2-from", default=None, help="comma-separated JSONs of this script: their settings too")
    parser.add_argument("--no-choice", action="store_true", help="measure the settings only (a split run)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    result = {"grid_declared": [list(g) for g in GRID], "max_near_copies": MAX_NEAR_COPIES, "threads": 1,
              "edm2": args.edm2, "early_ema_checkpoint": args.early_ema_checkpoint, "settings": []}

    def write() -> None:
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")

    if args.unet_from:  # the unet's figures from an earlier run of this script (same --n, discriminator, data)
        result["unet"] = json.loads(Path(args.unet_from).read_text(encoding="utf-8"))["unet"]
        # its first n samples have the classes and seeds of this run's n (classes in turn, seeds 0..n-1)
        unet_correct = np.asarray(result["unet"]["plain_correct"], dtype=bool)[:args.n]
        if len(unet_correct) < args.n:
            raise SystemExit(f"--unet-from holds {len(unet_correct)} unet samples, fewer than --n {args.n}")
    else:
        t0 = time.process_time()
        # the unet's figures, and which of its plain samples were right (for the paired differences)
        unet, unet_correct = _measure_one(args.unet, args.discriminator, args.real_data, args.n, args.pairs,
                                          args.per_mix, UNET_STEPS, UNET_GUIDANCE, args.batch)
        result["unet"] = {**unet, "cpu_seconds": round(time.process_time() - t0, 1),
                          "plain_correct": [int(c) for c in unet_correct]}
    write()

    disc, real = load_discriminator(args.discriminator), read_real_data(args.real_data)
    centres, own_median = real_reference(embed_images(disc, np.asarray(real.images)), real.labels, real.num_classes)
    cls = np.arange(args.n) % real.num_classes
    seeds = list(range(args.n))
    gen = load_generator(args.edm2)
    guides = {"small": gen.guide}
    if args.early_ema_checkpoint:
        guides["early-ema"] = early_ema_guide(args.edm2, args.early_ema_checkpoint)
    real_at_size = None
    only = None if args.only is None else {int(i) for i in args.only.split(",")}
    for index, (guide, steps, w) in enumerate(GRID):
        if (only is not None and index not in only) or guide not in guides:
            continue
        plain, seconds = sample(gen, cls[:, None], seeds, steps, w, guides[guide] if w != 1.0 else None, args.batch)
        correct = (embed_images(disc, plain) @ centres.T).argmax(axis=1) == cls
        if real_at_size is None:
            real_at_size = resize_uint8(np.asarray(real.images), plain.shape[1], plain.shape[3])
        acc = float(correct.mean())
        result["settings"].append({
            "guide": guide if w != 1.0 else None, "steps": steps, "w": w, "samples": args.n,
            "generated_accuracy": acc, "standard_error": float(np.sqrt(acc * (1 - acc) / args.n)),
            "vs_unet": paired(correct, unet_correct),
            "c_copies": copy_distances(plain, cls, real_at_size, np.asarray(real.labels)),
            "cpu_seconds": round(seconds, 1), "cpu_seconds_per_image": round(seconds / args.n, 4)})
        print(json.dumps(result["settings"][-1]), flush=True)
        write()

    if args.edm2_from:  # settings measured by other runs of this script (a grid split over processes)
        for other in args.edm2_from.split(","):
            result["settings"] += json.loads(Path(other).read_text(encoding="utf-8"))["settings"]
        order = {g: i for i, g in enumerate(GRID)}
        result["settings"].sort(key=lambda s: order[(s["guide"] or "small", s["steps"], s["w"])])
    ok = [s for s in result["settings"] if s["c_copies"]["near_copy_fraction"] <= MAX_NEAR_COPIES]
    if not ok or args.no_choice:
        write()
        return
    best = max(ok, key=lambda s: (s["generated_accuracy"], -s["steps"], -s["w"]))
    result["chosen"] = {k: best[k] for k in ("guide", "steps", "w")}
    chosen, mix_classes = distant_mixes(centres, args.pairs, args.per_mix)
    weak = guides[best["guide"]] if best["w"] != 1.0 else None
    mixes, seconds = sample(gen, mix_classes, [10_000 + i for i in range(len(mix_classes))], best["steps"], best["w"],
                            weak, args.batch)
    result["chosen"]["b_mixes"] = {**mix_figures(disc, mixes, chosen, args.per_mix, centres, own_median),
                                   "cpu_seconds_per_image": round(seconds / len(mixes), 4)}
    write()
    print(json.dumps(result["chosen"], indent=2))


if __name__ == "__main__":
    main()
