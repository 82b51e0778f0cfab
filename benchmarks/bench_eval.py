"""Evaluation of 6,000 pairs (LFW-sized) with the embedded demo discriminator, through a real insightface ``.bin``.

The pairs (half genuine, drawn with ``make_pairs_from_labels`` from mnist-5k) are written as a real ``.bin``:
LFW's 12,000 images as JPEG (upscaled to ``--image-size``, RGB, like lfw.bin's 112x112 crops) pickled as
``(bins, issame_list)`` into a temp dir. Then, in one run, best of ``--repeats`` (interleaved; the machine is shared):

- ``evaluate`` on the ``.bin`` path end to end, split as the runner times it: load (restricted reader + JPEG
  decoding), embedding (images/s), protocol (10-fold accuracy + ROC + AUC + EER + TAR@FAR);
- the reader and the decoding alone, and each protocol step alone on the same scores (best of at least 20);
- the protocol / embedding time ratio, and flip TTA / plain (embedding time and whole run);
- (issue 13) the whole ``evaluate`` with the ``.bin``'s decoding in loader worker processes (the CUDA default, or 2
  on a CPU), overlapped with the forwards, against ``load_workers=0`` (decoding in this process): RATIO.

    python benchmarks/bench_eval.py [--pairs 6000] [--image-size 112] [--repeats 3] [--threads N] [--device cpu]
"""

from __future__ import annotations

import argparse
import io
import json
import pickle
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from scoremix_ds.sources.openers import read_real_data
from scoremix_ds.evaluation.binfile import read_bin
from scoremix_ds.evaluation.metrics import eer, kfold_accuracy, roc_auc, roc_curve, tar_at_far
from scoremix_ds.evaluation.loading import default_load_workers
from scoremix_ds.evaluation.verification_pairs import decode_images, make_pairs_from_labels, pairs_from_bin
from scoremix_ds.evaluation.runner import evaluate
from scoremix_ds.discriminators.loading import embed_images, load_discriminator


def write_bin(path: Path, num_pairs: int, size: int, seed: int) -> dict:
    """An insightface-style ``.bin`` of ``num_pairs`` mnist-5k pairs: JPEG bytes, pair ``i`` = images ``2i, 2i+1``."""
    data = read_real_data("mnist-5k")
    index_a, index_b, issame = make_pairs_from_labels(data.labels, num_pairs, seed)
    order = np.stack([index_a, index_b], axis=1).ravel()
    blobs = []
    for i in order:
        img = Image.fromarray(data.images[i, :, :, 0], mode="L").resize((size, size), Image.BILINEAR).convert("RGB")
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=95)
        blobs.append(buf.getvalue())
    # Written with pickle as insightface does (a dump, never a load): the reader under test must parse it.
    path.write_bytes(pickle.dumps((blobs, issame.tolist()), protocol=pickle.HIGHEST_PROTOCOL))
    return {"bin_mib": path.stat().st_size / 2**20, "images": len(blobs), "genuine": int(issame.sum())}


def _best(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def protocol_steps(scores: np.ndarray, issame: np.ndarray, repeats: int) -> dict:
    """Each step of the verification protocol alone, on the model's own scores (seconds, best of ``repeats``)."""
    roc_s, roc = _best(lambda: roc_curve(scores, issame), repeats)
    return {
        "kfold_s": _best(lambda: kfold_accuracy(scores, issame, 10), repeats)[0],
        "roc_s": roc_s,
        "auc_eer_s": _best(lambda: (roc_auc(roc), eer(roc)), repeats)[0],
        "tar_at_far_s": _best(lambda: tar_at_far(roc), repeats)[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=6000)
    parser.add_argument("--image-size", type=int, default=112, help="Stored image size (lfw.bin: 112).")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice).")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_discriminator("default")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mnist-lfw-sized.bin"
        t = time.perf_counter()
        info = write_bin(path, args.pairs, args.image_size, args.seed)
        info["write_s"] = time.perf_counter() - t
        evaluate(model, [path], batch_size=args.batch_size, device=args.device)  # warm-up (allocator, kernels)
        overlap = default_load_workers(torch.device(args.device).type == "cuda") or 2  # the CPU default is 0
        runs: dict[str, list] = {"plain": [], "flip": [], "inline": [], "overlap": []}
        workers = {"inline": 0, "overlap": overlap}
        for _ in range(args.repeats):
            for key, items in runs.items():
                t = time.perf_counter()
                result = evaluate(model, [path], flip_tta=key == "flip", batch_size=args.batch_size,
                                  device=args.device, load_workers=workers.get(key))
                items.append((time.perf_counter() - t, result.benchmarks[0]))
        reader_s, content = _best(lambda: read_bin(path), args.repeats)
        decode_s, _ = _best(lambda: decode_images(content.blobs), args.repeats)
        pairs = pairs_from_bin(path)
    ea, eb = (embed_images(model, x, args.batch_size, args.device) for x in (pairs.images_a, pairs.images_b))
    scores = np.sum(ea * eb, axis=1)  # the runner's own scores, for timing each protocol step alone
    best = {}
    for key, items in runs.items():
        total = min(x[0] for x in items)
        timings = [x[1].timing for x in items]
        best[key] = {"total_s": total, "load_s": min(t.load_s for t in timings),
                     "embed_s": min(t.embed_s for t in timings), "protocol_s": min(t.protocol_s for t in timings),
                     "images": timings[0].images, "accuracy": items[0][1].metrics.accuracy.mean,
                     "auc": items[0][1].metrics.auc}
        best[key]["images_per_s"] = best[key]["images"] / best[key]["embed_s"]
    steps = protocol_steps(scores, pairs.issame, max(args.repeats, 20))  # milliseconds each: more repeats
    report = {
        "pairs": args.pairs, "image_size": args.image_size, "device": args.device, "threads": torch.get_num_threads(),
        "batch_size": args.batch_size, **info, "reader_s": reader_s, "decode_s": decode_s, **best,
        "protocol_steps": steps,
        "protocol_over_embed": best["plain"]["protocol_s"] / best["plain"]["embed_s"],
        "flip_over_plain_embed": best["flip"]["embed_s"] / best["plain"]["embed_s"],
        "flip_over_plain_total": best["flip"]["total_s"] / best["plain"]["total_s"],
    }
    p, f = best["plain"], best["flip"]
    print(f"{args.pairs} pairs ({info['images']} JPEGs {args.image_size}x{args.image_size}, {info['bin_mib']:.1f} MiB "
          f".bin), demo model on {args.device}, {report['threads']} threads, best of {args.repeats}")
    print(f"  load {p['load_s']:.3f}s (restricted reader {reader_s:.3f}s + JPEG decode {decode_s:.3f}s)")
    print(f"  embed {p['embed_s']:.3f}s = {p['images_per_s']:.0f} images/s")
    print(f"  protocol {1000 * p['protocol_s']:.1f} ms (10-fold {1000 * steps['kfold_s']:.1f}, ROC "
          f"{1000 * steps['roc_s']:.1f}, AUC+EER {1000 * steps['auc_eer_s']:.2f}, TAR@FAR "
          f"{1000 * steps['tar_at_far_s']:.2f}) = {report['protocol_over_embed']:.4f} x the embedding time")
    print(f"  whole evaluate {p['total_s']:.3f}s; accuracy {100 * p['accuracy']:.2f}%, AUC {100 * p['auc']:.2f}%")
    print(f"  flip TTA: embed {f['embed_s']:.3f}s ({report['flip_over_plain_embed']:.2f}x plain), whole "
          f"{f['total_s']:.3f}s ({report['flip_over_plain_total']:.2f}x plain); accuracy {100 * f['accuracy']:.2f}%")
    i, o = best["inline"], best["overlap"]
    print(f"  whole evaluate with the decoding in {overlap} worker processes, overlapping the forwards: {o['total_s']:.3f}s"
          f" vs {i['total_s']:.3f}s decoding in this process (load_workers=0): RATIO inline / workers "
          f"{i['total_s'] / o['total_s']:.2f}; same accuracy and AUC: {(i['accuracy'], i['auc']) == (o['accuracy'], o['auc'])}"
          f" (default here: {default_load_workers(torch.device(args.device).type == 'cuda')} workers)")
    report["inline_over_workers_total"] = i["total_s"] / o["total_s"]
    print(json.dumps(report))


if __name__ == "__main__":
    main()
