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
    c = result["c_copies"]
    assert c["samples"] == 10 and 0.0 <= c["near_copy_fraction"] <= 1.0 and c["real_to_real_p5"] > 0


def test_copy_distances_by_hand():
    """(c) on 2x1 one-channel images: class 0's real images 0 and 255 (distance 1 apart), class 1's 0, 51, 102."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from generator_quality import copy_distances

    import numpy as np

    real = np.array([0, 255, 0, 51, 102], dtype=np.uint8)[:, None, None, None].repeat(2, axis=2)
    labels = np.array([0, 0, 1, 1, 1])
    samples = np.array([255, 102, 128], dtype=np.uint8)[:, None, None, None].repeat(2, axis=2)
    c = copy_distances(samples, np.array([0, 0, 1]), real, labels)
    # real to nearest other real of its class: 1, 1 (class 0); 0.2, 0.2, 0.2 (class 1); 5th percentile 0.2
    assert c["real_to_nearest_other_real_median"] == pytest.approx(0.2)
    assert c["real_to_real_p5"] == pytest.approx(0.2)
    # samples: 255 is real image 1 (0.0); 102 is 0.4 from 0 and 0.6 from 255; 128 is 26/255 from 102
    assert c["sample_to_nearest_real_median"] == pytest.approx(26 / 255)
    assert c["near_copy_fraction"] == pytest.approx(2 / 3)  # 0.0 and 0.102 are below 0.2, 0.4 is not
