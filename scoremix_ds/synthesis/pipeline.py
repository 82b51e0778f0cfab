"""The build's sampling pipeline: the model samples while other threads encode, write and prepare.

One process's units become two streams of rows (mixes of K parents, and the parents alone when ``repro``), cut into
batches of ``batch_size`` ACROSS unit boundaries, so every batch but each stream's last is full. Per batch:

- the next batch's scheduler and initial noise (per-sample seeded CPU generators) are made in a helper thread
  while this batch samples;
- the sampled images go, as uint8, to a pool of ``encode_workers`` threads that PNG-encode them (Pillow and zlib
  release the GIL);
- when every row of a unit is encoded, a writer thread writes its shards, then its completion marker (the marker
  still follows its shards, so a crash at any point leaves only complete, verifiable units).

Queues are bounded (``2 * encode_workers + 2`` batches in flight, two units waiting to be written), so memory stays
flat whatever the build size. Rows are a function of their seeds only (``sampling/scoremix.py``), never of which
batch they share, so the rows are the same bytes as the serial path's; ``encode_workers = 0`` runs that serial path
(encode and write in the calling thread, no prefetch), kept for comparison (``benchmarks/bench_overlap.py``).
"""

from __future__ import annotations

import copy
import logging
import math
import sys
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from ..realdata.transforms import to_uint8
from ..dataset.schema import COLUMNS
from ..dataset.writer import encode_png, shard_path, write_shard
from ..models.generator import ClassConditionalGenerator
from ..sampling.schedulers import make_scheduler
from ..sampling.scoremix import initial_noise, scoremix_sample
from .config import BuildConfig
from .planning.mix_plan import MixPlan
from .units import write_marker

logger = logging.getLogger(__name__)

SWITCH_INTERVAL = 0.0005  # seconds: how soon a thread waiting for the GIL gets it (Python's default is 0.005)


@dataclass(frozen=True)
class Row:
    """One image to make: where it goes (unit, config, position) and everything its row records."""

    unit: int
    config: str
    pos: int
    classes: tuple[int, ...]
    weights: tuple[float, ...]
    seed: int
    meta: dict = field(hash=False, compare=False)  # the row's other columns


@dataclass
class PipelineStats:
    batches: int = 0
    images: int = 0
    sample_seconds: float = 0.0  # in the sampler calls (the model's share of the wall time)
    seconds: float = 0.0  # the whole pipeline, first batch to last marker
    full_batches: int = 0


def unit_rows(plan: MixPlan, unit: int, ids: range, config: BuildConfig) -> dict[str, list[Row]]:
    """The rows of one unit, per config, in the order their shard stores them. Names are the plan's: the real
    data's class names (``parent_names``) and the identity names the dataset's ``ClassLabel`` carries."""
    names, identity_names = plan.names, plan.identity_names
    rows: dict[str, list[Row]] = {"mix": []}
    items = [(plan.identities[i], j, s) for i in ids for j, s in enumerate(plan.seeds(i))]
    for ident, j, seed in items:
        mix = identity_names[ident.index]
        meta = _meta(ident.index, mix, ident, names, ident.parents, ident.weights, config, seed, j, mix)
        rows["mix"].append(Row(unit, "mix", len(rows["mix"]), ident.parents, ident.weights, seed, meta))
    if config.repro:
        rows["repro"] = []
        for ident, j, seed in items:
            for p in ident.parents:
                meta = _meta(p, f"repro:{names[p]}", ident, names, (p,), (1.0,), config, seed, j,
                             identity_names[ident.index])
                rows["repro"].append(Row(unit, "repro", len(rows["repro"]), (p,), (1.0,), seed, meta))
    return rows


def _meta(label, identity, ident, names, parents, weights, config: BuildConfig, seed: int, j: int,
          mix_identity: str) -> dict:
    return {
        "label": int(label), "identity": identity, "parents": list(parents), "parent_names": [names[p] for p in parents],
        "weights": list(weights), "embedding_distance": _distance(ident.embedding_distance),
        "condition_distance": _distance(ident.condition_distance), "strategy": config.strategy, "mixing": config.mixing,
        "seed": int(seed), "sample_index": int(j), "mix_identity": mix_identity,
    }


def _distance(value: float) -> float | None:
    """A row's distance; null when the space was not computed (no real data: no embedding distances)."""
    return None if math.isnan(value) else value


def batches(streams: Iterator[dict[str, list[Row]]], batch_size: int) -> Iterator[list[Row]]:
    """Rows cut into batches of one tuple size, filled across unit boundaries (each size's last may be short)."""
    pending: dict[int, list[Row]] = {}
    for rows in streams:
        for config_rows in rows.values():
            for row in config_rows:
                queue = pending.setdefault(len(row.classes), [])
                queue.append(row)
                if len(queue) == batch_size:
                    yield queue
                    pending[len(row.classes)] = []
    for queue in pending.values():
        if queue:
            yield queue


def _encode(images: np.ndarray) -> list[bytes]:
    return [encode_png(img) for img in images]


class _Units:
    """Encoded rows gathered per unit; a unit is handed to ``write`` once all its rows are in."""

    def __init__(self, expected: dict[int, dict[str, int]], write: Callable[[int, dict], None]):
        self.expected = expected
        self.columns: dict[int, dict[str, dict[str, list]]] = {}
        self.missing = {u: sum(c.values()) for u, c in expected.items()}
        self.write = write

    def add(self, rows: list[Row], pngs: list[bytes]) -> None:
        for row, png in zip(rows, pngs):
            unit = self.columns.setdefault(row.unit, {})
            cols = unit.get(row.config)
            if cols is None:
                n = self.expected[row.unit][row.config]
                cols = unit[row.config] = {name: [None] * n for name in COLUMNS}
            cols["image"][row.pos] = png
            for name, value in row.meta.items():
                cols[name][row.pos] = value
            self.missing[row.unit] -= 1
            if self.missing[row.unit] == 0:
                self.write(row.unit, self.columns.pop(row.unit))


def prepare(gen: ClassConditionalGenerator, template, rows: list[Row]) -> tuple:
    """What a batch needs before its first step, made off the sampling thread: a fresh scheduler (a copy of an
    unused one: diffusers' ``from_config`` costs ~10 ms of Python per batch) and the per-sample seeded noise."""
    return copy.deepcopy(template), initial_noise([r.seed for r in rows], gen.sample_shape)


def sample_batch(gen: ClassConditionalGenerator, weak, config: BuildConfig, rows: list[Row],
                 prepared: tuple | None = None) -> torch.Tensor:
    """Sample one batch (images in [-1, 1], on the generator's device)."""
    scheduler, noise = prepared if prepared is not None else (
        make_scheduler(config.scheduler, gen.scheduler_config, config.prediction_type), None)
    return scoremix_sample(gen, scheduler, torch.as_tensor([r.classes for r in rows]),
                           torch.as_tensor([r.weights for r in rows], dtype=torch.float32), [r.seed for r in rows],
                           config.steps, config.guidance, weak, config.schedule, mixing=config.mixing, noise=noise)


def run_units(plan: MixPlan, units: list[range], mine: list[int], gen: ClassConditionalGenerator, weak,
              config: BuildConfig, out: Path, on_batch: Callable[[int], None] | None = None,
              encode_workers: int = 2) -> PipelineStats:
    """Sample, encode and write every unit in ``mine``; returns timing counters."""
    stats = PipelineStats()
    per_unit = {u: unit_rows(plan, u, units[u], config) for u in mine}
    expected = {u: {c: len(r) for c, r in rows.items()} for u, rows in per_unit.items()}
    started = time.perf_counter()

    def write_unit(u: int, columns: dict) -> None:
        shards = {}
        for name, cols in columns.items():
            rel = shard_path(name, u)
            shards[name] = {"relpath": rel, "rows": len(cols["label"]), "sha256": write_shard(out, rel, cols)}
        write_marker(out, u, shards)  # the shards are on disk before the marker names them

    stream = batches((per_unit[u] for u in mine), config.batch_size)
    if encode_workers <= 0:
        assembled = _Units(expected, write_unit)
        for rows in stream:
            t = time.perf_counter()
            images = to_uint8(sample_batch(gen, weak, config, rows))
            stats.sample_seconds += time.perf_counter() - t
            _count(stats, rows, config, on_batch)
            assembled.add(rows, _encode(images))
        stats.seconds = time.perf_counter() - started
        return stats

    # The sampling thread waits on the device (GIL released) and must get the GIL back at once when the device is
    # done: with Python's default 5 ms switch interval, a busy encoder thread would delay every batch by up to 5 ms.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(min(interval, SWITCH_INTERVAL))
    try:
        return _threaded(stream, expected, write_unit, gen, weak, config, on_batch, encode_workers, stats, started)
    finally:
        sys.setswitchinterval(interval)


def _threaded(stream, expected, write_unit, gen, weak, config, on_batch, encode_workers, stats, started):
    with ThreadPoolExecutor(1, thread_name_prefix="scoremix-prepare") as preparer, \
            ThreadPoolExecutor(encode_workers, thread_name_prefix="scoremix-encode") as encoders, \
            ThreadPoolExecutor(1, thread_name_prefix="scoremix-write") as writer:
        writes: deque[Future] = deque()

        def submit_write(u: int, columns: dict) -> None:
            while len(writes) >= 2:  # bounded: at most two units wait for the disk
                writes.popleft().result()
            writes.append(writer.submit(write_unit, u, columns))

        assembled = _Units(expected, submit_write)
        in_flight: deque[tuple[list[Row], list[Future]]] = deque()
        limit = 2 * encode_workers + 2

        def settle(block: bool) -> None:
            while in_flight and (block or all(f.done() for f in in_flight[0][1])):
                rows, futures = in_flight.popleft()
                assembled.add(rows, [png for f in futures for png in f.result()])
                block = False

        it = iter(stream)
        current = next(it, None)
        template = make_scheduler(config.scheduler, gen.scheduler_config, config.prediction_type)
        ahead = preparer.submit(prepare, gen, template, current) if current else None
        while current is not None:
            nxt = next(it, None)
            prepared = ahead.result()
            ahead = preparer.submit(prepare, gen, template, nxt) if nxt else None
            t = time.perf_counter()
            images = to_uint8(sample_batch(gen, weak, config, current, prepared))
            stats.sample_seconds += time.perf_counter() - t
            _count(stats, current, config, on_batch)
            chunks = np.array_split(np.arange(len(current)), min(encode_workers, len(current)))
            in_flight.append((current, [encoders.submit(_encode, images[c]) for c in chunks]))
            settle(block=False)
            while len(in_flight) > limit:
                settle(block=True)
            current = nxt
        while in_flight:
            settle(block=True)
        while writes:
            writes.popleft().result()
    stats.seconds = time.perf_counter() - started
    return stats


def _count(stats: PipelineStats, rows: list[Row], config: BuildConfig, on_batch) -> None:
    stats.batches += 1
    stats.images += len(rows)
    stats.full_batches += len(rows) == config.batch_size
    if on_batch is not None:
        on_batch(len(rows))


__all__ = ["PipelineStats", "Row", "batches", "run_units", "sample_batch", "unit_rows"]
