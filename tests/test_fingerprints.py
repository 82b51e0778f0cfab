"""One fingerprint rule (``scoremix_ds.core.fingerprints``), and every value it gave before it had one home: a
changed value would orphan finished builds, checkpoints and cached reproduce stages."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from scoremix_ds.core.fingerprints import config_fingerprint
from scoremix_ds.core.recipes import config_from
from scoremix_ds.reproduce.cache import fingerprint as stage_fingerprint
from scoremix_ds.synthesis.config import BuildConfig
from scoremix_ds.training.generator_config import GeneratorTrainConfig
from scoremix_ds.training.recognition_config import RecognitionTrainConfig

STAGE_SPEC = {"name": "train", "settings": {"steps": 200, "lr": 0.1, "real": ("glyphs-han-train[0-99]",)},
              "reads": ["build-0a1b2c3d4e5f"], "out": Path("x/y")}


def test_the_two_spellings_are_the_old_formulas():
    payload = {"b": 1, "a": [1, 2], "c": {"z": None, "y": 0.5}}
    assert config_fingerprint(payload) == hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]
    compact = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    assert config_fingerprint(payload, compact=True) == hashlib.sha256(compact.encode()).hexdigest()[:16]
    assert config_fingerprint(payload, digits=12, compact=True) == hashlib.sha256(compact.encode()).hexdigest()[:12]


def test_pinned_values_of_every_kind():
    assert config_from(BuildConfig, None, {"strategy": "distant"}).fingerprint() == "cf326f7cffdfa074"
    assert config_from(BuildConfig, "mnist-distant", {}).fingerprint() == "6b1c43789daec977"
    assert config_from(RecognitionTrainConfig, "train-demo", {}).fingerprint() == "dfdabec1f32f206f"
    assert config_from(RecognitionTrainConfig, "default-discriminator", {}).fingerprint() == "d75b9c78b08f4e96"
    assert config_from(GeneratorTrainConfig, "default-generator", {}).fingerprint() == "b5b035879afe7538"
    assert stage_fingerprint(STAGE_SPEC) == "06382ca9aacb"  # reproduce stages: 12 digits, compact, paths as text


def test_recognition_fingerprint_leaves_out_run_fields_only():
    base = RecognitionTrainConfig()
    assert RecognitionTrainConfig(out="elsewhere", log_every=7).fingerprint() == base.fingerprint()
    assert RecognitionTrainConfig(seed=base.seed + 1).fingerprint() != base.fingerprint()
