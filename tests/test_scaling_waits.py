"""No process waits on long one-process work under torch's 10-minute default (issue 26.2): the launch's collective
timeout is set explicitly (``SCOREMIX_WAIT_TIMEOUT``), and finalize's preview reads the images of the rows it draws
only, not the image column of every shard."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from scoremix_ds.core.errors import ConfigError
from scoremix_ds.core.processes import DEFAULT_WAIT_TIMEOUT, WAIT_TIMEOUT, wait_timeout
from scoremix_ds.dataset.manifest import Manifest
from scoremix_ds.dataset.writer import decode_png
from scoremix_ds.synthesis import finalize
from scoremix_ds.synthesis.config import BuildConfig
from scoremix_ds.synthesis.runner import run_build


def test_wait_timeout_is_generous_by_default_and_configurable(monkeypatch):
    monkeypatch.delenv(WAIT_TIMEOUT, raising=False)
    assert wait_timeout() == DEFAULT_WAIT_TIMEOUT >= 3600
    monkeypatch.setenv(WAIT_TIMEOUT, "90")
    assert wait_timeout() == 90.0
    for bad in ("soon", "0", "-5", "nan", "inf"):
        monkeypatch.setenv(WAIT_TIMEOUT, bad)
        with pytest.raises(ConfigError, match=WAIT_TIMEOUT):
            wait_timeout()


def test_the_process_group_is_made_with_that_timeout(monkeypatch):
    import accelerate

    from scoremix_ds.synthesis import layout

    made = {}

    class FakeState:
        process_index, num_processes = 1, 2

        def __init__(self, **kwargs):
            made.update(kwargs)

    monkeypatch.setattr(layout, "launched_distributed", lambda: True)
    monkeypatch.setattr(accelerate, "PartialState", FakeState)
    monkeypatch.setenv(WAIT_TIMEOUT, "1234")
    group = layout.ProcessGroup()
    assert made["timeout"].total_seconds() == 1234 == group.timeout and group.world == 2


def test_the_preview_reads_only_the_images_it_draws(tiny_generator_dir, tiny_discriminator_dir, tiny_real_data_dir,
                                                    tmp_path, monkeypatch):
    out = tmp_path / "b"
    run_build(BuildConfig(generator=str(tiny_generator_dir), discriminator=str(tiny_discriminator_dir),
                          real_data=str(tiny_real_data_dir), pairs=6, per_identity=2, steps=2, batch_size=4,
                          shard_size=1, out=str(out)), progress=False)
    manifest = Manifest.read(out)
    monkeypatch.setattr(finalize, "PREVIEW_ROWS", 3)  # fewer than the 6 identities: the scan must stop early
    # the reference: every row read in full, as finalize did before
    rows = {c: [r for rel in files for r in pq.read_table(out / rel).to_pylist()] for c, files in manifest.shards.items()}
    mixes = {r["identity"]: r for r in rows["mix"] if r["sample_index"] == 0}
    drawn = list(mixes)[:finalize.PREVIEW_ROWS]
    single = {(r["mix_identity"], r["parents"][0]): r for r in rows["repro"] if r["sample_index"] == 0}

    columns_read, groups_read = [], []
    read_table, read_row_group = pq.read_table, pq.ParquetFile.read_row_group
    monkeypatch.setattr(finalize.pq, "read_table", lambda *a, **k: columns_read.append(k.get("columns")) or read_table(*a, **k))
    monkeypatch.setattr(pq.ParquetFile, "read_row_group",
                        lambda self, *a, **k: groups_read.append(k.get("columns")) or read_row_group(self, *a, **k))
    got = finalize.preview_from_rows(out, manifest)
    assert all(cols is not None and "image" not in cols for cols in columns_read)  # no full image column
    assert len(groups_read) <= 2 * len(drawn)  # one mix shard and one repro shard per drawn identity, at most
    assert len(columns_read) < len(manifest.shards["mix"]) + len(manifest.shards["repro"])  # the scan stopped early
    assert len(got) == len(drawn) == finalize.PREVIEW_ROWS
    for name, triplet in zip(drawn, got):
        parents = mixes[name]["parents"]
        expected = [single[(name, parents[0])], mixes[name], *[single[(name, p)] for p in parents[1:]]]
        assert all(np.array_equal(img, decode_png(r["image"]["bytes"])) for img, r in zip(triplet, expected))
