"""Hub-native outputs: what the build, the generator trainer and eval write is what an HF user expects.

Every model and data set here is made in the test (tiny UNet generator, SmallCNN discriminator, an image folder
with one named folder per identity); the commands run through the CLI's ``main``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fixtures.cli import build_command, run_cli
from scoremix_ds.cli import main

NAMES = ("alice", "bob", "carol", "dave")


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
    return build_command(tiny_generator_dir, tiny_discriminator_dir, named_folder, pairs=3, per_identity=2, steps=2)


def test_label_is_a_classlabel_named_after_the_real_classes(capsys, build_args, tmp_path):
    import datasets

    out = tmp_path / "named"
    rc, _, err = run_cli(capsys, *build_args, "--out", str(out))
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
    rc, _, err = run_cli(capsys, "plan", *args, "--out", str(plan))
    assert rc == 0, err
    rows = pq.read_table(plan).to_pylist()
    assert all(n in NAMES for r in rows for n in r["parent_names"])
    assert [r["identity_name"] for r in rows] == ["mix:" + "+".join(r["parent_names"]) for r in rows]
    out = tmp_path / "from-plan"
    rc, _, err = run_cli(capsys, *build_args, "--plan", str(plan), "--out", str(out))
    assert rc == 0, err
    built = pq.read_table(next((out / "data" / "mix").glob("*.parquet"))).to_pylist()
    assert {r["identity"] for r in built} <= {r["identity_name"] for r in rows}


def test_repeated_names_are_made_distinct():
    from scoremix_ds.synthesis.planning.mix_plan import label_names, unique_names

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
    rc, _, err = run_cli(capsys, *build_args, "--out", str(out))
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
    assert "| `repro` | 12 | 4 parent classes | 2 to 4 |" in text


def test_card_states_each_models_training_data_as_recorded(capsys, tiny_generator_dir, tiny_discriminator_dir,
                                                          named_folder, tmp_path):
    import json

    meta_file = tiny_generator_dir / "scoremix.json"
    meta = json.loads(meta_file.read_text())
    meta.update(real_data="celeb-faces@v2 (hub)", licence="cc-by-4.0")
    meta_file.write_text(json.dumps(meta))
    out = tmp_path / "prov"
    rc, _, err = run_cli(capsys, "build", "--generator", str(tiny_generator_dir), "--discriminator",
                         str(tiny_discriminator_dir), "--real-data", str(named_folder), "--pairs", "2",
                         "--per-identity", "1", "--steps", "2", "--no-progress", "--out", str(out))
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
    rc, _, err = run_cli(capsys, "build", "--recipe", str(built / recipe), "--out", str(copy), "--no-progress",
                         "--batch-size", "3")
    assert rc == 0, err
    for config in ("mix", "repro"):
        assert local_rows(copy, config) == local_rows(built, config)
    assert (copy / "build.toml").read_text() == (built / "build.toml").read_text()


def test_recipe_of_a_plan_build_names_the_plan_and_is_refused_without_it(capsys, build_args, tmp_path):
    plan = tmp_path / "plan.parquet"
    rc, _, err = run_cli(capsys, "plan", *build_args[1:build_args.index("--steps")], "--out", str(plan))
    assert rc == 0, err
    out = tmp_path / "planned"
    rc, _, err = run_cli(capsys, *build_args, "--plan", str(plan), "--out", str(out))
    assert rc == 0, err
    assert f'plan = "{plan}"' in (out / "build.toml").read_text()
    copy = tmp_path / "copy"
    rc, _, err = run_cli(capsys, "build", "--recipe", str(out / "manifest.json"), "--out", str(copy), "--no-progress")
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert rc == 2 and len(lines) == 1 and "--plan" in lines[0], err
    assert not copy.exists()
    rc, _, err = run_cli(capsys, "build", "--recipe", str(out / "manifest.json"), "--plan", str(plan),
                         "--out", str(copy), "--no-progress")
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


# ------------------------------------------------------------------------------- the generator as a pipeline

TINY_GEN = {"real_data": "mnist-5k-heldout[0-3]", "image_size": 16, "block_out_channels": [8, 16],
            "norm_num_groups": 4, "steps": 4, "batch_size": 4, "warmup_steps": 1, "learning_rate": 1e-2,
            "checkpoint_every": 0}


def tiny_recipe(path: Path, out: Path) -> Path:
    import json

    path.write_text("\n".join(f"{k} = {json.dumps(v)}" for k, v in {**TINY_GEN, "out": str(out)}.items()) + "\n")
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    import torch

    root = tmp_path_factory.mktemp("gen")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(["train-generator", "--recipe", str(tiny_recipe(root / "tiny.toml", root / "gen")), "--no-progress"]) == 0
    finally:
        torch.set_num_threads(threads)
    return root / "gen"


def test_trained_generator_is_a_diffusers_pipeline_that_samples_the_librarys_mix(trained, one_thread, tmp_path):
    import json

    import torch
    from diffusers import DiffusionPipeline

    from scoremix_ds import ScoreMixPipeline
    from scoremix_ds.synthesis.config import BuildConfig
    from scoremix_ds.sampling.batches import sample_images
    from scoremix_ds.generators.loading import load_generator
    from scoremix_ds.sampling.schedulers import make_scheduler
    from scoremix_ds.sampling.scoremix import scoremix_sample

    index = json.loads((trained / "model_index.json").read_text())
    assert index["_class_name"] == "ScoreMixPipeline" and index["unet"] == ["diffusers", "UNet2DModel"]
    assert index["scheduler"] == ["diffusers", "DDPMScheduler"] and index["num_classes"] == 4 and index["null_class"] == 4
    pipe = DiffusionPipeline.from_pretrained(str(trained))
    assert isinstance(pipe, ScoreMixPipeline) and pipe.class_names == ["0", "1", "2", "3"]
    assert index["id2label"] == {"0": "0", "1": "1", "2": "2", "3": "3"}
    pipe.set_progress_bar_config(disable=True)
    classes, weights, seeds = [(0, 3), ("1", "2")], [(0.5, 0.5), (0.7, 0.3)], [11, 12]
    got = pipe(classes=classes, weights=weights, seeds=seeds, num_inference_steps=3, guidance_scale=2.0,
               output_type="pt").images
    gen = load_generator(str(trained))
    want = scoremix_sample(gen, make_scheduler("ddim", gen.scheduler_config), torch.tensor([[0, 3], [1, 2]]),
                           torch.tensor(weights), seeds, 3, 2.0)
    assert torch.equal(got, (want / 2 + 0.5).clamp(0, 1))  # "pt": diffusers' [0, 1] convention
    # ... and its uint8 (PIL) images are the build's rows for the same mix and seeds (batch size makes no difference)
    rows = sample_images(gen, BuildConfig(steps=3, guidance=2.0, batch_size=1).sampling, np.array([[0, 3], [1, 2]]),
                         np.array(weights), seeds)
    pils = pipe(classes=classes, weights=weights, seeds=seeds, num_inference_steps=3, guidance_scale=2.0,
                batch_size=2).images
    np.testing.assert_array_equal(np.stack([np.asarray(p) for p in pils])[..., None], np.stack(rows))
    pil = pipe(classes=[(0, 1)], seeds=[0], num_inference_steps=2).images
    assert pil[0].size == (16, 16) and pil[0].mode == "L"
    with pytest.raises(ValueError, match="unknown class name"):
        pipe(classes=[("zz", "1")], num_inference_steps=1)
    # the library still loads the folder, and a saved pipeline round-trips through diffusers' own save_pretrained
    assert load_generator(str(trained)).null_class == 4
    pipe.save_pretrained(str(tmp_path / "saved"))
    again = DiffusionPipeline.from_pretrained(str(tmp_path / "saved"))
    again.set_progress_bar_config(disable=True)
    assert again.config.null_class == 4 and again.class_names == pipe.class_names
    assert torch.equal(again(classes=classes, weights=weights, seeds=seeds, num_inference_steps=3, guidance_scale=2.0,
                             output_type="pt").images, (want / 2 + 0.5).clamp(0, 1))


def test_trained_generator_has_a_model_card(trained):
    from huggingface_hub import ModelCard

    card = ModelCard.load(trained / "README.md")
    assert card.data.library_name == "diffusers" and "arxiv:2506.10226" in card.data.tags
    assert "mnist-5k" in card.text and "classes [0-3]" in card.text  # the training data, as recorded
    assert f'DiffusionPipeline.from_pretrained("{trained}")' in card.text
    assert "4 classes" in card.text and "null class" in card.text


def test_embedded_default_generator_is_a_pipeline_too():
    from diffusers import DiffusionPipeline

    from scoremix_ds import ScoreMixPipeline
    from scoremix_ds.core.resources import default_model_dir
    from scoremix_ds.sampling.pipeline import model_index

    folder = default_model_dir("generator")
    import json

    assert json.loads((folder / "model_index.json").read_text()) == {**model_index(folder),
                                                                     "_diffusers_version": json.loads((folder / "model_index.json").read_text())["_diffusers_version"]}
    pipe = DiffusionPipeline.from_pretrained(str(folder))
    assert isinstance(pipe, ScoreMixPipeline) and pipe.config.num_classes == 10 and pipe.config.null_class == 10


def test_push_to_with_stop_after_is_refused_before_training(capsys, tmp_path):
    out = tmp_path / "never"
    rc, _, err = run_cli(capsys, "train-generator", "--recipe", str(tiny_recipe(tmp_path / "r.toml", out)),
                         "--stop-after", "1", "--push-to", "org/gen", "--no-progress")
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert rc == 2 and len(lines) == 1 and "--stop-after" in lines[0] and not out.exists()


def test_train_generator_push_to_publishes_a_pipeline_that_loads_from_the_hub(tmp_path):
    """The real huggingface_hub client against the LoopbackHub, CLI and reader each in a fresh interpreter."""
    import json
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from hubfixtures import run_cli, run_plain_datasets  # noqa: F401  (run_plain_datasets: same env rules)

    from fixtures.hub_server import LoopbackHub

    secret = "hf_generator_token_never_printed_0123456789"
    out = tmp_path / "gen"
    with LoopbackHub() as hub:
        hub.add_token(secret, write=True)
        done = run_cli(hub, tmp_path / "hf", "train-generator", "--recipe", str(tiny_recipe(tmp_path / "r.toml", out)),
                       "--push-to", "org/gen", "--tag", "v1", "--token", secret, "--no-progress", timeout=300,
                       extra_env={"OMP_NUM_THREADS": "1"})
        assert done.rc == 0, done.err
        assert "pushed" in done.out and "tag v1" in done.out and secret not in done.out + done.err
        files = hub.files("org/gen", revision="v1", repo_type="model")
        assert sorted(files) == [".gitattributes", "README.md", "model_index.json", "scheduler/scheduler_config.json",
                                 "scoremix.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors"]
        assert str(tmp_path).encode() not in files["README.md"] + files["scoremix.json"]
        assert b'from_pretrained("org/gen", revision="v1")' in files["README.md"]
        code = f"""
import torch
from diffusers import DiffusionPipeline
from scoremix_ds import ScoreMixPipeline
pipe = DiffusionPipeline.from_pretrained("org/gen", revision="v1")
pipe.set_progress_bar_config(disable=True)
x = pipe(classes=[(0, 3)], seeds=[7], num_inference_steps=2).images  # PIL: the build's uint8 pixels
result["kind"] = type(pipe).__name__
result["image"] = [__import__("numpy").asarray(im).tolist() for im in x]
"""
        script = tmp_path / "reader.py"
        script.write_text("import json\nresult = {}\n" + code + "\nprint('@@' + json.dumps(result))\n")
        import subprocess

        from hubfixtures import REPO_ROOT, client_env

        proc = subprocess.run([sys.executable, str(script)], cwd=REPO_ROOT, capture_output=True, text=True,
                              env={**client_env(hub, tmp_path / "hf-reader", token=""), "OMP_NUM_THREADS": "1"},
                              timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        result = json.loads([line for line in proc.stdout.splitlines() if line.startswith("@@")][-1][2:])
    from diffusers import DiffusionPipeline

    from scoremix_ds import ScoreMixPipeline  # noqa: F401
    local = DiffusionPipeline.from_pretrained(str(out))
    local.set_progress_bar_config(disable=True)
    assert result["kind"] == "ScoreMixPipeline"
    np.testing.assert_array_equal(np.asarray(result["image"], dtype=np.uint8),
                                  np.stack([np.asarray(im) for im in local(classes=[(0, 3)], seeds=[7],
                                                                            num_inference_steps=2).images]))


def test_latent_dit_folder_with_a_model_index_samples_the_librarys_mix(tmp_path, one_thread):
    """A latent DiT (transformer/ + vae/) made here: model_index.json written for it loads as the pipeline."""
    import torch
    from conftest import save_generator
    from diffusers import AutoencoderKL, DiffusionPipeline, DiTTransformer2DModel

    from scoremix_ds import ScoreMixPipeline
    from scoremix_ds.generators.loading import load_generator
    from scoremix_ds.sampling.pipeline import write_model_index
    from scoremix_ds.sampling.schedulers import make_scheduler
    from scoremix_ds.sampling.scoremix import scoremix_sample

    torch.manual_seed(0)
    dit = DiTTransformer2DModel(num_attention_heads=2, attention_head_dim=8, in_channels=4, out_channels=8,
                                num_layers=1, sample_size=8, patch_size=2, num_embeds_ada_norm=3, norm_num_groups=1).eval()
    vae = AutoencoderKL(in_channels=1, out_channels=1, block_out_channels=(8, 16), layers_per_block=1,
                        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                        latent_channels=4, norm_num_groups=4, sample_size=8).eval()
    folder = save_generator(tmp_path / "dit", dit, folder="transformer", vae=vae,
                            meta={"num_classes": 2, "null_class": 2, "class_names": ["cat", "dog"]})
    write_model_index(folder)
    pipe = DiffusionPipeline.from_pretrained(str(folder))
    assert isinstance(pipe, ScoreMixPipeline) and pipe.vae is not None and pipe.unet is None
    pipe.set_progress_bar_config(disable=True)
    got = pipe(classes=[("cat", "dog")], weights=[(0.6, 0.4)], seeds=[3], num_inference_steps=2, output_type="pt").images
    gen = load_generator(str(folder))
    want = scoremix_sample(gen, make_scheduler("ddim", gen.scheduler_config), torch.tensor([[0, 1]]),
                           torch.tensor([[0.6, 0.4]]), [3], 2, 3.0)
    assert got.shape == (1, 1, 16, 16) and torch.equal(got, (want / 2 + 0.5).clamp(0, 1))


# ------------------------------------------------------------------ recognition models: loading and model-index

TRAIN = ["train", "--real", "mnist-5k-train[0-3]", "--backbone", "small-cnn", "--embedding-dim", "16", "--image-size",
         "16", "--channels", "1", "--no-flip", "--steps", "2", "--batch-size", "16", "--device", "cpu", "--no-progress"]


@pytest.fixture
def recognition(capsys, tmp_path, one_thread) -> Path:
    out = tmp_path / "net"
    rc, _, err = run_cli(capsys, *TRAIN, "--out", str(out))
    assert rc == 0, err
    return out


def test_recognition_model_loads_with_one_call(recognition):
    import scoremix_ds
    from scoremix_ds.discriminators.loading import EmbeddingNet, SmallCNN

    images = np.random.default_rng(0).integers(0, 256, size=(3, 16, 16, 1), dtype=np.uint8)
    a = EmbeddingNet.from_pretrained(recognition)
    b = scoremix_ds.load_discriminator(str(recognition))
    assert isinstance(a, SmallCNN) and not a.training
    np.testing.assert_array_equal(scoremix_ds.embed_images(a, images), scoremix_ds.embed_images(b, images))
    with pytest.raises(TypeError):
        EmbeddingNet.from_pretrained(recognition, force_download=True)


def _yaml_and_body(card: Path) -> tuple[dict, str]:
    import yaml

    _, head, body = card.read_text().split("---\n", 2)
    return yaml.safe_load(head), body


def test_eval_writes_model_index_into_the_card_of_a_model_trained_here(capsys, recognition, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before, body_before = _yaml_and_body(recognition / "README.md")
    rc, _, err = run_cli(capsys, "eval", str(recognition), "--benchmark", "heldout:mnist-5k-heldout[0-3]:100",
                         "--out", str(tmp_path / "report"))
    assert rc == 0, err
    after, body_after = _yaml_and_body(recognition / "README.md")
    assert body_after == body_before  # the card's text is untouched
    assert {k: v for k, v in after.items() if k != "model-index"} == {k: v for k, v in before.items() if k != "model-index"}
    report = json.loads((tmp_path / "report" / "results.json").read_text())
    bench = report["benchmarks"][0]
    entries = [r for block in after["model-index"] for r in block["results"]]
    by_metric = {m["name"]: m["value"] for r in entries if r["dataset"]["name"] == bench["name"] for m in r["metrics"]}
    assert by_metric["accuracy (10-fold)"] == pytest.approx(bench["accuracy"]["mean"])
    assert by_metric["ROC AUC"] == pytest.approx(bench["auc"]) and by_metric["EER"] == pytest.approx(bench["eer"])
    assert not (tmp_path / "report" / "README.md").exists()
    # a second benchmark adds its results and keeps the first's; the same benchmark again replaces its own
    rc, _, err = run_cli(capsys, "eval", str(recognition), "--benchmark", "heldout:mnist-5k-heldout[4-5]:60",
                         "--benchmark", "heldout:mnist-5k-heldout[0-3]:60", "--out", str(tmp_path / "report2"))
    assert rc == 0, err
    again, _ = _yaml_and_body(recognition / "README.md")
    names = [r["dataset"]["name"] for block in again["model-index"] for r in block["results"]]
    assert set(names) == {bench["name"], "mnist-5k-heldout[4-5]"}
    metrics = [m["name"] for block in again["model-index"] for r in block["results"] if r["dataset"]["name"] == bench["name"]
               for m in r["metrics"]]
    assert len(metrics) == len(set(metrics))  # replaced, not duplicated
    from huggingface_hub import ModelCard

    assert ModelCard.load(recognition / "README.md").data.eval_results  # huggingface_hub reads it back


def test_eval_of_a_model_not_trained_here_writes_the_card_into_out(capsys, tmp_path, monkeypatch):
    from scoremix_ds.core.resources import default_model_dir

    monkeypatch.chdir(tmp_path)
    default_card = (default_model_dir("discriminator") / "README.md").read_bytes()
    rc, _, err = run_cli(capsys, "eval", "default", "--benchmark", "heldout:mnist-5k-heldout[0-3]:60", "--out",
                         str(tmp_path / "rep"))
    assert rc == 0, err
    assert (default_model_dir("discriminator") / "README.md").read_bytes() == default_card
    meta, body = _yaml_and_body(tmp_path / "rep" / "README.md")
    assert meta["model-index"][0]["name"] == "default" and "Evaluation of `default`" in body


def test_pushed_dataset_loads_from_the_hub_with_its_classlabel_names(built, tmp_path):
    """``scoremix-ds push`` to the LoopbackHub, then plain ``datasets`` (no scoremix-ds) in a fresh process."""
    import sys
    import tomllib

    sys.path.insert(0, str(Path(__file__).parent))
    from hubfixtures import run_cli, run_plain_datasets

    from fixtures.hub_server import LoopbackHub

    with LoopbackHub() as hub:
        pushed = run_cli(hub, tmp_path / "hf", "push", str(built), "--repo", "org/named", "--tag", "v1")
        assert pushed.rc == 0, pushed.err
        files = hub.files("org/named", "v1")
        recipe = tomllib.loads(files["build.toml"].decode())
        assert recipe["real_data"] == "local:faces" and str(tmp_path) not in files["build.toml"].decode()
        loaded = run_plain_datasets(hub, tmp_path / "hf-reader", tmp_path / "reader", """
import datasets
mix = datasets.load_dataset("org/named", "mix", split="train", revision="v1")
repro = datasets.load_dataset("org/named", "repro", split="train", revision="v1")
result["mix_names"] = mix.features["label"].names
result["repro_names"] = repro.features["label"].names
result["rows"] = [[r["label"], r["identity"], r["parent_names"]] for r in mix.remove_columns("image")]
""")
    assert loaded["scoremix_imported"] is False
    assert loaded["repro_names"] == list(NAMES)
    for label, identity, parents in loaded["rows"]:
        assert loaded["mix_names"][label] == identity == "mix:" + "+".join(parents) and set(parents) <= set(NAMES)
