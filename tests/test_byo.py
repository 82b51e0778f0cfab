"""Bring your own data and models: every data format and two user models (an RGB UNet, a latent DiT in the
DiTPipeline layout) made here, through the CLI's plan, build, audit, train and eval, with and without --real-data.

Every format holds the same 4 named identities x 5 grey images (one imagefolder image is 10x10: mixed sizes are
converted, the same way in every command). The models are untrained (random weights): what is checked is that the
data and the models are read the same way everywhere, the rules (real data required for centre strategies, class
count mismatches solved by --classes, null classes) and the one-line refusals, not image quality.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import datasets
import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from conftest import save_generator, tiny_unet
from fixtures.cli import run_cli
from PIL import Image

from scoremix_ds.cli import main
from scoremix_ds.sources.openers import read_real_data
from scoremix_ds.sources.source import SourceSpec
from scoremix_ds.sources.openers import open_source

NAMES = ("ana", "ben", "cyd", "dee")
PER_CLASS = 5
FORMATS = ("imagefolder", "parquet", "arrow", "saved", "recordio", "namecol", "build")


def pixels(c: int, i: int, size: int = 8) -> np.ndarray:
    """Class c: mean brightness 40 + 60 c, seeded noise."""
    rng = np.random.default_rng(100 * c + i)
    return np.clip(rng.normal(40 + 60 * c, 15, size=(size, size)), 0, 255).astype(np.uint8)


def labelled(num_classes: int = 4, names=NAMES) -> datasets.Dataset:
    images = [Image.fromarray(pixels(c, i), mode="L") for c in range(num_classes) for i in range(PER_CLASS)]
    labels = [c for c in range(num_classes) for _ in range(PER_CLASS)]
    feats = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=list(names))})
    return datasets.Dataset.from_dict({"image": images, "label": labels}, features=feats)


# --------------------------------------------------------------------------------------------- models and data


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("byo")


@pytest.fixture(scope="module")
def disc(root) -> str:
    from scoremix_ds.discriminators.loading import SmallCNN

    torch.manual_seed(0)
    SmallCNN(in_channels=1, image_size=8, embedding_dim=16).save_pretrained(root / "disc")
    return str(root / "disc")


@pytest.fixture(scope="module")
def rgb_unet(root) -> str:
    """A pixel-space RGB UNet with 4 classes and a 5th (null) row, declaring nothing: --null-class 4 says it."""
    path = save_generator(root / "rgb-unet", tiny_unet(num_classes=4, null=True, channels=3))
    return str(path)


@pytest.fixture(scope="module")
def latent_dit(root) -> str:
    """A latent DiT saved by diffusers' own DiTPipeline (transformer/ + vae/ + scheduler/ + model_index.json), with
    id2label in model_index.json as the Hub's DiT checkpoints have; its label table's extra row is the null class."""
    from diffusers import AutoencoderKL, DDIMScheduler, DiTPipeline, DiTTransformer2DModel

    torch.manual_seed(0)
    dit = DiTTransformer2DModel(num_attention_heads=2, attention_head_dim=8, in_channels=4, out_channels=8,
                                num_layers=1, sample_size=4, patch_size=2, num_embeds_ada_norm=4, norm_num_groups=1)
    vae = AutoencoderKL(in_channels=3, out_channels=3, block_out_channels=(8, 16), layers_per_block=1,
                        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                        latent_channels=4, norm_num_groups=4, sample_size=8)
    DiTPipeline(transformer=dit.eval(), vae=vae.eval(), scheduler=DDIMScheduler()).save_pretrained(root / "dit")
    index = json.loads((root / "dit" / "model_index.json").read_text())
    index["id2label"] = {str(i): name for i, name in enumerate(NAMES)}
    (root / "dit" / "model_index.json").write_text(json.dumps(index))
    return str(root / "dit")


def write_recordio(folder: Path) -> None:
    from test_recordio import pack, png, write_rec

    n = len(NAMES) * PER_CLASS
    records = [(0, pack([n + 1, n + 1 + len(NAMES)], b"", 0))]
    for k in range(n):
        records.append((k + 1, pack(k // PER_CLASS, png(pixels(k // PER_CLASS, k % PER_CLASS)), k + 1)))
    for c in range(len(NAMES)):
        records.append((n + 1 + c, pack([1 + c * PER_CLASS, 1 + (c + 1) * PER_CLASS], b"", 0)))
    write_rec(folder, records)
    (folder / "property").write_text(f"{len(NAMES)},8,8")


@pytest.fixture(scope="module")
def formats(root, rgb_unet) -> dict[str, str]:
    """The same identities in every format the data layer reads (the build folder: 4 synthetic identities)."""
    ds = labelled()
    paths = {}
    folder = root / "imagefolder"
    for c, name in enumerate(NAMES):
        (folder / name).mkdir(parents=True)
        for i in range(PER_CLASS):
            size = 10 if (c, i) == (1, 0) else 8  # one bigger image: converted to the first row's 8x8
            Image.fromarray(pixels(c, i, size), mode="L").save(folder / name / f"{i}.png")
    paths["imagefolder"] = folder
    (root / "parquet" / "data").mkdir(parents=True)
    ds.to_parquet(str(root / "parquet" / "data" / "train-00000.parquet"))
    paths["parquet"] = root / "parquet"
    ds.save_to_disk(str(root / "saved"))
    paths["saved"] = root / "saved"
    (root / "arrow").mkdir()
    shutil.copy(next((root / "saved").glob("*.arrow")), root / "arrow" / "train.arrow")  # arrow files, no state.json
    paths["arrow"] = root / "arrow"
    write_recordio(root / "recordio")
    paths["recordio"] = root / "recordio"
    named = datasets.Dataset.from_dict({"image": list(ds["image"]), "label": list(ds["label"]),
                                        "name": [NAMES[c] for c in ds["label"]]},
                                       features=datasets.Features({"image": datasets.Image(),
                                                                   "label": datasets.Value("int64"),
                                                                   "name": datasets.Value("string")}))
    (root / "namecol" / "data").mkdir(parents=True)
    named.to_parquet(str(root / "namecol" / "data" / "train-00000.parquet"))
    paths["namecol"] = root / "namecol"
    # a scoremix-ds build of the user's RGB UNet WITHOUT real data (strategy random): 4 synthetic identities
    assert main(["build", "--generator", rgb_unet, "--null-class", "4", "--strategy", "random", "--pairs", "4",
                 "--per-identity", "3", "--steps", "2", "--no-repro", "--guidance", "1", "--no-progress",
                 "--out", str(root / "build")]) == 0
    paths["build"] = root / "build"
    return {k: str(v) for k, v in paths.items()}


# ------------------------------------------------------------------------------------------ one data layer


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_reads_the_same_through_the_one_layer(formats, fmt):
    real = read_real_data(formats[fmt])  # what build / plan / audit / align / eval read
    src = open_source(SourceSpec(formats[fmt]))  # what train / train-generator read
    images, labels = src.load_all()
    np.testing.assert_array_equal(real.images, images)
    np.testing.assert_array_equal(real.labels, labels)
    assert real.class_names == src.class_names and real.num_classes == 4
    if fmt == "build":
        assert len(real.labels) == 12 and real.images.shape[1:] == (8, 8, 3)
        names = datasets.load_dataset(formats[fmt], "mix", split="train").features["label"].names
        assert real.class_names == tuple(names) == ("mix:1+2", "mix:0+3", "mix:2+3", "mix:0+1")  # its 4 random mixes
        return
    assert real.images.shape == (20, 8, 8, 1)  # the 10x10 imagefolder image converted like any other
    assert real.class_names == (NAMES if fmt != "recordio" else ("0", "1", "2", "3"))
    by_name = {real.class_names[c]: c for c in range(4)}
    key = NAMES[2] if fmt != "recordio" else "2"
    np.testing.assert_array_equal(real.images[real.labels == by_name[key]][-1, :, :, 0], pixels(2, PER_CLASS - 1))
    sub = read_real_data(formats[fmt] + "[1-2]")
    assert sub.num_classes == 2 and sub.class_names == real.class_names[1:3] and len(sub.labels) == 10


@pytest.mark.parametrize("fmt", FORMATS)
def test_plan_build_audit_train_eval_from_each_format(capsys, tmp_path, formats, disc, rgb_unet, fmt):
    gen = ["--generator", rgb_unet, "--null-class", "4", "--discriminator", disc, "--real-data", formats[fmt]]
    plan = tmp_path / "plan.parquet"
    rc, out, err = run_cli(capsys, "plan", *gen, "--pairs", "2", "--per-identity", "2", "--no-progress",
                           "--out", str(plan))
    assert rc == 0, err
    meta = json.loads(pq.read_schema(plan).metadata[b"scoremix"])
    assert meta["real_data"] and meta["discriminator_digest"]
    rows = pq.read_table(plan).to_pylist()
    assert all(r["embedding_distance"] is not None and np.isfinite(r["embedding_distance"]) for r in rows)
    built = tmp_path / "built"
    rc, out, err = run_cli(capsys, "build", *gen, "--plan", str(plan), "--steps", "2", "--no-repro", "--guidance", "2",
                           "--no-progress", "--out", str(built))
    assert rc == 0, err
    manifest = json.loads((built / "manifest.json").read_text())
    assert manifest["provenance"]["num_real_classes"] == 4
    assert manifest["provenance"]["real_class_names"] == list(read_real_data(formats[fmt]).class_names)
    rc, out, err = run_cli(capsys, "audit", str(built), "--no-update-card")
    assert rc == 0 and "audited 2 identities" in out, err
    model = tmp_path / "model"
    rc, out, err = run_cli(capsys, "train", "--real", formats[fmt], "--backbone", "small-cnn", "--embedding-dim", "8",
                           "--image-size", "8", "--channels", "1", "--no-flip", "--steps", "2", "--batch-size", "8",
                           "--checkpoint-every", "0", "--no-progress", "--out", str(model))
    assert rc == 0 and "saved model" in out, err
    rc, out, err = run_cli(capsys, "eval", str(model), "--benchmark", f"heldout:{formats[fmt]}:20", "--out",
                           str(tmp_path / "eval"))
    assert rc == 0, err


# ------------------------------------------------------------------------------- models, with and without real data


def mix_rows(out: Path) -> list[dict]:
    return datasets.load_dataset(str(out), "mix", split="train").to_list()


def test_latent_dit_pipeline_builds_with_and_without_real_data(capsys, tmp_path, formats, disc, latent_dit):
    from scoremix_ds.generators.loading import load_generator

    gen = load_generator(latent_dit)
    assert (gen.kind, gen.num_classes, gen.null_class, gen.class_names) == ("dit", 4, 4, NAMES)
    assert gen.vae is not None and gen.sample_shape == (4, 4, 4)
    common = ["--generator", latent_dit, "--pairs", "2", "--per-identity", "2", "--steps", "2", "--no-progress"]
    # without real data: random mixes; no class centres, so the embedding distances are null (not NaN) and say so
    rc, out, err = run_cli(capsys, "build", *common, "--strategy", "random", "--out", str(tmp_path / "no-real"))
    assert rc == 0, err
    rows = mix_rows(tmp_path / "no-real")
    assert len(rows) == 4 and all(r["embedding_distance"] is None for r in rows)
    assert all(r["condition_distance"] is not None for r in rows)
    first = datasets.load_dataset(str(tmp_path / "no-real"), "mix", split="train")[0]["image"]
    assert np.asarray(first).shape == (8, 8, 3)  # decoded by the VAE: 4x4 latents -> 8x8 RGB
    provenance = json.loads((tmp_path / "no-real" / "manifest.json").read_text())["provenance"]
    assert provenance["real_data"] is None and "no --real-data" in provenance["embedding_distances"]
    rc, out, err = run_cli(capsys, "plan", *common[:2], "--strategy", "distant-condition", "--pairs", "2",
                           "--out", str(tmp_path / "cond.parquet"))
    assert rc == 0 and "condition distance" in out, err
    assert all(r["embedding_distance"] is None for r in pq.read_table(tmp_path / "cond.parquet").to_pylist())
    # with real data (an image folder of the same 4 names): distant, by class centres
    rc, out, err = run_cli(capsys, "build", *common, "--discriminator", disc, "--real-data", formats["imagefolder"],
                           "--out", str(tmp_path / "real"))
    assert rc == 0, err
    assert all(r["embedding_distance"] is not None for r in mix_rows(tmp_path / "real"))
    rc, out, err = run_cli(capsys, "align", "--generator", latent_dit, "--discriminator", disc, "--real-data",
                           formats["parquet"])
    assert rc == 0, err
    assert "over 4 classes (k = 2)" in out
    assert [line.split()[0] for line in out.splitlines()[2:]] == ["linear_cka", "debiased_cka", "mutual_knn", "cknna",
                                                                "distance_spearman"], out


def test_null_class_from_flag_or_scheduler_config(capsys, tmp_path, formats, disc, rgb_unet):
    from scoremix_ds.generators.loading import load_generator

    assert (load_generator(rgb_unet).num_classes, load_generator(rgb_unet).null_class) == (5, None)
    assert (load_generator(rgb_unet, null_class=4).num_classes, load_generator(rgb_unet, null_class=4).null_class) == (4, 4)
    declared = tmp_path / "declared"
    shutil.copytree(rgb_unet, declared)
    sched = declared / "scheduler" / "scheduler_config.json"
    sched.write_text(json.dumps({**json.loads(sched.read_text()), "null_class": 4}))
    assert (load_generator(str(declared)).num_classes, load_generator(str(declared)).null_class) == (4, 4)
    common = ["--discriminator", disc, "--real-data", formats["parquet"], "--pairs", "2", "--per-identity", "1",
              "--steps", "2", "--no-progress"]
    rc, out, err = run_cli(capsys, "build", "--generator", str(declared), *common, "--out", str(tmp_path / "a"))
    assert rc == 0, err
    # undeclared: the 5-row table is 5 classes, which the 4-class real data does not match
    rc, out, err = run_cli(capsys, "build", "--generator", rgb_unet, *common, "--out", str(tmp_path / "b"))
    assert rc == 2 and "needs a null class" in err and not (tmp_path / "b").exists()
    rc, out, err = run_cli(capsys, "build", "--generator", rgb_unet, *common, "--guidance", "1",
                           "--out", str(tmp_path / "b"))
    assert rc == 2 and "4 classes but the generator has 5" in err and "--classes" in err
    assert not (tmp_path / "b").exists()
    rc, out, err = run_cli(capsys, "build", "--generator", rgb_unet, "--null-class", "9", *common,
                           "--out", str(tmp_path / "c"))
    assert rc == 2 and "outside its label table" in err and "--null-class" in err


def test_real_data_required_for_centre_strategies_only(capsys, tmp_path, rgb_unet):
    base = ["--generator", rgb_unet, "--null-class", "4", "--pairs", "2", "--per-identity", "1", "--no-progress"]
    for command, strategy in (("build", "distant"), ("plan", "close"), ("build", "distant-triplets")):
        out = tmp_path / f"{command}-{strategy}"
        target = [str(out)] if command == "build" else [str(out) + ".parquet"]
        steps = ["--steps", "2"] if command == "build" else []
        rc, _, err = run_cli(capsys, command, *base, *steps, "--strategy", strategy, "--out", *target)
        assert rc == 2 and len(err.strip().splitlines()) == 1 and "--real-data" in err, err
        assert not out.exists() and not Path(target[0]).exists()
    base += ["--steps", "2"]
    rc, _, err = run_cli(capsys, "build", *base, "--strategy", "band", "--band", "40,60",
                         "--out", str(tmp_path / "band"))
    assert rc == 2 and "--real-data" in err
    rc, _, err = run_cli(capsys, "align", "--generator", rgb_unet)
    assert rc == 2 and "--real-data" in err
    for strategy in ("random", "close-condition"):
        rc, _, err = run_cli(capsys, "build", *base, "--strategy", strategy, "--out", str(tmp_path / strategy))
        assert rc == 0, err
    rc, _, err = run_cli(capsys, "audit", str(tmp_path / "random"))
    assert rc == 2 and "--real-data" in err


def test_class_count_mismatch_names_both_counts_and_classes_solves_it(capsys, tmp_path, disc):
    eight = save_generator(tmp_path / "eight", tiny_unet(num_classes=8, null=True, channels=1),
                           meta={"num_classes": 8, "null_class": 8})
    twelve = tmp_path / "twelve"
    (twelve / "data").mkdir(parents=True)
    labelled(12, names=[f"p{i}" for i in range(12)]).to_parquet(str(twelve / "data" / "train-00000.parquet"))
    base = ["--generator", str(eight), "--discriminator", disc, "--real-data", str(twelve), "--pairs", "3",
            "--per-identity", "1", "--steps", "2", "--no-progress"]
    rc, _, err = run_cli(capsys, "build", *base, "--out", str(tmp_path / "x"))
    assert rc == 2 and "12 classes" in err and "generator has 8" in err and "--classes 0-7" in err
    assert not (tmp_path / "x").exists()
    rc, _, err = run_cli(capsys, "build", *base, "--classes", "0-7", "--out", str(tmp_path / "ok"))
    assert rc == 0, err
    assert all(max(r["parents"]) <= 7 for r in mix_rows(tmp_path / "ok"))
    rc, _, err = run_cli(capsys, "build", *base, "--classes", "0-9", "--out", str(tmp_path / "y"))
    assert rc == 2 and "--classes" in err, err
    rc, _, err = run_cli(capsys, "align", "--generator", str(eight), "--discriminator", disc,
                         "--real-data", str(twelve))
    assert rc == 2 and "12 classes" in err and "--classes" in err
    rc, out, err = run_cli(capsys, "align", "--generator", str(eight), "--discriminator", disc,
                           "--real-data", str(twelve), "--classes", "0-7")
    assert rc == 0, err


def test_references_with_revisions_are_parsed_once(capsys, tmp_path, formats, rgb_unet, disc):
    base = ["--pairs", "2", "--per-identity", "1", "--steps", "2", "--no-progress", "--strategy", "random"]
    cases = [
        (["--generator", "org/model@v1"], "cannot fetch generator 'org/model' (revision v1)"),
        (["--generator", "org/model@v1", "--generator-revision", "v2"], "names revision v1"),
        (["--generator", f"{rgb_unet}@v1"], "a revision only applies to Hub ids"),
        (["--generator", rgb_unet, "--null-class", "4", "--discriminator", disc, "--strategy", "distant",
          "--real-data", f"{formats['parquet']}@v1"], "a revision only applies to Hub ids"),
        (["--generator", rgb_unet, "--null-class", "4", "--discriminator", disc, "--strategy", "distant",
          "--real-data", "org/faces@"], "write NAME@REVISION"),
    ]
    for args, message in cases:
        rc, _, err = run_cli(capsys, "build", *base, *args, "--out", str(tmp_path / "o"))
        assert rc == 2 and message in err and "Traceback" not in err, (args, err)
        assert len(err.strip().splitlines()) == 1
        assert not (tmp_path / "o").exists()


def test_hub_dataset_with_revision_through_the_cli(tmp_path, rgb_unet, disc):
    """plan --real-data ORG/NAME@COMMIT with the REAL datasets / huggingface_hub clients against a LoopbackHub."""
    import io

    from hubfixtures import run_cli

    from fixtures.hub_server import LoopbackHub

    def shard(num_classes: int) -> bytes:
        buf = io.BytesIO()
        labelled(num_classes, names=NAMES[:num_classes]).to_parquet(buf)
        return buf.getvalue()

    with LoopbackHub() as hub:
        first = hub.seed("org/faces", {"data/train-00000.parquet": shard(4)}, message="v1")
        hub.seed("org/faces", {"data/train-00000.parquet": shard(3)}, message="v2")
        args = ["plan", "--generator", rgb_unet, "--null-class", "4", "--discriminator", disc, "--pairs", "2",
                "--no-progress"]
        ok = run_cli(hub, tmp_path / "hf", *args, "--real-data", f"org/faces@{first}", "--out", str(tmp_path / "p.parquet"))
        assert ok.rc == 0, ok.err[-2000:]
        meta = json.loads(pq.read_schema(tmp_path / "p.parquet").metadata[b"scoremix"])
        assert meta["real_data"] == f"org/faces@{first}"
        latest = run_cli(hub, tmp_path / "hf", *args, "--real-data", "org/faces", "--out", str(tmp_path / "q.parquet"))
        assert latest.rc == 2 and "3 classes but the generator has 4" in latest.err  # main is v2: 3 classes


def test_a_generator_trained_on_x_builds_with_x(capsys, tmp_path, formats, disc):
    """train-generator --real-data X then build --real-data X: the same reference, read by the same layer."""
    recipe = tmp_path / "gen.toml"
    recipe.write_text("image_size = 8\nblock_out_channels = [8, 16]\nnorm_num_groups = 4\nsteps = 2\nbatch_size = 4\n"
                      "warmup_steps = 1\ncheckpoint_every = 0\n")
    for fmt in ("imagefolder", "recordio"):
        data, out = formats[fmt] + "[0-2]", tmp_path / f"gen-{fmt}"
        rc, o, err = run_cli(capsys, "train-generator", "--recipe", str(recipe), "--real-data", data, "--out", str(out),
                             "--no-progress")
        assert rc == 0 and "saved generator" in o, err
        rc, o, err = run_cli(capsys, "build", "--generator", str(out), "--discriminator", disc, "--real-data", data,
                             "--pairs", "2", "--per-identity", "1", "--steps", "2", "--no-progress", "--out",
                             str(tmp_path / f"built-{fmt}"))
        assert rc == 0, err
