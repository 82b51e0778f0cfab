"""Shared fixtures: sealed-off caches and tiny models built in code (seconds on a CPU).

Every test runs with the Hugging Face caches under ``tmp_path``, offline, with no token, so nothing reaches the
network or the user's real cache.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

NUM_CLASSES = 4


def pytest_collection_modifyitems(config, items):
    """``gpu`` tests need a CUDA device: skipped (with the reason in the summary) where torch sees none."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="marked gpu: needs a CUDA device, and torch sees none")
    for item in items:
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(skip)


@pytest.fixture
def one_thread():
    """One torch thread for the test: bit-exact comparisons, and fast on a shared 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _sealed_hf_env(tmp_path_factory, monkeypatch):
    home = tmp_path_factory.mktemp("hf_home")
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(home / "datasets"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    import datasets

    datasets.disable_progress_bars()
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", home / "datasets")


def tiny_unet(num_classes: int = NUM_CLASSES, null: bool = True, size: int = 8, channels: int = 1, seed: int = 0):
    from diffusers import UNet2DModel

    torch.manual_seed(seed)
    return UNet2DModel(
        sample_size=size,
        in_channels=channels,
        out_channels=channels,
        block_out_channels=(8, 16),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
        norm_num_groups=4,
        num_class_embeds=num_classes + int(null),
    ).eval()


def save_generator(root: Path, denoiser, folder: str = "unet", meta: dict | None = None, prediction_type: str = "epsilon",
                   vae=None) -> Path:
    """Write a generator folder in the layout ``load_generator`` reads."""
    from diffusers import DDPMScheduler

    root.mkdir(parents=True, exist_ok=True)
    denoiser.save_pretrained(root / folder, safe_serialization=True)
    DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", prediction_type=prediction_type,
                  clip_sample=False).save_pretrained(root / "scheduler")  # as train-generator saves it
    if vae is not None:
        vae.save_pretrained(root / "vae", safe_serialization=True)
    if meta is not None:
        (root / "scoremix.json").write_text(json.dumps(meta))
    return root


@pytest.fixture
def tiny_generator_dir(tmp_path) -> Path:
    """A 4-class pixel-space UNet generator (8x8, 1 channel) with a null class for guidance."""
    meta = {"num_classes": NUM_CLASSES, "null_class": NUM_CLASSES, "class_names": ["a", "b", "c", "d"],
            "image_size": 8, "channels": 1}
    return save_generator(tmp_path / "tiny-gen", tiny_unet(), meta=meta)


@pytest.fixture
def tiny_generator(tiny_generator_dir):
    from scoremix_ds.generators.loading import load_generator

    return load_generator(str(tiny_generator_dir))


@pytest.fixture
def tiny_discriminator_dir(tmp_path) -> Path:
    from scoremix_ds.discriminators.loading import SmallCNN

    torch.manual_seed(0)
    model = SmallCNN(in_channels=1, image_size=8, embedding_dim=16)
    model.save_pretrained(tmp_path / "tiny-disc")
    return tmp_path / "tiny-disc"


@pytest.fixture
def tiny_real_data_dir(tmp_path) -> Path:
    """A real ``datasets`` parquet folder: 4 classes x 6 images of 8x8 with distinct mean brightness."""
    import datasets
    import numpy as np

    rng = np.random.default_rng(0)
    images, labels = [], []
    for c in range(NUM_CLASSES):
        for _ in range(6):
            arr = np.clip(rng.normal(40 + 60 * c, 20, size=(8, 8)), 0, 255).astype("uint8")
            from PIL import Image

            images.append(Image.fromarray(arr, mode="L"))
            labels.append(c)
    feats = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["a", "b", "c", "d"])})
    ds = datasets.Dataset.from_dict({"image": images, "label": labels}, features=feats)
    root = tmp_path / "tiny-real"
    (root / "data").mkdir(parents=True)
    ds.to_parquet(str(root / "data" / "train-00000.parquet"))
    return root
