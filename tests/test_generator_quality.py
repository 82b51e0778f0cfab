"""``benchmarks/generator_quality.py`` end to end on the embedded models, tiny: its figures are in range, and a
generator compared with itself (same classes, same seeds) differs by exactly zero with a zero paired error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # two generators sampled in a subprocess
def test_a_generator_against_itself_differs_by_zero(tmp_path):
    out = tmp_path / "quality.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "generator_quality.py"), "--n", "10", "--pairs", "2",
           "--per-mix", "2", "--steps", "3", "--baseline-generator", "default", "--json", str(out)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(out.read_text())
    a = result["a_class_fidelity"]
    assert a["samples"] == 10 and 0.0 <= a["generated_accuracy"] <= 1.0 and a["real_accuracy_baseline"] > 0.9
    assert "correct" not in a and "correct" not in result["baseline"]["a_class_fidelity"]
    assert result["baseline"]["a_class_fidelity"]["generated_accuracy"] == a["generated_accuracy"]
    assert result["a_difference_vs_baseline"] == {"difference": 0.0, "paired_se": 0.0, "only_this_right": 0,
                                                  "only_baseline_right": 0}
    assert result["b_mixes"]["identities"] == 2 and "difference +0.000" in run.stdout
