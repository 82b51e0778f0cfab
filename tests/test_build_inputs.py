"""Every command that READS a build verifies it against its manifest first (issue 25.2): a damaged or unfinished
build is one line naming the file, exit 2, and nothing is written; `allow_partial` reads an unfinished one."""

from __future__ import annotations

import json

import pytest

from scoremix_ds.cli import main
from scoremix_ds.core.errors import DataError
from scoremix_ds.sources.openers import open_source
from scoremix_ds.sources.source import SourceSpec
from scoremix_ds.synthesis.config import BuildConfig
from scoremix_ds.synthesis.runner import run_build


@pytest.fixture
def build_dir(tiny_generator_dir, tiny_discriminator_dir, tiny_real_data_dir, tmp_path):
    run_build(BuildConfig(generator=str(tiny_generator_dir), discriminator=str(tiny_discriminator_dir),
                          real_data=str(tiny_real_data_dir), pairs=2, per_identity=2, steps=2, out=str(tmp_path / "b")),
              progress=False)
    return tmp_path / "b"


def _snapshot(folder):
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _truncate_a_shard(build):
    shard = sorted((build / "data" / "mix").glob("*.parquet"))[0]
    shard.write_bytes(shard.read_bytes()[:100])
    return shard


def test_a_truncated_build_as_real_data_is_one_line_naming_the_shard(build_dir, tmp_path, capsys):
    shard = _truncate_a_shard(build_dir)
    rc = main(["plan", "--real-data", str(build_dir), "--pairs", "1", "--out", str(tmp_path / "p.parquet")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and shard.name in err[0] and "truncated or corrupted" in err[0]
    assert "--real-data" in err[0] and not (tmp_path / "p.parquet").exists()


def test_an_unfinished_build_is_refused_unless_allow_partial(build_dir):
    manifest = json.loads((build_dir / "manifest.json").read_text())
    (build_dir / "manifest.json").write_text(json.dumps({**manifest, "complete": False, "shards": {}}))
    with pytest.raises(DataError, match="unfinished build") as exc:
        open_source(SourceSpec(str(build_dir), flag="synthetic"))
    assert "synthetic" in exc.value.fields and "allow_partial" in exc.value.fields
    assert len(open_source(SourceSpec(str(build_dir), flag="synthetic", allow_partial=True))) == 4


def test_audit_of_a_damaged_build_writes_nothing_into_it(build_dir, capsys):
    shard = sorted((build_dir / "data" / "mix").glob("*.parquet"))[0]
    raw = bytearray(shard.read_bytes())
    raw[len(raw) // 2] ^= 0x01  # a flipped bit: still parquet, not the bytes the build wrote
    shard.write_bytes(bytes(raw))
    before = _snapshot(build_dir)
    rc = main(["audit", str(build_dir)])
    err = capsys.readouterr().err
    assert rc == 2 and shard.name in err and "re-run the same build command" in err
    assert _snapshot(build_dir) == before  # no audit.json, no card update


def test_a_generator_naming_its_classes_otherwise_than_the_real_data_is_said_and_recorded(
        tiny_generator_dir, tiny_discriminator_dir, tiny_real_data_dir, tmp_path, caplog):
    meta_path = tiny_generator_dir / "scoremix.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "class_names": ["w", "x", "y", "z"]}))
    with caplog.at_level("WARNING"):
        run_build(BuildConfig(generator=str(tiny_generator_dir), discriminator=str(tiny_discriminator_dir),
                              real_data=str(tiny_real_data_dir), pairs=2, per_identity=1, steps=2,
                              out=str(tmp_path / "named")), progress=False)
    assert "the generator names class 0 'w' but the real data names it 'a'" in caplog.text
    provenance = json.loads((tmp_path / "named" / "manifest.json").read_text())["provenance"]
    assert provenance["generator_class_names"] == ["w", "x", "y", "z"]
    assert provenance["class_names"] == ["a", "b", "c", "d"]  # the rows' names: the real data's


def test_train_refuses_an_unfinished_synthetic_build_unless_allow_partial(build_dir, tiny_real_data_dir, tmp_path,
                                                                           capsys):
    manifest = json.loads((build_dir / "manifest.json").read_text())
    (build_dir / "manifest.json").write_text(json.dumps({**manifest, "complete": False, "shards": {}}))
    args = ["train", "--real-data", str(tiny_real_data_dir), "--synthetic", str(build_dir), "--backbone", "small-cnn",
            "--image-size", "8", "--channels", "1", "--embedding-dim", "8", "--steps", "2", "--batch-size", "4",
            "--warmup-steps", "0", "--no-progress"]
    rc = main([*args, "--out", str(tmp_path / "refused")])
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert rc == 2 and len(err) == 1 and "unfinished build" in err[0] and "--allow-partial" in err[0]
    assert not (tmp_path / "refused" / "model.safetensors").exists()
    assert main([*args, "--allow-partial", "--out", str(tmp_path / "partial")]) == 0
