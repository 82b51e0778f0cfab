"""``benchmarks/device.sh --tiny`` runs end to end on a CPU, writes every section to $OUT/device.json as it goes, and
says in one line what to do where its dependencies are missing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_device_script_tiny_mode(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHON=sys.executable, OUT=str(tmp_path / "out"))
    lines_file = tmp_path / "lines.json"
    res = subprocess.run(["bash", str(ROOT / "benchmarks" / "device.sh"), "--tiny", "--no-compile", "--json",
                          str(lines_file)], capture_output=True, text=True, env=env, timeout=900, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    report = json.loads((tmp_path / "out" / "device.json").read_text())
    sections = report["sections"]
    assert list(sections) == ["sampling", "build", "train", "eval", "recognition", "edm2"]
    assert not [name for name, s in sections.items() if "error" in s], sections
    rows = {(r["arch"], r["case"]): r for r in sections["sampling"]["rows"]}
    for arch in ("unet-small", "dit-small"):
        for case in ("plain", "pair", "cfg-pair", "autoguided-pair"):
            assert rows[arch, case]["images_per_s"] > 0 and rows[arch, case]["tflops"] >= 0
    assert 0 < sections["build"]["sampler_busy"] <= 1
    assert sections["train"]["logged_images_per_s"] > 0 and sections["train"]["steps"] == 6
    assert sections["eval"]["pairs"] == 50 * 16 * (50 * 16 - 1) // 2 and sections["eval"]["pairs_per_s"] > 0
    assert sections["recognition"]["train_images_per_s"] > 0 and sections["recognition"]["embed_images_per_s"] > 0
    edm2 = {r["case"]: r for r in sections["edm2"]["rows"]}  # edm2-s's section, on edm2-cpu in the tiny mode
    assert sections["edm2"]["arch"] == "edm2-cpu" and sections["edm2"]["evaluations"] == 3
    assert set(edm2) == {"plain", "pair", "autoguided-plain", "autoguided-pair"}
    assert all(r["images_per_s"] > 0 for r in edm2.values()) and edm2["plain"]["seconds_vs_plain"] == 1.0
    text = "\n".join(json.loads(lines_file.read_text()))
    assert "sampler busy" in text and "scoremix-ds train" in text and "pairs/s" in text and "edm-heun" in text


def test_device_script_without_its_dependencies_says_how_to_get_them(tmp_path):
    bare = shutil.which("python3", path="/usr/bin:/bin")
    if bare is None or subprocess.run([bare, "-c", "import diffusers"], capture_output=True).returncode == 0:
        pytest.skip("needs a python without diffusers")
    copy = tmp_path / "repo"
    (copy / "benchmarks").mkdir(parents=True)
    shutil.copy(ROOT / "benchmarks" / "device.sh", copy / "benchmarks" / "device.sh")  # a tree with no .whl/
    res = subprocess.run(["bash", str(copy / "benchmarks" / "device.sh"), "--tiny"], capture_output=True, text=True,
                         env=dict(os.environ, PYTHON=bare), timeout=60)
    assert res.returncode == 2 and "make device-wheels" in res.stderr and len(res.stderr.strip().splitlines()) == 1
