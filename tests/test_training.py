"""``train-generator`` writes a folder that ``build`` loads: the embedded default's own recipe path, in miniature."""

from __future__ import annotations

import json

import datasets

from scoremix_ds.cli import main
from scoremix_ds.models.generator import load_generator


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

    from scoremix_ds.models.discriminator import SmallCNN

    disc = SmallCNN(in_channels=1, image_size=16, embedding_dim=8)
    disc.save_pretrained(tmp_path / "disc16")
    rc = main([
        "build", "--generator", str(out), "--discriminator", str(tmp_path / "disc16"), "--pairs", "2",
        "--per-identity", "1", "--steps", "2", "--guidance", "1.5", "--out", str(tmp_path / "ds"), "--no-progress",
    ])
    assert rc == 0
    ds = datasets.load_dataset(str(tmp_path / "ds"), split="train")
    assert len(ds) == 2 and ds[0]["image"].size == (16, 16)
