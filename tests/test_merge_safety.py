"""``merge`` makes a dataset that does not share its parts' fate (issue 25.4: copies, never hard links) and cleans
what a killed merge left (issue 25.6); each part's shards are hashed once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fixtures.cli import build_command, run_cli
from scoremix_ds.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def parts(tiny_generator_dir, tiny_discriminator_dir, tiny_real_data_dir, tmp_path) -> list[Path]:
    args = build_command(tiny_generator_dir, tiny_discriminator_dir, tiny_real_data_dir, pairs=2, per_identity=1,
                         steps=2, shard_size=1, batch_size=4)
    folders = [tmp_path / f"part{i}" for i in range(2)]
    for i, part in enumerate(folders):
        assert main([*args, "--shard", str(i), "--num-shards", "2", "--out", str(part)]) == 0
    return folders


def test_damaging_a_part_after_the_merge_leaves_the_merged_dataset_intact(parts, tmp_path, capsys, monkeypatch):
    from scoremix_ds.dataset import integrity

    hashed = []
    plain = integrity.file_sha256
    monkeypatch.setattr(integrity, "file_sha256", lambda p: hashed.append(Path(p)) or plain(p))
    merged = tmp_path / "merged"
    assert run_cli(capsys, "merge", *map(str, parts), "--out", str(merged), "--no-progress")[0] == 0
    listed = [part / rel for part in parts for files in json.loads((part / "manifest.json").read_text())["shards"].values()
              for rel in files]
    assert sorted(hashed) == sorted(listed)  # each part's shard hashed once
    for src in listed:
        dst = merged / src.relative_to(src.parents[2])
        assert os.stat(dst).st_ino != os.stat(src).st_ino and os.stat(src).st_nlink == 1
        with open(src, "r+b") as fh:  # damage the part in place, as a bad disk or a stray write would
            fh.seek(0)
            fh.write(b"XXXX")
    assert not (merged / ".scoremix-lock").exists()
    rc, out, err = run_cli(capsys, "status", str(merged), "--verify")
    assert rc == 0, out + err


KILLED_MERGE = """
import sys, time
from pathlib import Path
from scoremix_ds.synthesis.merge import merge_parts

def stall():  # the parts have no repro config: the preview is sampled inside the staging step
    Path(sys.argv[1]).write_text("staging")
    time.sleep(600)

merge_parts([Path(p) for p in sys.argv[3:]], Path(sys.argv[2]), sample_preview=stall)
"""


def test_a_killed_merge_leaves_staging_that_the_next_merge_removes(tiny_generator_dir, tiny_discriminator_dir,
                                                                   tiny_real_data_dir, tmp_path, capsys):
    args = build_command(tiny_generator_dir, tiny_discriminator_dir, tiny_real_data_dir, pairs=2, per_identity=1,
                         steps=2, shard_size=1, batch_size=4)
    parts = [tmp_path / f"part{i}" for i in range(2)]
    for i, part in enumerate(parts):
        assert main([*args, "--no-repro", "--shard", str(i), "--num-shards", "2", "--out", str(part)]) == 0
    ready, merged = tmp_path / "ready", tmp_path / "merged"
    users = tmp_path / ".merged.mine.scoremix-merge"  # a user's folder named like staging: never touched
    users.mkdir()
    (users / "keep.txt").write_text("mine")
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-c", KILLED_MERGE, str(ready), str(merged), *map(str, parts)], env=env)
    deadline = time.monotonic() + 300
    while not ready.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ready.exists(), "the merge never reached its staging step"
    # a live merge's staging is left alone by another merge meanwhile (it is refused: nothing to remove)
    staging = [p for p in tmp_path.glob(".merged.*.scoremix-merge") if p != users]
    assert len(staging) == 1 and (staging[0] / ".scoremix-lock").is_file()
    from scoremix_ds.synthesis.merge import remove_stale_staging

    assert remove_stale_staging(merged) == []
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert staging[0].exists() and not merged.exists()
    assert run_cli(capsys, "merge", *map(str, parts), "--out", str(merged), "--no-progress")[0] == 0
    assert not staging[0].exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".merged")) == [users.name]
    assert (users / "keep.txt").read_text() == "mine"
    assert json.loads((merged / "manifest.json").read_text())["complete"] is True
