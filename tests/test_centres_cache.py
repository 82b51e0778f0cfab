"""Class centres are embedded once per build: ``plan`` caches them beside the plan, ``build --plan`` needs none,
a resumed build reads them from its in-progress state. Counted as real discriminator forwards."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import scoremix_ds.synthesis.runner as runner
from scoremix_ds.synthesis.centres_cache import BUILD_CACHE, load_centres, plan_cache, save_centres
from scoremix_ds.synthesis.config import BuildConfig
from scoremix_ds.cli import main
from scoremix_ds.discriminators.loading import SmallCNN


class Forwards:
    """Counts forward calls of the discriminator class (top-level calls only)."""

    def __enter__(self):
        self.count = 0
        self.handle = torch.nn.modules.module.register_module_forward_hook(self._hook)
        return self

    def _hook(self, module, inputs, output):
        if isinstance(module, SmallCNN):
            self.count += 1

    def __exit__(self, *exc):
        self.handle.remove()


def test_plan_caches_centres_and_build_plan_embeds_nothing(models, tmp_path):
    plan = tmp_path / "plan.parquet"
    with Forwards() as f:
        assert main(["plan", *models, "--pairs", "3", "--per-identity", "1", "--out", str(plan)]) == 0
    assert f.count > 0 and plan_cache(plan).is_file()
    with Forwards() as f:  # planning again over the same models and data: read from the cache
        assert main(["plan", *models, "--pairs", "2", "--strategy", "close", "--per-identity", "1", "--out", str(plan)]) == 0
    assert f.count == 0
    with Forwards() as f:
        assert main(["build", *models, "--plan", str(plan), "--steps", "1", "--out", str(tmp_path / "ds"),
                     "--no-progress"]) == 0
    assert f.count == 0


def test_resumed_build_reads_the_centres(tiny_generator_dir, tiny_discriminator_dir, tiny_real_data_dir, tmp_path,
                                         monkeypatch):
    config = BuildConfig(generator=str(tiny_generator_dir), discriminator=str(tiny_discriminator_dir),
                         real_data=str(tiny_real_data_dir), pairs=3, per_identity=1, steps=1, shard_size=1,
                         out=str(tmp_path / "out"))
    real_run_units = runner.run_units

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # the build dies after planning, before any unit is written

    monkeypatch.setattr(runner, "run_units", crash)
    with Forwards() as f, pytest.raises(KeyboardInterrupt):
        runner.run_build(config, progress=False)
    assert f.count > 0 and (tmp_path / "out" / BUILD_CACHE).is_file()
    monkeypatch.setattr(runner, "run_units", real_run_units)
    with Forwards() as f:
        result = runner.run_build(config, progress=False)
    assert f.count == 0 and result.complete
    fresh = dataclasses.replace(config, out=str(tmp_path / "fresh"))
    assert runner.run_build(fresh, progress=False).rows == result.rows  # same plan, same rows


def test_a_cache_for_other_models_or_data_is_ignored(tmp_path):
    path = tmp_path / "c.safetensors"
    centres = np.random.default_rng(0).normal(size=(4, 3))
    save_centres(path, "disc:data", centres)
    np.testing.assert_array_equal(load_centres(path, "disc:data"), centres)
    assert load_centres(path, "other:data") is None
    path.write_bytes(b"torn")
    assert load_centres(path, "disc:data") is None
