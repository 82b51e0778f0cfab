"""Experiment tracking through accelerate's trackers (``--report-to``, issue 24 item 5): a tiny run of each trainer
with ``--report-to tensorboard`` writes TensorBoard events that read back (tensorboard's own EventAccumulator) as the
loss at the steps ``train_log.jsonl`` has; W&B in offline mode (the real ``wandb`` package, no network, no account)
writes a run file whose records, read back by a reader written from the format's description, hold the same config
and history; a tracker whose package is missing is one line and exit 2 before anything is written; ``reproduce`` gives the flag to
every training stage without changing a stage's fingerprint; the configs' fingerprints ignore the new fields."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scoremix_ds.core.errors import ConfigError
from scoremix_ds.training.generator_config import GeneratorTrainConfig
from scoremix_ds.training.recognition_config import RecognitionTrainConfig
from tests.fixtures.cli import run_cli

pytestmark = pytest.mark.usefixtures("one_thread")

REC = """real = ["mnist-5k-train[0-3]"]
backbone = "small-cnn"
embedding_dim = 16
image_size = 16
channels = 1
flip = false
batch_size = 16
steps = 6
learning_rate = 0.05
warmup_steps = 1
scale = 16.0
log_every = 2
checkpoint_every = 0
device = "cpu"
"""
GEN = """real_data = "mnist-5k-heldout[0-3]"
image_size = 16
block_out_channels = [8, 16]
norm_num_groups = 4
steps = 26
batch_size = 4
warmup_steps = 2
learning_rate = 0.01
checkpoint_every = 0
device = "cpu"
"""


def _recipe(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def _scalars(run: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar of the TensorBoard run folder ``run``, as tensorboard itself reads it back."""
    events = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator").EventAccumulator(str(run))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def _jsonl(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]


def test_train_reports_the_log_records_to_tensorboard(tmp_path, capsys):
    out = tmp_path / "rec"
    rc, _, err = run_cli(capsys, "train", "--recipe", _recipe(tmp_path, "rec", REC), "--val",
                         "heldout:mnist-5k-heldout:200", "--eval-every", "3", "--report-to", "tensorboard",
                         "--out", str(out), "--no-progress")
    assert rc == 0, err
    records = _jsonl(out)
    scalars = _scalars(out / "rec")  # LOGGING_DIR (default: --out) / the run's name (--out's)
    steps = [r for r in records if "loss" in r]
    assert [s for s, _ in scalars["loss"]] == [r["step"] for r in steps] == [2, 4, 6]
    assert [v for _, v in scalars["loss"]] == pytest.approx([r["loss"] for r in steps], rel=1e-6)  # float32 events
    assert [v for _, v in scalars["lr"]] == pytest.approx([r["lr"] for r in steps], rel=1e-6, abs=1e-9)
    assert {"images_per_s", "global_batch"} <= set(scalars)
    evals = [r for r in records if "eval" in r]  # the evaluations, written through the same log
    assert [s for s, _ in scalars["eval/mnist-5k-heldout/accuracy"]] == [r["step"] for r in evals] == [0, 3, 6]
    assert [v for _, v in scalars["eval/mnist-5k-heldout/accuracy"]] == pytest.approx(
        [r["eval"]["mnist-5k-heldout"]["accuracy"] for r in evals], rel=1e-6)
    saved = json.loads((out / "scoremix.json").read_text())["config"]
    assert saved["report_to"] == ["tensorboard"]


def test_train_generator_reports_loss_to_tensorboard_in_a_logging_dir(tmp_path, capsys):
    out, logs = tmp_path / "gen", tmp_path / "logs"
    rc, _, err = run_cli(capsys, "train-generator", "--recipe", _recipe(tmp_path, "gen", GEN), "--report-to",
                         "tensorboard", "--logging-dir", str(logs), "--out", str(out), "--no-progress")
    assert rc == 0, err
    scalars = _scalars(logs / "gen")
    assert [s for s, _ in scalars["loss"]] == [25, 26]  # every 25 steps (the generator's loss record) and the last
    assert all(v > 0 for _, v in scalars["loss"]) and [s for s, _ in scalars["lr"]] == [25, 26]
    assert not any(out.rglob("events.out.tfevents.*"))  # all of it in --logging-dir
    assert (out / "model_index.json").is_file()


@pytest.mark.parametrize("command", ["train", "train-generator", "train-discriminator"])
def test_a_missing_tracker_package_is_one_line_before_anything_is_written(tmp_path, capsys, command):
    if _installed("comet_ml"):
        pytest.skip("comet_ml is installed here")
    out = tmp_path / "never"
    rc, stdout, err = run_cli(capsys, command, "--report-to", "tensorboard,comet_ml", "--out", str(out), "--no-progress")
    assert rc == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "comet-ml" in lines[0] and "--report-to" in lines[0] and "not installed" in lines[0]
    assert not out.exists() and not stdout


def test_report_to_values(tmp_path, capsys):
    from scoremix_ds.cli.train_cmd import trackers

    assert trackers("tensorboard, wandb") == ("tensorboard", "wandb") and trackers("none") == () and trackers(None) is None
    assert trackers("all") == ("all",)
    rc, _, err = run_cli(capsys, "train", "--report-to", "tensorbord", "--out", str(tmp_path / "x"), "--no-progress")
    assert rc == 2 and "--report-to" in err and "tensorbord" in err and not (tmp_path / "x").exists()
    rc, _, err = run_cli(capsys, "train", "--report-to", "none,wandb", "--out", str(tmp_path / "x"), "--no-progress")
    assert rc == 2 and "--report-to" in err
    with pytest.raises(ConfigError, match="twice"):
        RecognitionTrainConfig(report_to=("tensorboard", "tensorboard"))


def test_the_tracker_fields_are_run_fields():
    for cls in (RecognitionTrainConfig, GeneratorTrainConfig):
        plain = cls()
        tracked = cls(report_to=("tensorboard", "wandb"), logging_dir="/elsewhere")
        assert tracked.fingerprint() == plain.fingerprint()


def _installed(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def _wandb_records(run_file: Path) -> list:
    """Every record of a W&B run file (``run-ID.wandb``), read from the format's description rather than through
    wandb's own reader: a 7-byte header (``:W&B``, magic 0xBEE1, version 0), then LevelDB-log framing in 32 KiB
    blocks, each chunk ``crc32 (of the type byte, then the data) | length (u16 LE) | type`` (1 full, 2 first, 3
    middle, 4 last) and a block's last <7 bytes zero padding; each whole record is a ``wandb_internal.Record``
    protobuf (wandb's published schema)."""
    import struct
    import zlib

    from wandb.proto import wandb_internal_pb2

    data = run_file.read_bytes()
    assert data[:4] == b":W&B" and struct.unpack("<HB", data[4:7]) == (0xBEE1, 0)
    records, pending, pos, block = [], b"", 7, 32768
    while pos + 7 <= len(data):
        if block - pos % block < 7:
            pos += block - pos % block
            continue
        crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0 and length == 0:
            break
        chunk = data[pos + 7:pos + 7 + length]
        assert len(chunk) == length and crc == zlib.crc32(chunk, zlib.crc32(bytes([kind]))), "damaged W&B record"
        pending, pos = pending + chunk, pos + 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def test_wandb_offline_records_the_config_and_the_log(tmp_path, monkeypatch):
    """The real ``wandb`` in offline mode (WANDB_MODE=offline decides; the tool forces no mode): the run is named
    after --out, its files go under --out (the logging dir), and the run file holds the run's config and, as
    history, the loss records ``train_log.jsonl`` has."""
    pytest.importorskip("wandb")
    for var in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(var, str(tmp_path / "wandb-home"))  # nothing written in the user's home
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    from scoremix_ds.training.recognition import train_recognition

    out = tmp_path / "run"
    config = RecognitionTrainConfig(out=str(out), real=("mnist-5k-train[0-3]",), backbone="small-cnn",
                                    embedding_dim=16, image_size=16, channels=1, flip=False, batch_size=16, steps=4,
                                    learning_rate=0.05, warmup_steps=1, scale=16.0, log_every=2, checkpoint_every=0,
                                    device="cpu", report_to=("wandb",))
    train_recognition(config, progress=False)
    (run_file,) = (out / "wandb").glob("offline-run-*/run-*.wandb")
    records = _wandb_records(run_file)
    (run,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert run.project == "run" and run.display_name == "run"
    config_items = {item.key: json.loads(item.value_json)
                    for r in records if r.WhichOneof("record_type") == "config" for item in r.config.update}
    assert config_items["steps"] == 4 and config_items["backbone"] == "small-cnn"
    assert config_items["real"] == '["mnist-5k-train[0-3]"]'
    history = [{item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in r.history.item}
               for r in records if r.WhichOneof("record_type") == "history"]
    logged = [r for r in _jsonl(out) if "loss" in r]
    assert [(h["_step"], h["loss"]) for h in history] == [(r["step"], pytest.approx(r["loss"])) for r in logged]
    assert [r.WhichOneof("record_type") for r in records].count("exit") == 1  # the run was finished


def test_reproduce_gives_the_flag_to_every_training_stage_and_keeps_their_fingerprints(tmp_path, monkeypatch):
    import scoremix_ds.training.generator as generator
    import scoremix_ds.training.recognition as recognition
    from scoremix_ds.reproduce import stages
    from scoremix_ds.reproduce.config import config_from_mapping
    from scoremix_ds.training.recognition import TrainResult

    seen: list = []
    monkeypatch.setattr(generator, "train_generator", lambda config, progress: seen.append(config))
    monkeypatch.setattr(recognition, "train_recognition", lambda config, progress: seen.append(config) or
                        TrainResult(Path(config.out), config.steps, 0.0, {}))
    recipe = {"real_data": "mnist-5k-train[0-3]", "seeds": [0], "arms": ["real"],
              "generator_train": {"steps": 2}, "discriminator_train": {"steps": 2}, "train": {"steps": 2}}
    ids = {}
    for name, top in (("plain", {}), ("tracked", {"report_to": ["tensorboard"]}),
                      ("elsewhere", {"report_to": ["tensorboard"], "logging_dir": str(tmp_path / "tb")})):
        config = config_from_mapping({**recipe, **top})
        root = tmp_path / name
        seen.clear()
        gen = stages.generator(config, root, False)[1]
        disc = stages.discriminator(config, root, False)[1]
        arm = stages.train(config, root, "real", 0, (), None, False)[1]
        ids[name] = [gen.id, disc.id, arm.id]
        assert len(seen) == 3
        for stage, trained in zip((gen, disc, arm), seen):
            assert trained.report_to == tuple(top.get("report_to", ()))
            if top:
                logs = Path(top.get("logging_dir", root / "logs"))
                assert trained.logging_dir == str(logs / stage.id)  # one run folder per stage
    assert ids["plain"] == ids["tracked"] == ids["elsewhere"]
    with pytest.raises(ConfigError, match=r"\[train\] sets report_to"):
        config_from_mapping({**recipe, "train": {"report_to": ["tensorboard"]}})


def test_a_reproduce_stage_writes_its_tensorboard_run(tmp_path):
    """One real (tiny) reproduce training stage with report_to: its events land in OUT/logs/<stage>/<run>/."""
    from scoremix_ds.reproduce import stages
    from scoremix_ds.reproduce.config import config_from_mapping

    lines = (line.split(" = ", 1) for line in REC.strip().splitlines())
    disc = {key: json.loads(value) for key, value in lines if key != "real"}  # real: the recipe's real_data
    recipe = {"real_data": "mnist-5k-train[0-3]", "seeds": [0], "arms": ["real"], "generator": "default",
              "discriminator_train": disc}
    config = config_from_mapping({**recipe, "report_to": ["tensorboard"]})
    _, stage = stages.discriminator(config, tmp_path, False)
    run = tmp_path / "logs" / stage.id / "model"
    records = [r for r in _jsonl(stage.folder / "model") if "loss" in r]
    assert [s for s, _ in _scalars(run)["loss"]] == [r["step"] for r in records] == [2, 4, 6]
    assert stages.discriminator(config_from_mapping(recipe), tmp_path, False)[1].cached  # the same stage untracked


@pytest.mark.slow
def test_only_the_main_process_tracks(tmp_path, capsys):
    """``--num-processes 2`` (gloo on CPU): one TensorBoard run, written by one process, with the log's steps."""
    out = tmp_path / "two"
    rc, _, err = run_cli(capsys, "train", "--recipe", _recipe(tmp_path, "rec", REC), "--num-processes", "2",
                         "--report-to", "tensorboard", "--out", str(out), "--no-progress")
    assert rc == 0, err
    writers = {path.name.split(".")[-2] for path in out.rglob("events.out.tfevents.*")}  # the writing process' id
    assert len(writers) == 1
    assert [s for s, _ in _scalars(out / "two")["loss"]] == [r["step"] for r in _jsonl(out) if "loss" in r]


def test_a_generator_run_stopped_before_its_first_checkpoint_can_be_run_again(tmp_path):
    """Its folder then holds only the TensorBoard run: still this command's folder, not foreign files."""
    from scoremix_ds.training.generator import _written_by_train_generator

    out = tmp_path / "gen"
    (out / "gen").mkdir(parents=True)
    assert not _written_by_train_generator(out)
    (out / "gen" / "events.out.tfevents.1796666845.host.1.0").write_bytes(b"")
    assert _written_by_train_generator(out)
