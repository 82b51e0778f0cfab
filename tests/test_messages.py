"""Messages that send users the right way (issue 24.8): the null-class fix named, flags that exist, a pushed
dataset's recipe by its Hub id, the real data's resolved commit on the card, one final progress bar, no
third-party noise in normal output."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import save_generator, tiny_unet
from fixtures.cli import run_cli


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("error:")]


@pytest.fixture
def five_rows(tmp_path) -> Path:
    """4 classes plus a null row trained by label dropout, declaring nothing: ``--null-class 4`` is the fix."""
    return save_generator(tmp_path / "five-rows", tiny_unet(num_classes=4, null=True))


def test_an_undeclared_null_row_is_named_as_the_fix(capsys, tmp_path, five_rows, tiny_discriminator_dir,
                                                    tiny_real_data_dir, one_thread):
    common = ["build", "--generator", str(five_rows), "--discriminator", str(tiny_discriminator_dir), "--real-data",
              str(tiny_real_data_dir), "--pairs", "2", "--per-identity", "1", "--steps", "1", "--no-progress"]
    rc, _, err = run_cli(capsys, *common, "--out", str(tmp_path / "a"))
    lines = error_lines(err)
    assert rc == 2 and len(lines) == 1 and "--null-class 4" in lines[0] and "--guidance 1" in lines[0], err
    rc, _, err = run_cli(capsys, *common, "--guidance", "1", "--out", str(tmp_path / "b"))
    lines = error_lines(err)
    assert rc == 2 and len(lines) == 1 and "--null-class 4" in lines[0], err
    assert lines[0].index("--null-class 4") < lines[0].index("--classes")  # the likely fix first
    rc, _, err = run_cli(capsys, *common, "--null-class", "4", "--out", str(tmp_path / "c"))
    assert rc == 0, err


def test_eval_revision_clash_names_flags_that_exist(capsys, tmp_path):
    rc, _, err = run_cli(capsys, "eval", "org/name@v1", "--revision", "main", "--benchmark", "mnist-5k-heldout",
                         "--out", str(tmp_path / "r"))
    lines = error_lines(err)
    assert rc == 2 and len(lines) == 1 and "--revision" in lines[0], err
    assert "model-revision" not in lines[0].lower() and "model_revision" not in lines[0]


def test_recipe_from_a_pushed_datasets_build_toml(hub, tmp_path):
    from hubfixtures import REPO_ROOT, client_env

    recipe = b'strategy = "random"\npairs = 3\nper_identity = 2\nsteps = 4\n'
    sha = hub.seed("org/ds", {"build.toml": recipe, "README.md": b"---\n---\n"})
    hub.seed("org/ds", {"build.toml": b'strategy = "random"\npairs = 99\n'})  # main moves on after the tag
    code = f"""
import json
from huggingface_hub import HfApi
from scoremix_ds.core.recipes import config_from, load_recipe
from scoremix_ds.core.errors import ScoreMixError
from scoremix_ds.synthesis.config import BuildConfig
HfApi().create_tag("org/ds", tag="v1.0.0", revision={sha!r}, repo_type="dataset")
tagged = config_from(BuildConfig, "org/ds@v1.0.0", {{"out": "x"}})
main = load_recipe("org/ds")
try:
    load_recipe("org/none@v1")
    missing = None
except ScoreMixError as exc:
    missing = [exc.message, exc.field]
print("@@" + json.dumps({{"pairs": tagged.pairs, "steps": tagged.steps, "main": main["pairs"], "missing": missing}}))
"""
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
                          env={**client_env(hub, tmp_path / "hf"), "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads([line for line in done.stdout.splitlines() if line.startswith("@@")][-1][2:])
    assert (got["pairs"], got["steps"], got["main"]) == (3, 4, 99)
    assert "org/none" in got["missing"][0] and got["missing"][1] == "recipe"


def test_card_records_the_commit_a_hub_real_data_tag_resolved_to(hub, tmp_path, tiny_generator_dir,
                                                                  tiny_discriminator_dir, tiny_real_data_dir):
    from hubfixtures import run_cli as hub_cli

    parquet = (Path(tiny_real_data_dir) / "data" / "train-00000.parquet").read_bytes()
    sha = hub.seed("org/real", {"data/train-00000.parquet": parquet})
    hub.store.create_tag(hub.store.get_repo("dataset", "org/real"), "v1", sha, None)
    out = tmp_path / "out"
    done = hub_cli(hub, tmp_path / "hf", "build", "--generator", str(tiny_generator_dir), "--discriminator",
                   str(tiny_discriminator_dir), "--real-data", "org/real@v1", "--pairs", "2", "--per-identity", "1",
                   "--steps", "1", "--no-progress", "--out", str(out), extra_env={"OMP_NUM_THREADS": "1"})
    assert done.rc == 0, done.err[-3000:]
    assert json.loads((out / "manifest.json").read_text())["provenance"]["real_data_commit"] == sha
    card = (out / "README.md").read_text()
    assert "org/real@v1" in card and f"read at `{sha}`" in card


def test_final_progress_bar_is_drawn_once(tmp_path, tiny_generator_dir, tiny_discriminator_dir,
                                                               tiny_real_data_dir):
    from hubfixtures import REPO_ROOT

    done = subprocess.run(
        [sys.executable, "-m", "scoremix_ds", "build", "--generator", str(tiny_generator_dir), "--discriminator",
         str(tiny_discriminator_dir), "--real-data", str(tiny_real_data_dir), "--pairs", "2", "--per-identity", "1",
         "--steps", "1", "--out", str(tmp_path / "out")],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
        env={"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO_ROOT),
             "HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr[-3000:]
    err = done.stderr.replace("\r", "\n")
    summary = err.index(" images in ")  # "sampled N images in B batches ..."
    assert "scoremix build" in err[:summary] and "scoremix build" not in err[summary:]
    assert err.count("scoremix build: 100%") == 1  # the finished bar, drawn once
    assert "not writable" not in err and "font_manager" not in err


def test_cli_logging_quiets_matplotlib_and_numpy_notes():
    import warnings

    from scoremix_ds.cli.logsetup import QUIET_WARNINGS, setup_logging

    with warnings.catch_warnings():
        setup_logging()
        assert logging.getLogger("matplotlib.font_manager").getEffectiveLevel() >= logging.WARNING
        with warnings.catch_warnings(record=True) as caught:
            warnings.warn("The given NumPy array is not writable, and PyTorch does not support non-writable tensors",
                          UserWarning)
        assert not caught and QUIET_WARNINGS
