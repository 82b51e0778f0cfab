"""Fast CPU tests of the discriminator: ArcFace maths, save/load round trip, pickle refusal, a 30-step training run."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from scoremix_ds.errors import ConfigError, ModelError
from scoremix_ds.maths.margins import ArcFaceHead, arcface_logits
from scoremix_ds.models.discriminator import SmallCNN, embed_images, load_discriminator
from scoremix_ds.training.discriminator import DiscriminatorTrainConfig, split_holdout, train_discriminator


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


def _images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 28, 28, 1), dtype=np.uint8)


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
    images = _images(7)
    emb = embed_images(model, images, batch_size=3)
    assert emb.shape == (7, 8) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(embed_images(model, images, batch_size=512), emb, atol=1e-5)
    assert embed_images(model, images[:0]).shape == (0, 8)


def test_embed_images_restores_training_mode():
    model = _tiny_model().train()
    embed_images(model, _images(2))
    assert model.training


def test_save_pretrained_round_trip_gives_identical_embeddings(tmp_path):
    model = _tiny_model()
    model.save_pretrained(tmp_path / "disc")
    assert (tmp_path / "disc" / "model.safetensors").is_file()
    config = json.loads((tmp_path / "disc" / "config.json").read_text())
    assert config == {"backbone": "small-cnn", "in_channels": 1, "image_size": 32, "embedding_dim": 8}
    loaded = load_discriminator(str(tmp_path / "disc"))
    assert isinstance(loaded, SmallCNN) and not loaded.training
    images = _images(5, seed=1)
    np.testing.assert_array_equal(embed_images(loaded, images), embed_images(model, images))


def test_load_refuses_pickle_only_folder(tmp_path):
    folder = tmp_path / "pickled"
    folder.mkdir()
    torch.save(_tiny_model().state_dict(), folder / "pytorch_model.bin")
    (folder / "config.json").write_text(json.dumps({"in_channels": 1, "image_size": 32, "embedding_dim": 8}))
    with pytest.raises(ModelError, match="pickle") as info:
        load_discriminator(str(folder))
    assert "--discriminator" in str(info.value)


def test_load_refuses_missing_folder_and_unreachable_hub_id(tmp_path):
    with pytest.raises(ModelError, match="does not exist") as info:
        load_discriminator(str(tmp_path / "nowhere"))
    assert "--discriminator" in str(info.value)
    with pytest.raises(ModelError, match="--discriminator"):
        load_discriminator("some-org/not-cached")  # offline: one clear line, not a traceback from the Hub client


def test_load_refuses_weights_that_do_not_match_config(tmp_path):
    _tiny_model().save_pretrained(tmp_path / "disc")
    config = json.loads((tmp_path / "disc" / "config.json").read_text())
    (tmp_path / "disc" / "config.json").write_text(json.dumps({**config, "embedding_dim": 16}))
    with pytest.raises(ModelError, match="does not load"):
        load_discriminator(str(tmp_path / "disc"))


def test_embedded_default_loads_and_embeds():
    model = load_discriminator()
    emb = embed_images(model, _images(4))
    assert emb.shape == (4, model.embedding_dim)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)


# Training.


def test_config_validation():
    with pytest.raises(ConfigError, match="backbone"):
        DiscriminatorTrainConfig(backbone="resnet-9000")
    with pytest.raises(ConfigError, match="margin"):
        DiscriminatorTrainConfig(margin=2.0)
    with pytest.raises(ConfigError, match="multiple of 8"):
        DiscriminatorTrainConfig(image_size=30)


def test_holdout_split_is_per_class_disjoint_and_seeded():
    labels = np.repeat(np.arange(4), 10)
    train, held = split_holdout(labels, per_class=3, seed=7)
    assert np.bincount(labels[held]).tolist() == [3, 3, 3, 3]
    assert not set(train) & set(held) and len(train) + len(held) == 40
    np.testing.assert_array_equal(held, split_holdout(labels, per_class=3, seed=7)[1])


def test_thirty_step_training_run_end_to_end(tmp_path):
    config = DiscriminatorTrainConfig(
        out=str(tmp_path / "disc"),
        embedding_dim=16,
        steps=30,
        batch_size=32,
        learning_rate=0.05,
        warmup_steps=5,
        holdout_per_class=5,
        seed=3,
    )
    out = train_discriminator(config, progress=False)
    meta = json.loads((out / "scoremix.json").read_text())
    assert meta["loss"]["last"] < meta["loss"]["first"]
    assert meta["class_names"] == [str(i) for i in range(10)]
    assert meta["licence"] == "cc-by-sa-3.0"
    assert meta["heldout"]["images"] == 50
    assert meta["heldout"]["nearest_centre_accuracy"] > 0.3  # chance is 0.1
    assert meta["trained_with"]["config"]["steps"] == 30
    model = load_discriminator(str(out))
    assert model.embedding_dim == 16
    assert not list(out.glob("*.bin"))
