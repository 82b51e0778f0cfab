"""Preflight (issue 24.1): what `build`, `train`, `train-generator` and `reproduce` can check before their first
forward pass fails there, in one line naming the flag, exit 2, with nothing written: the device, the output folder,
free disk for the estimated output, a push's token / access / tag, and `train`'s evaluation set.

The disk tests replace :func:`shutil.disk_usage` where :mod:`scoremix_ds.core.preflight` reads it (the one boundary
between the estimate and the file system); the Hub tests run the real CLI and huggingface_hub client in a fresh
interpreter against the loopback Hub of ``tests/fixtures/hub_server.py``.
"""

from __future__ import annotations

import collections
import json
import sys
import time
from pathlib import Path

import pytest
import torch

from fixtures.cli import run_cli
from scoremix_ds.core import preflight as core_preflight
from scoremix_ds.core.errors import DataError
from scoremix_ds.training.recognition import train_recognition
from scoremix_ds.training.recognition_config import RecognitionTrainConfig

sys.path.insert(0, str(Path(__file__).parent))
from hubfixtures import run_cli as run_hub_cli  # noqa: E402

TRAIN = ["train", "--real-data", "mnist-5k-train[0-3]", "--backbone", "small-cnn", "--embedding-dim", "16",
         "--image-size", "16", "--channels", "1", "--no-flip", "--steps", "2", "--batch-size", "16", "--device", "cpu",
         "--no-progress"]
GENERATOR = ["train-generator", "--real-data", "mnist-5k-train[0-3]", "--architecture", "unet-small", "--image-size",
             "8", "--channels", "1", "--steps", "1", "--batch-size", "4", "--device", "cpu", "--no-progress"]
TINY = dict(real=("mnist-5k-train[0-3]",), backbone="small-cnn", embedding_dim=16, image_size=16, channels=1, flip=False,
            batch_size=16, steps=1, learning_rate=0.05, scale=16.0, device="cpu")


def _error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err[-2000:]
    return lines[0]


# ---------------------------------------------------------------------------------------------- the evaluation set


def test_a_bad_evaluation_set_fails_before_the_first_step(tmp_path, capsys):
    """Today's "10 folds need 2 <= folds <= 6 pairs" came at the first evaluation, with train_log.jsonl written."""
    out = tmp_path / "net"
    rc, _, err = run_cli(capsys, *TRAIN, "--val", "heldout:mnist-5k-heldout[0-3]:6", "--eval-every", "1",
                         "--out", str(out))
    line = _error(err)
    assert rc == 2 and "10 folds need 2 <= folds <= 6 pairs" in line and "--val" in line
    assert not (out / "train_log.jsonl").exists() and not out.exists()
    with pytest.raises(DataError, match="6 pairs") as info:  # the library, too, before it claims the folder
        train_recognition(RecognitionTrainConfig(out=str(out), val=("heldout:mnist-5k-heldout[0-3]:6",), **TINY),
                          progress=False)
    assert info.value.fields == ("val",) and not out.exists()


# ---------------------------------------------------------------------------------------------- disk, folder, device


def _no_room(monkeypatch, free: int = 10_000) -> list[Path]:
    """``shutil.disk_usage`` as core.preflight reads it: ``free`` bytes left; returns the paths it was asked about."""
    asked: list[Path] = []
    usage = collections.namedtuple("usage", "total used free")

    def disk_usage(path):
        asked.append(Path(path))
        return usage(10 ** 12, 10 ** 12 - free, free)

    monkeypatch.setattr(core_preflight.shutil, "disk_usage", disk_usage)
    return asked


def test_no_room_for_the_estimated_output_is_refused_before_anything_is_written(tmp_path, capsys, monkeypatch,
                                                                                  models, caplog):
    asked = _no_room(monkeypatch)
    for name, args in (("net", TRAIN), ("gen", GENERATOR),
                       ("built", ["build", *models, "--pairs", "40", "--per-identity", "4", "--steps", "2",
                                  "--no-progress"]),
                       ("report", ["reproduce", "reproduce-glyphs"])):
        out = tmp_path / "sub" / name
        rc, _, err = run_cli(capsys, *args, "--out", str(out))
        line = _error(err)
        assert rc == 2 and "free" in line and "--out" in line, line
        assert not (tmp_path / "sub").exists()
    assert asked and all(p == tmp_path for p in asked)  # the nearest folder that exists
    # reproduce --check validates the recipe only: the disk it lacks here is a note, not a refusal
    rc, out, err = run_cli(capsys, "reproduce", "reproduce-glyphs", "--check", "--out", str(tmp_path / "sub" / "r"))
    assert rc == 0 and "recipe OK" in out and "error:" not in err, err
    assert "free" in caplog.text and str(tmp_path / "sub" / "r") in caplog.text, caplog.text
    assert not (tmp_path / "sub").exists()


def test_the_estimates(tmp_path, models, monkeypatch):
    """The documented estimates: a build's images x H x W x C (this part's share), a training's checkpoints."""
    from scoremix_ds.cli.preflight import generator_image_shape

    assert core_preflight.image_bytes(10, 28, 28, 1) == 7840
    assert core_preflight.training_bytes(1000, 2) == 3 * 3 * 1000 * 4
    gen = Path(models[1])
    cfg = json.loads((gen / "unet" / "config.json").read_text())
    assert generator_image_shape(str(gen)) == (cfg["sample_size"], cfg["sample_size"], cfg["out_channels"])
    assert generator_image_shape("org/hub-model") == (112, 112, 3)
    # enough room: no refusal (the tiny estimate fits a real disk)
    core_preflight.check_free_disk(tmp_path, 1, "one byte")


def test_an_output_that_cannot_be_a_folder_is_refused(tmp_path, capsys, models):
    blocker = tmp_path / "file"
    blocker.write_text("mine")
    for args in (TRAIN, ["build", *models, "--pairs", "2", "--per-identity", "1", "--no-progress"]):
        for out in (blocker, blocker / "below"):
            rc, _, err = run_cli(capsys, *args, "--out", str(out))
            assert rc == 2 and "--out" in _error(err), err
    assert blocker.read_text() == "mine"


def test_a_missing_cuda_device_is_refused_up_front(tmp_path, capsys, monkeypatch, models):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for args in ([a if a != "cpu" else "cuda" for a in TRAIN], [a if a != "cpu" else "cuda" for a in GENERATOR],
                 ["build", *models, "--device", "cuda", "--no-progress"]):
        out = tmp_path / "o"
        rc, _, err = run_cli(capsys, *args, "--out", str(out))
        assert rc == 2 and "--device" in _error(err) and "CUDA" in err and not out.exists(), err


def test_reproduce_checks_every_stage_device_and_its_folder(tmp_path, capsys, monkeypatch, caplog):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    recipe = Path(__file__).resolve().parents[1] / "builders" / "reproduce-glyphs.toml"
    if not recipe.is_file():
        pytest.skip("no reproduce-glyphs recipe")
    text = recipe.read_text().replace("[eval]\n", '[eval]\ndevice = "cuda"\n', 1)
    bad = tmp_path / "cuda.toml"
    bad.write_text(text)
    out = tmp_path / "report"
    rc, _, err = run_cli(capsys, "reproduce", str(bad), "--out", str(out))
    assert rc == 2 and "device" in _error(err) and "CUDA" in err and not out.exists(), err
    blocker = tmp_path / "file"
    blocker.write_text("mine")
    rc, _, err = run_cli(capsys, "reproduce", str(recipe), "--out", str(blocker))
    assert rc == 2 and "--out" in _error(err), err
    # --check validates the recipe only (a GPU recipe checked on a CPU machine): the same findings are notes
    for recipe_arg, out_arg in ((bad, out), (recipe, blocker)):
        caplog.clear()
        rc, stdout, err = run_cli(capsys, "reproduce", str(recipe_arg), "--out", str(out_arg), "--check")
        assert rc == 0 and "recipe OK" in stdout and "error:" not in err, err
        notes = caplog.text
        assert ("CUDA" in notes) if recipe_arg is bad else (str(blocker) in notes and "is a file" in notes), notes
    assert not out.exists() and blocker.read_text() == "mine"


def test_the_reproduce_estimate_builds_repro_where_the_experiment_does():
    """One rule (ReproduceConfig.builds_repro): the distant build writes repro rows only when the repro arm runs."""
    import dataclasses

    from scoremix_ds.cli.preflight import build_images, reproduce_images
    from scoremix_ds.reproduce import load_reproduce_config
    from scoremix_ds.reproduce.config import ARM_BUILDS

    def images(config, repro_arms):
        return sum(build_images(dataclasses.replace(config.build, strategy=ARM_BUILDS[arm][0], repro=arm in repro_arms))
                   for arm in config.build_arms)

    without = load_reproduce_config("reproduce-glyphs", {"arms": ["real", "random", "distant"]})
    assert [a for a in without.build_arms if without.builds_repro(a)] == []
    assert reproduce_images(without) == images(without, ()) < images(without, without.build_arms)
    with_repro = load_reproduce_config("reproduce-glyphs", {"arms": ["real", "random", "repro"]})
    assert [a for a in with_repro.build_arms if with_repro.builds_repro(a)] == ["distant"]
    assert reproduce_images(with_repro) == images(with_repro, ("distant",))


def test_a_plans_images_are_counted_by_the_builds_own_rule(monkeypatch):
    """build_images on a plan file is synthesis.runner.unit_images over all its identities (not a copy of it)."""
    from types import SimpleNamespace

    from scoremix_ds.cli.preflight import build_images
    from scoremix_ds.synthesis import runner

    plan = SimpleNamespace(identities=[SimpleNamespace(seeds=[0, 1], parents=[3, 4])] * 3)
    config = SimpleNamespace(repro=True, num_shards=1)
    assert build_images(config, SimpleNamespace(plan=plan)) == runner.unit_images(plan, range(3), True) == 18
    asked = []
    monkeypatch.setattr(runner, "unit_images", lambda p, ids, repro: asked.append((p, list(ids), repro)) or 7)
    assert build_images(config, SimpleNamespace(plan=plan)) == 7 and asked == [(plan, [0, 1, 2], True)]


def test_an_edm2_folders_image_shape_is_the_loaders(tmp_path):
    """EDM2 folders (edm2/, a vae/ for latent ones) give the shape the loaded generator decodes, not 112x112x3."""
    from diffusers import AutoencoderKL

    from fixtures.edm2_pickles import tiny_net
    from scoremix_ds.cli.preflight import generator_image_shape
    from scoremix_ds.generators.edm2.folder import write_edm2_folder
    from scoremix_ds.generators.loading import load_generator

    net = tiny_net(1)
    pixel = write_edm2_folder(tmp_path / "pixel", net, ["a", "b", "c"], null_class=3)
    latent = write_edm2_folder(tmp_path / "latent", net, ["a", "b", "c"], null_class=3,
                               extra={"latent": {"scale": [0.5], "bias": [0.0]}})
    torch.manual_seed(0)
    AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
                  up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 8), layers_per_block=1,
                  latent_channels=1, norm_num_groups=4, sample_size=32).save_pretrained(latent / "vae",
                                                                                     safe_serialization=True)
    for folder in (pixel, latent):
        gen = load_generator(str(folder))
        with torch.no_grad():
            image = gen.decode(torch.zeros(1, *gen.sample_shape))
        h, w, c = generator_image_shape(str(folder))
        assert (c, h, w) == tuple(image.shape[1:]), folder
    assert generator_image_shape(str(pixel)) == (net.img_resolution, net.img_resolution, net.img_channels)
    assert generator_image_shape(str(latent)) == (2 * net.img_resolution, 2 * net.img_resolution, 3)


# ---------------------------------------------------------------------------------------------- the Hub


def _tagged_model(hub, repo: str, tag: str) -> str:
    sha = hub.seed(repo, {"config.json": b"{}", "model.safetensors": b"not these weights" * 100}, repo_type="model")
    hub.store.create_tag(hub.store.get_repo("model", repo), tag, sha, None)
    return sha


def test_train_push_to_an_existing_tag_fails_in_seconds_with_nothing_trained(hub, tmp_path):
    _tagged_model(hub, "org/net", "v1")
    _tagged_model(hub, "org/gen", "v1")
    for args, repo in ((TRAIN, "org/net"), (GENERATOR, "org/gen")):
        out = tmp_path / repo.split("/")[1]
        started = time.perf_counter()
        run = run_hub_cli(hub, tmp_path / "hf", *args, "--out", str(out), "--push-to", repo, "--tag", "v1",
                          timeout=120)
        seconds = time.perf_counter() - started
        line = _error(run.err)
        assert run.rc == 2 and "tag v1 already exists" in line and "--tag" in line, run.err[-2000:]
        assert "force" not in line, line  # train / train-generator have no --force-tag to offer
        assert not out.exists() and seconds < 60  # a Python start and the Hub calls: no data read, no step taken
        for token, needle in (("", "no Hugging Face token"), (hub.READ_TOKEN, "read-only")):
            refused = run_hub_cli(hub, tmp_path / "hf", *args, "--out", str(out), "--push-to", repo, "--tag", "v2",
                                  token=token, timeout=120)
            assert refused.rc == 2 and needle in _error(refused.err) and not out.exists(), refused.err[-1000:]
    assert set(hub.refs("org/net", repo_type="model")["tags"]) == {"v1"}


@pytest.mark.parametrize("command", [TRAIN, GENERATOR], ids=["train", "train-generator"])
def test_a_finished_pushed_training_run_again_passes_the_tag_check(hub, tmp_path, command):
    """The tag's commit holds the very weights --out holds: the re-run trains nothing and pushes nothing."""
    args = [*command, "--out", str(tmp_path / "net"), "--push-to", "org/again", "--tag", "v1"]
    first = run_hub_cli(hub, tmp_path / "hf", *args, timeout=300, extra_env={"OMP_NUM_THREADS": "1"})
    assert first.rc == 0, first.err[-2000:]
    commits = len(hub.commits("org/again", repo_type="model"))
    again = run_hub_cli(hub, tmp_path / "hf", *args, timeout=300, extra_env={"OMP_NUM_THREADS": "1"})
    assert again.rc == 0, again.err[-2000:]
    assert len(hub.commits("org/again", repo_type="model")) == commits


def test_a_revision_that_does_not_exist_is_refused_before_anything_is_read(hub, tmp_path, tiny_generator_dir):
    """Pinned Hub inputs (ORG/NAME@REV, --x-revision) are checked with one metadata call each, up front."""
    hub.seed("org/data", {"README.md": b"data"})
    hub.seed("org/model", {"config.json": b"{}"}, repo_type="model")
    cases = [
        ([*TRAIN[:2], "org/data@nope", *TRAIN[3:]], "--real-data"),
        ([*TRAIN[:2], "org/data@nope[0-1]", *TRAIN[3:]], "--real-data"),  # a class subset after the revision
        ([*TRAIN[:2], "org/data[0-1]@nope", *TRAIN[3:]], "--real-data"),  # or before it
        ([*TRAIN, "--init", "org/model", "--init-revision", "nope"], "--init"),
        ([*GENERATOR[:2], "org/data@nope", *GENERATOR[3:]], "--real-data"),
        (["build", "--generator", "org/model", "--generator-revision", "nope", "--strategy", "random",
          "--no-progress"], "--generator"),
    ]
    for args, flag in cases:
        out = tmp_path / "o"
        run = run_hub_cli(hub, tmp_path / "hf", *args, "--out", str(out), timeout=120)
        line = _error(run.err)
        assert run.rc == 2 and "revision nope not found" in line and flag in line, (args, run.err[-1500:])
        assert not out.exists()
    # a revision that exists, with a class subset (the form docs/byo.md shows), passes the check: the run goes on
    # to read the data (this repository holds none, so it fails there, not on the revision)
    run = run_hub_cli(hub, tmp_path / "hf", *TRAIN[:2], "org/data@main[0-1]", *TRAIN[3:], "--out", str(tmp_path / "p"),
                      timeout=120)
    line = _error(run.err)
    assert "not found" not in line and "main[0-1]" not in line and "doesn't contain any data files" in line, line


def test_a_file_removed_while_the_folder_is_measured_counts_nothing(tmp_path, monkeypatch):
    """Process 0 of a launch clears its temporaries while the disk check walks ``--out``: no FileNotFoundError."""
    from scoremix_ds.cli.preflight import folder_bytes

    (tmp_path / "gone.tmp").write_bytes(b"x" * 10)
    (tmp_path / "kept").write_bytes(b"y" * 7)
    real_stat, calls = Path.stat, collections.Counter()

    def stat(self, *args, **kwargs):  # it exists when asked whether it is a file, and is gone by the next stat
        calls[self.name] += 1
        if self.name == "gone.tmp" and calls[self.name] > 1:
            raise FileNotFoundError(self)
        return real_stat(self, *args, **kwargs)

    monkeypatch.setattr(Path, "stat", stat)
    assert folder_bytes(tmp_path) == 7
