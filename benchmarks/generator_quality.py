"""Is a generator worth mixing? Three figures, measured with the real-only discriminator that chooses the pairs.

(a) **Class fidelity**: ``--n`` plain class-conditional samples (classes in turn, seeds 0..n-1) classified by the
    nearest real class centre (mean of the L2-normalised embeddings of that class's real images). BASELINE in the
    same run: the real images themselves classified the same way (the ceiling the discriminator allows); the
    script prints both and their RATIO.
(b) **Mixes are new identities**: ``--pairs`` distant pairs (the build's default strategy) x ``--per-mix`` images
    each. For every mix identity (its centre = the normalised mean of its images' embeddings): its cosine to each
    parent's centre, to the nearest OTHER real class, and whether its images sit as close to a parent centre as
    that parent's own median real image (the audit's leak rule: a copy of a parent, not a new identity). For
    reference: the real images' median cosine to their own centre, and the mean cosine between real centres.
(c) **Copies of training images**: the plain samples of (a), in PIXELS (RMS distance in [0, 1]; the real images
    are brought to the sample size by the generator trainer's own rule, so MNIST's 28 x 28 digits are padded to
    32): each sample's distance to the nearest training image of its class, against each training image's
    distance to the nearest OTHER training image of its class (how close two real "photos" of one identity come).
    ``near_copy_fraction``: samples nearer a training image than the closest 5% of real pairs are to each other
    (about 0.05 for a generator that draws new images; near 1 for one that memorises).

    python benchmarks/generator_quality.py                                           # embedded MNIST default
    python benchmarks/generator_quality.py --generator DIR --discriminator DIR --real-data glyphs-han-train[0-199]
    python benchmarks/generator_quality.py --generator NEW --baseline-generator OLD ...   # before / after

With ``--baseline-generator``, a second generator is measured in the same run on the same classes and seeds, and (a)
is compared PAIRED (sample ``i`` of both has the same class and seed): the difference of the two fidelities and its
standard error ``sqrt(b + c - (b - c)^2 / n) / n`` (``b``, ``c``: samples only one of the two gets right).

Prints one JSON object (``--json FILE`` also writes it) and a readable summary.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from scoremix_ds.analysis.audit import audit_identities, real_reference
from scoremix_ds.sources.openers import read_real_data
from scoremix_ds.sources.preprocess import resize_uint8
from scoremix_ds.maths.image_tensors import to_uint8
from scoremix_ds.maths.centres import cosine_distances
from scoremix_ds.maths.pair_strategies import select_pairs
from scoremix_ds.discriminators.loading import embed_images, load_discriminator
from scoremix_ds.generators.loading import load_generator
from scoremix_ds.sampling.schedulers import make_scheduler
from scoremix_ds.sampling.scoremix import scoremix_sample


def _sample(gen, classes: np.ndarray, seeds: list[int], steps: int, guidance: float, batch: int) -> np.ndarray:
    """uint8 NHWC images of ``classes`` (``(N, K)``, equal weights), ``batch`` at a time."""
    out = []
    for s in range(0, len(classes), batch):
        c = torch.as_tensor(classes[s:s + batch], dtype=torch.long)
        w = torch.full(c.shape, 1.0 / c.shape[1])
        x = scoremix_sample(gen, make_scheduler("ddim", gen.scheduler_config), c, w, seeds[s:s + batch], steps,
                            guidance)
        out.append(to_uint8(x))
    return np.concatenate(out)


def measure(generator: str | None, discriminator: str | None, real_data: str, n: int, pairs: int, per_mix: int,
            steps: int, guidance: float, batch: int, baseline_generator: str | None = None) -> dict:
    result, new = _measure_one(generator, discriminator, real_data, n, pairs, per_mix, steps, guidance, batch)
    if baseline_generator is None:
        return result
    base, old = _measure_one(baseline_generator, discriminator, real_data, n, pairs, per_mix, steps, guidance, batch)
    only_new, only_old = int(np.sum(new & ~old)), int(np.sum(old & ~new))
    se = float(np.sqrt(max(only_new + only_old - (only_new - only_old) ** 2 / n, 0.0)) / n)
    result["baseline"] = base
    result["a_difference_vs_baseline"] = {"difference": float(new.mean() - old.mean()), "paired_se": se,
                                          "only_this_right": only_new, "only_baseline_right": only_old}
    return result


def _measure_one(generator: str | None, discriminator: str | None, real_data: str, n: int, pairs: int, per_mix: int,
                 steps: int, guidance: float, batch: int) -> tuple[dict, np.ndarray]:
    """The figures of one generator, and which of its ``n`` plain samples were assigned their own class."""
    gen, disc, real = load_generator(generator), load_discriminator(discriminator), read_real_data(real_data)
    if gen.num_classes != real.num_classes:
        raise SystemExit(f"the generator has {gen.num_classes} classes, {real_data} has {real.num_classes}")
    t0 = time.perf_counter()
    real_emb = embed_images(disc, np.asarray(real.images))
    centres, own_median = real_reference(real_emb, real.labels, real.num_classes)
    real_acc = float(np.mean((real_emb @ centres.T).argmax(axis=1) == real.labels))
    offdiag = (centres @ centres.T)[~np.eye(real.num_classes, dtype=bool)]

    cls = np.arange(n) % real.num_classes
    plain = _sample(gen, cls[:, None], list(range(n)), steps, guidance, batch)
    correct = (embed_images(disc, plain) @ centres.T).argmax(axis=1) == cls
    plain_acc = float(np.mean(correct))
    # the real images at the generator's size by the training rule (MNIST 28 -> 32: padded, not rescaled)
    real_at_size = resize_uint8(np.asarray(real.images), plain.shape[1], plain.shape[3])
    copies_c = copy_distances(plain, cls, real_at_size, np.asarray(real.labels))

    chosen, mix_classes = distant_mixes(centres, pairs, per_mix)
    mixes = _sample(gen, mix_classes, [10_000 + i for i in range(len(mix_classes))], steps, guidance, batch)
    return {
        "generator": generator or "default", "discriminator": discriminator or "default", "real_data": real_data,
        "classes": real.num_classes, "guidance": guidance, "steps": steps, "seconds": round(time.perf_counter() - t0, 1),
        "a_class_fidelity": {"samples": n, "generated_accuracy": plain_acc,
                             "standard_error": float(np.sqrt(plain_acc * (1 - plain_acc) / n)),
                             "real_accuracy_baseline": real_acc, "ratio": plain_acc / real_acc if real_acc else None},
        "b_mixes": mix_figures(disc, mixes, chosen, per_mix, centres, own_median),
        "c_copies": copies_c,
        "reference": {"real_own_centre_similarity_median": float(np.nanmedian(own_median)),
                      "real_centre_to_centre_similarity_mean": float(offdiag.mean())},
    }, correct


def distant_mixes(centres: np.ndarray, pairs: int, per_mix: int) -> tuple[np.ndarray, np.ndarray]:
    """Figure (b)'s mixes: the ``pairs`` most distant class pairs of ``centres``, each repeated ``per_mix`` times."""
    chosen = select_pairs("distant", pairs, np.arange(len(centres)), embedding_distances=cosine_distances(centres))
    return chosen, np.repeat(chosen, per_mix, axis=0)


def mix_figures(disc, mixes: np.ndarray, chosen: np.ndarray, per_mix: int, centres: np.ndarray,
                own_median: np.ndarray) -> dict:
    """Figure (b): how the mixes of ``chosen`` (``per_mix`` images each, in order) sit against the real classes."""
    identity = np.repeat(np.arange(len(chosen)), per_mix)
    mix_emb = embed_images(disc, mixes)
    audits = audit_identities(mix_emb, identity, {i: tuple(p) for i, p in enumerate(chosen)}, centres, own_median)
    other = []
    for a in audits:
        sims = centres @ _centre(mix_emb[identity == a.identity])
        sims[list(a.parents)] = -np.inf
        other.append(float(sims.max()))
    parent_sim = np.array([a.parent_similarity for a in audits])
    return {"identities": len(audits), "images_per_identity": per_mix,
            "parent_similarity_mean": float(parent_sim.mean()),
            "parent_similarity_max_mean": float(parent_sim.max(axis=1).mean()),
            "nearest_other_real_similarity_mean": float(np.mean(other)),
            "nearest_real_is_a_parent_fraction": float(np.mean([a.nearest_real in a.parents for a in audits])),
            "parent_copy_fraction": float(np.mean([a.flagged and a.nearest_real in a.parents for a in audits])),
            "consistency_mean": float(np.nanmean([a.consistency for a in audits]))}


def copy_distances(samples: np.ndarray, classes: np.ndarray, real: np.ndarray, labels: np.ndarray) -> dict:
    """Figure (c): ``samples`` and ``real`` are uint8 NHWC of the same size; distances are pixel RMS in [0, 1]."""
    gen = samples.reshape(len(samples), -1).astype(np.float64) / 255
    ref = real.reshape(len(real), -1).astype(np.float64) / 255
    to_real, real_to_real = np.full(len(gen), np.nan), []
    for c in np.unique(classes):
        pool = ref[labels == c]
        if len(pool) < 2:
            continue
        d = np.sqrt(((gen[classes == c][:, None] - pool[None]) ** 2).mean(axis=2))
        to_real[classes == c] = d.min(axis=1)
        rr = np.sqrt(((pool[:, None] - pool[None]) ** 2).mean(axis=2))
        np.fill_diagonal(rr, np.inf)
        real_to_real.extend(rr.min(axis=1).tolist())
    to_real, real_to_real = to_real[~np.isnan(to_real)], np.asarray(real_to_real)
    p5 = float(np.percentile(real_to_real, 5))
    return {"samples": int(len(to_real)), "sample_to_nearest_real_median": float(np.median(to_real)),
            "real_to_nearest_other_real_median": float(np.median(real_to_real)), "real_to_real_p5": p5,
            "near_copy_fraction": float(np.mean(to_real < p5))}


def _centre(unit: np.ndarray) -> np.ndarray:
    m = unit.mean(axis=0)
    return m / max(float(np.linalg.norm(m)), 1e-12)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--generator", default=None)
    parser.add_argument("--discriminator", default=None)
    parser.add_argument("--real-data", default="mnist-5k")
    parser.add_argument("--n", type=int, default=200, help="plain samples for (a)")
    parser.add_argument("--pairs", type=int, default=20, help="mix identities for (b)")
    parser.add_argument("--per-mix", type=int, default=8)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--guidance", type=float, default=3.0, help="the build's default guidance")
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--baseline-generator", default=None,
                        help="a second generator measured on the same classes and seeds ('default': the embedded one)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    torch.manual_seed(0)
    result = measure(args.generator, args.discriminator, args.real_data, args.n, args.pairs, args.per_mix, args.steps,
                     args.guidance, args.batch, baseline_generator=args.baseline_generator)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
    a, b, ref = result["a_class_fidelity"], result["b_mixes"], result["reference"]
    print(f"(a) class fidelity at g={args.guidance:g}: {a['generated_accuracy']:.3f} of {a['samples']} samples "
          f"(real images: {a['real_accuracy_baseline']:.3f}; RATIO {a['ratio']:.3f})")
    print(f"(b) mixes: cos to parents {b['parent_similarity_mean']:.3f} (closer parent {b['parent_similarity_max_mean']:.3f}), "
          f"to the nearest other real class {b['nearest_other_real_similarity_mean']:.3f}; parent copies "
          f"{b['parent_copy_fraction']:.2f}; real images to their own centre {ref['real_own_centre_similarity_median']:.3f}, "
          f"real centre to centre {ref['real_centre_to_centre_similarity_mean']:.3f}")
    c = result["c_copies"]
    print(f"(c) pixels: sample to nearest real of its class {c['sample_to_nearest_real_median']:.3f} (median), real to "
          f"nearest other real {c['real_to_nearest_other_real_median']:.3f}; near copies {c['near_copy_fraction']:.2f} "
          f"(below the closest 5% of real pairs, {c['real_to_real_p5']:.3f})")
    if "baseline" in result:
        d, base = result["a_difference_vs_baseline"], result["baseline"]
        print(f"baseline {base['generator']}: (a) {base['a_class_fidelity']['generated_accuracy']:.3f}, "
              f"(b) closer parent {base['b_mixes']['parent_similarity_max_mean']:.3f}, nearest other real "
              f"{base['b_mixes']['nearest_other_real_similarity_mean']:.3f}; "
              f"(a) difference {d['difference']:+.3f} (paired SE {d['paired_se']:.3f})")


if __name__ == "__main__":
    main()
