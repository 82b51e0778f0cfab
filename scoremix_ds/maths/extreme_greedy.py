"""The capped greedy pick of ``distant`` / ``close`` at any number of classes, with no retry over the whole order.

:func:`scoremix_ds.maths.pair_strategies.capped_greedy` walks ALL pairs in strategy order (largest or smallest cosine
distance first, ties by class ids) and keeps a pair while both classes are below the cap; when the walk ends short,
the cap grows by one and the walk restarts. Within one walk a class that is full stays full, so a pair passed over
is never pickable later in that walk. The greedy is therefore the same as:

    repeat: pick the best (key, a, b) pair not yet taken whose two classes are both below the cap;
            when none is left, grow the cap (up to ``max_uses``).

That needs, for every class still below the cap, only its best partner still below the cap. This module keeps one
sorted candidate list per class and a heap of the heads of those lists:

- the lists start as each class's top-``k`` partners, screened in float32 by one chunked ``(B, N)`` product per
  block on the accelerator (torch), then re-keyed in float64 exactly like the dense path (``1 - <u_i, u_j>``,
  clipped to [0, 2]) and cut where float32 rounding could have hidden a better partner (a proven error bound);
- a class whose list runs out while it is still below the cap gets a new list: float64 distances to the partners
  still pickable (below the cap, not yet paired with it), a list that grows fourfold each time; once it holds all of
  them the class can only get stuck. A new list is screened in float32 first (one matrix-vector product over the
  rows still below the cap, compacted when half of them have filled up), and only the partners within the float32
  error bound of the cut get their float64 key, computed as before (one float64 matrix-vector product per row,
  whose numbers do not depend on which other rows are in it), so the lists hold the same partners and keys;
- the walk to a class's next pickable partner tests its list a block at a time against the below-the-cap mask;
- when the cap grows, every class goes back to its first list (those lists were cut over ALL partners).

So the picks equal ``capped_greedy`` on the full exact order; memory is ``O(N * k + B * N)``. Nothing is ever retried
over all pairs, whatever the hubs or the cap do. Measured on the 2-core CPU machine: see ``docs/performance.md``.
"""

from __future__ import annotations

import heapq
import math

import numpy as np

from ..core.errors import ConfigError
from .topk import unit_rows

_BLOCK_NUMBERS = 1 << 25  # float32 similarities per screening block (128 MiB)
_REFILL_MIN = 256
_WALK = 16  # list entries tested at once by the walk to a row's next pickable partner (doubling)


def _merge(run_v, run_i, v, i, k: int, largest: bool):
    import torch

    v = torch.cat([run_v, v], dim=1)
    i = torch.cat([run_i, i], dim=1)
    v, pos = torch.topk(v, k, dim=1, largest=largest, sorted=True)
    return v, torch.gather(i, 1, pos)


def _screen(u64: np.ndarray, k: int, descending: bool, device: str, block_rows: int | None):
    """Per row: its top-``k`` partners by float32 similarity, re-keyed in float64, sorted by (key, a, b) and cut to
    the prefix that is provably complete. Returns (partners (N, k) int64, keys (N, k) float64, lengths (N,)).

    Only the upper triangle is multiplied: block ``[s, e)`` times columns ``[s, N)`` feeds the running top-k of its
    own rows and, transposed, that of the rows after it."""
    import torch

    n, dim = u64.shape
    dev = torch.device(device)
    u32 = torch.from_numpy(u64.astype(np.float32)).to(dev)
    largest = not descending  # distant: the smallest similarities
    worst = -math.inf if largest else math.inf
    # |fl32(<u, v>) - <u, v>| <= gamma_d * sum |u_i v_i| <= ~(d + 4) 2^-24 for unit rows (any summation order);
    # doubled for the float32 rounding of the normalised rows themselves.
    margin = 2.0 * (dim + 4) * 2.0 ** -24
    b = block_rows or int(max(16, min(8192, _BLOCK_NUMBERS // max(n, 1))))
    run_v = torch.full((n, k), worst, device=dev)
    run_i = torch.full((n, k), -1, dtype=torch.int64, device=dev)
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")  # no TF32: the error bound above assumes true float32 products
    try:
        for s in range(0, n, b):
            e = min(s + b, n)
            sim = u32[s:e] @ u32[s:].T  # (B, N - s)
            rows = torch.arange(e - s, device=dev)
            sim[rows, rows] = worst  # never your own partner
            kk = min(k, n - s)
            v, i = torch.topk(sim, kk, dim=1, largest=largest, sorted=False)
            run_v[s:e], run_i[s:e] = _merge(run_v[s:e], run_i[s:e], v, i + s, k, largest)
            if e < n:
                v, i = torch.topk(sim[:, e - s:], min(k, e - s), dim=0, largest=largest, sorted=False)  # per column
                run_v[e:], run_i[e:] = _merge(run_v[e:], run_i[e:], v.T, i.T + s, k, largest)
            del sim
        idx_t = run_i.cpu()
        thr = run_v[:, -1].double().cpu().numpy()
    finally:
        torch.set_float32_matmul_precision(previous)
    del run_v, run_i, u32
    # exact float64 keys of the candidates, computed in torch (one thread pool: no fight with numpy's BLAS threads)
    u64_t = torch.from_numpy(u64)
    sim64 = torch.empty(n, k, dtype=torch.float64)
    step = max(1, (1 << 22) // max(k * dim, 1))
    for s in range(0, n, step):
        e = min(s + step, n)
        sim64[s:e] = torch.bmm(u64_t[idx_t[s:e]], u64_t[s:e].unsqueeze(2)).squeeze(2)
    idx = idx_t.numpy()
    key = np.clip(1.0 - sim64.numpy(), 0.0, 2.0)
    if descending:
        key = -key
        # a partner left out has sim32 >= thr, so true sim >= thr - margin, so key >= -clip(1 - thr + margin)
        bound = -np.clip(1.0 - thr + margin, 0.0, 2.0)
    else:
        bound = np.clip(1.0 - thr - margin, 0.0, 2.0)
    ok = np.ones_like(key, dtype=bool) if k >= n - 1 else key < bound[:, None]
    key = np.where(ok, key, np.inf)
    r = np.arange(n)[:, None]
    order = np.lexsort((np.maximum(r, idx), np.minimum(r, idx), key), axis=1)
    return np.take_along_axis(idx, order, axis=1), np.take_along_axis(key, order, axis=1), ok.sum(axis=1)


def greedy_extreme_pairs(
    vectors: np.ndarray,
    num: int,
    descending: bool,
    start_cap: int,
    max_uses: int | None = None,
    *,
    device: str = "cpu",
    k: int | None = None,
    block_rows: int | None = None,
    stats: dict | None = None,
) -> np.ndarray:
    """``num`` pairs ``(a, b)`` (row ids of ``vectors``, ``a < b``) in pick order: the capped greedy over all pairs
    ordered by cosine distance (``descending``: farthest first; ties by ``a`` then ``b``), cap from ``start_cap``
    growing up to ``max_uses``. ``stats`` (a dict), if given, receives counters (refills, cap growths)."""
    import torch

    u64 = unit_rows(vectors)
    n = len(u64)
    total = n * (n - 1) // 2
    if num > total:
        raise ConfigError(f"{num} pairs requested but only {total} distinct pairs exist among {n} classes",
                          hint=f"use `pairs` {total} or fewer", field="pairs")
    k = min(n - 1, k or max(32, 8 * start_cap + 16))
    parts, keys, lengths = _screen(u64, k, descending, device, block_rows)
    u64_t = torch.from_numpy(u64)
    sign = -1.0 if descending else 1.0
    counters = {"refills": 0, "cap_growths": 0, "screen_k": k}
    cap = start_cap
    usage = [0] * n
    taken: set[int] = set()  # a * n + b
    partners_of: list[list[int]] = [[] for _ in range(n)]
    chosen: list[tuple[int, int]] = []
    # per row: its current list (partners, keys as Python lists), read position, whether it holds every partner
    lists: list = [None] * n
    pos = [0] * n
    full_list = [False] * n
    grow = [0] * n

    alive = np.ones(n, dtype=bool)

    u32 = u64.astype(np.float32)
    live: list = [None, None]  # rows that were alive when last compacted (a superset of alive), their float32 rows

    def compact() -> None:
        rows = np.flatnonzero(alive)
        live[:] = [rows, torch.from_numpy(u32[rows])]

    def reset() -> list:
        alive[:] = np.asarray(usage) < cap
        compact()
        heap = []
        for i in range(n):
            lists[i] = None
            pos[i] = 0
            grow[i] = 0
            if usage[i] < cap:
                entry = head(i)
                if entry is not None:
                    heap.append(entry)
        heapq.heapify(heap)
        return heap

    u32_t = torch.from_numpy(u32)
    # |fl32 <u_i, u_j> - <u_i, u_j>| for unit rows, with room for the float64 keys' own rounding (see _screen)
    margin = 4.0 * (u64.shape[1] + 4) * 2.0 ** -24

    def exact_keys(cand: np.ndarray, i: int) -> np.ndarray:
        """The float64 keys of (i, cand): one matrix-vector product per row, the same numbers whatever rows
        ``cand`` holds."""
        return sign * np.clip(1.0 - torch.mv(torch.from_numpy(u64[cand]), u64_t[i]).numpy(), 0.0, 2.0)

    def refill(i: int) -> None:
        counters["refills"] += 1
        rows, rows32 = live
        if 2 * np.count_nonzero(alive) < len(rows):  # most of the compacted rows are full now: drop them
            compact()
            rows, rows32 = live
        valid = alive[rows]
        drop = np.asarray([i, *partners_of[i]], dtype=np.int64)
        at = np.minimum(np.searchsorted(rows, drop), len(rows) - 1)
        valid[at[rows[at] == drop]] = False  # those not in rows are not alive anyway
        cand = rows[valid]
        g = grow[i] = max(_REFILL_MIN, 4 * max(grow[i], k))
        if len(cand) > g:
            # float32 screen over the compacted rows, then exact float64 keys only for the partners that can be among
            # the g best: a float32 similarity is within `margin` of the float64 one, so the g best (and every tie
            # with the g-th) have s32 within 2 * margin of the g-th smallest/largest s32.
            s32 = torch.mv(rows32, u32_t[i]).numpy()[valid]
            if descending:
                near = s32 <= np.partition(s32, g - 1)[g - 1] + 2.0 * margin
            else:
                near = s32 >= -np.partition(-s32, g - 1)[g - 1] - 2.0 * margin
            sub = cand[near]
            key = exact_keys(sub, i)
            kth = np.partition(key, g - 1)[g - 1] if len(sub) >= g else 0.0
            if len(sub) < g or abs(kth) in (0.0, 2.0):  # a cut at a clipped key: decide it over every partner
                sub, key = cand, exact_keys(cand, i)
                kth = np.partition(key, g - 1)[g - 1]
            sel = key <= kth  # every tie with the cut: whatever is left out is strictly worse
            cand, key = sub[sel], key[sel]
            full_list[i] = False
        else:
            key = exact_keys(cand, i)
            full_list[i] = True
        lo, hi = np.minimum(cand, i), np.maximum(cand, i)
        order = np.lexsort((hi, lo, key))
        lists[i] = (cand[order], key[order])
        pos[i] = 0

    def head(i: int):
        """Row i's best partner still pickable, as a heap entry, or None if it has none left (stuck)."""
        while True:
            if lists[i] is None:
                m = int(lengths[i])
                lists[i] = (parts[i, :m], keys[i, :m])
                full_list[i] = k >= n - 1
                pos[i] = 0
            js, ks = lists[i]
            p = pos[i]
            step = _WALK
            while p < len(js):  # the partners below the cap (alive), a block at a time; then the taken test
                block = js[p:p + step]
                for t in np.flatnonzero(alive[block]).tolist():
                    j = int(block[t])
                    a, b = (i, j) if i < j else (j, i)
                    if a * n + b not in taken:
                        pos[i] = p + t
                        return (float(ks[p + t]), a, b, i)
                p += len(block)
                step *= 2
            pos[i] = p
            if full_list[i]:
                return None
            refill(i)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the walk does many tiny products: more threads only spin and contend
    try:
        heap = reset()
        while len(chosen) < num:
            if not heap:
                if max_uses is not None and cap >= max_uses:
                    raise ConfigError(
                        f"{num} pairs requested but the usage cap of {max_uses} per class admits only {len(chosen)} of "
                        f"the {total} candidates (greedy pick in strategy order)",
                        hint=f"use `pairs` {len(chosen)} or fewer, or raise `max_uses`", fields=("pairs", "max_uses"),
                    )
                cap += 1
                counters["cap_growths"] += 1
                heap = reset()
                continue
            _, a, b, i = heapq.heappop(heap)
            if usage[i] >= cap:
                continue  # the row filled up since its head was pushed
            j = b if i == a else a
            if usage[j] < cap and a * n + b not in taken:
                taken.add(a * n + b)
                usage[a] += 1
                usage[b] += 1
                partners_of[a].append(b)
                partners_of[b].append(a)
                for x in (a, b):
                    if usage[x] >= cap:
                        alive[x] = False
                chosen.append((a, b))
                if usage[i] >= cap:
                    continue
            entry = head(i)
            if entry is not None:
                heapq.heappush(heap, entry)
    finally:
        torch.set_num_threads(threads)
    if stats is not None:
        stats.update(counters)
    return np.asarray(chosen, dtype=np.int64).reshape(-1, 2)


__all__ = ["greedy_extreme_pairs"]
