"""Side effects once, from the main process, under every launcher: the user's own ``accelerate launch`` (REAL 2-process
gloo groups on CPU) and the CLI's ``--num-processes`` relaunch, pushing to a LoopbackHub with the real clients."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hubfixtures import REPO_ROOT, client_env, make_tiny_inputs

LAUNCH = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines",
          "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "scoremix_ds"]
TRAIN = ["train", "--real", "REAL", "--backbone", "small-cnn", "--embedding-dim", "8", "--image-size", "8",
         "--channels", "1", "--no-flip", "--steps", "2", "--batch-size", "8", "--checkpoint-every", "0", "--device",
         "cpu", "--no-progress"]


def launch(hub, tmp_path, *args: str, launcher=LAUNCH) -> subprocess.CompletedProcess:
    env = client_env(hub, tmp_path / "hf_home")
    env.update(OMP_NUM_THREADS="1", ACCELERATE_USE_CPU="true")
    return subprocess.run([*launcher, *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)


def lines(text: str, start: str) -> int:
    return sum(line.startswith(start) for line in text.splitlines())


def pushes(hub, repo: str, repo_type: str) -> int:
    kind = "datasets" if repo_type == "dataset" else "models"
    return len(hub.requests_matching("POST", rf"/api/{kind}/{repo}/commit/"))


@pytest.mark.slow  # 2-process launches: 267 s measured on a shared, loaded 2-core CPU
def test_build_push_to_under_accelerate_launch_pushes_once(hub, tmp_path):
    inputs = make_tiny_inputs(tmp_path / "in")
    out = tmp_path / "built"
    proc = launch(hub, tmp_path, "build", "--generator", inputs["generator"], "--discriminator", inputs["discriminator"],
                  "--real-data", inputs["real_data"], "--pairs", "4", "--per-identity", "1", "--steps", "2",
                  "--shard-size", "1", "--no-progress", "--out", str(out), "--push-to", "org/built", "--tag", "v1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert pushes(hub, "org/built", "dataset") == 1 and len(hub.commits("org/built")) >= 1
    assert set(hub.refs("org/built")["tags"]) == {"v1"}
    assert lines(proc.stdout, "built ") == 1 and lines(proc.stdout, "pushed ") == 1, proc.stdout
    assert proc.stderr.count("loaded discriminator") == 1 and proc.stderr.count("uploading") == 1  # logs once


@pytest.mark.slow  # 2-process launches: 357 s measured on a shared, loaded 2-core CPU
def test_train_push_to_under_accelerate_launch_and_num_processes_pushes_once(hub, tmp_path):
    real = make_tiny_inputs(tmp_path / "in")["real_data"]
    args = [a if a != "REAL" else real for a in TRAIN]
    proc = launch(hub, tmp_path, *args, "--out", str(tmp_path / "net"), "--push-to", "org/net")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert pushes(hub, "org/net", "model") == 1
    assert lines(proc.stdout, "saved model") == 1 and lines(proc.stdout, "pushed ") == 1, proc.stdout
    # the CLI's own relaunch: the children train, the parent pushes once, after them
    cli = [sys.executable, "-m", "scoremix_ds"]
    proc = launch(hub, tmp_path, *args, "--out", str(tmp_path / "net2"), "--push-to", "org/net2", "--num-processes",
                  "2", launcher=cli)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert pushes(hub, "org/net2", "model") == 1
    assert lines(proc.stdout, "saved model") == 1 and lines(proc.stdout, "pushed ") == 1, proc.stdout


@pytest.mark.slow  # 2-process launches: 249 s measured on a shared, loaded 2-core CPU
def test_build_push_to_under_torchrun_pushes_once(hub, tmp_path):
    inputs = make_tiny_inputs(tmp_path / "in")
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
                "scoremix_ds"]
    proc = launch(hub, tmp_path, "build", "--generator", inputs["generator"], "--discriminator", inputs["discriminator"],
                  "--real-data", inputs["real_data"], "--pairs", "2", "--per-identity", "1", "--steps", "2",
                  "--shard-size", "1", "--no-repro", "--no-progress", "--out", str(tmp_path / "b"), "--push-to",
                  "org/torchrun", launcher=torchrun)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert pushes(hub, "org/torchrun", "dataset") == 1
    assert lines(proc.stdout, "built ") == 1 and lines(proc.stdout, "pushed ") == 1, proc.stdout


def test_logs_come_from_rank_zero_and_other_ranks_warnings_are_tagged(monkeypatch):
    import logging

    from scoremix_ds.core.processes import MainProcessFilter, owns_side_effects, strip_options

    rec = lambda level: logging.LogRecord("x", level, __file__, 1, "message %s", ("a",), None)  # noqa: E731
    keep = MainProcessFilter()
    monkeypatch.setenv("RANK", "0")
    assert keep.filter(rec(logging.INFO)) and owns_side_effects()
    monkeypatch.setenv("RANK", "1")
    assert not keep.filter(rec(logging.INFO)) and not owns_side_effects()
    warning = rec(logging.WARNING)
    assert keep.filter(warning) and warning.getMessage() == "[rank 1] message a"
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("SCOREMIX_RELAUNCHED", "1")
    assert not owns_side_effects()  # a child of --num-processes: the parent pushes
    assert strip_options(["train", "--push-to", "o/n", "--tag=v1", "--force-tag", "--steps", "2"],
                         {"--push-to": 1, "--tag": 1, "--force-tag": 0}) == ["train", "--steps", "2"]


def test_quiet_and_verbose_set_the_level(capsys, caplog, tmp_path):
    import logging

    from scoremix_ds.cli import main

    root = logging.getLogger()
    before = root.level
    try:
        assert main(["-q", "plan", "--pairs", "2", "--no-progress", "--out", str(tmp_path / "q.parquet")]) == 0
        assert root.level == logging.WARNING and not [r for r in caplog.records if r.levelno < logging.WARNING]
        caplog.clear()
        assert main(["-v", "plan", "--pairs", "2", "--no-progress", "--out", str(tmp_path / "v.parquet")]) == 0
        assert root.level == logging.DEBUG and any(r.levelno == logging.INFO for r in caplog.records)
    finally:
        root.setLevel(before)
