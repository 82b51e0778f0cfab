"""`reproduce --out` claims its folder like build and train: a user's folder is refused, never written into."""

from __future__ import annotations

import json

from scoremix_ds.cli import main
from scoremix_ds.reproduce.experiment import MARKER, _written_by_reproduce


def test_a_user_folder_holding_a_report_is_refused_and_left_as_it_was(tmp_path, capsys):
    user = tmp_path / "my-results"
    user.mkdir()
    (user / "report.md").write_text("# my own report\n")
    (user / "report.json").write_text('{"mine": true}\n')
    before = {p.name: p.read_bytes() for p in user.iterdir()}
    rc = main(["reproduce", "reproduce-glyphs-ci", "--out", str(user), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2
    (line,) = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert "did not write" in line and "report" in line and "--out" in line
    assert {p.name: p.read_bytes() for p in user.iterdir()} == before  # nothing added, nothing replaced


def test_the_tool_recognises_its_own_folders_marked_or_from_before_the_marker(tmp_path):
    marked = tmp_path / "marked"
    marked.mkdir()
    (marked / MARKER).write_text(json.dumps({"written_by": "scoremix-ds reproduce"}))
    assert _written_by_reproduce(marked)

    legacy = tmp_path / "legacy"  # a stage cache with a finished stage: written by reproduce before markers
    (legacy / "stages" / "generator-0123456789ab").mkdir(parents=True)
    (legacy / "stages" / "generator-0123456789ab" / "done.json").write_text("{}")
    (legacy / "report.md").write_text("x")
    assert _written_by_reproduce(legacy)

    lookalike = tmp_path / "lookalike"  # a user's `stages` folder is not a stage cache
    (lookalike / "stages" / "draft").mkdir(parents=True)
    assert not _written_by_reproduce(lookalike)
