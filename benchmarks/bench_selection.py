"""Pair selection in the paper's regime: ``distant`` with pairs = classes over N x 512-d random class vectors.

Each case runs in its own child process, which reports its wall time and peak RSS (``ru_maxrss``):

- ``new``: :func:`scoremix_ds.maths.pair_strategies.select_extreme_pairs` (per-class capped greedy over chunked top-k lists,
  torch; on the accelerator when present);
- ``retry`` (the baseline, the path before issue 13, rebuilt here from the library's own ``extreme_pairs`` and
  ``capped_greedy``): the best ``4 * pairs`` pairs, capped greedy, and a fourfold larger candidate set whenever the
  first pass at the starting cap ends short; run with a time limit (``--baseline-limit``), since at 20K it does not
  finish in minutes;
- at the sizes where the baseline finishes, whether both picked the SAME pairs in the same order;
- the rate of one plain ``(4096 x N)`` float32 product in the same process, and the time that the triangle of
  products alone would take at that rate (the floor of any exact method that looks at every pair).

    python benchmarks/bench_selection.py                    # 5K and 20K (a few minutes, most of it the baseline)
    python benchmarks/bench_selection.py --sizes 100000 --no-baseline   # 100K: minutes, a few GiB
    python benchmarks/bench_selection.py --sizes 10000 --no-baseline --align  # plus `align` on two random spaces
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import time

import numpy as np


def retry_baseline(vectors: np.ndarray, num: int) -> np.ndarray:
    """The pre-issue-13 ``select_extreme_pairs`` (distant), for the baseline."""
    from scoremix_ds.core.errors import ConfigError
    from scoremix_ds.maths.pair_strategies import capped_greedy
    from scoremix_ds.maths.topk import extreme_pairs

    n = len(vectors)
    total = n * (n - 1) // 2
    start = max(1, math.ceil(2 * num / n))
    m = min(total, 4 * num)
    while True:
        pairs, _ = extreme_pairs(vectors, m, largest=True)
        order = np.arange(len(pairs))
        if m == total:
            return pairs[capped_greedy(pairs, order, num, n)]
        try:
            return pairs[capped_greedy(pairs, order, num, n, start)]
        except ConfigError:
            m = min(total, 4 * m)


def child(mode: str, n: int, dim: int, out: str | None) -> dict:
    import torch  # noqa: F401  (imported before timing: the selection's screening runs in torch)

    from scoremix_ds.maths.pair_strategies import select_extreme_pairs

    vectors = np.random.default_rng(0).normal(size=(n, dim))
    if mode == "align":  # `align` between these vectors and an independent random space of the same size
        from scoremix_ds.maths.alignment import alignment_report

        t = time.perf_counter()
        report = alignment_report(vectors, np.random.default_rng(1).normal(size=(n, dim)), k=10, seed=0)
        return {"align_s": time.perf_counter() - t, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "debiased_cka": report["debiased_cka"]}
    t = time.perf_counter()
    if mode == "new":
        picked = select_extreme_pairs(vectors, n, np.arange(n), descending=True)
    else:
        picked = retry_baseline(vectors, n)
    wall = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    assert len(picked) == n and len({tuple(p) for p in picked.tolist()}) == n
    if out:
        np.save(out, picked)
    u = torch.nn.functional.normalize(torch.from_numpy(vectors).float(), dim=1)
    rows = min(4096, n)
    u[:rows] @ u.T
    t = time.perf_counter()
    u[:rows] @ u.T
    plain = time.perf_counter() - t
    rate = 2.0 * rows * n * dim / plain
    return {"wall_s": wall, "peak_rss_mib": peak, "gflops": rate / 1e9, "triangle_floor_s": n * (n - 1) / 2 * dim * 2 / rate}


def run_child(mode: str, n: int, dim: int, limit: float | None, out: str | None) -> dict | None:
    cmd = [sys.executable, __file__, "--child", mode, str(n), str(dim), out or "-"]
    try:
        res = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=limit)
    except subprocess.TimeoutExpired:
        return None
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5_000, 20_000])
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--baseline-limit", type=float, default=180.0, help="seconds before the baseline is stopped")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--align", action="store_true", help="also time `align` (CKA, kNN, ...) at each size")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, n, dim, out = args.child
        print(json.dumps(child(mode, int(n), int(dim), None if out == "-" else out)))
        return
    import tempfile

    print(f"{'classes':>8} {'pairs':>7} {'new s':>7} {'new MiB':>8} {'floor s':>8} {'retry s':>9} {'retry MiB':>9} "
          f"{'retry/new':>9} {'same pairs':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            new = run_child("new", n, args.dim, None, f"{tmp}/new{n}.npy")
            old = None if args.no_baseline else run_child("retry", n, args.dim, args.baseline_limit, f"{tmp}/old{n}.npy")
            if old is None:
                old_s = "-" if args.no_baseline else f">{args.baseline_limit:.0f}"
                old_mib, ratio, same = "-", (f">{args.baseline_limit / new['wall_s']:.1f}" if not args.no_baseline else "-"), "-"
            else:
                old_s, old_mib = f"{old['wall_s']:.1f}", f"{old['peak_rss_mib']:.0f}"
                ratio = f"{old['wall_s'] / new['wall_s']:.1f}"
                same = "yes" if np.array_equal(np.load(f"{tmp}/new{n}.npy"), np.load(f"{tmp}/old{n}.npy")) else "NO"
            print(f"{n:>8} {n:>7} {new['wall_s']:>7.1f} {new['peak_rss_mib']:>8.0f} {new['triangle_floor_s']:>8.1f} "
                  f"{old_s:>9} {old_mib:>9} {ratio:>9} {same:>10}", flush=True)
            if args.align:
                a = run_child("align", n, args.dim, None, None)
                print(f"{'':>8} align: {a['align_s']:.1f} s, peak {a['peak_rss_mib']:.0f} MiB, debiased CKA "
                      f"{a['debiased_cka']:.4f}", flush=True)


if __name__ == "__main__":
    main()
