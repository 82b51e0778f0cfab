"""``benchmarks/device.sh --tiny`` runs end to end on a CPU and prints every figure the GPU run prints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_device_script_tiny_mode(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHON=sys.executable,
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = tmp_path / "lines.json"
    res = subprocess.run(["bash", str(ROOT / "benchmarks" / "device.sh"), "--tiny", "--no-compile", "--json", str(out)],
                         capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    lines = json.loads(out.read_text())
    text = "\n".join(lines)
    for case in ("plain", "pair", "cfg-pair"):
        row = next(line for line in lines if line.split()[:2] == ["eager", case])
        images_per_s, tflops = float(row.split()[2]), float(row.split()[3])
        assert images_per_s > 0 and tflops >= 0
    assert "sampler busy" in text and "images/s" in text
    busy = float(text.split("sampler busy ")[1].split()[0])
    assert 0 < busy <= 1
    assert "training:" in text and "embedding:" in text
