"""Hub-native outputs: what the build, the generator trainer and eval write is what an HF user expects.

Every model and data set here is made in the test (tiny UNet generator, SmallCNN discriminator, an image folder
with one named folder per identity); the commands run through the CLI's ``main``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from scoremix_ds.cli import main

NAMES = ("alice", "bob", "carol", "dave")


def run(capsys, *args: str) -> tuple[int, str, str]:
    rc = main(list(args))
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


@pytest.fixture
def named_folder(tmp_path) -> Path:
    """An image folder: one folder per identity, named (4 x 6 grey 8x8 PNGs of distinct brightness)."""
    rng = np.random.default_rng(0)
    root = tmp_path / "faces"
    for c, name in enumerate(NAMES):
        (root / name).mkdir(parents=True)
        for i in range(6):
            arr = np.clip(rng.normal(40 + 60 * c, 20, size=(8, 8)), 0, 255).astype("uint8")
            Image.fromarray(arr, mode="L").save(root / name / f"{i}.png")
    return root


@pytest.fixture
def build_args(tiny_generator_dir, tiny_discriminator_dir, named_folder, tmp_path):
    return ["build", "--generator", str(tiny_generator_dir), "--discriminator", str(tiny_discriminator_dir),
            "--real-data", str(named_folder), "--pairs", "3", "--per-identity", "2", "--steps", "2", "--no-progress"]


def test_label_is_a_classlabel_named_after_the_real_classes(capsys, build_args, tmp_path):
    import datasets

    out = tmp_path / "named"
    rc, _, err = run(capsys, *build_args, "--out", str(out))
    assert rc == 0, err
    mix = datasets.load_dataset(str(out), "mix")["train"]
    label = mix.features["label"]
    assert isinstance(label, datasets.ClassLabel)
    # the generator calls its classes a..d; the real data's folder names win
    assert label.names == sorted(set(mix["identity"]), key=label.names.index) and len(label.names) == 3
    for row in mix:
        assert row["identity"] == label.int2str(row["label"]) == "mix:" + "+".join(row["parent_names"])
        assert row["parent_names"] == [NAMES[p] for p in row["parents"]]
    repro = datasets.load_dataset(str(out), "repro")["train"]
    assert repro.features["label"].names == list(NAMES)
    assert all(repro.features["label"].int2str(r["label"]) == r["parent_names"][0] for r in repro)
    # a ClassLabel is what stratify_by_column needs
    split = mix.train_test_split(test_size=0.5, stratify_by_column="label", seed=0)
    assert len(split["train"]) == len(split["test"]) == 3
    # the card's YAML and the files agree on the names
    card = (out / "README.md").read_text()
    assert "class_label:" in card and "mix:" in card


def test_plan_file_carries_the_real_class_names(capsys, build_args, tmp_path):
    import pyarrow.parquet as pq

    plan = tmp_path / "plan.parquet"
    args = build_args[1:build_args.index("--steps")]
    rc, _, err = run(capsys, "plan", *args, "--out", str(plan))
    assert rc == 0, err
    rows = pq.read_table(plan).to_pylist()
    assert all(n in NAMES for r in rows for n in r["parent_names"])
    assert [r["identity_name"] for r in rows] == ["mix:" + "+".join(r["parent_names"]) for r in rows]
    out = tmp_path / "from-plan"
    rc, _, err = run(capsys, *build_args, "--plan", str(plan), "--out", str(out))
    assert rc == 0, err
    built = pq.read_table(next((out / "data" / "mix").glob("*.parquet"))).to_pylist()
    assert {r["identity"] for r in built} <= {r["identity_name"] for r in rows}


def test_repeated_names_are_made_distinct():
    from scoremix_ds.build.plan import label_names, unique_names

    assert unique_names(["a", "b", "a", "a"]) == ("a", "b", "a#1", "a#2")
    assert label_names(("x", "y"), ("g0", "g1", "g2"), 3) == ("x", "y", "g2")  # the real data lacks class 2


# ---------------------------------------------------------------------------------------------- the dataset card


def _card_meta(folder: Path) -> tuple[dict, str]:
    import yaml

    text = (folder / "README.md").read_text()
    return yaml.safe_load(text.split("---\n")[1]), text


@pytest.fixture
def built(capsys, build_args, tmp_path) -> Path:
    out = tmp_path / "built"
    rc, _, err = run(capsys, *build_args, "--out", str(out))
    assert rc == 0, err
    return out


def test_card_counts_are_the_rows_per_label(built):
    import collections

    import pyarrow.parquet as pq

    meta, text = _card_meta(built)
    for config in ("mix", "repro"):
        labels = [x for f in sorted((built / "data" / config).glob("*.parquet"))
                  for x in pq.read_table(f, columns=["label"]).column("label").to_pylist()]
        per = collections.Counter(labels).values()
        info = next(i for i in meta["dataset_info"] if i["config_name"] == config)
        assert info["splits"][0]["num_examples"] == len(labels)
        span = f"{min(per)}" if min(per) == max(per) else f"{min(per)} to {max(per)}"
        kind = "synthetic identities" if config == "mix" else "parent classes"
        assert f"| `{config}` | {len(labels)} | {len(set(labels))} {kind} | {span} |" in text
    # 3 mixes x 2 parents over 4 classes: some parent joins two mixes, so repro is NOT per_identity per label
    assert "2 to 4" in text or "| 2 |" in text


def test_card_states_each_models_training_data_as_recorded(capsys, tiny_generator_dir, tiny_discriminator_dir,
                                                          named_folder, tmp_path):
    import json

    meta_file = tiny_generator_dir / "scoremix.json"
    meta = json.loads(meta_file.read_text())
    meta.update(real_data="celeb-faces@v2 (hub)", licence="cc-by-4.0")
    meta_file.write_text(json.dumps(meta))
    out = tmp_path / "prov"
    rc, _, err = run(capsys, "build", "--generator", str(tiny_generator_dir), "--discriminator",
                     str(tiny_discriminator_dir), "--real-data", str(named_folder), "--pairs", "2", "--per-identity",
                     "1", "--steps", "2", "--no-progress", "--out", str(out))
    assert rc == 0, err
    card_meta, text = _card_meta(out)
    assert "| `local:tiny-gen` | celeb-faces@v2 (hub), licence `cc-by-4.0` |" in text
    assert "| `local:tiny-disc` | not recorded in the model folder |" in text
    assert card_meta["license"] == "cc-by-4.0"  # the generator's data licence carries over to its images
    assert "were trained on" not in text  # the old sentence that credited the user's folder with both models


def test_card_links_the_paper_the_way_the_hub_recognises_it(built):
    meta, text = _card_meta(built)
    assert "arxiv:2506.10226" in meta["tags"]
    assert "https://arxiv.org/abs/2506.10226" in text
    assert meta["size_categories"] == ["n<1K"]


@pytest.mark.parametrize("n, category", [
    (0, "n<1K"), (999, "n<1K"), (1_000, "1K<n<10K"), (99_999, "10K<n<100K"), (100_000, "100K<n<1M"),
    (5_000_000, "1M<n<10M"), (50_000_000, "10M<n<100M"), (500_000_000, "100M<n<1B"), (5 * 10**9, "1B<n<10B"),
    (5 * 10**10, "10B<n<100B"), (5 * 10**11, "100B<n<1T"), (10**12, "n>1T"),
])
def test_size_categories_cover_every_size(n, category):
    from scoremix_ds.dataset.card import size_category

    assert size_category(n) == category


@pytest.mark.parametrize("recipe", ["build.toml", "manifest.json"])
def test_recipe_beside_the_card_rebuilds_the_same_rows(capsys, built, tmp_path, recipe):
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from hubfixtures import local_rows

    copy = tmp_path / f"copy-{recipe}"
    rc, _, err = run(capsys, "build", "--recipe", str(built / recipe), "--out", str(copy), "--no-progress",
                     "--batch-size", "3")
    assert rc == 0, err
    for config in ("mix", "repro"):
        assert local_rows(copy, config) == local_rows(built, config)
    assert (copy / "build.toml").read_text() == (built / "build.toml").read_text()


def test_recipe_of_a_plan_build_names_the_plan_and_is_refused_without_it(capsys, build_args, tmp_path):
    plan = tmp_path / "plan.parquet"
    rc, _, err = run(capsys, "plan", *build_args[1:build_args.index("--steps")], "--out", str(plan))
    assert rc == 0, err
    out = tmp_path / "planned"
    rc, _, err = run(capsys, *build_args, "--plan", str(plan), "--out", str(out))
    assert rc == 0, err
    assert f'plan = "{plan}"' in (out / "build.toml").read_text()
    copy = tmp_path / "copy"
    rc, _, err = run(capsys, "build", "--recipe", str(out / "manifest.json"), "--out", str(copy), "--no-progress")
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert rc == 2 and len(lines) == 1 and "--plan" in lines[0], err
    assert not copy.exists()
    rc, _, err = run(capsys, "build", "--recipe", str(out / "manifest.json"), "--plan", str(plan), "--out", str(copy),
                     "--no-progress")
    assert rc == 0, err


def test_pushed_recipe_has_no_local_paths(built, tmp_path):
    import tomllib

    from scoremix_ds.dataset.manifest import Manifest
    from scoremix_ds.hub.stage import staged

    with staged(built, Manifest.read(built), "org/name", None) as stage:
        recipe = tomllib.loads((stage / "build.toml").read_text())
    assert recipe["generator"] == "local:tiny-gen" and recipe["real_data"] == "local:faces"
    assert str(tmp_path) not in json_text(recipe)


def json_text(value) -> str:
    import json

    return json.dumps(value)
