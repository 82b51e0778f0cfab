"""``run_build`` end to end on tiny models built in code: the dataset on disk, its card, refusals, resume."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import numpy as np
import pytest
import yaml
from conftest import NUM_CLASSES

from scoremix_ds.synthesis.config import BuildConfig
from scoremix_ds.synthesis.runner import run_build
from scoremix_ds.dataset.manifest import Manifest
from scoremix_ds.core.errors import ConfigError, DataError
from scoremix_ds.core.recipes import from_mapping

from hints import as_build_prints

EXPECTED_COLUMNS = {
    "image", "label", "identity", "parents", "parent_names", "weights", "embedding_distance",
    "condition_distance", "strategy", "mixing", "seed", "sample_index", "mix_identity",
}


@pytest.fixture
def tiny_config(tiny_generator_dir, tiny_discriminator_dir, tiny_real_data_dir, tmp_path):
    def make(**overrides) -> BuildConfig:
        values = dict(
            generator=str(tiny_generator_dir), discriminator=str(tiny_discriminator_dir), real_data=str(tiny_real_data_dir),
            pairs=3, per_identity=2, steps=2, out=str(tmp_path / "out"), batch_size=4,
        )
        values.update(overrides)
        return BuildConfig(**values)

    return make


def _rows(path: Path, config: str = "mix") -> list[dict]:
    ds = datasets.load_dataset(str(path), config, split="train")
    return [{k: (np.asarray(v).tobytes() if k == "image" else v) for k, v in row.items()} for row in ds]


def test_build_writes_a_dataset_load_dataset_opens(tiny_config):
    config = tiny_config()
    result = run_build(config, progress=False)
    assert result.rows == {"mix": 6, "repro": 12}
    mix = datasets.load_dataset(str(result.out), split="train")  # default config = mix, no extra code
    assert set(mix.column_names) == EXPECTED_COLUMNS
    assert isinstance(mix.features["image"], datasets.Image)
    assert len(mix) == 6 and sorted(set(mix["label"])) == [0, 1, 2]
    row = mix[0]
    assert row["weights"] == [0.5, 0.5] and len(row["parents"]) == 2 and row["strategy"] == "distant"
    assert row["image"].size == (8, 8)
    # every identity has per_identity images with distinct seeds, and the identity string is stable
    for label in range(3):
        sub = mix.filter(lambda r: r["label"] == label)
        assert sorted(sub["sample_index"]) == [0, 1] and len(set(sub["seed"])) == 2 and len(set(sub["identity"])) == 1
    repro = datasets.load_dataset(str(result.out), "repro", split="train")
    assert len(repro) == 12 and all(len(p) == 1 for p in repro["parents"])
    # repro rows share the mix's seeds: "parent A alone | mix | parent B alone" from one seed
    assert set(repro["seed"]) == set(mix["seed"])


@pytest.fixture
def reference_distances(tiny_generator_dir, tiny_discriminator_dir, tiny_real_data_dir):
    """Both spaces' ``(C, C)`` cosine distances computed here, outside the build: the class centres are the means of
    the unit embeddings of the real images of each class, the condition vectors the UNet's class-embedding rows."""
    import torch
    import torch.nn.functional as F
    from diffusers import UNet2DModel

    from scoremix_ds.discriminators.loading import embed_images, load_discriminator

    def distances(v: torch.Tensor) -> np.ndarray:
        return (1.0 - F.cosine_similarity(v[:, None], v[None], dim=-1)).numpy()

    conditions = UNet2DModel.from_pretrained(tiny_generator_dir / "unet").class_embedding.weight[:NUM_CLASSES].double()
    real = datasets.load_dataset("parquet", data_files=str(tiny_real_data_dir / "data" / "*.parquet"), split="train")
    images = np.stack([np.asarray(im)[..., None] for im in real["image"]])  # uint8 NHWC, one channel
    emb = torch.from_numpy(embed_images(load_discriminator(str(tiny_discriminator_dir)), images)).double()
    emb = F.normalize(emb, dim=1)
    labels = torch.tensor(real["label"])
    centres = torch.stack([emb[labels == c].mean(0) for c in range(NUM_CLASSES)])
    return {"embedding": distances(centres), "condition": distances(conditions.detach())}


def test_rows_record_both_distances_whichever_space_chose(tiny_config, reference_distances):
    for strategy in ("distant", "close-condition"):
        out = run_build(tiny_config(strategy=strategy, out=tiny_config().out + strategy), progress=False).out
        mix = datasets.load_dataset(str(out), split="train")
        assert all(0.0 <= d <= 2.0 for d in mix["embedding_distance"])
        assert all(0.0 < d <= 2.0 for d in mix["condition_distance"])
        for row in mix:  # each row's distances are those of ITS parents, in both spaces (stored as float32)
            a, b = row["parents"]
            for space in ("embedding", "condition"):
                expected = reference_distances[space][a, b]
                assert row[f"{space}_distance"] == pytest.approx(expected, abs=1e-5), (strategy, space, row["parents"])


def test_distant_pairs_are_farther_than_close_pairs(tiny_config, reference_distances):
    far = run_build(tiny_config(strategy="distant", out=tiny_config().out + "-far"), progress=False).out
    near = run_build(tiny_config(strategy="close", out=tiny_config().out + "-near"), progress=False).out
    far_rows = datasets.load_dataset(str(far), split="train")
    near_rows = datasets.load_dataset(str(near), split="train")
    d_far, d_near = far_rows["embedding_distance"], near_rows["embedding_distance"]
    # 3 of the 6 pairs of 4 classes each: no close pair is farther than a distant one (they may share the middle one)
    assert min(d_far) >= max(d_near) - 1e-6
    assert np.mean(d_far) > np.mean(d_near)
    d = reference_distances["embedding"]
    upper = [(a, b) for a in range(NUM_CLASSES) for b in range(a + 1, NUM_CLASSES)]
    farthest, nearest = max(upper, key=lambda p: d[p]), min(upper, key=lambda p: d[p])
    assert farthest in {tuple(sorted(p)) for p in far_rows["parents"]}
    assert nearest in {tuple(sorted(p)) for p in near_rows["parents"]}


def test_card_metadata_is_hub_yaml_with_configs_and_no_local_paths(tiny_config, tmp_path):
    out = run_build(tiny_config(), progress=False).out
    text = (out / "README.md").read_text()
    assert text.startswith("---\n")
    meta = yaml.safe_load(text.split("---\n")[1])
    assert meta["license"] == "other"  # the tiny generator records no training-data licence
    assert {c["config_name"] for c in meta["configs"]} == {"mix", "repro"}
    assert meta["scoremix"]["build"]["strategy"] == "distant"
    assert meta["dataset_info"][0]["splits"][0]["num_examples"] == 6
    assert "preview.png" in text and (out / "preview.png").stat().st_size > 0
    assert str(tmp_path) not in text  # local paths never reach the card
    from huggingface_hub import DatasetCard

    # parses as a Hub dataset card: the client reads the same metadata (DatasetCard.validate needs the real Hub)
    card = DatasetCard(text)
    assert card.data.to_dict() == meta and card.data.license == "other" and card.text.strip()
    assert DatasetCard(text).data.to_dict()["configs"]


def test_card_licence_is_the_one_the_generator_records(tiny_config, tiny_generator_dir):
    """The images are the generator's: the licence its scoremix.json records for its training data is the card's."""
    meta_file = tiny_generator_dir / "scoremix.json"
    meta_file.write_text(json.dumps({**json.loads(meta_file.read_text()), "licence": "cc-by-sa-3.0"}))
    out = run_build(tiny_config(), progress=False).out
    text = (out / "README.md").read_text()
    assert yaml.safe_load(text.split("---\n")[1])["license"] == "cc-by-sa-3.0"


def test_same_config_same_rows_and_batch_size_does_not_matter(tiny_config, tmp_path):
    a = run_build(tiny_config(out=str(tmp_path / "a"), batch_size=5), progress=False).out
    b = run_build(tiny_config(out=str(tmp_path / "b"), batch_size=2, shard_size=1), progress=False).out
    assert _rows(a) == _rows(b)
    assert _rows(a, "repro") == _rows(b, "repro")
    c = run_build(tiny_config(out=str(tmp_path / "c"), seed=1), progress=False).out
    assert [r["seed"] for r in _rows(a)] != [r["seed"] for r in _rows(c)]


def test_rerun_of_a_complete_build_is_a_no_op(tiny_config):
    config = tiny_config()
    run_build(config, progress=False)
    manifest_before = (Path(config.out) / "manifest.json").read_text()
    again = run_build(config, progress=False)
    assert again.images_sampled == 0
    assert (Path(config.out) / "manifest.json").read_text() == manifest_before


def crash_after_units(out: Path, keep: set[int]) -> None:
    """Turn a complete build into the state a crash leaves: only ``keep`` units marked done, others gone."""
    from scoremix_ds.synthesis.units import unit_of, write_marker

    manifest = Manifest.read(out)
    for name, files in manifest.shards.items():
        for rel in files:
            unit = unit_of(rel)
            if unit in keep:
                write_marker(out, unit, {**_marker_entries(manifest, unit)})
            else:
                (out / rel).unlink(missing_ok=True)
    manifest.shards, manifest.complete, manifest.counts = {}, False, {}
    manifest.write(out)
    (out / "README.md").unlink()


def _marker_entries(manifest: Manifest, unit: int) -> dict:
    return {
        name: {"relpath": rel, **info}
        for name, files in manifest.shards.items()
        for rel, info in files.items()
        if rel.endswith(f"-{unit:05d}.parquet")
    }


def test_resume_rebuilds_only_missing_units(tiny_config, tmp_path):
    full = run_build(tiny_config(out=str(tmp_path / "full"), shard_size=1), progress=False).out
    config = tiny_config(out=str(tmp_path / "crashed"), shard_size=1)
    run_build(config, progress=False)
    crash_after_units(Path(config.out), keep={0})
    (Path(config.out) / "data" / "mix" / ".train-00001.parquet.tmp").write_bytes(b"partial")
    resumed = run_build(config, progress=False)
    assert resumed.shards_reused == 1 and resumed.images_sampled == 2 * 2 * 3
    assert _rows(full) == _rows(Path(config.out))
    assert not list(Path(config.out).rglob("*.tmp"))
    assert Manifest.read(Path(config.out)).shards == Manifest.read(full).shards


def test_corrupted_shard_is_detected_and_redone(tiny_config, tmp_path):
    full = run_build(tiny_config(out=str(tmp_path / "full"), shard_size=1), progress=False).out
    config = tiny_config(out=str(tmp_path / "bad"), shard_size=1)
    run_build(config, progress=False)
    crash_after_units(Path(config.out), keep={0, 1, 2})
    shard = Path(config.out) / "data" / "mix" / "train-00001.parquet"
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])  # truncated behind our back
    resumed = run_build(config, progress=False)
    assert resumed.shards_reused == 2 and resumed.images_sampled == 2 * 3
    assert _rows(full) == _rows(Path(config.out))


def test_resume_with_another_shard_size_is_refused(tiny_config, tmp_path):
    config = tiny_config(out=str(tmp_path / "o"), shard_size=1)
    run_build(config, progress=False)
    crash_after_units(Path(config.out), keep={0})
    with pytest.raises(ConfigError, match="`shard_size` 1"):
        run_build(tiny_config(out=str(tmp_path / "o"), shard_size=2), progress=False)


def test_out_holding_a_different_build_is_refused_and_left_intact(tiny_config):
    config = tiny_config()
    run_build(config, progress=False)
    before = {p: p.read_bytes() for p in Path(config.out).rglob("*") if p.is_file()}
    with pytest.raises(ConfigError, match="different build.*strategy") as err:
        run_build(tiny_config(strategy="close"), progress=False)
    assert "out" in err.value.fields  # the library names the field; build prints --out
    assert before == {p: p.read_bytes() for p in Path(config.out).rglob("*") if p.is_file()}


def test_out_with_foreign_files_is_refused(tiny_config, tmp_path):
    out = tmp_path / "foreign"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="not empty"):
        run_build(tiny_config(out=str(out)), progress=False)
    assert (out / "notes.txt").read_text() == "mine" and len(list(out.iterdir())) == 1


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"classes": (0, 9)}, "classes has id 9"),
        ({"classes": (2,)}, "at least 2 classes"),
        ({"pairs": 7}, "only 6 distinct pairs"),
    ],
)
def test_model_dependent_bad_input_is_refused_before_writing(tiny_config, overrides, match):
    config = tiny_config(**overrides)
    with pytest.raises(ConfigError, match=match):
        run_build(config, progress=False)
    assert not Path(config.out).exists()


def test_build_config_validates_itself():
    with pytest.raises(ConfigError, match="unknown strategy"):
        BuildConfig(strategy="farthest")
    with pytest.raises(ConfigError, match="per_identity") as info:  # the library names the field...
        BuildConfig(per_identity=0)
    assert "--per-identity" in str(as_build_prints(info.value))  # ...and build prints its flag
    with pytest.raises(ConfigError, match="sum to"):
        BuildConfig(weights=(0.6, 0.6))
    assert BuildConfig(weights=(0.6, 0.6), allow_nonconvex=True).weights == (0.6, 0.6)
    with pytest.raises(ConfigError, match="unknown key"):
        from_mapping(BuildConfig, {"strategy": "distant", "pairz": 3}, "recipe x")
    with pytest.raises(ConfigError, match="wrong type"):
        from_mapping(BuildConfig, {"pairs": "many"}, "recipe x")


def test_fingerprint_ignores_layout_only_fields():
    assert BuildConfig(out="a", batch_size=3, device="cpu").fingerprint() == BuildConfig(out="b", batch_size=9).fingerprint()
    assert BuildConfig(seed=1).fingerprint() != BuildConfig(seed=2).fingerprint()
    assert json.dumps(BuildConfig().content_config())  # JSON-able


def test_rerun_of_a_complete_build_resamples_a_deleted_shard(tiny_config, tmp_path):
    config = tiny_config(out=str(tmp_path / "o"), shard_size=1)
    run_build(config, progress=False)
    before = Manifest.read(Path(config.out)).shards
    (Path(config.out) / "data" / "repro" / "train-00002.parquet").unlink()
    again = run_build(config, progress=False)
    assert again.shards_reused == 2 and again.images_sampled == 2 * 3
    assert Manifest.read(Path(config.out)).shards == before and Manifest.read(Path(config.out)).complete


def test_a_build_digests_only_what_it_needs(tiny_config, tmp_path, monkeypatch):
    """The generator's digest is for plan files only; a plain build hashes the discriminator alone (the key of the
    class-centre cache), and a build without real data hashes no weights at all."""
    from scoremix_ds.core import digest

    digested: list[str] = []
    real = digest.module_digest
    monkeypatch.setattr(digest, "module_digest", lambda *modules: digested.append(
        "+".join(type(m).__name__ for m in modules if m is not None)) or real(*modules))
    run_build(tiny_config(out=str(tmp_path / "plain")), progress=False)
    assert digested == ["SmallCNN"]
    digested.clear()
    run_build(tiny_config(out=str(tmp_path / "random"), strategy="random", real_data=None), progress=False)
    assert digested == []


def test_a_build_leaves_datasets_progress_bars_as_it_found_them(tiny_config, tmp_path):
    from datasets.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    enable_progress_bars()
    try:
        run_build(tiny_config(out=str(tmp_path / "o"), strategy="random", real_data=None), progress=False)
        assert not are_progress_bars_disabled()  # hidden while shards were written, then given back
    finally:
        disable_progress_bars()  # what tests/conftest.py sets for every test
