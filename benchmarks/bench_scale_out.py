"""Scaling out, simulated on one CPU machine (issue 26): a build by 4 gloo processes over a real set of 100K tiny
images in 20K classes, against a 1-process build of the same config in the same run.

What it reports, per case:

- peak RSS of every process (``VmHWM`` written at exit by a ``sitecustomize`` hook): only the process that plans
  should grow with the real set, the others stay flat;
- how many processes opened the real data (``open_source`` logged by the hook, so the code before the change is
  traced the same way): one;
- bytes of shards hashed (``file_sha256`` logged by the hook) on a re-run of the finished build under the same
  4-process launch: each shard once in all;
- wall time of that re-run, with nothing left to do.

``--before REV`` also runs the 4-process build and its re-run with the package as it was at git revision ``REV`` (in
the same run, so under the same load), for the same figures before the change.

The data (``real-20000x5``: a parquet datasets folder of 28x28 PNGs; ``gen-20000``: a random 8x8 UNet with 20K
classes) are made once under ``--cache`` (default ``/tmp/scoremix-bench-scale``) with the helpers of
``bench_plan_end_to_end.py``. Every case has a cache folder (``SCOREMIX_CACHE``) of its own, so every first build
embeds the real set.

    nice -n 5 python benchmarks/bench_scale_out.py                       # 4 processes vs 1
    nice -n 5 python benchmarks/bench_scale_out.py --before 1531c8a      # and the code before, same run
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_plan_end_to_end import ensure_data  # noqa: E402

HOOK = r'''
import atexit, importlib.abc, importlib.util, os, sys

def _report():
    # VmHWM: this process's own peak (ru_maxrss is not reset by execve, so a child would report its parent's peak)
    with open("/proc/self/status") as fh:
        kb = next(line.split()[1] for line in fh if line.startswith("VmHWM:"))
    with open(os.environ["SCALE_RSS_LOG"], "a") as fh:
        rank = os.environ.get("RANK", "-")
        fh.write(f"{os.getpid()} {rank} {kb} {' '.join(sys.argv[:3])}\n")

if os.environ.get("SCALE_RSS_LOG"):
    atexit.register(_report)


class _Trace(importlib.abc.MetaPathFinder):
    """file_sha256 (shard hashes: 'pid size path' to $HASH_LOG) and open_source (openings of data: 'pid location' to
    $OPEN_LOG), wrapped as their modules load: the same trace for the code of any revision."""

    WRAP = {"scoremix_ds.dataset.manifest": "file_sha256", "scoremix_ds.sources.openers": "open_source"}

    def find_spec(self, name, path, target=None):
        if name not in self.WRAP:
            return None
        sys.meta_path.remove(self)
        try:
            spec = importlib.util.find_spec(name)
        finally:
            sys.meta_path.insert(0, self)
        run = spec.loader.exec_module
        attr = self.WRAP[name]

        def exec_module(module):
            run(module)
            plain = getattr(module, attr)

            def hashed(p):
                with open(os.environ["HASH_LOG"], "a") as fh:
                    fh.write(f"{os.getpid()} {os.path.getsize(p)} {p}\n")
                return plain(p)

            def opened(spec, *a, **k):
                with open(os.environ["OPEN_LOG"], "a") as fh:
                    fh.write(f"{os.getpid()} {getattr(spec, 'location', spec)}\n")
                return plain(spec, *a, **k)

            setattr(module, attr, hashed if attr == "file_sha256" else opened)

        spec.loader.exec_module = exec_module
        return spec


if os.environ.get("HASH_LOG"):
    sys.meta_path.insert(0, _Trace())
'''

LAUNCH = ["-m", "accelerate.commands.launch", "--multi_gpu", "--num_machines", "1", "--mixed_precision", "no",
          "--dynamo_backend", "no", "--num_processes"]


def run_case(name: str, work: Path, src: Path | None, processes: int, build_args: list[str], out: Path,
             cache_dir: Path) -> dict:
    """One ``scoremix-ds build`` (``processes`` > 1: under ``accelerate launch``), with its traces."""
    logs = work / "logs" / name
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir(parents=True)
    hooks = work / "hooks"
    hooks.mkdir(exist_ok=True)
    (hooks / "sitecustomize.py").write_text(HOOK)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", SCOREMIX_LOG_LEVEL="WARNING",
               PYTHONPATH=os.pathsep.join([str(hooks), str(src or REPO)]), SCALE_RSS_LOG=str(logs / "rss.log"),
               HASH_LOG=str(logs / "hashes.log"), OPEN_LOG=str(logs / "opens.log"),
               SCOREMIX_CACHE=str(cache_dir), TQDM_DISABLE="1")
    launch = [*LAUNCH, str(processes)] if processes > 1 else []
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, *launch, "-m", "scoremix_ds", *build_args, "--out", str(out)], env=env,
                          capture_output=True, text=True, cwd=work)  # not the checkout: -m puts the cwd first
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        sys.exit(f"{name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    rss = []
    for line in (logs / "rss.log").read_text().splitlines():
        pid, rank, kb, *what = line.split(" ")
        rss.append({"pid": int(pid), "rank": rank, "peak_rss_mb": int(kb) / 1024, "what": " ".join(what)})
    workers = sorted((r for r in rss if "scoremix_ds" in r["what"] or processes == 1), key=lambda r: r["rank"])
    opens = (logs / "opens.log").read_text().splitlines() if (logs / "opens.log").exists() else []
    hashes = (logs / "hashes.log").read_text().splitlines() if (logs / "hashes.log").exists() else []
    shards = [p for p in hashes if p.endswith(".parquet")]
    return {"case": name, "processes": processes, "wall_s": wall, "code": sorted({r["what"].split()[0] for r in workers}),
            "peak_rss_mb": {r["rank"]: round(r["peak_rss_mb"], 1) for r in workers},
            "processes_opening_real_data": len({line.split()[0] for line in opens}), "real_data_opens": len(opens),
            "shards_hashed": len(shards), "distinct_shards_hashed": len({p.split(" ", 2)[2] for p in shards}),
            "bytes_hashed": sum(int(p.split(" ", 2)[1]) for p in shards)}


def export_tree(cache: Path, rev: str) -> Path:
    """The whole checkout as it was at ``rev`` (a build needs the package's cards/ and builders/ beside it)."""
    import io
    import tarfile

    sha = subprocess.run(["git", "rev-parse", rev], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
    root = cache / f"tree-{sha[:12]}"
    if not (root / ".done").is_file():
        root.mkdir(parents=True, exist_ok=True)
        blob = subprocess.run(["git", "archive", sha], cwd=REPO, capture_output=True, check=True).stdout
        tarfile.open(fileobj=io.BytesIO(blob)).extractall(root)
        (root / ".done").write_text(sha)
    return root


def shard_bytes(out: Path) -> tuple[int, int]:
    manifest = json.loads((out / "manifest.json").read_text())
    files = [out / rel for files in manifest["shards"].values() for rel in files]
    return len(files), sum(f.stat().st_size for f in files)


def show(r: dict) -> None:
    rss = ", ".join(f"rank {k}: {v:.0f} MB" for k, v in r["peak_rss_mb"].items())
    print(f"{r['case']:<28} {r['wall_s']:7.1f} s  opened real data: {r['processes_opening_real_data']} process(es)  "
          f"hashed {r['shards_hashed']} shard files ({r['distinct_shards_hashed']} distinct, "
          f"{r['bytes_hashed'] / 1e6:.2f} MB)  peak RSS {rss}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--classes", type=int, default=20_000)
    ap.add_argument("--per-class", type=int, default=5)
    ap.add_argument("--pairs", type=int, default=256)
    ap.add_argument("--processes", type=int, default=4)
    ap.add_argument("--before", default=None, help="also run the 4-process cases at this git revision")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/scoremix-bench-scale"))
    ap.add_argument("--json", type=Path, default=None, help="write the results here")
    ap.add_argument("--rerun-only", action="store_true",
                    help="only the re-runs of the finished builds a previous run left under --cache")
    args = ap.parse_args()

    from scoremix_ds.core.resources import default_model_dir

    real, gen = ensure_data(args.cache, args.classes, args.per_class)
    work = args.cache / "work"
    build_args = ["build", "--real-data", str(real), "--generator", str(gen), "--discriminator",
                  str(default_model_dir("discriminator")), "--strategy", "distant", "--pairs", str(args.pairs),
                  "--per-identity", "1", "--steps", "1", "--shard-size", "8", "--batch-size", "64", "--no-repro",
                  "--no-progress"]
    print(f"real set: {args.classes * args.per_class} images in {args.classes} classes ({real}); "
          f"{args.pairs} identities x 1 image, shards of 8 identities", flush=True)
    results = []
    sources = [("now", None)] + ([("before " + args.before, export_tree(args.cache, args.before))]
                                 if args.before else [])
    for label, src in sources:
        one, many = work / f"{label}-1p", work / f"{label}-{args.processes}p"
        cases = [(f"{label}: 1 process", 1, one), (f"{label}: {args.processes} processes", args.processes, many),
                 (f"{label}: {args.processes}p re-run", args.processes, many)]
        if args.rerun_only:
            cases = cases[2:]
        else:
            for folder in (one, many, work / f"cache-{label}-1p", work / f"cache-{label}-{args.processes}p"):
                shutil.rmtree(folder, ignore_errors=True)
        for name, n, out in cases:
            cache_dir = work / f"cache-{label}-{n}p"
            r = run_case(name.replace(" ", "_").replace(":", ""), work, src, n, build_args, out, cache_dir)
            r["case"] = name
            if "re-run" in name:
                r["shard_files"], r["shard_bytes"] = shard_bytes(out)
            results.append(r)
            show(r)
        if args.rerun_only:
            continue
        base, launch, rerun = results[-3:]
        worst_other = max((v for k, v in launch["peak_rss_mb"].items() if k != "0"), default=float("nan"))
        print(f"{label}: peak RSS of the planning process {launch['peak_rss_mb'].get('0', float('nan')):.0f} MB, of "
              f"the others at most {worst_other:.0f} MB (ratio to the 1-process build "
              f"{worst_other / max(base['peak_rss_mb'].values()):.2f}); re-run hashed "
              f"{rerun['bytes_hashed'] / max(rerun['shard_bytes'], 1):.2f}x the build's shard bytes "
              f"({rerun['shards_hashed']} hashes of {rerun['shard_files']} shards) in {rerun['wall_s']:.1f} s", flush=True)
    if args.before:
        now_rerun, before_rerun = [r for r in results if "re-run" in r["case"]]
        print(f"re-run wall time now / before: {now_rerun['wall_s'] / before_rerun['wall_s']:.2f}; bytes hashed now / "
              f"before: {now_rerun['bytes_hashed'] / max(before_rerun['bytes_hashed'], 1):.2f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
