"""The CLI boundary: bad input gets ONE line naming the fix, exit code 2, and nothing already written changes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fixtures.cli import build_command, run_cli
from scoremix_ds.cli import main


def error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture
def tiny_args(tiny_generator_dir, tiny_discriminator_dir, tiny_real_data_dir, tmp_path):
    return build_command(tiny_generator_dir, tiny_discriminator_dir, tiny_real_data_dir, pairs=2, per_identity=1,
                         steps=2, out=tmp_path / "out")


@pytest.mark.parametrize(
    "extra, needle, flag",
    [
        (["--strategy", "farthest"], "unknown strategy 'farthest'", "--strategy"),
        (["--scheduler", "plms"], "unknown scheduler 'plms'", "--scheduler"),
        (["--weights", "1.5,-0.5"], "negative weight", "--allow-nonconvex"),
        (["--weights", "0.2,0.3,0.5"], "3 value(s)", "--weights"),
        (["--weights", "0.6,0.6"], "sum to 1.2", "--allow-nonconvex"),
        (["--weights", "a,b"], "not a comma-separated list", "--weights"),
        (["--classes", "1"], "at least 2 classes", "--classes"),
        (["--classes", "0,7"], "--classes has id 7", "--classes"),
        (["--classes", "0,3,3"], "listed twice", "--classes"),
        (["--pairs", "7"], "only 6 distinct pairs", "--pairs 6"),
        (["--pairs", "0"], "--pairs must be a positive count", "--pairs"),
        (["--per-identity", "-1"], "--per-identity must be a positive count", "--per-identity"),
        (["--steps", "0"], "--steps must be a positive count", "--steps"),
        (["--batch-size", "0"], "--batch-size must be a positive count", "--batch-size"),
        (["--dtype", "float8"], "unknown dtype", "--dtype"),
        (["--weight-schedule", "window", "--window-start", "0.7", "--window-end", "0.2"], "window", "--window-start"),
        (["--guidance", "2", "--generator", "MISSING"], "does not exist", "--generator"),
    ],
)
def test_bad_build_input_gets_one_line_and_exit_2(capsys, tiny_args, tmp_path, extra, needle, flag):
    args = list(tiny_args)
    if "--generator" in extra:
        i = args.index("--generator")
        args[i + 1] = str(tmp_path / extra[extra.index("--generator") + 1])
        extra = [e for j, e in enumerate(extra) if not (e == "--generator" or (j and extra[j - 1] == "--generator"))]
    rc, _, err = run_cli(capsys, *args, *extra)
    line = error_line(err)
    assert rc == 2
    assert needle in line and flag in line
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()  # nothing written for bad input


def _plain_unet_folder(root: Path, **unet_kwargs) -> Path:
    from diffusers import UNet2DModel

    model = UNet2DModel(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 16), layers_per_block=1,
                        down_block_types=("DownBlock2D",) * 2, up_block_types=("UpBlock2D",) * 2, norm_num_groups=4, **unet_kwargs)
    model.save_pretrained(root / "unet", safe_serialization=True)
    return root


def test_generator_without_class_conditioning_is_refused(capsys, tiny_args, tmp_path):
    folder = _plain_unet_folder(tmp_path / "uncond")
    args = list(tiny_args)
    args[args.index("--generator") + 1] = str(folder)
    rc, _, err = run_cli(capsys, *args)
    assert rc == 2 and "not class-conditional" in error_line(err) and "--generator" in error_line(err)


def test_pickle_only_generator_is_refused_without_unpickling(capsys, tiny_args, tmp_path):
    folder = _plain_unet_folder(tmp_path / "pickled", num_class_embeds=3)
    weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
    state = {k: v for k, v in __import__("safetensors.torch", fromlist=["load_file"]).load_file(weights).items()}
    weights.unlink()
    torch.save(state, folder / "unet" / "diffusion_pytorch_model.bin")
    args = list(tiny_args)
    args[args.index("--generator") + 1] = str(folder)
    rc, _, err = run_cli(capsys, *args)
    line = error_line(err)
    assert rc == 2 and "pickle" in line and "--generator" in line


def test_guidance_without_null_class_is_refused(capsys, tiny_args, tmp_path):
    folder = _plain_unet_folder(tmp_path / "nonull", num_class_embeds=4)  # no scoremix.json: no null class
    args = list(tiny_args)
    args[args.index("--generator") + 1] = str(folder)
    rc, _, err = run_cli(capsys, *args, "--guidance", "2")
    line = error_line(err)
    assert rc == 2 and "null class" in line and "--guidance 1" in line


def test_out_holding_another_build_is_refused_and_kept(capsys, tiny_args, tmp_path):
    assert run_cli(capsys, *tiny_args)[0] == 0
    out = tmp_path / "out"
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    rc, _, err = run_cli(capsys, *tiny_args, "--strategy", "close")
    assert rc == 2 and "different build" in error_line(err) and "--out" in error_line(err)
    assert before == {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}


def test_nonconvex_weights_accepted_when_asked(capsys, tiny_args, tmp_path):
    rc, out, _ = run_cli(capsys, *tiny_args, "--weights", "0.7,0.6", "--allow-nonconvex")
    assert rc == 0 and "2 identities" in out
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["config"]["weights"] == [0.7, 0.6] and manifest["config"]["allow_nonconvex"] is True


def test_recipe_unknown_key_and_wrong_type(capsys, tiny_args, tmp_path):
    bad_key = tmp_path / "bad_key.toml"
    bad_key.write_text('strategy = "distant"\npairz = 3\n')
    rc, _, err = run_cli(capsys, *tiny_args, "--recipe", str(bad_key))
    assert rc == 2 and "unknown key(s) pairz" in error_line(err)
    bad_type = tmp_path / "bad_type.toml"
    bad_type.write_text('pairs = "many"\n')
    rc, _, err = run_cli(capsys, *tiny_args, "--recipe", str(bad_type))
    assert rc == 2 and "'pairs' has the wrong type" in error_line(err)
    rc, _, err = run_cli(capsys, *tiny_args, "--recipe", "no-such-recipe")
    assert rc == 2 and "not found" in error_line(err) and "mnist-distant" in error_line(err)
    assert not (tmp_path / "out").exists()


def test_recipe_values_are_overridden_by_flags(capsys, tiny_args, tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text('strategy = "close"\npairs = 5\nper_identity = 3\n')
    rc, out, _ = run_cli(capsys, *tiny_args, "--recipe", str(recipe))  # tiny_args sets --pairs 2 --per-identity 1
    assert rc == 0
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["config"]["strategy"] == "close" and manifest["config"]["pairs"] == 2


def test_bundled_recipes_are_valid_configs():
    from scoremix_ds.synthesis.config import BuildConfig
    from scoremix_ds.core.recipes import from_mapping, load_recipe
    from scoremix_ds.training.generator_config import GeneratorTrainConfig
    from scoremix_ds.training.recognition_config import RecognitionTrainConfig

    assert from_mapping(BuildConfig, load_recipe("mnist-distant"), "mnist-distant").strategy == "distant"
    assert from_mapping(GeneratorTrainConfig, load_recipe("default-generator"), "g").steps > 0
    assert from_mapping(RecognitionTrainConfig, load_recipe("default-discriminator"), "d").shift_pixels == 2


def test_console_script_runs_as_a_module():
    proc = subprocess.run([sys.executable, "-m", "scoremix_ds", "build", "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "--strategy" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "scoremix_ds", "build", "--strategy", "nope"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1].startswith("error: unknown strategy")


def test_exit_codes_of_typer_exit_reach_the_shell(monkeypatch, capsys):
    import typer

    from scoremix_ds.cli import build_cmd

    def fail(*args, **kwargs):
        raise typer.Exit(3)  # e.g. a relaunched distributed build whose processes failed

    monkeypatch.setattr(build_cmd, "config_from", fail)
    assert main(["build"]) == 3


def test_ctrl_c_talks_about_shards_only_for_builds(monkeypatch, capsys, tmp_path):
    from scoremix_ds.synthesis import status
    from scoremix_ds.cli import build_cmd

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(build_cmd, "config_from", interrupt)
    monkeypatch.setattr(status, "build_status", interrupt)
    assert main(["-v", "build"]) == 130
    assert capsys.readouterr().err == "interrupted; completed shards are kept and a re-run resumes\n"
    assert main(["status", str(tmp_path)]) == 130
    assert capsys.readouterr().err == "interrupted\n"


def test_a_manifest_of_another_format_is_refused_in_one_line(capsys, tmp_path):
    from scoremix_ds.dataset.manifest import FORMAT_VERSION, Manifest

    Manifest(fingerprint="f", config={}, package_version="9.9", format=FORMAT_VERSION + 1).write(tmp_path)
    rc, out, err = run_cli(capsys, "status", str(tmp_path))
    assert rc == 2 and not out
    assert error_line(err) == (f"error: {tmp_path / 'manifest.json'} has manifest format {FORMAT_VERSION + 1}; this "
                               f"scoremix-ds reads format {FORMAT_VERSION} — use the scoremix-ds version that wrote it (9.9)")
