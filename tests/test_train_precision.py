"""``train --mixed-precision auto`` (issue 26.4), the recognition trainer's default: bf16 on a CUDA device that
supports it, fp32 (``no``) elsewhere, resolved BEFORE the config is recorded or hashed, so a CPU run is the run
``no`` made (same fingerprint, same weights, ``no`` in its scoremix.json) and every existing fingerprint holds."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from scoremix_ds.core.errors import ConfigError
from scoremix_ds.training.recognition import train_recognition
from scoremix_ds.training.recognition_config import RecognitionTrainConfig, resolve_mixed_precision

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = dict(real=("mnist-5k-train[0-3]",), backbone="small-cnn", embedding_dim=16, image_size=16, channels=1, flip=False,
            batch_size=16, steps=2, learning_rate=0.05, scale=16.0, checkpoint_every=0, device="cpu")


def test_auto_is_the_default_and_resolves_by_device(monkeypatch):
    assert RecognitionTrainConfig().mixed_precision == "auto"
    cpu = RecognitionTrainConfig(**TINY)
    assert cpu.resolved().mixed_precision == "no"
    assert cpu.fingerprint() == RecognitionTrainConfig(**{**TINY, "mixed_precision": "no"}).fingerprint()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert resolve_mixed_precision("auto", None) == "bf16" and resolve_mixed_precision("auto", "cuda:1") == "bf16"
    assert resolve_mixed_precision("auto", "auto") == "bf16"  # `--device auto` (the default) lands on CUDA too
    assert resolve_mixed_precision("auto", "cpu") == "no" and resolve_mixed_precision("fp16", "cpu") == "fp16"
    gpu = RecognitionTrainConfig(**{**TINY, "device": None})
    assert gpu.resolved().mixed_precision == "bf16"
    assert gpu.fingerprint() == RecognitionTrainConfig(**{**TINY, "device": None, "mixed_precision": "bf16"}).fingerprint()
    assert gpu.fingerprint() != cpu.fingerprint()  # precision changes the weights: it is in the fingerprint
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)  # an older GPU: fp32, not a refused bf16
    assert gpu.resolved().mixed_precision == "no"
    with pytest.raises(ConfigError, match="mixed_precision"):
        RecognitionTrainConfig(**{**TINY, "mixed_precision": "fp8"})


def test_a_cpu_run_with_auto_is_the_fp32_run(tmp_path):
    auto = train_recognition(RecognitionTrainConfig(**TINY, out=str(tmp_path / "auto")), progress=False).out
    fp32 = train_recognition(RecognitionTrainConfig(**TINY, out=str(tmp_path / "no"), mixed_precision="no"),
                             progress=False).out
    recorded = json.loads((auto / "scoremix.json").read_text())["config"]
    assert recorded["mixed_precision"] == "no"  # the resolved value is what the run records
    a, b = load_file(str(auto / "model.safetensors")), load_file(str(fp32 / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
