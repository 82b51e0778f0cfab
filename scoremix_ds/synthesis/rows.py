"""The build's sampling pipeline: the model samples while other threads encode, write and prepare.

One process's units become two streams of rows (mixes of K parents, and the parents alone when ``repro``), cut into
batches of ``batch_size`` ACROSS unit boundaries, so every batch but each stream's last is full. Per batch:

- the next batch's scheduler, initial noise (per-sample seeded CPU generators) and class / weight tensors are made
  in a helper thread while this batch samples, so the sampling thread only calls the sampler;
- the sampled images go, still on the device, to a pool of ``encode_workers`` threads that quantise them to uint8,
  copy them to the host and PNG-encode them (torch and Pillow's PNG encoder release the GIL), so the sampling thread
  never waits for the device's copy and can queue the next batch at once;
- when every row of one of a unit's configs is encoded, a writer thread writes that shard; after the unit's last
  shard, its completion marker (the marker still follows all its shards, so a crash at any point leaves only
  complete, verifiable units).

The helper threads run at a lower CPU priority (``HELPER_NICE``) than the sampling thread, so on busy cores the
sampling thread gets a core back as soon as the device is done with a batch.

Queues are bounded (``2 * encode_workers + 2`` batches in flight, two shards waiting to be written), so memory stays
flat whatever the build size. Rows are a function of their seeds only (``sampling/scoremix.py``), never of which
batch they share, so the rows are the same bytes as the serial path's; ``encode_workers = 0`` runs that serial path
(encode and write in the calling thread, no prefetch), kept for comparison (``benchmarks/bench_overlap.py``).
"""

from __future__ import annotations

import copy
import logging
import math
import os
import sys
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from ..maths.image_tensors import to_uint8
from ..dataset.schema import COLUMNS
from ..dataset.writer import encode_png, shard_path, write_shard
from ..generators.loading import ClassConditionalGenerator
from ..sampling.batches import SamplingSettings, sample_batch
from ..sampling.scoremix import initial_noise
from .config import BuildConfig
from .planning.mix_plan import MixPlan
from .units import write_marker

logger = logging.getLogger(__name__)

SWITCH_INTERVAL = 0.0005  # seconds: how soon a thread waiting for the GIL gets it (Python's default is 0.005)
HELPER_NICE = 10  # added to the helper threads' nice value: the sampling thread preempts them when the device is done


def _lower_priority() -> None:
    """A helper thread's initializer: lower this thread's CPU priority by ``HELPER_NICE`` (Linux nice values are
    per thread; never above 19, never below the process's own). When the cores are busy encoding, the sampling
    thread waking from its wait for the device then gets a core at once instead of a time slice later. Where
    threads have no nice value of their own (not Linux), nothing changes."""
    if sys.platform.startswith("linux") and HELPER_NICE > 0:
        tid = threading.get_native_id()
        try:
            os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + HELPER_NICE))
        except OSError:
            pass


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
    seconds: float = 0.0  # the whole pipeline: rows' bookkeeping, first batch, ..., last marker
    full_batches: int = 0
    head_seconds: float = 0.0  # before the first sampler call (rows, first noise)
    drain_seconds: float = 0.0  # after the last sampler call (the last encodes and shard writes)

    @property
    def between_seconds(self) -> float:
        """Wall time between sampler calls: what the sampling thread spent on anything but sampling."""
        return self.seconds - self.sample_seconds - self.head_seconds - self.drain_seconds


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


def _quantise_and_encode(images: torch.Tensor) -> list[bytes]:
    """An encoder thread's task: images in [-1, 1] (on the device) -> uint8 on the host -> PNG bytes."""
    return _encode(to_uint8(images))


class _Units:
    """Encoded rows gathered per unit and config. A config's shard is handed to ``write`` as soon as all its rows
    are in (``last`` tells the unit's final one, after which its marker may be written), so the build's tail waits
    for one shard, not for a whole unit."""

    def __init__(self, expected: dict[int, dict[str, int]], write: Callable[[int, str, dict, bool], None]):
        self.expected = expected
        self.columns: dict[tuple[int, str], dict[str, list]] = {}
        self.missing = {(u, c): n for u, configs in expected.items() for c, n in configs.items()}
        self.configs_left = {u: len(configs) for u, configs in expected.items()}
        self.write = write

    def add(self, rows: list[Row], pngs: list[bytes]) -> None:
        for row, png in zip(rows, pngs):
            key = (row.unit, row.config)
            cols = self.columns.get(key)
            if cols is None:
                cols = self.columns[key] = {name: [None] * self.expected[row.unit][row.config] for name in COLUMNS}
            cols["image"][row.pos] = png
            for name, value in row.meta.items():
                cols[name][row.pos] = value
            self.missing[key] -= 1
            if self.missing[key] == 0:
                self.configs_left[row.unit] -= 1
                self.write(row.unit, row.config, self.columns.pop(key), self.configs_left[row.unit] == 0)


@dataclass(frozen=True)
class Prepared:
    """Everything one batch's sampler call takes besides the models: made off the sampling thread."""

    scheduler: object
    classes: torch.Tensor  # (B, K) class ids
    weights: torch.Tensor  # (B, K) float32 mixing weights
    seeds: list[int]
    noise: tuple | None  # initial_noise(seeds, ...), or None to draw it in the sampler


def _class_weight_tensors(rows: list[Row]) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch's (B, K) class ids and float32 mixing weights."""
    return torch.as_tensor([r.classes for r in rows]), torch.as_tensor([r.weights for r in rows], dtype=torch.float32)


def prepare(gen: ClassConditionalGenerator, template, rows: list[Row]) -> Prepared:
    """What a batch needs before its first step, made off the sampling thread: a fresh scheduler (a copy of an
    unused one: diffusers' ``from_config`` costs ~10 ms of Python per batch), the per-sample seeded noise, and the
    class and weight tensors (``torch.as_tensor`` of nested tuples is ~0.3 ms of Python per batch)."""
    seeds = [r.seed for r in rows]
    noise, gens = initial_noise(seeds, gen.sample_shape)
    if gen.device.type == "cuda":  # page-locked: the sampler's copy to the device then never waits on the host
        noise = noise.pin_memory()
    return Prepared(copy.deepcopy(template), *_class_weight_tensors(rows), seeds, (noise, gens))


def sample_rows(gen: ClassConditionalGenerator, weak, settings: SamplingSettings, rows: list[Row],
                prepared: Prepared | None = None) -> torch.Tensor:
    """Sample one batch of rows (images in [-1, 1], on the generator's device), with what :func:`prepare` made for
    it, or (the serial path) making it here."""
    if prepared is None:
        return sample_batch(gen, settings, *_class_weight_tensors(rows), [r.seed for r in rows], weak=weak)
    return sample_batch(gen, settings, prepared.classes, prepared.weights, prepared.seeds, weak=weak,
                        scheduler=prepared.scheduler, noise=prepared.noise)


def run_units(plan: MixPlan, units: list[range], mine: list[int], gen: ClassConditionalGenerator, weak,
              config: BuildConfig, out: Path, on_batch: Callable[[int], None] | None = None,
              encode_workers: int = 2) -> PipelineStats:
    """Sample, encode and write every unit in ``mine``; returns timing counters."""
    stats = PipelineStats()
    started = time.perf_counter()  # the rows' bookkeeping, first batch to last marker: all of it is counted
    per_unit = {u: unit_rows(plan, u, units[u], config) for u in mine}
    expected = {u: {c: len(r) for c, r in rows.items()} for u, rows in per_unit.items()}

    written: dict[int, dict[str, dict]] = {}  # unit -> config -> shard info, until the unit's marker is written

    def write_unit(u: int, name: str, cols: dict, last: bool) -> None:  # called in order, by one thread
        rel = shard_path(name, u)
        written.setdefault(u, {})[name] = {"relpath": rel, "rows": len(cols["label"]), "sha256": write_shard(out, rel, cols)}
        if last:
            write_marker(out, u, written.pop(u))  # every shard of the unit is on disk before the marker names them

    stream = batches((per_unit[u] for u in mine), config.batch_size)
    if encode_workers <= 0:
        assembled, settings = _Units(expected, write_unit), config.sampling
        for rows in stream:
            t = time.perf_counter()
            stats.head_seconds = stats.head_seconds or t - started
            images = to_uint8(sample_rows(gen, weak, settings, rows))
            last = time.perf_counter()
            stats.sample_seconds += last - t
            _count(stats, rows, config, on_batch)
            assembled.add(rows, _encode(images))
        stats.seconds = time.perf_counter() - started
        stats.drain_seconds = stats.seconds - (last - started) if stats.batches else 0.0
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
    helpers = dict(initializer=_lower_priority)
    with ThreadPoolExecutor(1, thread_name_prefix="scoremix-prepare", **helpers) as preparer, \
            ThreadPoolExecutor(encode_workers, thread_name_prefix="scoremix-encode", **helpers) as encoders, \
            ThreadPoolExecutor(1, thread_name_prefix="scoremix-write", **helpers) as writer:
        writes: deque[Future] = deque()

        def submit_write(u: int, name: str, cols: dict, last: bool) -> None:
            while len(writes) >= 2:  # bounded: at most two shards wait for the disk
                writes.popleft().result()
            writes.append(writer.submit(write_unit, u, name, cols, last))

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
        settings = config.sampling
        template = settings.new_scheduler(gen.scheduler_config)
        ahead = preparer.submit(prepare, gen, template, current) if current else None
        while current is not None:
            nxt = next(it, None)
            prepared = ahead.result()
            ahead = preparer.submit(prepare, gen, template, nxt) if nxt else None
            t = time.perf_counter()
            stats.head_seconds = stats.head_seconds or t - started
            images = sample_rows(gen, weak, settings, current, prepared)
            last = time.perf_counter()
            stats.sample_seconds += last - t
            _count(stats, current, config, on_batch)
            step = -(-len(current) // encode_workers)  # contiguous slices (views), one per encoder
            in_flight.append((current, [encoders.submit(_quantise_and_encode, images[i:i + step])
                                        for i in range(0, len(current), step)]))
            settle(block=False)
            while len(in_flight) > limit:
                settle(block=True)
            current = nxt
        while in_flight:
            settle(block=True)
        while writes:
            writes.popleft().result()
    stats.seconds = time.perf_counter() - started
    stats.drain_seconds = stats.seconds - (last - started) if stats.batches else 0.0
    return stats


def _count(stats: PipelineStats, rows: list[Row], config: BuildConfig, on_batch) -> None:
    stats.batches += 1
    stats.images += len(rows)
    stats.full_batches += len(rows) == config.batch_size
    if on_batch is not None:
        on_batch(len(rows))


__all__ = ["PipelineStats", "Row", "batches", "run_units", "sample_rows", "unit_rows"]
