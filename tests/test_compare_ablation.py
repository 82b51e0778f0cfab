"""``tools/compare_ablation.py`` on the committed reports gives the ablation figures docs/reproduce-glyphs.md quotes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


MAIN = "reproduce-glyphs.json"
DECLARED = [0, 1, 2]  # the ablations' declared seeds


@pytest.mark.parametrize("reference, report, arm, expected, seeds", [
    (MAIN, "reproduce-glyphs-ablate-ratio.json", "distant", {"real": (-3.28, 0.49), "distant": (+3.73, 0.57)}, DECLARED),
    (MAIN, "reproduce-glyphs-ablate-generator.json", "distant", {"real": (-4.55, 0.35), "distant": (+2.45, 0.46)}, DECLARED),
    (MAIN, "reproduce-glyphs-ablate-both.json", "distant", {"real": (-2.15, 0.61), "distant": (+4.86, 0.68)}, DECLARED),
    (MAIN, "reproduce-glyphs-ablate-steps.json", "distant", {"real": (-9.25, 1.07), "distant": (-2.25, 1.11)}, DECLARED),
    (MAIN, "reproduce-glyphs-ablate-steps.json", "real", {"real": (+0.51, 0.18)}, DECLARED),
    (MAIN, "reproduce-glyphs-ablate-steps.json", "repro", {"real": (-20.64, 0.65), "repro": (-7.91, 0.92)}, DECLARED),
    (MAIN, "reproduce-glyphs-ablate-identities.json", "distant", {"real": (-3.33, 0.25), "distant": (+3.68, 0.39)}, DECLARED),
    (MAIN, "reproduce-glyphs-ablate-generator-8k.json", "distant", {"real": (-0.71, 0.21), "distant": (+6.30, 0.37)}, DECLARED),
    ("reproduce-glyphs-ablate-generator.json", "reproduce-glyphs-ablate-generator-8k.json", "distant",
     {"distant": (+3.84, 0.37)}, DECLARED),
    (MAIN, "reproduce-glyphs-ablate-generator-8k-ratio.json", "distant",
     {"real": (+0.97, 0.44), "distant": (+7.98, 0.53)}, DECLARED),
    ("reproduce-glyphs-ablate-generator-8k.json", "reproduce-glyphs-ablate-generator-8k-ratio.json", "distant",
     {"distant": (+1.68, 0.45)}, DECLARED),
    (MAIN, "reproduce-glyphs-ablate-generator-8k-ratio-seeds0-4.json", "distant",  # seeds 3-4: the follow-up
     {"real": (+0.71, 0.28)}, [0, 1, 2, 3, 4]),
])
def test_documented_ablation_differences(tmp_path, reference, report, arm, expected, seeds):
    out = tmp_path / "rows.json"
    subprocess.run([sys.executable, str(ROOT / "tools" / "compare_ablation.py"), str(ROOT / "docs" / reference),
                    str(ROOT / "docs" / report), "--arm", arm, "--against", ",".join(expected),
                    "--seeds", ",".join(map(str, seeds)), "--json", str(out)], check=True, capture_output=True, timeout=120)
    rows = {r["against"]: r for r in json.loads(out.read_text()) if r["metric"] == "tar@0.0001"}
    assert set(rows) == set(expected)
    for against, (difference, se) in expected.items():
        row = rows[against]
        assert row["seeds"] == seeds
        assert round(100 * row["difference"], 2) == difference and round(100 * row["se"], 2) == se
