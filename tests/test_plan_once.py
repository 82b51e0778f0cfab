"""Plan once, by one process, streaming (issue 26), and the user's class-centre cache (issue 24.2).

- the real set is read a block at a time: the digest and the centres equal those of the whole set in memory;
- class centres live in a user cache (``SCOREMIX_CACHE``; the suite's conftest points it under a temporary home):
  a second build into a new folder embeds nothing, ``--no-cache`` embeds again, a damaged entry is recomputed, two
  concurrent writers leave one whole entry;
- a resumed build and ``build --plan`` never open the real data (a trace file counts the openings);
- a 2-process build opens the real data in one process, and its re-run hashes each shard once in all.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import scoremix_ds.synthesis.runner as runner
from fixtures.cli import build_command, run_two_processes
from scoremix_ds.cli import main
from scoremix_ds.synthesis.centres_cache import cache_root, data_digest, load_centres, user_cache
from scoremix_ds.synthesis.config import BuildConfig
from scoremix_ds.synthesis.planning import real_stream
from scoremix_ds.synthesis.planning.shared_plan import PLAN_STATE, read_state, write_state
from test_centres_cache import Forwards

ROOT = Path(__file__).resolve().parents[1]


def cache_entries() -> list[Path]:
    return sorted((cache_root() / "centres").glob("*")) if (cache_root() / "centres").is_dir() else []


def opened(trace: Path) -> list[str]:
    """The processes (pids) that opened the real data, one per opening."""
    return [line.split()[0] for line in trace.read_text().splitlines()] if trace.exists() else []


@pytest.fixture
def config(tiny_generator_dir, tiny_discriminator_dir, tiny_real_data_dir, tmp_path) -> BuildConfig:
    return BuildConfig(generator=str(tiny_generator_dir), discriminator=str(tiny_discriminator_dir),
                       real_data=str(tiny_real_data_dir), pairs=3, per_identity=1, steps=1, shard_size=1,
                       out=str(tmp_path / "a"))


def test_the_stream_gives_the_digest_and_centres_of_the_whole_set(tmp_path, tiny_discriminator_dir, one_thread,
                                                                    monkeypatch):
    """Many blocks (a small BLOCK, a small batch): bit-identical to the whole set decoded and embedded at once."""
    import datasets
    from PIL import Image

    from scoremix_ds.discriminators.loading import embed_images, load_discriminator
    from scoremix_ds.maths.centres import class_centres
    from scoremix_ds.sources.openers import read_real_data

    rng = np.random.default_rng(1)
    labels = rng.integers(0, 7, size=300).tolist()
    images = [Image.fromarray(rng.integers(0, 255, size=(8, 8), dtype=np.uint8), mode="L") for _ in labels]
    (tmp_path / "real" / "data").mkdir(parents=True)
    datasets.Dataset.from_dict({"image": images, "label": labels},
                               features=datasets.Features({"image": datasets.Image(), "label": datasets.Value("int64")})
                               ).to_parquet(str(tmp_path / "real" / "data" / "train-00000.parquet"))
    monkeypatch.setattr(real_stream, "BLOCK", 48)
    disc = load_discriminator(str(tiny_discriminator_dir))
    whole = read_real_data(str(tmp_path / "real"))
    real = real_stream.open_real(str(tmp_path / "real"))
    assert np.array_equal(real.labels, whole.labels) and real.class_names == whole.class_names
    assert real_stream.embedding_block(disc, "cpu", 16) == 48  # three batches of 16 per block: 7 blocks here
    for rows in (np.arange(300), np.flatnonzero(np.isin(whole.labels, [1, 4, 5]))):  # all rows, a class subset
        subset = dataclasses.replace(whole, images=whole.images[rows], labels=whole.labels[rows])
        assert real_stream.stream_digest(real, rows, 7) == data_digest(subset, 7)
        expected = class_centres(embed_images(disc, subset.images, batch_size=16), subset.labels, 7)
        got = real_stream.stream_centres(disc, real, rows, 7, "cpu", batch_size=16)
        np.testing.assert_array_equal(got, expected)  # NaN rows (classes without images) where expected has them


def shard_hashes(out) -> dict:
    """Every shard's sha256 by config and file name: equal only for byte-identical rows (row counts are not)."""
    from scoremix_ds.dataset.manifest import Manifest

    return {c: {name: f["sha256"] for name, f in files.items()} for c, files in Manifest.read(Path(out)).shards.items()}


def test_a_new_out_reads_the_cache_and_no_cache_embeds_again(config, tmp_path, capsys):
    with Forwards() as f:
        first = runner.run_build(config, progress=False)
    assert f.count > 0 and len(cache_entries()) == 1
    with Forwards() as f:  # another folder, the same models and data: nothing embedded
        second = runner.run_build(dataclasses.replace(config, out=str(tmp_path / "b")), progress=False)
    assert f.count == 0 and shard_hashes(second.out) == shard_hashes(first.out)  # the same rows, byte for byte
    entry = cache_entries()[0]
    stamp = entry.stat().st_mtime_ns
    args = build_command(config.generator, config.discriminator, config.real_data, pairs=3, per_identity=1, steps=1,
                         shard_size=1)
    with Forwards() as f:
        assert main([*args, "--out", str(tmp_path / "c"), "--no-cache"]) == 0
    assert f.count > 0  # embedded again ...
    assert cache_entries() == [entry] and entry.stat().st_mtime_ns == stamp  # ... and the cache neither read nor written
    assert os.environ.get("SCOREMIX_NO_CACHE") is None  # the flag lasts the command only
    with Forwards() as f:
        assert main([*args, "--out", str(tmp_path / "d")]) == 0
    assert f.count == 0


def test_a_damaged_entry_is_recomputed_never_trusted(config, tmp_path, caplog):
    runner.run_build(config, progress=False)
    (entry,) = cache_entries()
    good = entry.read_bytes()
    entry.write_bytes(good[:-8] + bytes(8))  # same size, other numbers: only the recorded sha256 tells
    with Forwards() as f, caplog.at_level("WARNING"):
        result = runner.run_build(dataclasses.replace(config, out=str(tmp_path / "b")), progress=False)
    assert f.count > 0 and "damaged" in caplog.text
    from safetensors import safe_open

    with safe_open(str(entry), framework="numpy") as f:
        key = f.metadata()["key"]
    (tmp_path / "good.safetensors").write_bytes(good)
    np.testing.assert_array_equal(load_centres(entry, key), load_centres(tmp_path / "good.safetensors", key))  # whole
    fresh = runner.run_build(dataclasses.replace(config, out=str(tmp_path / "c")), progress=False)
    assert shard_hashes(result.out) == shard_hashes(fresh.out)


WRITER = """
import sys, numpy as np
from pathlib import Path
from scoremix_ds.synthesis.centres_cache import save_centres
centres = np.arange(4000, dtype=np.float64).reshape(40, 100)
for _ in range(40):
    save_centres(Path(sys.argv[1]), "disc:data:prep", centres)
"""


def test_two_concurrent_writers_leave_one_whole_entry(tmp_path):
    path = user_cache("disc:data:prep")
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(path)], env=env) for _ in range(2)]
    assert all(w.wait(timeout=120) == 0 for w in writers)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left behind
    np.testing.assert_array_equal(load_centres(path, "disc:data:prep"), np.arange(4000.0).reshape(40, 100))


def test_resume_and_build_plan_never_open_the_real_data(config, tmp_path, monkeypatch, models):
    trace = tmp_path / "opens.log"
    monkeypatch.setenv(real_stream.TRACE, str(trace))
    real_run_units = runner.run_units

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # dies after planning, before any unit is written

    monkeypatch.setattr(runner, "run_units", crash)
    with pytest.raises(KeyboardInterrupt):
        runner.run_build(config, progress=False)
    assert len(opened(trace)) == 1 and (Path(config.out) / PLAN_STATE).is_file()
    monkeypatch.setattr(runner, "run_units", real_run_units)
    resumed = runner.run_build(config, progress=False)
    assert resumed.complete and len(opened(trace)) == 1  # the resume read the plan it wrote, not the data
    fresh = runner.run_build(dataclasses.replace(config, out=str(tmp_path / "fresh")), progress=False)
    assert shard_hashes(resumed.out) == shard_hashes(fresh.out)  # the plan it read is the plan a fresh run makes
    trace.unlink()
    plan = tmp_path / "plan.parquet"
    assert main(["plan", *models, "--pairs", "3", "--per-identity", "1", "--out", str(plan)]) == 0
    assert len(opened(trace)) == 1
    assert main(["build", *models, "--plan", str(plan), "--steps", "1", "--out", str(tmp_path / "p"),
                 "--no-progress"]) == 0
    assert len(opened(trace)) == 1  # the plan recorded the real data's facts: build --plan did not open it


def test_the_plan_state_is_exact_and_tied_to_its_build(config, tmp_path):
    from scoremix_ds.synthesis.planning.mix_plan import Identity, MixPlan

    plan = MixPlan((Identity(0, (1, 3), (0.25, 0.75), float("nan"), 0.1 + 0.2, (2**62 + 1, 7)),
                    Identity(1, (0, 2), (0.5, 0.5), 1 / 3, 2.0, (5, 2**63 - 1))), class_names=("a", "b", "c", "d"))
    write_state(tmp_path, "f1", plan, {"real_data": None, "num": 3})
    got, provenance = read_state(tmp_path, "f1")
    assert provenance == {"real_data": None, "num": 3} and got.class_names == plan.class_names
    for a, b in zip(got.identities, plan.identities):
        assert (a.parents, a.weights, a.seeds, a.condition_distance) == (b.parents, b.weights, b.seeds,
                                                                          b.condition_distance)
        assert np.array_equal([a.embedding_distance], [b.embedding_distance], equal_nan=True)
    assert read_state(tmp_path, "another build") is None
    whole = (tmp_path / PLAN_STATE).read_bytes()
    (tmp_path / PLAN_STATE).write_bytes(b"torn")
    assert read_state(tmp_path, "f1") is None
    for cut in (len(whole) // 2, len(whole) - 30):  # a real npz cut short (a crash mid-write on a non-atomic FS)
        (tmp_path / PLAN_STATE).write_bytes(whole[:cut])
        assert read_state(tmp_path, "f1") is None
    flipped = bytearray(whole)
    flipped[len(whole) // 3] ^= 0xFF  # one flipped byte inside a member: its CRC no longer matches
    (tmp_path / PLAN_STATE).write_bytes(bytes(flipped))
    assert read_state(tmp_path, "f1") is None


@pytest.mark.slow  # two 2-process launches (model loading in each): minutes on a shared, loaded 2-core CPU
def test_two_processes_one_reads_the_real_data_and_a_rerun_hashes_each_shard_once(
        tiny_generator_dir, tiny_discriminator_dir, tiny_real_data_dir, tmp_path, monkeypatch):
    from test_distributed import HASH_LOGGER, hashed

    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(HASH_LOGGER)
    trace, log, out = tmp_path / "opens.log", tmp_path / "hashes.log", tmp_path / "two"
    monkeypatch.setenv(real_stream.TRACE, str(trace))
    monkeypatch.setenv("HASH_LOG", str(log))
    monkeypatch.setenv("PYTHONPATH", str(hooks) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    args = build_command(tiny_generator_dir, tiny_discriminator_dir, tiny_real_data_dir, pairs=6, per_identity=2,
                         steps=2, shard_size=1, batch_size=4)
    proc = run_two_processes(*args, "--out", str(out), timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(opened(trace)) == 1  # one process of two opened the real data
    reference = tmp_path / "one"
    monkeypatch.delenv(real_stream.TRACE)
    assert main([*args, "--out", str(reference)]) == 0
    import json

    shards = json.loads((out / "manifest.json").read_text())["shards"]
    assert shards == json.loads((reference / "manifest.json").read_text())["shards"]  # the rows of one process
    log.unlink(missing_ok=True)
    monkeypatch.setenv(real_stream.TRACE, str(trace))
    proc = run_two_processes(*args, "--out", str(out), timeout=600)  # the finished build again, launched directly
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert hashed(log) == sorted(rel for files in shards.values() for rel in files)  # each shard once, in all
    assert len({line.split(" ", 1)[0] for line in log.read_text().splitlines()}) == 2  # both processes shared it
    assert len(opened(trace)) == 1  # and nobody opened the real data again


def test_align_and_audit_share_the_cache(config, models, capsys, caplog):
    """align reads the entry a build wrote (same discriminator, data and preprocessing: one key); audit keeps its
    real reference there and reads it the second time."""
    from fixtures.cli import run_cli

    runner.run_build(config, progress=False)
    assert len(cache_entries()) == 1
    with Forwards() as f:
        assert run_cli(capsys, "align", *models)[0] == 0
    assert f.count == 0 and len(cache_entries()) == 1
    with Forwards() as f:
        assert run_cli(capsys, "align", *models, "--no-cache")[0] == 0
    assert f.count > 0
    assert run_cli(capsys, "audit", config.out)[0] == 0
    assert len(cache_entries()) == 2  # the audit's real reference (centres and per-class quantiles)
    with caplog.at_level("INFO", logger="scoremix_ds.synthesis.centres_cache"):
        first = run_cli(capsys, "audit", config.out)
    assert first[0] == 0 and "read from the cache" in caplog.text


def test_a_waiting_process_reads_the_plan_when_it_comes_and_gives_up_after_its_timeout(tmp_path, caplog):
    import threading

    from scoremix_ds.core.errors import DataError
    from scoremix_ds.synthesis.planning.mix_plan import Identity, MixPlan
    from scoremix_ds.synthesis.planning.shared_plan import wait_for_state

    with pytest.raises(DataError, match="SCOREMIX_WAIT_TIMEOUT"):
        wait_for_state(tmp_path / "never", "f", timeout=0.3, poll=0.05)
    plan = MixPlan((Identity(0, (0, 1), (0.5, 0.5), 0.2, 0.3, (11,)),), class_names=("a", "b"))
    write_state(tmp_path, "another build", plan, {})  # a stale plan of another build is not read
    later = threading.Timer(0.3, write_state, (tmp_path, "f", plan, {"p": 1}))
    later.start()
    with caplog.at_level("INFO", logger="scoremix_ds.synthesis.planning.shared_plan"):
        got, provenance = wait_for_state(tmp_path, "f", timeout=30, rank=3, poll=0.05)
    later.join()
    assert got == plan and provenance == {"p": 1}
    assert "process 3 waits for process 0's plan" in caplog.text


def test_a_waiting_process_warns_once_about_an_unreadable_plan_and_its_timeout_names_no_flag(tmp_path, caplog):
    """A damaged state (process 0 plans again meanwhile, which may take hours) is one warning, not one per poll;
    the timeout names no field (its fix is SCOREMIX_WAIT_TIMEOUT: a field would make the CLI add --out)."""
    from scoremix_ds.core.errors import DataError
    from scoremix_ds.synthesis.planning.shared_plan import wait_for_state

    (tmp_path / PLAN_STATE).parent.mkdir(parents=True)
    (tmp_path / PLAN_STATE).write_bytes(b"torn")
    with caplog.at_level("WARNING", logger="scoremix_ds.synthesis.planning.shared_plan"), \
            pytest.raises(DataError, match="SCOREMIX_WAIT_TIMEOUT") as info:
        wait_for_state(tmp_path, "f", timeout=0.4, poll=0.02)
    assert caplog.text.count("unreadable plan state") == 1
    assert info.value.fields == ()
