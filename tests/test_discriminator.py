"""Fast CPU tests of the discriminator: ArcFace maths, save/load round trip, pickle refusal, and what its recipe
needs from the recognition trainer (the old trainer's split and its shift augmentation, seeded and resumable)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from fixtures.images import random_images
from scoremix_ds.training.mixture import MixtureDataset, make_loader
from scoremix_ds.sources.preprocess import PreprocessConfig, preprocess, shift_images
from scoremix_ds.training.batching import MixtureBatchSampler
from scoremix_ds.sources.source import ArraySource, SourceInfo
from scoremix_ds.sources.splits import DEFAULT_HOLDOUT_PER_CLASS, DEFAULT_HOLDOUT_SEED, split_holdout
from scoremix_ds.core.errors import ConfigError, DataError, ModelError
from scoremix_ds.maths.margins import ArcFaceHead, arcface_logits
from scoremix_ds.discriminators.loading import SmallCNN, embed_images, load_discriminator
from scoremix_ds.core.recipes import from_mapping, load_recipe
from scoremix_ds.core.resources import default_model_dir
from scoremix_ds.training.recognition_config import RecognitionTrainConfig


@pytest.fixture(autouse=True)
def _sealed(monkeypatch, tmp_path):
    """No Hub access, caches under tmp_path, one thread (the machine is shared)."""
    import huggingface_hub.constants as hf_constants

    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _tiny_model(seed: int = 0) -> SmallCNN:
    torch.manual_seed(seed)
    model = SmallCNN(in_channels=1, image_size=32, embedding_dim=8)
    with torch.no_grad():  # non-trivial BatchNorm statistics, so a lost buffer would show
        for module in model.modules():
            if isinstance(module, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                module.running_mean.normal_(0, 0.1)
                module.running_var.uniform_(0.5, 2.0)
    return model.eval()


# ArcFace maths.


def test_arcface_target_gets_angular_margin_and_others_are_scaled_cosines():
    cos = torch.tensor([[0.5, 0.2, -0.3], [0.1, 0.9, 0.0]])
    labels = torch.tensor([0, 1])
    logits = arcface_logits(cos, labels, scale=64.0, margin=0.5)
    assert logits[0, 0].item() == pytest.approx(64 * math.cos(math.acos(0.5) + 0.5), rel=1e-5)
    assert logits[1, 1].item() == pytest.approx(64 * math.cos(math.acos(0.9) + 0.5), rel=1e-5)
    assert logits[0, 1:].tolist() == pytest.approx([64 * 0.2, 64 * -0.3])
    assert logits[1, [0, 2]].tolist() == pytest.approx([64 * 0.1, 0.0])
    assert cos[0, 0].item() == 0.5  # input untouched


def test_arcface_falls_back_to_linear_penalty_past_pi_minus_m():
    # theta = acos(-0.95) ~ 2.82 rad; theta + 0.5 > pi, so cos - m*sin(m) (insightface's th / mm).
    logits = arcface_logits(torch.tensor([[-0.95, 0.3]]), torch.tensor([0]), scale=64.0, margin=0.5)
    assert logits[0, 0].item() == pytest.approx(64 * (-0.95 - 0.5 * math.sin(0.5)), rel=1e-5)
    # Just inside the boundary the margin formula still applies.
    inside = math.cos(math.pi - 0.5) + 1e-3
    logits = arcface_logits(torch.tensor([[inside]]), torch.tensor([0]), scale=1.0, margin=0.5)
    assert logits[0, 0].item() == pytest.approx(math.cos(math.acos(inside) + 0.5), abs=1e-5)


def test_arcface_zero_margin_is_scaled_cosine_and_gradients_are_finite():
    cos = torch.tensor([[1.0, -1.0], [0.3, 0.7]], requires_grad=True)
    labels = torch.tensor([0, 1])
    assert torch.allclose(arcface_logits(cos, labels, scale=10.0, margin=0.0), 10 * cos)
    arcface_logits(cos, labels).sum().backward()
    assert torch.isfinite(cos.grad).all()


def test_arcface_head_uses_normalised_weights():
    head = ArcFaceHead(num_classes=3, dim=4, scale=1.0, margin=0.0)
    with torch.no_grad():
        head.weight.copy_(torch.eye(3, 4) * torch.tensor([[5.0], [0.1], [2.0]]))
    emb = torch.tensor([[3.0, 0.0, 0.0, 0.0], [0.0, 1.0, 1.0, 0.0]])
    expected = torch.tensor([[1.0, 0.0, 0.0], [0.0, 2**-0.5, 2**-0.5]])
    assert torch.allclose(head.cosine(emb), expected, atol=1e-6)
    assert torch.allclose(head(emb, torch.tensor([0, 1])), expected, atol=1e-6)


# Backbone, embeddings, loading.


def test_embeddings_are_unit_norm_float32_and_batch_independent():
    model = _tiny_model()
    images = random_images(7, size=28, channels=1)
    emb = embed_images(model, images, batch_size=3)
    assert emb.shape == (7, 8) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(embed_images(model, images, batch_size=512), emb, atol=1e-5)
    assert embed_images(model, images[:0]).shape == (0, 8)


def test_embed_images_restores_training_mode():
    model = _tiny_model().train()
    embed_images(model, random_images(2, size=28, channels=1))
    assert model.training


def test_save_pretrained_round_trip_gives_identical_embeddings(tmp_path):
    model = _tiny_model()
    model.save_pretrained(tmp_path / "disc")
    assert (tmp_path / "disc" / "model.safetensors").is_file()
    config = json.loads((tmp_path / "disc" / "config.json").read_text())
    assert config == {"backbone": "small-cnn", "in_channels": 1, "image_size": 32, "embedding_dim": 8}
    loaded = load_discriminator(str(tmp_path / "disc"))
    assert isinstance(loaded, SmallCNN) and not loaded.training
    images = random_images(5, size=28, channels=1, seed=1)
    np.testing.assert_array_equal(embed_images(loaded, images), embed_images(model, images))


def test_load_refuses_pickle_only_folder(tmp_path):
    folder = tmp_path / "pickled"
    folder.mkdir()
    torch.save(_tiny_model().state_dict(), folder / "pytorch_model.bin")
    (folder / "config.json").write_text(json.dumps({"in_channels": 1, "image_size": 32, "embedding_dim": 8}))
    with pytest.raises(ModelError, match="pickle") as info:
        load_discriminator(str(folder))
    assert "`discriminator`" in str(info.value) and info.value.field == "discriminator"


def test_load_refuses_missing_folder_and_unreachable_hub_id(tmp_path):
    with pytest.raises(ModelError, match="does not exist") as info:
        load_discriminator(str(tmp_path / "nowhere"))
    assert "`discriminator`" in str(info.value) and info.value.field == "discriminator"
    with pytest.raises(ModelError, match="discriminator") as info:
        load_discriminator("some-org/not-cached")  # offline: one clear line, not a traceback from the Hub client
    assert info.value.field == "discriminator"  # the CLI names it by the command's flag


def test_load_refuses_weights_that_do_not_match_config(tmp_path):
    _tiny_model().save_pretrained(tmp_path / "disc")
    config = json.loads((tmp_path / "disc" / "config.json").read_text())
    (tmp_path / "disc" / "config.json").write_text(json.dumps({**config, "embedding_dim": 16}))
    with pytest.raises(ModelError, match="does not load"):
        load_discriminator(str(tmp_path / "disc"))


def test_embedded_default_loads_and_embeds():
    model = load_discriminator()
    emb = embed_images(model, random_images(4, size=28, channels=1))
    assert emb.shape == (4, model.embedding_dim)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)


# The recipe of the embedded default (builders/default-discriminator.toml, trained by `scoremix-ds train`).


def test_recipe_matches_the_settings_of_the_shipped_weights():
    recipe = from_mapping(RecognitionTrainConfig, load_recipe("default-discriminator"), "default-discriminator")
    shipped = json.loads((default_model_dir("discriminator") / "scoremix.json").read_text())["trained_with"]["config"]
    for key in ("out", "backbone", "embedding_dim", "image_size", "channels", "steps", "batch_size", "learning_rate",
                "momentum", "weight_decay", "warmup_steps", "margin", "scale", "flip", "shift_pixels", "seed"):
        assert getattr(recipe, key) == shipped[key], key
    # The old trainer held out `holdout_per_class` digits per class with its seed; mnist-5k-train is what is left.
    assert recipe.real == ("mnist-5k-train",) and recipe.head == "arcface" and recipe.sample_rate == 1.0
    assert (shipped["real_data"], shipped["holdout_per_class"], shipped["seed"]) == (
        "mnist-5k", DEFAULT_HOLDOUT_PER_CLASS, DEFAULT_HOLDOUT_SEED)
    assert recipe.val == ("heldout:mnist-5k-heldout:3000",)


def test_holdout_split_is_per_class_disjoint_and_seeded():
    labels = np.repeat(np.arange(4), 10)
    train, held = split_holdout(labels, per_class=3, seed=7)
    assert np.bincount(labels[held]).tolist() == [3, 3, 3, 3]
    assert not set(train) & set(held) and len(train) + len(held) == 40
    np.testing.assert_array_equal(held, split_holdout(labels, per_class=3, seed=7)[1])
    assert not np.array_equal(held, split_holdout(labels, per_class=3, seed=8)[1])


def test_shift_pixels_is_validated_and_part_of_the_fingerprint():
    with pytest.raises(ConfigError, match="shift_pixels"):
        RecognitionTrainConfig(shift_pixels=-1)
    with pytest.raises(ConfigError, match="shift_pixels"):
        RecognitionTrainConfig(image_size=16, shift_pixels=16)
    with pytest.raises(ConfigError, match="shift_pixels"):
        PreprocessConfig(size=8, shift_pixels=8)
    assert RecognitionTrainConfig(shift_pixels=2).fingerprint() != RecognitionTrainConfig().fingerprint()
    assert RecognitionTrainConfig(shift_pixels=2, out="a").fingerprint() == RecognitionTrainConfig(shift_pixels=2).fingerprint()


# The shift augmentation: a pure function of (seed, step, sample), black-padded.


def test_shift_images_by_known_offsets():
    img = np.arange(1, 10, dtype=np.uint8).reshape(1, 3, 3, 1)  # [[1 2 3] [4 5 6] [7 8 9]]
    batch = np.concatenate([img, img, img, img, img])
    out = shift_images(batch, np.array([[0, 0], [1, 0], [0, -1], [-2, 2], [0, 3]]))[..., 0]
    assert out[0].tolist() == [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
    assert out[1].tolist() == [[0, 0, 0], [1, 2, 3], [4, 5, 6]]  # down by one
    assert out[2].tolist() == [[2, 3, 0], [5, 6, 0], [8, 9, 0]]  # left by one
    assert out[3].tolist() == [[0, 0, 7], [0, 0, 0], [0, 0, 0]]  # up by two, right by two
    assert not out[4].any()  # shifted out entirely
    assert batch[1, 0, 0, 0] == 1  # the input is not modified
    rgb = np.stack([img[..., 0], 10 * img[..., 0], 20 * img[..., 0]], axis=-1)  # channels move together
    assert shift_images(rgb, np.array([[1, 1]]))[0, 1, 1].tolist() == [1, 10, 20]


def test_preprocess_flips_then_shifts_and_normalises_the_border_to_black():
    img = np.arange(1, 10, dtype=np.uint8).reshape(1, 3, 3, 1)
    x = preprocess(img, np.array([True]), size=3, channels=1, shifts=np.array([[0, 1]]))
    # mirrored: [[3 2 1] [6 5 4] [9 8 7]]; then right by one: [[0 3 2] [0 6 5] [0 9 8]]; then x / 127.5 - 1
    expected = np.array([[0, 3, 2], [0, 6, 5], [0, 9, 8]]) / 127.5 - 1
    np.testing.assert_allclose(x[0, 0].numpy(), expected, atol=1e-6)
    assert torch.equal(preprocess(img, size=3, channels=1, shifts=np.zeros((1, 2), int)), preprocess(img, size=3, channels=1))


def test_sampler_shifts_are_seeded_uniform_and_leave_rows_and_flips_alone():
    def run(shift: int, start: int = 0, steps: int = 40, seed: int = 5, **kw) -> list:
        return list(MixtureBatchSampler(30, 0, 8, 1.0, seed, shift_pixels=shift, start_step=start, num_steps=steps, **kw))

    shifted, plain = run(2), run(0)
    assert all(len(key) == 2 for batch in plain for key in batch)  # shift_pixels=0: (row, flip) as before
    assert [[k[:2] for k in b] for b in shifted] == plain  # the shifts have their own stream
    offsets = np.array([k[2:] for b in shifted for k in b])
    assert offsets.min() == -2 and offsets.max() == 2
    counts = np.bincount((offsets[:, 0] + 2) * 5 + offsets[:, 1] + 2, minlength=25)
    assert counts.min() > 0 and counts.max() < 3 * 320 / 25  # all 25 offsets, none dominant (320 draws)
    assert run(2) == shifted and run(2, seed=6) != shifted
    for k in (1, 13, 39):
        assert run(2, start=k, steps=40 - k) == shifted[k:]  # resumed at step k == the uninterrupted tail
    ranks = [run(2, steps=3, rank=r, world_size=2) for r in range(2)]  # batch 8 per rank = 16 global
    whole = list(MixtureBatchSampler(30, 0, 16, 1.0, 5, shift_pixels=2, num_steps=3))
    assert [a + b for a, b in zip(*ranks)] == whole  # the global batch does not depend on the process count


def _digits(n: int = 12, size: int = 8) -> ArraySource:
    rng = np.random.default_rng(1)
    images = rng.integers(1, 256, size=(n, size, size, 1), dtype=np.uint8)  # no zeros: a shifted-in border shows
    info = SourceInfo(location="digits", kind="builtin", revision=None, commit=None, config=None, split=None,
                      num_rows=n, num_classes=3, class_names=("0", "1", "2"), image_column=None, label_column=None,
                      mode="L", size=(size, size), skipped=0, licence="x", provenance="digits@1")
    return ArraySource(images, np.arange(n, dtype=np.int64) % 3, info)


def test_loader_applies_the_sampler_shifts_and_resumes_exactly():
    source = _digits()
    ds = MixtureDataset([source], [], PreprocessConfig(size=8, channels=1, flip=False, shift_pixels=2))
    sampler = ds.batch_sampler(4, 1.0, seed=3, num_steps=6)
    batches = list(make_loader(ds, sampler))
    for step, (keys, (x, _)) in enumerate(zip(sampler, batches)):
        rows = np.array([k[0] for k in keys])
        shifts = np.array([k[2:] for k in keys])
        np.testing.assert_array_equal(shifts, sampler.global_shifts_at(step))
        expected = shift_images(source.images[rows], shifts).transpose(0, 3, 1, 2) / 127.5 - 1
        np.testing.assert_allclose(x.numpy(), expected, atol=1e-6)
    assert any((x == -1).any() for x, _ in batches)  # some border was shifted in (the images have no black pixel)
    tail = list(make_loader(ds, ds.batch_sampler(4, 1.0, seed=3, start_step=4, num_steps=2)))
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(tail, batches[4:]))


def test_images_too_small_to_embed_are_refused_and_tiny_ones_warned(caplog):
    model = SmallCNN(in_channels=1, image_size=32, embedding_dim=8)
    with pytest.raises(DataError, match="1x1 pixels: too small to embed") as info:
        embed_images(model, np.zeros((4, 1, 1, 1), np.uint8))
    assert info.value.field == "real_data"
    with caplog.at_level("WARNING"):
        assert embed_images(model, np.zeros((2, 8, 8, 1), np.uint8)).shape == (2, 8)
    assert "upscaled 4x" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        embed_images(model, np.zeros((2, 28, 28, 1), np.uint8))  # MNIST into 32: padded, no warning
    assert "upscaled" not in caplog.text
