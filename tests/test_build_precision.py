"""Precision is part of what rows depend on (issue 26.5): the resolved compute dtype enters the fingerprint (CPU /
float32 fingerprints unchanged), a resumed folder of another precision is refused, and ``merge`` refuses parts of
different precision in one line naming both, writing nothing."""

from __future__ import annotations

import pytest

from fixtures.cli import build_command, run_cli
from scoremix_ds.core.errors import ConfigError
from scoremix_ds.synthesis.config import BuildConfig, compute_dtype


@pytest.fixture
def build_args(tiny_generator_dir, tiny_discriminator_dir, tiny_real_data_dir):
    return build_command(tiny_generator_dir, tiny_discriminator_dir, tiny_real_data_dir, pairs=2, per_identity=1,
                         steps=2, shard_size=1, batch_size=4)


def test_fp32_and_bf16_builds_get_different_fingerprints():
    fp32, bf16 = BuildConfig(dtype="float32"), BuildConfig(dtype="bfloat16")
    assert fp32.compute_dtype == "float32" and bf16.compute_dtype == "bfloat16"
    assert fp32.fingerprint() != bf16.fingerprint()
    # "auto" resolves by device: on CUDA it is bfloat16, and that is in the fingerprint; on the CPU it is float32,
    # which adds nothing (the fingerprints of every CPU build stay what they were)
    on_cpu, on_cuda = BuildConfig(device="cpu"), BuildConfig(device="cuda")
    assert on_cuda.compute_dtype == "bfloat16" and on_cpu.compute_dtype == "float32"
    assert on_cpu.fingerprint() != on_cuda.fingerprint()
    assert "compute_dtype" not in on_cpu.fingerprint_payload() and on_cuda.fingerprint_payload()["compute_dtype"] == "bfloat16"
    assert on_cpu.fingerprint() == BuildConfig(device="cpu", batch_size=7).fingerprint()  # device stays a layout field
    assert compute_dtype("float16", "cpu") == "float16" and compute_dtype("auto", "cuda:3") == "bfloat16"


def test_resume_at_another_precision_is_refused_in_one_line(build_args, tmp_path, capsys):
    out = str(tmp_path / "b")
    assert run_cli(capsys, *build_args, "--dtype", "bfloat16", "--out", out)[0] == 0
    rc, _, err = run_cli(capsys, *build_args, "--dtype", "float32", "--out", out)
    assert rc == 2 and "built in bfloat16 and this build computes in float32" in err, err


def test_a_manifest_recording_another_precision_is_refused_on_resume(build_args, tmp_path, capsys):
    """A folder made on a GPU with dtype auto (bfloat16) met by a CPU run with the same settings."""
    import json

    out = tmp_path / "gpu"
    assert run_cli(capsys, *build_args, "--out", str(out))[0] == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["provenance"]["compute_dtype"] == "float32"
    manifest["provenance"]["compute_dtype"] = "bfloat16"
    (out / "manifest.json").write_text(json.dumps(manifest))
    rc, _, err = run_cli(capsys, *build_args, "--out", str(out))
    assert rc == 2 and "built in bfloat16 and this build computes in float32" in err, err


def test_merge_refuses_parts_of_different_precision_and_writes_nothing(build_args, tmp_path, capsys):
    parts = [tmp_path / "p0", tmp_path / "p1"]
    for i, (part, dtype) in enumerate(zip(parts, ("float32", "bfloat16"))):
        assert run_cli(capsys, *build_args, "--dtype", dtype, "--shard", str(i), "--num-shards", "2",
                       "--out", str(part))[0] == 0
    rc, _, err = run_cli(capsys, "merge", *map(str, parts), "--out", str(tmp_path / "merged"), "--no-progress")
    assert rc == 2 and f"{parts[1]} was built in bfloat16 and {parts[0]} in float32" in err, err
    assert not (tmp_path / "merged").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".merged")]  # no staging left either


def test_a_launcher_device_that_changes_the_precision_is_refused(tiny_generator_dir, tmp_path, monkeypatch):
    from scoremix_ds.synthesis import runner

    config = BuildConfig(generator=str(tiny_generator_dir), device="cpu", out=str(tmp_path / "o"), real_data="x")
    with pytest.raises(ConfigError, match="runs on cuda in bfloat16"):
        runner.check_precision(config, "cuda")
    runner.check_precision(config, "cpu")
