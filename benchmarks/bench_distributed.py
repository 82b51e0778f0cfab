"""Distributed throughput and resume overhead of `scoremix-ds build`, measured as ratios in one run.

1. Throughput: the same build with 2 processes x 1 thread (accelerate, gloo) over 1 process x 1 thread
   (target >= 1.7x). Reported on wall time of the whole command and with the start-up removed (start-up measured
   as the time of a re-run that has nothing left to do).
2. Resume with nothing left: wall time of that re-run (target < 3 s).
3. Resume after a SIGKILL at ~50%: time to finish over the uninterrupted build's remaining share
   (target: at most the in-flight units plus 5% of the build).

    python benchmarks/bench_distributed.py [--pairs 24 --per-identity 8 --shard-size 2]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run(args: list[str], **kw) -> float:
    env = dict(os.environ, OMP_NUM_THREADS="1", SCOREMIX_LOG_LEVEL="WARNING")
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "scoremix_ds", *args], check=True, env=env, stdout=subprocess.DEVNULL, **kw)
    return time.perf_counter() - start


def units_done(out: Path) -> int:
    return len(list((out / ".scoremix" / "units").glob("unit-*.json")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=32)
    parser.add_argument("--per-identity", type=int, default=8)
    parser.add_argument("--shard-size", type=int, default=2)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="scoremix-bench-dist-"))
    base = ["build", "--strategy", "distant", "--pairs", str(args.pairs), "--per-identity", str(args.per_identity),
            "--shard-size", str(args.shard_size), "--no-progress"]
    units = -(-args.pairs // args.shard_size)
    try:
        t1 = run([*base, "--out", str(tmp / "one")])
        noop = run([*base, "--out", str(tmp / "one")])
        t2 = run([*base, "--out", str(tmp / "two"), "--num-processes", "2"])
        # Fixed cost of a launch (imports, model loading, class centres, accelerate's launcher): the same command
        # with a single image to make, for 1 and 2 processes.
        tiny = [a for a in base]
        tiny[tiny.index("--pairs") + 1], tiny[tiny.index("--per-identity") + 1] = "2", "1"
        tiny[tiny.index("--shard-size") + 1] = "1"
        f1 = run([*tiny, "--out", str(tmp / "f1")])
        f2 = run([*tiny, "--out", str(tmp / "f2"), "--num-processes", "2"])
        same = json.loads((tmp / "one" / "manifest.json").read_text())["shards"] == \
            json.loads((tmp / "two" / "manifest.json").read_text())["shards"]
        print(f"build: {args.pairs} identities x {args.per_identity} images (+ repro), {units} units, 1 thread per process")
        print(f"1 process {t1:.1f}s, 2 processes {t2:.1f}s, identical shards: {same}")
        print(f"RATIO throughput 2 procs / 1 proc (whole command) = {t1 / t2:.2f}  (target >= 1.7)")
        print(f"fixed cost of a launch: 1 process {f1:.1f}s, 2 processes {f2:.1f}s")
        print(f"RATIO sampling throughput 2 procs / 1 proc (fixed cost removed) = {(t1 - f1) / (t2 - f2):.2f}  (target >= 1.7)")
        print(f"resume with nothing left to do: {noop:.2f}s  (target < 3 s)")

        env = dict(os.environ, OMP_NUM_THREADS="1", SCOREMIX_LOG_LEVEL="WARNING")
        out = tmp / "killed"
        proc = subprocess.Popen([sys.executable, "-m", "scoremix_ds", *base, "--out", str(out)], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while units_done(out) < units // 2 and proc.poll() is None:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        done = units_done(out)
        t_resume = run([*base, "--out", str(out)])
        sampling = t1 - f1
        expected = sampling * (units - done) / units
        allowed = expected + sampling / units + 0.05 * sampling  # + one in-flight unit + 5%
        print(f"killed with {done}/{units} units done; resume took {t_resume - f1:.1f}s of sampling "
              f"(remaining share {expected:.1f}s, allowed {allowed:.1f}s)")
        print(f"RATIO resume cost / remaining share = {(t_resume - f1) / expected:.2f}  "
              f"(allowed {allowed / expected:.2f} = in-flight unit + 5%)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
