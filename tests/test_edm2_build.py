"""`build` on EDM2 generator folders (issue 22): a freshly initialised `edm2-cpu` folder with its guide and an
imported snapshot, sampled with `edm-heun` (the folder's steps and guidance unless given), rows deterministic and
independent of the batch size, the sampler, its steps and guidance in the manifest."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch

from conftest import NUM_CLASSES
from fixtures.cli import build_command, run_cli
from fixtures.edm2_pickles import TINY, _snapshot_bytes
from scoremix_ds.core.errors import ConfigError, ModelError
from scoremix_ds.generators.edm2 import EDM2Denoiser, preset
from scoremix_ds.generators.edm2.folder import write_edm2_folder
from scoremix_ds.synthesis.config import BuildConfig
from scoremix_ds.synthesis.resolve import with_generator_sampler
from scoremix_ds.synthesis.runner import run_build


def _live(net: EDM2Denoiser, seed: int) -> EDM2Denoiser:
    """Non-zero gains (a fresh EDM2 net's out_gain is 0: its F would not reach the output)."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            if p.ndim == 0:
                p.fill_(0.5)
    return net.eval()


def _cpu_net(name: str, seed: int) -> EDM2Denoiser:
    torch.manual_seed(seed)
    kwargs = {**preset(name).denoiser_kwargs(label_dim=NUM_CLASSES), "img_resolution": 8, "attn_resolutions": [4]}
    return _live(EDM2Denoiser(**kwargs), seed)


@pytest.fixture
def edm2_dir(tmp_path) -> Path:
    """A freshly initialised edm2-cpu generator (at 8x8, the tiny real data's size) with its edm2-cpu-guide,
    label dropout declared (null class = the zero label), 3 Heun steps and guidance 1.5 by default."""
    return write_edm2_folder(tmp_path / "edm2-gen", _cpu_net("edm2-cpu", 0), ["a", "b", "c", "d"],
                             null_class=NUM_CLASSES, architecture="edm2-cpu", guide=_cpu_net("edm2-cpu-guide", 1),
                             sampler={"steps": 3, "guidance": 1.5})


@pytest.fixture
def edm2_config(edm2_dir, tiny_discriminator_dir, tiny_real_data_dir, tmp_path):
    def make(**overrides) -> BuildConfig:
        values = dict(generator=str(edm2_dir), discriminator=str(tiny_discriminator_dir),
                      real_data=str(tiny_real_data_dir), pairs=3, per_identity=2, out=str(tmp_path / "out"),
                      batch_size=4)
        values.update(overrides)
        return with_generator_sampler(BuildConfig(**values))
    return make


def _rows(path: Path, config: str = "mix") -> list[dict]:
    ds = datasets.load_dataset(str(path), config, split="train")
    return [{k: (np.asarray(v).tobytes() if k == "image" else v) for k, v in row.items()} for row in ds]


def test_edm2_folder_defaults_fill_the_build_config(edm2_config, edm2_dir):
    config = edm2_config()
    assert (config.scheduler, config.steps, config.guidance) == ("edm-heun", 3, 1.5)
    assert config.weak_generator == str(edm2_dir / "edm2_guide")  # autoguidance with the folder's guide, by name
    assert edm2_config(guidance=1.0).weak_generator is None
    given = edm2_config(steps=4, guidance=1.2)
    assert (given.scheduler, given.steps, given.guidance) == ("edm-heun", 4, 1.2)
    explicit = edm2_config(scheduler="edm-heun")  # named: the config's own steps / guidance stand
    assert (explicit.steps, explicit.guidance) == (25, 3.0)
    with pytest.raises(ConfigError, match="prediction_type"):
        edm2_config(prediction_type="epsilon")
    other = with_generator_sampler(BuildConfig(generator="default"))
    assert (other.scheduler, other.steps, other.guidance) == ("ddim", 25, 3.0)


def test_build_on_a_fresh_edm2_cpu_folder_with_its_guide(edm2_config, tmp_path):
    result = run_build(edm2_config(out=str(tmp_path / "a"), batch_size=5), progress=False)
    assert result.rows == {"mix": 6, "repro": 12}
    manifest = json.loads((result.out / "manifest.json").read_text())
    assert {k: manifest["config"][k] for k in ("scheduler", "steps", "guidance")} == {
        "scheduler": "edm-heun", "steps": 3, "guidance": 1.5}
    card = (result.out / "README.md").read_text()
    assert "`edm-heun`, 3" in card and "(autoguidance with `" in card  # the card's sampler and guidance rows
    mix = _rows(result.out)
    assert len({r["image"] for r in mix}) == 6  # distinct samples
    # the same config: the same bytes; another batch size and shard size: the same rows
    again = run_build(edm2_config(out=str(tmp_path / "b"), batch_size=5), progress=False).out
    other = run_build(edm2_config(out=str(tmp_path / "c"), batch_size=2, shard_size=1), progress=False).out
    assert _rows(again) == mix and _rows(other) == mix
    assert _rows(other, "repro") == _rows(result.out, "repro")


@pytest.mark.parametrize("overrides", [dict(guidance=1.0), dict(mixing="condition"),
                                       dict(weight_schedule="window", window_start=0.0, window_end=0.5)])
def test_build_modes_on_edm2(edm2_config, tmp_path, overrides):
    result = run_build(edm2_config(out=str(tmp_path / "m"), repro=False, **overrides), progress=False)
    assert result.rows == {"mix": 6}


def test_classifier_free_guidance_and_refusals(edm2_config, edm2_dir, tmp_path):
    import shutil

    shutil.rmtree(edm2_dir / "edm2_guide")  # no guide: guidance != 1 is classifier-free against the zero label
    assert run_build(edm2_config(out=str(tmp_path / "cfg"), repro=False), progress=False).rows == {"mix": 6}
    meta = json.loads((edm2_dir / "scoremix.json").read_text())
    (edm2_dir / "scoremix.json").write_text(json.dumps({**meta, "null_class": None}))
    with pytest.raises(ModelError, match="null class"):
        run_build(edm2_config(out=str(tmp_path / "nonull"), repro=False), progress=False)
    with pytest.raises(ModelError, match="edm-heun") as err:
        run_build(edm2_config(out=str(tmp_path / "euler"), scheduler="euler", guidance=1.0), progress=False)
    assert err.value.field == "scheduler" and not (tmp_path / "euler").exists()


def test_edm_heun_on_a_diffusers_generator_is_refused_before_writing(tiny_generator_dir, tiny_discriminator_dir,
                                                                    tiny_real_data_dir, tmp_path):
    config = BuildConfig(generator=str(tiny_generator_dir), discriminator=str(tiny_discriminator_dir),
                         real_data=str(tiny_real_data_dir), pairs=2, scheduler="edm-heun", out=str(tmp_path / "o"))
    with pytest.raises(ModelError, match="EDM2 generators only") as err:
        run_build(config, progress=False)
    assert err.value.field == "scheduler" and not (tmp_path / "o").exists()


def test_build_cli_on_an_imported_snapshot(tmp_path, capsys, tiny_discriminator_dir, tiny_real_data_dir):
    kwargs = {**TINY, "img_resolution": 8, "label_dim": NUM_CLASSES, "attn_resolutions": [4]}
    net = _live(EDM2Denoiser(**kwargs), 3)
    guide = _live(EDM2Denoiser(**{**kwargs, "model_channels": 8, "channels_per_head": 8}), 4)
    (tmp_path / "net.pkl").write_bytes(_snapshot_bytes(net, init_kwargs=kwargs))
    (tmp_path / "guide.pkl").write_bytes(_snapshot_bytes(
        guide, init_kwargs={**kwargs, "model_channels": 8, "channels_per_head": 8}))
    folder = tmp_path / "imported"
    rc, _, err = run_cli(capsys, "import-generator", str(tmp_path / "net.pkl"), "--guide", str(tmp_path / "guide.pkl"),
                         "--out", str(folder), "--class-names", "a,b,c,d", "--guidance", "1.7")
    assert rc == 0, err
    out = tmp_path / "built"
    rc, stdout, err = run_cli(capsys, *build_command(folder, tiny_discriminator_dir, tiny_real_data_dir, pairs=2,
                                                     per_identity=2, steps=2, out=out, strategy="distant"))
    assert rc == 0, err
    manifest = json.loads((out / "manifest.json").read_text())
    assert {k: manifest["config"][k] for k in ("scheduler", "steps", "guidance")} == {
        "scheduler": "edm-heun", "steps": 2, "guidance": 1.7}
    assert manifest["config"]["weak_generator"] == str(folder / "edm2_guide")
    assert len(_rows(out)) == 4


def test_a_weak_generator_of_other_labels_is_refused_before_writing(edm2_config, tiny_generator_dir, tmp_path):
    kwargs = {**preset("edm2-cpu-guide").denoiser_kwargs(label_dim=3), "img_resolution": 8, "attn_resolutions": [4]}
    other = write_edm2_folder(tmp_path / "three", _live(EDM2Denoiser(**kwargs), 2), ["x", "y", "z"])
    for weak, needle in ((other, "label count"), (tiny_generator_dir, "EDM2 network")):
        with pytest.raises(ModelError, match=needle) as err:
            run_build(edm2_config(out=str(tmp_path / "never"), weak_generator=str(weak)), progress=False)
        assert err.value.field == "weak_generator" and not (tmp_path / "never").exists()
