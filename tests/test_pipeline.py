"""The build pipeline: batches filled across unit boundaries, units balanced by size over ranks, and the threaded
pipeline writing the same bytes as the serial path whatever the batch size."""

from __future__ import annotations

import json

import pytest

import scoremix_ds.synthesis.runner as runner
from scoremix_ds.synthesis.config import BuildConfig
from scoremix_ds.synthesis.layout import Layout
from scoremix_ds.synthesis.pipeline import Row, batches


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
