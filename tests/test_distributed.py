"""Layout-independent, crash-safe builds with REAL processes: a 2-process gloo group, job-array parts + merge,
and SIGKILL at random points followed by resume. The rows (shard hashes) must be identical in every case."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fixtures.cli import build_command
from scoremix_ds.synthesis.layout import Layout
from scoremix_ds.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def build_args(tiny_generator_dir, tiny_discriminator_dir, tiny_real_data_dir):
    return build_command(tiny_generator_dir, tiny_discriminator_dir, tiny_real_data_dir, pairs=6, per_identity=3,
                         steps=3, shard_size=1, batch_size=4)


def env() -> dict:
    e = dict(os.environ, OMP_NUM_THREADS="1", SCOREMIX_LOG_LEVEL="WARNING")
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
    return e


def cli(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "scoremix_ds", *args], capture_output=True, text=True, env=env(),
                          timeout=600, **kw)


def shards(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())["shards"]


@pytest.fixture
def reference(build_args, tmp_path) -> dict:
    out = tmp_path / "reference"
    assert main([*build_args, "--out", str(out)]) == 0
    return shards(out)


def test_layout_assigns_every_unit_once():
    for parts in (1, 2, 3):
        for world in (1, 2, 4):
            seen = []
            for part in range(parts):
                units = Layout(part=part, parts=parts).part_units(11)
                for rank in range(world):
                    seen += Layout(rank=rank, world=world, part=part, parts=parts).my_units(units)
            assert sorted(seen) == list(range(11))


@pytest.mark.slow  # 2-process launches: 261 s measured on a shared, loaded 2-core CPU
def test_two_process_gloo_build_equals_one_process(build_args, reference, tmp_path):
    out = tmp_path / "two"
    proc = cli(*build_args, "--out", str(out), "--num-processes", "2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert shards(out) == reference  # same files, same sha256: identical rows in the same order
    assert "complete" in proc.stdout


def test_job_array_parts_merge_to_the_same_dataset(build_args, reference, tmp_path, capsys):
    parts = [tmp_path / f"part{i}" for i in range(3)]
    for i, part in enumerate(parts):
        assert main([*build_args, "--shard", str(i), "--num-shards", "3", "--out", str(part)]) == 0
        assert not (part / "README.md").exists()  # the card comes with the merge
    capsys.readouterr()
    assert main(["merge", *map(str, parts), "--out", str(tmp_path / "merged")]) == 0
    assert "merge: copy shards" in capsys.readouterr().err  # --progress is the default: the bar is shown
    assert shards(tmp_path / "merged") == reference
    assert (tmp_path / "merged" / "README.md").is_file() and (tmp_path / "merged" / "preview.png").is_file()
    assert main(["merge", *map(str, parts), "--out", str(tmp_path / "quiet"), "--no-progress"]) == 0
    assert "merge:" not in capsys.readouterr().err and shards(tmp_path / "quiet") == reference
    # incomplete coverage and foreign configs are refused, and nothing is written
    assert main(["merge", str(parts[0]), str(parts[1]), "--out", str(tmp_path / "m2")]) == 2
    assert "missing [2]" in capsys.readouterr().err and not (tmp_path / "m2").exists()
    other = tmp_path / "other2"
    assert main([*build_args, "--seed", "5", "--shard", "2", "--num-shards", "3", "--out", str(other)]) == 0
    capsys.readouterr()
    assert main(["merge", str(parts[0]), str(parts[1]), str(other), "--out", str(tmp_path / "m3")]) == 2
    assert "different build config" in capsys.readouterr().err and not (tmp_path / "m3").exists()


def test_merge_of_parts_without_repro_samples_the_preview_a_whole_build_makes(build_args, tmp_path):
    """No repro rows to read the preview from: merge samples it again from the parts' recorded config
    (runner.resample_preview), the same images as the whole build's preview."""
    args = [*build_args, "--no-repro", "--pairs", "2"]
    assert main([*args, "--out", str(tmp_path / "whole")]) == 0
    parts = [tmp_path / f"part{i}" for i in range(2)]
    for i, part in enumerate(parts):
        assert main([*args, "--shard", str(i), "--num-shards", "2", "--out", str(part)]) == 0
    assert main(["merge", *map(str, parts), "--out", str(tmp_path / "merged")]) == 0
    assert (tmp_path / "merged" / "preview.png").read_bytes() == (tmp_path / "whole" / "preview.png").read_bytes()


def test_status_reports_progress_of_an_unfinished_build(build_args, tmp_path, capsys):
    out = tmp_path / "s"
    assert main([*build_args, "--out", str(out)]) == 0
    from test_build import crash_after_units

    crash_after_units(out, keep={0, 3})
    capsys.readouterr()
    assert main(["status", str(out)]) == 0
    assert "2 of 6 units done" in capsys.readouterr().out


@pytest.mark.slow  # 11 CLI builds in subprocesses (5 killed, 5 resumed): over 600 s on a shared, loaded 2-core CPU
def test_sigkill_at_random_points_then_resume_is_identical(build_args, reference, tmp_path):
    rng = random.Random(1234)
    args = [*build_args, "--steps", "6"]
    start = time.perf_counter()
    full = cli(*args, "--out", str(tmp_path / "timing"))
    assert full.returncode == 0, full.stderr[-2000:]
    duration = time.perf_counter() - start
    reference6 = shards(tmp_path / "timing")
    for attempt in range(5):
        out = tmp_path / f"killed{attempt}"
        proc = subprocess.Popen([sys.executable, "-m", "scoremix_ds", *args, "--out", str(out)], env=env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.3, 0.95) * duration)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        resumed = cli(*args, "--out", str(out))
        assert resumed.returncode == 0, resumed.stderr[-2000:]
        assert shards(out) == reference6, f"kill point {attempt}"
        assert not list(out.rglob("*.tmp")) and not (out / ".scoremix").exists()
        parquet = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.parquet"))
        assert parquet == sorted(f for files in reference6.values() for f in files)  # no stray or duplicate shard


def test_ctrl_c_keeps_finished_units_and_a_rerun_completes(build_args, tmp_path):
    args = [*build_args, "--steps", "400"]  # slow enough units (seconds each) that Ctrl-C lands mid-build
    out = tmp_path / "interrupted"
    # A background shell (CI) starts children with SIGINT ignored; a user's terminal does not: restore the default.
    proc = subprocess.Popen([sys.executable, "-m", "scoremix_ds", *args, "--out", str(out)], env=env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    markers = out / ".scoremix" / "units"
    deadline = time.monotonic() + 300
    while not list(markers.glob("unit-*.json")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    if proc.returncode == 0:
        pytest.skip("the build finished before Ctrl-C arrived")
    assert proc.returncode == 130 and "completed shards are kept" in err
    kept = len(list(markers.glob("unit-*.json")))
    assert kept >= 1
    resumed = cli(*args, "--out", str(out))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert json.loads((out / "manifest.json").read_text())["complete"] is True


HASH_LOGGER = '''
import importlib.abc, importlib.util, os, sys


class _LogHashes(importlib.abc.MetaPathFinder):
    """Wrap scoremix_ds.dataset.manifest.file_sha256 as the module loads: each call appends 'pid path' to $HASH_LOG."""

    def find_spec(self, name, path, target=None):
        if name != "scoremix_ds.dataset.manifest":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            plain = module.file_sha256

            def logged(p):
                with open(os.environ["HASH_LOG"], "a") as fh:
                    fh.write(f"{os.getpid()} {p}\\n")
                return plain(p)

            module.file_sha256 = logged

        spec.loader.exec_module = exec_module
        return spec


sys.meta_path.insert(0, _LogHashes())
'''


def hashed(log: Path) -> list[str]:
    """The shard paths hashed, once per hash (any process)."""
    lines = log.read_text().splitlines() if log.exists() else []
    return sorted("/".join(Path(line.split(" ", 1)[1]).parts[-3:]) for line in lines if line.endswith(".parquet"))


@pytest.mark.slow  # a 2-process launch (model loading in each): minutes on a shared, loaded 2-core CPU
def test_two_process_resume_and_rerun_hash_each_shard_once(build_args, reference, tmp_path):
    """Resume verifies only what each process owns (issue 26.3): a 2-process resume of a folder whose units are all
    done but not yet finalized hashes every shard once in all, and so does a re-run of the finished folder."""
    from test_build import crash_after_units

    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(HASH_LOGGER)
    log = tmp_path / "hashes.log"
    out = tmp_path / "resumed"
    assert main([*build_args, "--out", str(out)]) == 0
    crash_after_units(out, keep=set(range(6)))  # every unit done; the folder not finalized
    expected = sorted(rel for files in reference.values() for rel in files)
    e = dict(env(), HASH_LOG=str(log))
    e["PYTHONPATH"] = str(hooks) + os.pathsep + e["PYTHONPATH"]
    proc = subprocess.run([sys.executable, "-m", "scoremix_ds", *build_args, "--out", str(out), "--num-processes", "2"],
                          capture_output=True, text=True, env=e, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert shards(out) == reference
    pids = {line.split(" ", 1)[0] for line in log.read_text().splitlines()}
    assert len(pids) == 2  # both processes verified a share
    assert hashed(log) == expected  # each shard once, in all
    log.unlink()
    proc = subprocess.run([sys.executable, "-m", "scoremix_ds", *build_args, "--out", str(out), "--num-processes", "2"],
                          capture_output=True, text=True, env=e, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert hashed(log) == expected  # the finished folder: checked once, by the launching process
