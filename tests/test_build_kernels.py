"""Sampler kernel choices: ``--device auto`` / ``--dtype auto`` resolve to the CPU and float32 here (bfloat16 on
CUDA), a CUDA request without CUDA is one line, and ``--compile`` builds through ``torch.compile`` (skipped when this
machine's CPU compiler is missing) with the same rows up to float rounding."""

from __future__ import annotations

import datasets
import numpy as np
import pytest
import torch

from scoremix_ds.synthesis.config import BuildConfig
from scoremix_ds.synthesis.runner import load_models, run_build
from scoremix_ds.cli import main
from scoremix_ds.core.devices import resolve_device, resolve_dtype
from scoremix_ds.core.errors import ConfigError


def test_auto_device_and_dtype():
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else resolve_device(None))
    assert resolve_dtype("auto", "cpu") == torch.float32
    assert resolve_dtype("auto", "cuda") == torch.bfloat16
    assert resolve_dtype("float16", "cpu") == torch.float16
    with pytest.raises(ConfigError, match="unknown precision"):
        resolve_dtype("float8", "cpu")
    with pytest.raises(ConfigError, match="unknown device"):
        resolve_device("gpu-please")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_cuda_without_cuda_is_one_line(tiny_generator_dir, tmp_path, capsys):
    rc = main(["build", "--generator", str(tiny_generator_dir), "--strategy", "random", "--device", "cuda",
               "--out", str(tmp_path / "o"), "--no-progress"])  # random: no --real-data needed (issue 12's rule)
    err = capsys.readouterr().err
    assert rc == 2 and "no CUDA device" in err and "--device" in err
    assert not (tmp_path / "o").exists()


def test_default_build_loads_on_the_auto_device(tiny_generator_dir):
    gen, _ = load_models(BuildConfig(generator=str(tiny_generator_dir)))
    assert gen.device.type == resolve_device("auto").split(":")[0] and gen.dtype == resolve_dtype("auto", str(gen.device))


@pytest.mark.slow  # inductor compiles C++ kernels: minutes on a shared 2-core CPU
def test_compile_flag_builds_the_same_images(tiny_generator_dir, tiny_discriminator_dir, tiny_real_data_dir, tmp_path,
                                             one_thread):
    base = dict(generator=str(tiny_generator_dir), discriminator=str(tiny_discriminator_dir),
                real_data=str(tiny_real_data_dir), pairs=2, per_identity=1, steps=2, batch_size=4, repro=False)
    try:
        compiled = run_build(BuildConfig(**base, compile=True, out=str(tmp_path / "c")), progress=False)
    except Exception as exc:  # inductor needs a C++ compiler; without one the flag cannot work here
        pytest.skip(f"torch.compile unavailable on this CPU: {type(exc).__name__}: {exc}"[:200])
    eager = run_build(BuildConfig(**base, out=str(tmp_path / "e")), progress=False)
    assert compiled.rows == eager.rows
    a = datasets.load_dataset(str(tmp_path / "c"), "mix", split="train")
    b = datasets.load_dataset(str(tmp_path / "e"), "mix", split="train")
    assert a["seed"] == b["seed"]
    for x, y in zip(a["image"], b["image"]):
        assert np.abs(np.asarray(x, dtype=int) - np.asarray(y, dtype=int)).max() <= 2
