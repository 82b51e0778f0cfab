"""The build pipeline: batches filled across unit boundaries, units balanced by size over ranks, and the threaded
pipeline writing the same bytes as the serial path whatever the batch size."""

from __future__ import annotations

import json

import pytest

import scoremix_ds.synthesis.runner as runner
from scoremix_ds.synthesis.config import BuildConfig
from scoremix_ds.synthesis.layout import Layout
from scoremix_ds.synthesis.rows import Row, batches


def _rows(unit: int, k: int, n: int) -> dict[str, list[Row]]:
    return {"mix": [Row(unit, "mix", i, tuple(range(k)), (1.0 / k,) * k, i, {}) for i in range(n)]}


def test_batches_fill_across_units_and_keep_one_tuple_size():
    units = [_rows(0, 2, 5), {**_rows(1, 2, 5), "repro": [Row(1, "repro", i, (0,), (1.0,), i, {}) for i in range(3)]},
             _rows(2, 2, 5)]
    got = list(batches(iter(units), 4))
    assert [len(b) for b in got] == [4, 4, 4, 3, 3]  # 15 pairs in 4+4+4+3, then the 3 singles
    assert all(len({len(r.classes) for r in b}) == 1 for b in got)
    assert [(r.unit, r.pos) for r in got[1]] == [(0, 4), (1, 0), (1, 1), (1, 2)]  # crosses the unit boundary


def test_units_balanced_by_size_over_ranks():
    sizes = [30, 30, 30, 30, 30, 10, 10, 10, 10, 10, 10]
    shares = [Layout(rank=r, world=3).my_units(list(range(11)), sizes) for r in range(3)]
    assert sorted(u for s in shares for u in s) == list(range(11))
    loads = [sum(sizes[u] for u in s) for s in shares]
    assert loads == [70, 70, 70]  # largest first to the least loaded
    robin = [sum(sizes[u] for u in Layout(rank=r, world=3).my_units(list(range(11)))) for r in range(3)]
    assert robin == [80, 80, 50]  # what round-robin gave
    equal = [Layout(rank=r, world=2).my_units(list(range(5)), [4] * 5) for r in range(2)]
    assert equal == [Layout(rank=r, world=2).my_units(list(range(5))) for r in range(2)]  # equal units: round-robin


@pytest.mark.parametrize("batch_size", [3, 7])
def test_threaded_pipeline_writes_the_serial_bytes(tiny_generator_dir, tiny_discriminator_dir, tiny_real_data_dir,
                                                   tmp_path, monkeypatch, one_thread, batch_size):
    base = dict(generator=str(tiny_generator_dir), discriminator=str(tiny_discriminator_dir),
                real_data=str(tiny_real_data_dir), pairs=5, per_identity=2, steps=2, shard_size=2, batch_size=batch_size)
    shards = {}
    for workers in (0, 2):
        monkeypatch.setattr(runner, "ENCODE_WORKERS", workers)
        out = tmp_path / f"w{workers}"
        assert runner.run_build(BuildConfig(**base, out=str(out)), progress=False).complete
        shards[workers] = json.loads((out / "manifest.json").read_text())["shards"]
    assert shards[0] == shards[2]


def test_threaded_pipeline_keeps_host_work_off_the_sampling_thread(tiny_generator_dir, tiny_discriminator_dir,
                                                                   tiny_real_data_dir, tmp_path, monkeypatch, one_thread):
    """Quantising, copying and encoding run in the encoder threads, at a lower CPU priority (Linux), and the
    pipeline's counters add up to its wall time."""
    import os
    import sys
    import threading

    import scoremix_ds.synthesis.rows as pipeline

    seen = []
    real_encode, real_run_units = pipeline._quantise_and_encode, pipeline.run_units

    linux = sys.platform.startswith("linux")  # Linux threads have nice values of their own; elsewhere the process's
    process_nice = os.getpriority(os.PRIO_PROCESS, 0)

    def spy(images):
        nice = os.getpriority(os.PRIO_PROCESS, threading.get_native_id() if linux else 0)
        seen.append((threading.current_thread().name, nice))
        return real_encode(images)

    stats = []
    monkeypatch.setattr(pipeline, "_quantise_and_encode", spy)
    monkeypatch.setattr(runner, "run_units", lambda *a, **k: stats.append(real_run_units(*a, **k)) or stats[-1])
    monkeypatch.setattr(runner, "ENCODE_WORKERS", 2)
    config = BuildConfig(generator=str(tiny_generator_dir), discriminator=str(tiny_discriminator_dir),
                         real_data=str(tiny_real_data_dir), pairs=5, per_identity=2, steps=2, shard_size=2,
                         batch_size=4, out=str(tmp_path / "out"))
    assert runner.run_build(config, progress=False).complete
    assert seen and all(name.startswith("scoremix-encode") for name, _ in seen)
    lowered = min(19, process_nice + pipeline.HELPER_NICE) if linux else process_nice  # elsewhere: nothing changes
    assert {nice for _, nice in seen} == {lowered}
    s = stats[0]
    assert s.images == 30 and s.batches == 8  # 10 mixes + 20 parents, in batches of 4: 3 + 5
    assert min(s.head_seconds, s.drain_seconds, s.between_seconds, s.sample_seconds) >= 0
    assert abs(s.head_seconds + s.sample_seconds + s.between_seconds + s.drain_seconds - s.seconds) < 1e-9
