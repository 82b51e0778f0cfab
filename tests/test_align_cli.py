"""``scoremix-ds align`` end to end on tiny models built in code (the embedded default is measured in the notes)."""

from __future__ import annotations

import math

import pytest

from fixtures.cli import run_cli


def table(out: str) -> dict[str, tuple[float, float]]:
    rows = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] in {"linear_cka", "debiased_cka", "mutual_knn", "cknna", "distance_spearman"}:
            rows[parts[0]] = (float(parts[1]), float(parts[2]))
    return rows


def test_align_prints_every_measure_and_a_random_reference(capsys, models):
    rc, out, err = run_cli(capsys, "align", *models)
    assert rc == 0, err
    assert "over 4 classes (k = 2)" in out
    rows = table(out)
    assert set(rows) == {"linear_cka", "debiased_cka", "mutual_knn", "cknna", "distance_spearman"}
    assert all(math.isfinite(v) for pair in rows.values() for v in pair)
    assert 0.0 <= rows["linear_cka"][0] <= 1.0 and 0.0 <= rows["mutual_knn"][0] <= 1.0


def test_a_discriminator_against_itself_gives_one(capsys, models, tiny_discriminator_dir):
    rc, out, err = run_cli(capsys, "align", *models, "--other-discriminator", str(tiny_discriminator_dir))
    assert rc == 0, err
    assert all(v == pytest.approx(1.0, abs=1e-4) for v, _ in table(out).values()), out


@pytest.mark.parametrize(
    "extra, flag",
    [(["--classes", "0,1,2"], "--classes"), (["--classes", "0,1,2,9"], "--classes"), (["--k", "5"], "--k"),
     (["--k", "1"], "--k")],
)
def test_bad_input_is_one_line_naming_the_flag(capsys, models, extra, flag):
    rc, _, err = run_cli(capsys, "align", *models, *extra)
    assert rc == 2
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and flag in lines[0], err
