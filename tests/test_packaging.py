"""The wheel carries the recipes, card templates and embedded default models, and finds them when installed."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: hatchling's own TOML reader
    import tomli as tomllib

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
        "from scoremix_ds.core.resources import resource_dir; from scoremix_ds.core.recipes import resolve_recipe;"
        "print(resource_dir('cards')); print(resolve_recipe('mnist-distant'))"
    )
    env = dict(os.environ, PYTHONPATH=str(site))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    cards, recipe = proc.stdout.split()
    assert cards.startswith(str(site)) and "_bundled" in cards
    assert recipe.startswith(str(site))


def _files_under(folder: Path) -> list[Path]:
    """The files a build can pick up under ``folder``: everything but Python's byte-code caches."""
    return [p for p in folder.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc", ".pyo")]


def expected_wheel_files(root: Path) -> set[str]:
    """Every file the wheel must carry, read from pyproject.toml rather than listed by hand: all files (modules and
    the data they read at run time) under each package of ``[tool.hatch.build.targets.wheel] packages``, and each
    ``force-include`` folder's files at their place in the wheel."""
    wheel_target = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["hatch"]["build"]["targets"]["wheel"]
    expected = {p.relative_to(root).as_posix()
                for package in wheel_target["packages"] for p in _files_under(root / package)}
    for source, target in wheel_target.get("force-include", {}).items():
        expected |= {f"{target}/{p.relative_to(root / source).as_posix()}" for p in _files_under(root / source)}
    return expected


def test_wheel_holds_every_package_file(wheel):
    """A subpackage or data file that the build leaves out (an ignore rule, an exclude) fails here, by name."""
    expected = expected_wheel_files(ROOT)
    assert sum(name.endswith(".py") for name in expected) > 10  # the walk found the package's modules
    missing = sorted(expected - set(zipfile.ZipFile(wheel).namelist()))
    assert not missing, f"{len(missing)} package files are not in the wheel: {missing[:10]}"
