"""``plan`` -> ``build --plan`` -> ``audit`` on tiny models through the CLI, the plan file format and its refusals,
and the audit maths against hand computations."""

from __future__ import annotations

import json

import datasets
import numpy as np
import pyarrow.parquet as pq
import pytest

from fixtures.cli import run_cli
from scoremix_ds.analysis.audit import audit_identities, consistency, real_reference
from scoremix_ds.synthesis.config import BuildConfig
from scoremix_ds.synthesis.planning.mix_plan import Identity, MixPlan
from scoremix_ds.synthesis.planning.parquet_file import read_plan, write_plan
from scoremix_ds.synthesis.planning.choose import with_plan
from scoremix_ds.dataset.manifest import Manifest
from scoremix_ds.core.errors import ConfigError, DataError


def test_plan_then_build_plan_then_audit(capsys, models, tmp_path):
    plan = tmp_path / "plan.parquet"
    rc, out, err = run_cli(capsys, "plan", *models, "--strategy", "distant-triplets", "--pairs", "3",
                           "--per-identity", "2", "--out", str(plan))
    assert rc == 0, err
    assert plan.is_file() and plan.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    rows = datasets.load_dataset("parquet", data_files=str(plan), split="train")  # any parquet reader opens it
    assert len(rows) == 3 and all(len(p) == 3 for p in rows["parents"])
    assert all(w == pytest.approx([1 / 3] * 3) for w in rows["weights"]) and all(len(s) == 2 for s in rows["seeds"])

    out_dir = tmp_path / "ds"
    rc, _, err = run_cli(capsys, "build", *models, "--plan", str(plan), "--steps", "2", "--out", str(out_dir),
                         "--no-progress")
    assert rc == 0, err
    mix = datasets.load_dataset(str(out_dir), "mix", split="train")
    assert sorted(map(tuple, mix["parents"])) == sorted(tuple(p) for p in rows["parents"] for _ in range(2))
    assert sorted(mix["seed"]) == sorted(s for seeds in rows["seeds"] for s in seeds)  # the plan's seeds, exactly
    repro = datasets.load_dataset(str(out_dir), "repro", split="train")
    assert len(repro) == 3 * 2 * 3  # every parent alone, per seed
    manifest = Manifest.read(out_dir)
    assert manifest.config["strategy"] == "distant-triplets" and manifest.config["plan_sha256"]

    shards = {rel: (out_dir / rel).read_bytes() for files in manifest.shards.values() for rel in files}
    rc, out, err = run_cli(capsys, "audit", str(out_dir))
    assert rc == 0, err
    assert "audited 3 identities" in out
    summary = json.loads((out_dir / "audit.json").read_text())
    assert summary["identities"] == 3 and len(summary["per_identity"]) == 3
    assert all(len(a["parent_similarity"]) == 3 for a in summary["per_identity"])
    assert "Identity-leakage audit" in (out_dir / "README.md").read_text()
    assert Manifest.read(out_dir).audit["identities"] == 3
    assert {rel: (out_dir / rel).read_bytes() for rel in shards} == shards  # the audit only reads the shards


def test_build_plan_refusals(capsys, models, tmp_path, tiny_generator_dir, tiny_real_data_dir):
    plan = tmp_path / "plan.parquet"
    assert run_cli(capsys, "plan", *models, "--pairs", "2", "--out", str(plan))[0] == 0
    base = ["build", *models, "--plan", str(plan), "--steps", "2", "--out", str(tmp_path / "o"), "--no-progress"]
    rc, _, err = run_cli(capsys, *base, "--strategy", "close")
    assert rc == 2 and "--strategy close contradicts the plan file's distant" in err
    rc, _, err = run_cli(capsys, *base, "--per-identity", "3")
    assert rc == 2 and "--per-identity" in err

    # a plan made with another discriminator (same architecture, other weights) is refused before sampling
    import torch

    from scoremix_ds.discriminators.loading import SmallCNN

    torch.manual_seed(1)
    SmallCNN(in_channels=1, image_size=8, embedding_dim=16).save_pretrained(tmp_path / "other-disc")
    other = ["build", "--generator", str(tiny_generator_dir), "--discriminator", str(tmp_path / "other-disc"),
             "--real-data", str(tiny_real_data_dir), "--plan", str(plan), "--steps", "2", "--out", str(tmp_path / "o2")]
    rc, _, err = run_cli(capsys, *other)
    assert rc == 2 and "made with discriminator" in err and "--discriminator" in err
    assert not (tmp_path / "o2" / "data").exists()

    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    rc, _, err = run_cli(capsys, "build", *models, "--plan", str(tmp_path / "junk.parquet"),
                         "--out", str(tmp_path / "o3"))
    assert rc == 2 and "is not parquet" in err
    rc, _, err = run_cli(capsys, "build", *models, "--plan", str(tmp_path / "missing.parquet"),
                         "--out", str(tmp_path / "o3"))
    assert rc == 2 and "does not exist" in err


def _plan(parents, seeds=((1, 2),)):
    ids = tuple(Identity(i, tuple(p), tuple([1 / len(p)] * len(p)), 0.5, 0.25, tuple(seeds[0])) for i, p in enumerate(parents))
    return MixPlan(ids)


META = {"class_names": ["a", "b", "c", "d"], "strategy": "random", "seed": 0, "classes": [], "pairs": 2, "per_identity": 2,
        "weights": [0.5, 0.5], "band": None, "max_uses": None}


def test_plan_file_round_trip_and_bad_rows(tmp_path):
    path = write_plan(tmp_path / "p.parquet", _plan([(0, 1), (2, 3)]), META)
    back = read_plan(path)
    assert back.plan == _plan([(0, 1), (2, 3)]) and back.meta["strategy"] == "random"
    table = pq.read_table(path)
    # a row with one parent: refused, naming the row
    bad = table.set_column(table.column_names.index("parents"), "parents", [[[0, 1], [2]]])
    pq.write_table(bad.replace_schema_metadata(table.schema.metadata), tmp_path / "bad.parquet")
    with pytest.raises(DataError, match="row 1"):
        read_plan(tmp_path / "bad.parquet")
    pq.write_table(table.replace_schema_metadata({}), tmp_path / "plain.parquet")
    with pytest.raises(DataError, match="not a scoremix plan"):
        read_plan(tmp_path / "plain.parquet")


def test_with_plan_takes_the_plan_fields_and_fingerprints_its_content(tmp_path):
    a = write_plan(tmp_path / "a.parquet", _plan([(0, 1), (2, 3)]), META)
    b = write_plan(tmp_path / "b.parquet", _plan([(0, 2), (1, 3)]), META)
    ca, cb = with_plan(BuildConfig(plan=str(a))), with_plan(BuildConfig(plan=str(b)))
    assert (ca.strategy, ca.pairs, ca.per_identity, ca.weights) == ("random", 2, 2, (0.5, 0.5))
    assert ca.fingerprint() != cb.fingerprint()  # same path field semantics, different content
    moved = tmp_path / "moved.parquet"
    moved.write_bytes(a.read_bytes())
    assert with_plan(BuildConfig(plan=str(moved))).fingerprint() == ca.fingerprint()  # the path is layout only
    with pytest.raises(ConfigError, match="changed since"):
        with_plan(BuildConfig(plan=str(a), plan_sha256="0" * 64))
    mixed = write_plan(tmp_path / "mixed.parquet", _plan([(0, 1), (1, 2, 3)]), META)  # one pair, one triplet
    with pytest.raises(DataError, match=r"mixes tuples of \[2, 3\] classes"):
        with_plan(BuildConfig(plan=str(mixed)))


# --- audit maths ---------------------------------------------------------------------------------------------------


def test_consistency_is_the_mean_pairwise_cosine():
    x = np.random.default_rng(0).normal(size=(5, 4))
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    brute = np.mean([u[i] @ u[j] for i in range(5) for j in range(5) if i != j])
    assert consistency(u) == pytest.approx(brute)
    assert np.isnan(consistency(u[:1]))


def test_audit_flags_a_copy_of_a_real_class_and_not_a_mix():
    e = np.eye(3)
    real = np.concatenate([e[[0]] + 0.1 * np.array([[0, 1, 0]]), e[[0]] - 0.1 * np.array([[0, 1, 0]]), e[[1]], e[[1]]])
    labels = np.array([0, 0, 1, 1])
    centres, ref = real_reference(real, labels, 2)
    np.testing.assert_allclose(centres, [[1, 0, 0], [0, 1, 0]], atol=1e-12)
    assert ref[0] == pytest.approx(1 / np.sqrt(1.01)) and ref[1] == pytest.approx(1.0)
    synth = np.array([[1, 0, 0], [1, 0.05, 0], [1, 1, 0], [1, 1, 0.2]], dtype=float)  # id 0 copies class 0; id 1 mixes
    audits = audit_identities(synth, np.array([0, 0, 1, 1]), {0: (0, 1), 1: (0, 1)}, centres, ref)
    assert audits[0].flagged and audits[0].nearest_real == 0
    assert not audits[1].flagged
    assert audits[1].parent_similarity[0] == pytest.approx(audits[1].parent_similarity[1], rel=0.02)
    # equally close to both centres (ties go to the lower class): images' cosines to e0 are 1/sqrt(2), 1/sqrt(2.04)
    assert audits[1].nearest_real == 0
    assert audits[1].leak_score == pytest.approx(np.mean([1 / np.sqrt(2), 1 / np.sqrt(2.04)]), rel=1e-9)
    assert audit_identities(synth, np.array([0, 0, 1, 1]), {0: (0, 1), 1: (0, 1)}, centres, ref, threshold=0.5)[1].flagged


def test_audit_refuses_an_unfinished_folder(capsys, tmp_path):
    rc, _, err = run_cli(capsys, "audit", str(tmp_path))
    assert rc == 2 and "not a scoremix-ds build" in err


def test_build_plan_reads_and_hashes_the_plan_file_once(capsys, models, tmp_path, monkeypatch):
    from scoremix_ds.synthesis.planning import choose as planner

    plan = tmp_path / "plan.parquet"
    assert run_cli(capsys, "plan", *models, "--pairs", "2", "--out", str(plan))[0] == 0
    reads: list[str] = []
    hashes: list[str] = []
    read_plan_, file_sha256_ = planner.read_plan, planner.file_sha256
    monkeypatch.setattr(planner, "read_plan", lambda path: reads.append(str(path)) or read_plan_(path))
    monkeypatch.setattr(planner, "file_sha256", lambda path: hashes.append(str(path)) or file_sha256_(path))
    build = ["build", *models, "--plan", str(plan), "--steps", "2", "--out", str(tmp_path / "ds"), "--no-progress"]
    rc, _, err = run_cli(capsys, *build)
    assert rc == 0, err
    assert reads == [str(plan)] and hashes == [str(plan)]
    reads.clear(), hashes.clear()
    rc, out, err = run_cli(capsys, *build)  # finished: resolved once more, nothing sampled
    assert rc == 0, err
    assert reads == [str(plan)] and hashes == [str(plan)] and "complete" in out
