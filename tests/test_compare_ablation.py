"""``tools/compare_ablation.py`` on the committed reports gives the ablation figures docs/reproduce-glyphs.md quotes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("report, expected", [
    ("reproduce-glyphs-ablate-ratio.json", {"real": (-3.28, 0.49), "distant": (+3.73, 0.57)}),
    ("reproduce-glyphs-ablate-generator.json", {"real": (-4.55, 0.35), "distant": (+2.45, 0.46)}),
    ("reproduce-glyphs-ablate-both.json", {"real": (-2.15, 0.61), "distant": (+4.86, 0.68)}),
])
def test_documented_ablation_differences(tmp_path, report, expected):
    out = tmp_path / "rows.json"
    subprocess.run([sys.executable, str(ROOT / "tools" / "compare_ablation.py"), str(ROOT / "docs" / "reproduce-glyphs.json"),
                    str(ROOT / "docs" / report), "--arm", "distant", "--against", ",".join(expected), "--seeds", "0,1,2",
                    "--json", str(out)], check=True, capture_output=True, timeout=120)
    rows = {r["against"]: r for r in json.loads(out.read_text()) if r["metric"] == "tar@0.0001"}
    assert set(rows) == set(expected)
    for against, (difference, se) in expected.items():
        row = rows[against]
        assert row["seeds"] == [0, 1, 2]
        assert round(100 * row["difference"], 2) == difference and round(100 * row["se"], 2) == se
