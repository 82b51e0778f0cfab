"""The wheel carries the recipes, card templates and embedded default models, and finds them when installed."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(ROOT)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return next(out.glob("scoremix_ds-*.whl"))


def test_wheel_contains_recipes_cards_and_default_models(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in (
        "scoremix_ds/_bundled/builders/mnist-distant.toml",
        "scoremix_ds/_bundled/builders/default-generator.toml",
        "scoremix_ds/_bundled/cards/dataset_card.md",
        "scoremix_ds/default/generator/unet/diffusion_pytorch_model.safetensors",
        "scoremix_ds/default/generator/scoremix.json",
        "scoremix_ds/default/discriminator/model.safetensors",
    ):
        assert required in names, required
    assert not any(n.endswith((".bin", ".pt", ".pkl")) for n in names)  # safetensors only
    assert not any(n.startswith(("cli.py", "tests/")) for n in names)  # nothing named cli installed top-level
    entry = [n for n in names if n.endswith("entry_points.txt")][0]
    assert "scoremix-ds = scoremix_ds.cli:main" in zipfile.ZipFile(wheel).read(entry).decode()


def test_installed_wheel_finds_bundled_resources(wheel, tmp_path):
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = (
        "from scoremix_ds.resources import resource_dir; from scoremix_ds.recipes import resolve_recipe;"
        "print(resource_dir('cards')); print(resolve_recipe('mnist-distant'))"
    )
    env = dict(os.environ, PYTHONPATH=str(site))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    cards, recipe = proc.stdout.split()
    assert cards.startswith(str(site)) and "_bundled" in cards
    assert recipe.startswith(str(site))
