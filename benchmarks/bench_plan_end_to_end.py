"""``scoremix-ds plan`` end to end at 20,000 classes x 2 images and 20,000 pairs (issue 26.7), through the CLI.

The data are built once into ``--cache`` (default ``/tmp/scoremix-bench-plan``) and reused:

- ``real-N``: a parquet datasets folder of ``N x per-class`` 28x28 greyscale PNGs (MNIST-sized, so the embedded default
  discriminator applies) with an integer ``label`` column;
- ``gen-N``: a tiny random pixel-space UNet generator with ``N`` classes (+ a null class), the layout
  ``load_generator`` reads (as ``tests/conftest.py`` writes one): the embedded MNIST generator has 10 classes, and
  ``plan`` needs the generator's classes to cover the real ones.

Each case runs ``scoremix-ds plan --real-data real-N --generator gen-N --discriminator <embedded default>
--strategy distant --pairs P`` in a fresh child process (a fresh output folder, so no centres cache is reused), at
each ``--threads`` (``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` and torch's intra-op threads), and reports its wall
time. With ``--profile`` the child runs under cProfile and the breakdown (cumulative seconds of the stages of
``make_plan_file``: decode, data digest, embedding, selection, plan, histogram, imports...) is printed.

``--baseline REV`` also runs the same cases with the package as it was at git revision ``REV`` (exported once into
the cache) in the SAME run, prints the ratio, and checks the two plan files hold the same rows (tuples, weights,
seeds, distances) -- so a speed-up is measured under the same load as its baseline.

    python benchmarks/bench_plan_end_to_end.py                            # 20K classes, 1 and 2 threads
    python benchmarks/bench_plan_end_to_end.py --profile --threads 1      # where the time goes
    python benchmarks/bench_plan_end_to_end.py --classes 2000 --pairs 2000 --baseline HEAD~1   # same plan as before?
"""

from __future__ import annotations

import argparse
import io
import json
import os
import pstats
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

# make_plan_file's stages: (label, function name as cProfile names it, file suffix). Cumulative times; nested stages
# (decode inside read_real_data) are shown indented under their parent.
STAGES = (
    ("imports + CLI", None, None),
    ("load generator", "load_generator", "generators/loading.py"),
    ("read real data (open + decode)", "read_real_data", "sources/openers.py"),
    ("  decode every row", "load_all", "sources/source.py"),
    ("load discriminator", "load_discriminator", "discriminators/loading.py"),
    ("model digests", "model_digest", "core/digest.py"),
    ("real-data digest (blake2b)", "data_digest", "synthesis/centres_cache.py"),
    ("embed real images", "embed_images", "discriminators/loading.py"),
    ("class centres", "class_centres", "maths/centres.py"),
    ("select tuples", "select_tuples", "maths/selection.py"),
    ("tuple distances", "mean_pairwise_distance", "maths/selection.py"),
    ("plan (seeds, rows)", "make_plan", "planning/mix_plan.py"),
    ("write plan parquet", "write_plan", "planning/parquet_file.py"),
    ("save centres cache", "save_centres", "synthesis/centres_cache.py"),
    ("histogram sample", "pair_distance_sample", "maths/topk.py"),
    ("histogram plot", "save_histograms", "core/plots.py"),
    ("make_plan_file (all)", "make_plan_file", "planning/make_plan.py"),
)


def build_real(folder: Path, classes: int, per_class: int, seed: int = 0) -> None:
    """A parquet datasets folder of tiny greyscale PNGs: each class a random 7x7 pattern upscaled, plus noise."""
    import datasets
    from PIL import Image

    rng = np.random.default_rng(seed)
    images, labels = [], []
    for c in range(classes):
        base = rng.integers(0, 256, (7, 7), dtype=np.uint8).repeat(4, 0).repeat(4, 1).astype(np.int16)
        for _ in range(per_class):
            img = np.clip(base + rng.integers(-20, 21, base.shape), 0, 255).astype(np.uint8)
            buf = io.BytesIO()
            Image.fromarray(img, "L").save(buf, format="PNG")
            images.append({"bytes": buf.getvalue(), "path": None})
            labels.append(c)
    ds = datasets.Dataset.from_dict({"image": images, "label": labels},
                                    features=datasets.Features({"image": datasets.Image(),
                                                                "label": datasets.Value("int64")}))
    (folder / "data").mkdir(parents=True, exist_ok=True)
    ds.to_parquet(str(folder / "data" / "train-00000-of-00001.parquet"))


def build_generator(folder: Path, classes: int) -> None:
    """A random 8x8 greyscale UNet with ``classes`` + 1 class embeddings (the last is the null class)."""
    import torch
    from diffusers import DDPMScheduler, UNet2DModel

    torch.manual_seed(0)
    unet = UNet2DModel(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 16), layers_per_block=1,
                       down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
                       norm_num_groups=4, num_class_embeds=classes + 1).eval()
    folder.mkdir(parents=True, exist_ok=True)
    unet.save_pretrained(folder / "unet", safe_serialization=True)
    DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", prediction_type="epsilon",
                  clip_sample=False).save_pretrained(folder / "scheduler")
    (folder / "scoremix.json").write_text(json.dumps({"num_classes": classes, "null_class": classes, "image_size": 8,
                                                      "channels": 1}))


def ensure_data(cache: Path, classes: int, per_class: int) -> tuple[Path, Path]:
    real, gen = cache / f"real-{classes}x{per_class}", cache / f"gen-{classes}"
    for folder, make in ((real, lambda: build_real(real, classes, per_class)), (gen, lambda: build_generator(gen, classes))):
        done = folder / ".done"
        if not done.is_file():
            t = time.perf_counter()
            make()
            done.write_text("")
            print(f"built {folder} in {time.perf_counter() - t:.1f} s", flush=True)
    return real, gen


def export_revision(cache: Path, rev: str) -> Path:
    """The package as it was at ``rev`` (git archive of scoremix_ds/), once per commit."""
    sha = subprocess.run(["git", "rev-parse", rev], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
    root = cache / f"src-{sha[:12]}"
    if not (root / ".done").is_file():
        root.mkdir(parents=True, exist_ok=True)
        blob = subprocess.run(["git", "archive", sha, "scoremix_ds"], cwd=REPO, capture_output=True, check=True).stdout
        tarfile.open(fileobj=io.BytesIO(blob)).extractall(root)
        (root / ".done").write_text(sha)
    return root


CHILD = r"""
import cProfile, sys, torch
threads, prof, argv = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
torch.set_num_threads(threads)
from scoremix_ds.cli import main
sys.argv = ["scoremix-ds", *argv]
def run():
    try:
        main()
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise
if prof:
    cProfile.run("run()", prof)
else:
    run()
"""


def run_plan(src: Path | None, real: Path, gen: Path, out: Path, pairs: int, threads: int,
             profile: Path | None) -> float:
    from scoremix_ds.core.resources import default_model_dir

    out.parent.mkdir(parents=True, exist_ok=True)
    for stale in out.parent.glob(f"{out.stem}*"):
        stale.unlink()  # the plan, its histogram and its centres cache: nothing is reused between cases
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
               OPENBLAS_NUM_THREADS=str(threads), PYTHONPATH=str(src or REPO))
    argv = ["plan", "--real-data", str(real), "--generator", str(gen), "--discriminator",
            str(default_model_dir("discriminator")), "--strategy", "distant", "--pairs", str(pairs),
            "--out", str(out), "--no-progress"]
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", CHILD, str(threads), str(profile or ""), *argv], env=env,
                          capture_output=True, text=True, cwd=out.parent)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        sys.exit(f"plan failed ({src or 'working tree'}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return wall


def breakdown(profile: Path, wall: float) -> list[tuple[str, float]]:
    stats = pstats.Stats(str(profile)).stats  # {(file, line, name): (cc, nc, tt, ct, callers)}
    rows = []
    for label, name, suffix in STAGES:
        if name is None:
            continue
        ct = sum(v[3] for (file, _, fn), v in stats.items() if fn == name and file.endswith(suffix))
        rows.append((label, ct))
    total = dict(rows)["make_plan_file (all)"]
    rows.insert(0, ("imports + CLI", wall - total))
    return rows


def plan_rows(path: Path) -> list:
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pylist()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--classes", type=int, default=20_000)
    ap.add_argument("--per-class", type=int, default=2)
    ap.add_argument("--pairs", type=int, default=20_000)
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--profile", action="store_true", help="run under cProfile and print the stage breakdown")
    ap.add_argument("--baseline", default=None, help="a git revision to compare against in the same run")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/scoremix-bench-plan"))
    args = ap.parse_args()

    real, gen = ensure_data(args.cache, args.classes, args.per_class)
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = float("nan")
    print(f"plan end to end: {args.classes} classes x {args.per_class} images, {args.pairs} pairs, distant; "
          f"{os.cpu_count()} CPUs, load {load:.2f} at start", flush=True)
    variants = [("new", None)]
    if args.baseline:
        variants.insert(0, (f"baseline {args.baseline}", export_revision(args.cache, args.baseline)))
    runs = args.cache / "runs"
    results: dict = {}
    for threads in [int(t) for t in args.threads.split(",")]:
        for rep in range(args.repeats):
            for name, src in variants:  # interleaved, so both see the same load
                tag = "base" if src else "new"
                out = runs / f"{tag}-{threads}t" / "plan.parquet"
                prof = out.parent.parent / f"{tag}-{threads}t.prof" if args.profile else None
                wall = run_plan(src, real, gen, out, args.pairs, threads, prof)
                results.setdefault((name, threads), []).append(wall)
                print(f"  {name:>24} {threads} thread(s): {wall:7.2f} s", flush=True)
                if prof:
                    for label, sec in breakdown(prof, wall):
                        print(f"      {label:<34} {sec:7.2f} s  {100 * sec / wall:5.1f} %")
        if args.baseline:
            base, new = (min(results[(n, threads)]) for n, _ in variants)
            a, b = runs / f"base-{threads}t" / "plan.parquet", runs / f"new-{threads}t" / "plan.parquet"
            same = plan_rows(a) == plan_rows(b)
            print(f"  {threads} thread(s): baseline / new = {base / new:.2f}x; same plan rows: {same}, same file "
                  f"bytes: {a.read_bytes() == b.read_bytes()}", flush=True)
            if not same:
                sys.exit("the plan files differ")
    try:
        print(f"load {os.getloadavg()[0]:.2f} at end")
    except OSError:
        pass


if __name__ == "__main__":
    main()
