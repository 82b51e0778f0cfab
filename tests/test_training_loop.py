"""The shared training loop (``scoremix_ds/training/loop.py``): its LR schedule is the former hand-written one bit for
bit, the global-batch rule has one wording, evaluation waits at a barrier, two trainers of different precisions run
in one process, each trainer killed after a checkpoint resumes to the weights of an uninterrupted run, and the train
commands share their option names."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file

from scoremix_ds.cli import main
from scoremix_ds.core.errors import ConfigError
from scoremix_ds.training import checkpoints as ck
from scoremix_ds.training.generator import LR_FLOOR, train_generator
from scoremix_ds.training.generator_config import GeneratorTrainConfig
from scoremix_ds.training.loop import Evaluate, lr_factors, micro_batch_size
from scoremix_ds.training.recognition import train_recognition
from scoremix_ds.training.recognition_config import RecognitionTrainConfig

pytestmark = pytest.mark.usefixtures("one_thread")  # bit-exact comparisons, and fair on a shared machine

ROOT = Path(__file__).resolve().parents[1]
GEN = {"real_data": "mnist-5k-heldout[0-3]", "image_size": 16, "block_out_channels": (8, 16), "norm_num_groups": 4,
       "steps": 6, "batch_size": 4, "warmup_steps": 2, "learning_rate": 1e-2, "checkpoint_every": 2}
REC = dict(real=("mnist-5k-train[0-3]",), backbone="small-cnn", embedding_dim=16, image_size=16, channels=1, flip=False,
           batch_size=16, steps=6, learning_rate=0.05, warmup_steps=1, scale=16.0, log_every=2, device="cpu",
           checkpoint_every=2, grad_accum=2)


def former_lr_factor(step: int, warmup: int, total: int, schedule: str = "cosine", floor: float = 0.0) -> float:
    """The hand-written schedule (training/lr_schedule.py) that transformers' replaced, verbatim."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    if schedule == "cosine":
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
    if schedule == "poly":
        return floor + (1.0 - floor) * (1.0 - progress) ** 2
    return 1.0


@pytest.mark.parametrize("schedule,floor", [("cosine", 0.0), ("cosine", LR_FLOOR), ("poly", 0.0), ("constant", 0.0)])
def test_library_schedule_equals_the_former_one_bit_for_bit(schedule, floor):
    for warmup, total in [(0, 1), (0, 7), (1, 6), (2, 6), (200, 3000), (3, 1000), (500, 8000), (37, 64)]:
        if schedule == "poly" and warmup >= total:
            continue
        ours = lr_factors(schedule, warmup, total, floor)
        for step in range(total + 1):  # + 1: the logged rate of the step after the last
            assert ours(step) == former_lr_factor(step, warmup, total, schedule, floor), (warmup, total, step)
            for peak in (0.1, 0.05, 1e-3, 1e-2):  # the optimizer's rate: peak x factor, as before
                assert peak * ours(step) == peak * former_lr_factor(step, warmup, total, schedule, floor)


def test_the_global_batch_rule_has_one_wording():
    assert micro_batch_size(16, 2, 2, "grad_accum") == 4
    for field in ("grad_accum", "gradient_accumulation_steps"):
        with pytest.raises(ConfigError, match="batch_size 15 does not split over 1 processes x 2 accumulation steps") as err:
            micro_batch_size(15, 1, 2, field)
        assert err.value.fields == ("batch_size", field) and "\n" not in str(err.value)


def test_evaluation_runs_on_process_zero_while_every_process_waits_at_a_barrier():
    calls = []
    for rank in (0, 1):
        accelerator = SimpleNamespace(is_main_process=rank == 0, wait_for_everyone=lambda r=rank: calls.append(("wait", r)))
        callback = Evaluate(2, lambda net, r=rank: calls.append(("eval", r)) or 1.0, lambda step, result: None)
        loop = SimpleNamespace(accelerator=accelerator, unwrapped=None, total=6, start=0, step=0)
        callback.on_train_start(loop)
        for loop.step in range(1, 7):
            callback.on_step_end(loop)
        callback.on_train_end(loop)
    # steps 0 (start), 2, 4 and 6 (end): process 0 evaluates, both processes meet at the barrier each time
    assert calls.count(("eval", 0)) == 4 and ("eval", 1) not in calls
    assert calls.count(("wait", 0)) == calls.count(("wait", 1)) == 4


def test_two_trainers_of_different_precisions_in_one_process(tmp_path):
    """accelerate keeps one precision per process; the loop never asks it for another (no private state reset)."""
    train_generator(GeneratorTrainConfig(out=str(tmp_path / "g"), **{**GEN, "steps": 1, "mixed_precision": "bf16"}),
                    progress=False)
    result = train_recognition(RecognitionTrainConfig(out=str(tmp_path / "r"), **{**REC, "steps": 2}), progress=False)
    assert result.steps == 2 and (tmp_path / "r" / "model.safetensors").is_file()


# A subprocess that trains and dies (os._exit: no cleanup, as a killed process) right after checkpoint KILL_AT is sealed.
KILLED = """
import os, sys, torch
torch.set_num_threads(1)
from scoremix_ds.training import checkpoints
_commit = checkpoints.commit
def commit(root, step, *args, **kwargs):
    path = _commit(root, step, *args, **kwargs)
    if step == {kill_at}:
        os._exit(17)
    return path
checkpoints.commit = commit
{train}
"""


def _killed(tmp_path: Path, train: str, kill_at: int) -> None:
    script = tmp_path / "killed.py"
    script.write_text(KILLED.format(kill_at=kill_at, train=textwrap.dedent(train)))
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 17, proc.stderr[-3000:]


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_killed_generator_run_resumes_to_the_uninterrupted_weights(tmp_path):
    whole = train_generator(GeneratorTrainConfig(out=str(tmp_path / "whole"), **GEN), progress=False)
    cut = tmp_path / "cut"
    _killed(tmp_path, f"""
        from scoremix_ds.training.generator import train_generator
        from scoremix_ds.training.generator_config import GeneratorTrainConfig
        train_generator(GeneratorTrainConfig(out={str(cut)!r}, **{GEN!r}), progress=False)""", kill_at=4)
    assert [c.step for c in ck.list_checkpoints(cut / ck.CHECKPOINTS)] == [2, 4] and not (cut / "unet").exists()
    train_generator(GeneratorTrainConfig(out=str(cut), **GEN), progress=False)  # the same config: resumes at 4
    weights = "unet/diffusion_pytorch_model.safetensors"
    assert _same(load_file(str(whole / weights)), load_file(str(cut / weights)))


def test_a_killed_recognition_run_resumes_to_the_uninterrupted_weights(tmp_path):
    whole = train_recognition(RecognitionTrainConfig(out=str(tmp_path / "whole"), **REC), progress=False)
    cut = tmp_path / "cut"
    _killed(tmp_path, f"""
        from scoremix_ds.training.recognition import train_recognition
        from scoremix_ds.training.recognition_config import RecognitionTrainConfig
        train_recognition(RecognitionTrainConfig(out={str(cut)!r}, **{REC!r}), progress=False)""", kill_at=4)
    assert ck.latest_checkpoint(cut / ck.CHECKPOINTS).step == 4 and not (cut / "model.safetensors").exists()
    again = train_recognition(RecognitionTrainConfig(out=str(cut), **REC), progress=False)
    assert again.resumed_from == 4
    assert _same(load_file(str(whole.out / "model.safetensors")), load_file(str(cut / "model.safetensors")))
    # --no-resume discards the checkpoints and trains again from step 0, to the same weights
    fresh = train_recognition(RecognitionTrainConfig(out=str(cut), resume=False, **REC), progress=False)
    assert fresh.resumed_from == 0
    assert _same(load_file(str(whole.out / "model.safetensors")), load_file(str(cut / "model.safetensors")))


def _help(command: str, capsys) -> str:
    try:
        main([command, "--help"])
    except SystemExit:
        pass
    return capsys.readouterr().out


def test_train_commands_share_option_names_and_show_defaults(capsys, monkeypatch):
    shared = ["--real-data", "--gradient-accumulation-steps", "--resume", "--no-resume", "--device", "--warmup-steps",
              "--steps", "--batch-size", "--learning-rate", "--seed", "--out", "--recipe"]
    for command in ("train", "train-generator", "train-discriminator"):
        import typer.main

        from scoremix_ds.cli import app

        params = typer.main.get_command(app).commands[command].params
        names = {o for p in params for o in [*p.opts, *getattr(p, "secondary_opts", [])]}
        assert set(shared) <= names, (command, set(shared) - names)
        hidden = {o for p in params if getattr(p, "hidden", False) for o in p.opts}
        assert hidden == ({"--real", "--grad-accum"} if command == "train" else set())
        for p in params:  # every option shows a default (the config's, which a recipe may change)
            if p.name != "help":
                assert p.hidden or p.show_default not in (None, False) or p.default is not None, (command, p.name)
    text = _help("train-generator", capsys)
    assert "[default: (3000)]" in text or "[default: 3000]" in text


def test_old_spellings_warn_and_mean_the_same(monkeypatch, caplog):
    seen = {}
    import scoremix_ds.training.recognition as recognition

    monkeypatch.setattr(recognition, "train_recognition", lambda config, progress: seen.setdefault("config", config) and
                        (_ for _ in ()).throw(SystemExit(0)))
    with pytest.raises(SystemExit):
        main(["train", "--real", "mnist-5k-train[0-3]", "--grad-accum", "2", "--out", "x", "--no-progress"])
    old = seen.pop("config")
    assert "--real is deprecated" in caplog.text and "--grad-accum is deprecated" in caplog.text
    with pytest.raises(SystemExit):
        main(["train", "--real-data", "mnist-5k-train[0-3]", "--gradient-accumulation-steps", "2", "--out", "x",
              "--no-progress"])
    assert seen["config"] == old and old.real == ("mnist-5k-train[0-3]",) and old.grad_accum == 2
