"""``scoremix-ds train``: exact resume, fine-tuning, label namespaces, the model card, refusals, a 2-process run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from scoremix_ds.cli import main
from scoremix_ds.core.errors import ConfigError
from scoremix_ds.training import checkpoints as ck
from scoremix_ds.training.loop import lr_factors
from scoremix_ds.training.recognition import train_recognition
from scoremix_ds.training.recognition_config import RecognitionTrainConfig

pytestmark = pytest.mark.usefixtures("one_thread")  # bit-exact comparisons, and fair on a shared machine

TINY = dict(real=("mnist-5k-train[0-3]",), backbone="small-cnn", embedding_dim=16, image_size=16, channels=1, flip=False,
            batch_size=16, steps=6, learning_rate=0.05, warmup_steps=1, scale=16.0, log_every=2, device="cpu")


def lr_factor(step: int, warmup: int, total: int, schedule: str = "cosine") -> float:
    return lr_factors(schedule, warmup, total)(step)


def _latest(out) -> Path | None:
    found = ck.latest_checkpoint(Path(out) / ck.CHECKPOINTS)
    return found.path if found else None


def _weights(out: Path) -> dict[str, torch.Tensor]:
    return load_file(str(out / "model.safetensors"))


def _crash_then_resume(config: RecognitionTrainConfig, crash_step: int, monkeypatch):
    """Run ``config`` until checkpoint ``crash_step`` is sealed, crash there, then run it again (it resumes)."""
    real_commit = ck.commit

    def crash(out, step, *args, **kwargs):
        path = real_commit(out, step, *args, **kwargs)
        if step == crash_step:
            raise KeyboardInterrupt
        return path

    monkeypatch.setattr(ck, "commit", crash)
    with pytest.raises(KeyboardInterrupt):
        train_recognition(config, progress=False)
    assert _latest(config.out).name == f"step-{crash_step:08d}"
    monkeypatch.setattr(ck, "commit", real_commit)
    return train_recognition(config, progress=False)


def test_lr_factor_by_hand():
    assert lr_factor(0, 2, 10, "cosine") == 0.5 and lr_factor(1, 2, 10, "cosine") == 1.0
    assert lr_factor(2, 2, 10, "cosine") == pytest.approx(1.0) and lr_factor(6, 2, 10, "cosine") == pytest.approx(0.5)
    assert lr_factor(6, 2, 10, "poly") == pytest.approx(0.25) and lr_factor(9, 0, 10, "constant") == 1.0


def test_resumed_run_equals_uninterrupted_run(tmp_path, monkeypatch):
    whole = train_recognition(RecognitionTrainConfig(out=str(tmp_path / "whole"), checkpoint_every=3, **TINY), progress=False)
    assert whole.steps == 6 and not whole.resumed_from

    config = RecognitionTrainConfig(out=str(tmp_path / "cut"), checkpoint_every=3, **TINY)
    again = _crash_then_resume(config, 3, monkeypatch)  # a crash right after checkpoint 3 is sealed
    assert again.resumed_from == 3
    a, b = _weights(tmp_path / "whole"), _weights(tmp_path / "cut")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # bit for bit
    steps = [json.loads(line)["step"] for line in (tmp_path / "cut" / "train_log.jsonl").read_text().splitlines()]
    assert steps == [2, 4, 6]  # the log holds each step once, across the crash
    # a finished run is not retrained
    assert train_recognition(config, progress=False).resumed_from == 6


def test_resume_under_another_config_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    train_recognition(RecognitionTrainConfig(out=str(out), checkpoint_every=3, **{**TINY, "steps": 3}), progress=False)
    (out / "model.safetensors").unlink()  # as if it had crashed after its checkpoint
    with pytest.raises(ConfigError, match="different training config"):
        train_recognition(RecognitionTrainConfig(out=str(out), checkpoint_every=3, **{**TINY, "steps": 3, "learning_rate": 0.2}))


def test_real_and_synthetic_label_spaces_and_card(tmp_path, tiny_real_data_dir):
    out = tmp_path / "mixed"
    config = RecognitionTrainConfig(out=str(out), **{**TINY, "image_size": 8, "steps": 2},
                                    synthetic=(str(tiny_real_data_dir),), synthetic_ratio=0.5)
    train_recognition(config, progress=False)
    meta = json.loads((out / "scoremix.json").read_text())
    space = meta["label_space"]
    assert space["real_classes"] == [0, 4] and space["synthetic_classes"] == [4, 8]
    card = (out / "README.md").read_text()
    assert "mnist-5k-train[0-3]" in card and "| synthetic |" in card and "4..7" in card
    from scoremix_ds.discriminators.loading import load_discriminator

    assert load_discriminator(str(out)).embedding_dim == 16


def test_fine_tune_from_default_takes_its_architecture(tmp_path):
    out = tmp_path / "ft"
    result = train_recognition(RecognitionTrainConfig(out=str(out), init="default", **{**TINY, "steps": 2}), progress=False)
    arch = json.loads((result.out / "scoremix.json").read_text())["architecture"]
    assert arch == {"backbone": "small-cnn", "embedding_dim": 64, "image_size": 32, "channels": 1}


def test_cli_train_and_bad_input(tmp_path, capsys):
    out = tmp_path / "cli"
    rc = main(["train", "--real", "mnist-5k-train[0-3]", "--backbone", "small-cnn", "--embedding-dim", "16",
               "--image-size", "16", "--channels", "1", "--no-flip", "--steps", "2", "--batch-size", "16", "--device", "cpu",
               "--val", "heldout:mnist-5k-heldout[0-3]:100", "--out", str(out), "--no-progress"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "mnist-5k-heldout[0-3]: accuracy" in captured.out
    for args, needle in [(["--head", "sphereface"], "unknown head"), (["--sample-rate", "0"], "--sample-rate"),
                         (["--real", "no/such/thing/here"], "--real-data"), (["--channels", "2"], "--channels")]:
        rc = main(["train", "--steps", "1", "--out", str(tmp_path / "bad"), *args])
        err = capsys.readouterr().err
        assert rc == 2 and err.startswith("error:") and needle in err, (args, err)


# Run as `accelerate launch CRASHING_TRAIN train ...`: process 0 dies (no cleanup, as a killed process) right after it
# seals the checkpoint of step 2, leaving process 1 waiting; the launcher then ends the group with a failure.
CRASHING_TRAIN = """
import os, sys
from scoremix_ds.training import checkpoints as resume
_commit = resume.commit
def commit(out, step, *args, **kwargs):
    path = _commit(out, step, *args, **kwargs)
    if step == 2:
        os._exit(17)
    return path
resume.commit = commit
from scoremix_ds.cli import main
sys.exit(main())
"""


def _free_port() -> int:
    """A port for this launch's rendezvous, so that launches of parallel test runs do not meet on accelerate's 29500."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_process_run_with_sharded_head_and_resume(tmp_path):
    """A real 2-process gloo group on CPU (accelerate launch --multi_gpu), Partial FC shards, a crash after the
    checkpoint of step 2, and a resume that ends with the weights of the same run left uninterrupted."""
    crashing = tmp_path / "crashing_train.py"
    crashing.write_text(CRASHING_TRAIN)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "true"}

    def launch(out: Path, *program: str) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--main_process_port", str(_free_port()), "--mixed_precision", "no",
               "--dynamo_backend", "no", *program, "train", "--real", "mnist-5k-train[0-3]", "--backbone", "small-cnn",
               "--embedding-dim", "16", "--image-size", "16", "--channels", "1", "--no-flip", "--batch-size", "16",
               "--device", "cpu", "--checkpoint-every", "2", "--steps", "4", "--out", str(out), "--no-progress"]
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)

    out = tmp_path / "ddp"
    crashed = launch(out, str(crashing))
    assert crashed.returncode != 0, crashed.stderr[-3000:]
    assert _latest(out) == out / ck.CHECKPOINTS / ck.step_dir_name(2) and not (out / "model.safetensors").exists()
    first = launch(out, "-m", "scoremix_ds")  # the same command again: it resumes from step 2
    assert first.returncode == 0, first.stderr[-3000:]
    assert "from step 2" in first.stderr, first.stderr[-3000:]
    records = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert {r["global_batch"] for r in records if "global_batch" in r} == {16}  # --batch-size is global: 8 per process
    ckpt = _latest(out)
    assert {p.name for p in ckpt.iterdir()} >= {"head-rank0.safetensors", "head-rank1.safetensors", "backbone.safetensors",
                                                 "state-rank0.pt", "state-rank1.pt", "state.json"}
    from scoremix_ds.discriminators.loading import load_discriminator

    assert load_discriminator(str(out)).embedding_dim == 16
    whole = launch(tmp_path / "whole", "-m", "scoremix_ds")
    assert whole.returncode == 0, whole.stderr[-3000:]
    a, b = _weights(tmp_path / "whole"), _weights(out)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    heads = [load_file(str(d / "head-rank1.safetensors")) for d in (_latest(tmp_path / "whole"), ckpt)]
    assert all(torch.equal(heads[0][k], heads[1][k]) for k in heads[0])  # process 1's shard resumed exactly too


def test_shifted_run_resumes_exactly_and_shifts_change_the_weights(tmp_path, monkeypatch):
    shifted = {**TINY, "shift_pixels": 2, "steps": 4}
    whole = train_recognition(RecognitionTrainConfig(out=str(tmp_path / "whole"), checkpoint_every=2, **shifted), progress=False)
    config = RecognitionTrainConfig(out=str(tmp_path / "cut"), checkpoint_every=2, **shifted)
    assert _crash_then_resume(config, 2, monkeypatch).resumed_from == 2
    a, b = _weights(whole.out), _weights(tmp_path / "cut")
    assert all(torch.equal(a[k], b[k]) for k in a)
    plain = train_recognition(RecognitionTrainConfig(out=str(tmp_path / "plain"), **{**shifted, "shift_pixels": 0}), progress=False)
    c = _weights(plain.out)
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_batch_size_is_the_global_batch_split_over_accumulation(tmp_path):
    out = tmp_path / "accum"
    train_recognition(RecognitionTrainConfig(**{**TINY, "steps": 2, "grad_accum": 2}, out=str(out)), progress=False)
    records = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["global_batch"] for r in records if "global_batch" in r] == [16]  # 2 micro-batches of 8
    with pytest.raises(ConfigError, match="does not split"):
        train_recognition(RecognitionTrainConfig(**{**TINY, "batch_size": 15, "grad_accum": 2}, out=str(tmp_path / "b")),
                          progress=False)


def test_uint8_batches_normalised_on_the_device_train_the_float_path_weights(tmp_path, monkeypatch):
    """The trainer's loader yields uint8 NHWC and ``normalise`` runs after the copy to the device; on a CPU that
    trains exactly the weights of the former path (float32 batches built in the loader), flips and shifts included."""
    import scoremix_ds.training.mixture as mixture
    import scoremix_ds.sources.preprocess as preprocess

    config = {**TINY, "flip": True, "shift_pixels": 2, "steps": 4}
    seen = []
    real_loader, real_normalise = mixture.make_loader, preprocess.normalise

    def spy(x, size, channels):
        seen.append(x.dtype)
        return real_normalise(x, size, channels)

    monkeypatch.setattr(preprocess, "normalise", spy)
    new = train_recognition(RecognitionTrainConfig(out=str(tmp_path / "uint8"), **config), progress=False)
    assert seen and set(seen) == {torch.uint8}  # uint8 crossed to the device, every micro-batch
    monkeypatch.setattr(mixture, "make_loader", lambda *a, uint8=False, **k: real_loader(*a, **k))  # float batches
    monkeypatch.setattr(preprocess, "normalise", lambda x, size, channels: x)  # ... used as they come, as before
    old = train_recognition(RecognitionTrainConfig(out=str(tmp_path / "float"), **config), progress=False)
    a, b = _weights(new.out), _weights(old.out)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
