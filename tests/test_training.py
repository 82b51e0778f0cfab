"""``train-generator`` and ``train-discriminator`` write folders that ``build`` loads: the embedded default's own
recipe path, in miniature."""

from __future__ import annotations

import json

import datasets

from scoremix_ds.cli import main
from scoremix_ds.discriminators.loading import load_discriminator
from scoremix_ds.generators.loading import load_generator


def test_train_generator_then_build_from_it(tmp_path, tiny_discriminator_dir, capsys):
    recipe = tmp_path / "g.toml"
    recipe.write_text(
        'real_data = "mnist-5k"\nimage_size = 16\nblock_out_channels = [8, 16]\nnorm_num_groups = 4\n'
        "steps = 3\nbatch_size = 8\nwarmup_steps = 1\n"
    )
    out = tmp_path / "gen"
    assert main(["train-generator", "--recipe", str(recipe), "--out", str(out), "--no-progress"]) == 0
    assert (out / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    assert not list(out.rglob("*.bin"))
    meta = json.loads((out / "scoremix.json").read_text())
    assert meta["num_classes"] == 10 and meta["null_class"] == 10 and meta["licence"] == "cc-by-sa-3.0"
    scheduler = json.loads((out / "scheduler" / "scheduler_config.json").read_text())
    assert scheduler["timestep_spacing"] == "leading" and scheduler["clip_sample"] is False
    gen = load_generator(str(out))
    assert gen.null_class == 10 and gen.sample_shape == (1, 16, 16) and gen.class_names[3] == "3"

    # train-discriminator is an alias of `train`: a recipe of RecognitionTrainConfig fields, --real-data -> real
    disc_recipe = tmp_path / "d.toml"
    disc_recipe.write_text(
        'backbone = "small-cnn"\nembedding_dim = 8\nimage_size = 16\nchannels = 1\nflip = false\nshift_pixels = 1\n'
        'scale = 16.0\ncheckpoint_every = 0\ndevice = "cpu"\n'
    )
    disc = tmp_path / "disc16"
    rc = main(["train-discriminator", "--recipe", str(disc_recipe), "--real-data", "mnist-5k-train[0-2]", "--steps", "2",
               "--batch-size", "8", "--learning-rate", "0.05", "--seed", "4", "--out", str(disc), "--no-progress"])
    assert rc == 0 and f"saved discriminator to {disc}" in capsys.readouterr().out
    config = json.loads((disc / "scoremix.json").read_text())["config"]
    assert config["real"] == ["mnist-5k-train[0-2]"] and config["shift_pixels"] == 1
    assert (config["steps"], config["batch_size"], config["learning_rate"], config["seed"]) == (2, 8, 0.05, 4)
    model = load_discriminator(str(disc))
    assert (model.backbone_name, model.image_size, model.embedding_dim) == ("small-cnn", 16, 8)
    assert not list(disc.rglob("*.bin"))
    rc = main([
        "build", "--generator", str(out), "--discriminator", str(disc), "--real-data", "mnist-5k", "--pairs", "2",
        "--per-identity", "1", "--steps", "2", "--guidance", "1.5", "--out", str(tmp_path / "ds"), "--no-progress",
    ])
    assert rc == 0
    ds = datasets.load_dataset(str(tmp_path / "ds"), split="train")
    assert len(ds) == 2 and ds[0]["image"].size == (16, 16)
