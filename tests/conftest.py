"""Shared fixtures: sealed-off caches and tokens, tiny models built in code (seconds on a CPU), a loopback Hub.

Every test runs with the Hugging Face caches and token file under a temporary folder, offline, with no token in
its environment and no progress bars, so nothing reaches the network, the user's real cache or login
(``~/.cache/huggingface/token``), or the test output. Helpers that are plain functions live in ``tests/fixtures/``
(``fixtures.cli``: the in-process CLI runner and argument lists; ``fixtures.images``: random images and PNGs).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

# Progress bars off. tqdm reads TQDM_* once, when it is first imported, and torch imports it: so this is set before
# the imports below, for this process and every process a test starts. A bar that passes ``disable=`` itself (the
# CLI's --no-progress) still decides for itself.
os.environ["TQDM_DISABLE"] = "1"

import pytest  # noqa: E402  (after TQDM_DISABLE)
import torch  # noqa: E402

NUM_CLASSES = 4

# Every variable a Hugging Face client reads a token from (huggingface_hub's get_token: OIDC first, then HF_TOKEN,
# then HUGGING_FACE_HUB_TOKEN; scoremix-ds redacts the same two). The token FILE is sealed by HF_TOKEN_PATH below.
TOKEN_VARIABLES = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE", "HF_OIDC_ID_TOKEN")
# huggingface_hub and datasets read theirs when first imported too, but then refuse enable_progress_bars() (which a
# test of the build's progress-bar hygiene calls): in this process they are switched off by function in the fixture
# below, and these variables are set for the processes a test starts only after both are imported here.
HF_NO_PROGRESS = {"HF_HUB_DISABLE_PROGRESS_BARS": "1", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"}


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


def seal_hf_env(mp: pytest.MonkeyPatch, home: Path) -> None:
    """No token, no real cache or login, no progress bars, with ``home`` as the Hugging Face home: in the environment
    (for the processes a test starts) and in huggingface_hub's and datasets' settings, which they read from the
    environment once, when first imported (the test modules import them before any fixture runs)."""
    for name in TOKEN_VARIABLES:
        mp.delenv(name, raising=False)
    mp.setenv("HF_HOME", str(home))
    mp.setenv("HF_TOKEN_PATH", str(home / "token"))  # never written: a login here is an empty one
    mp.setenv("HF_DATASETS_CACHE", str(home / "datasets"))
    mp.setenv("HF_HUB_OFFLINE", "1")
    mp.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    mp.setenv("SCOREMIX_CACHE", str(home / "scoremix-ds"))  # the class-centre cache: never the user's ~/.cache
    mp.delenv("SCOREMIX_NO_CACHE", raising=False)
    mp.setenv("TQDM_DISABLE", "1")
    import datasets
    import huggingface_hub
    from huggingface_hub import constants

    for name, value in HF_NO_PROGRESS.items():  # after the imports above: see HF_NO_PROGRESS
        mp.setenv(name, value)
    for name, path in (("HF_HOME", home), ("HF_HUB_CACHE", home / "hub"), ("HF_ASSETS_CACHE", home / "assets"),
                       ("HF_XET_CACHE", home / "xet"), ("HF_TOKEN_PATH", home / "token"),
                       ("HF_STORED_TOKENS_PATH", home / "stored_tokens")):
        mp.setattr(constants, name, str(path))
    mp.setattr(datasets.config, "HF_DATASETS_CACHE", home / "datasets")
    datasets.disable_progress_bars()
    huggingface_hub.utils.disable_progress_bars()


@pytest.fixture(scope="session", autouse=True)
def _sealed_hf_session(tmp_path_factory):
    """The seal for the whole session: module- and session-scoped fixtures (tiny builds made once per module) are
    set up before any test's own fixtures, so they are sealed here."""
    with pytest.MonkeyPatch.context() as mp:
        seal_hf_env(mp, tmp_path_factory.mktemp("hf_home_session"))
        yield


@pytest.fixture(autouse=True)
def _sealed_hf_env(tmp_path_factory, monkeypatch):
    """The seal again for each test, with a Hugging Face home of its own."""
    seal_hf_env(monkeypatch, tmp_path_factory.mktemp("hf_home"))


@pytest.fixture
def models(tiny_generator_dir, tiny_discriminator_dir, tiny_real_data_dir) -> list[str]:
    """The tiny generator, discriminator and real data below as ``--generator G --discriminator D --real-data R``."""
    from fixtures.cli import model_args  # imports the CLI: not before the environment above is set

    return model_args(tiny_generator_dir, tiny_discriminator_dir, tiny_real_data_dir)


@pytest.fixture
def hub_options() -> dict:
    """Keyword arguments of the ``hub`` fixture's LoopbackHub; a test module overrides this fixture to change them
    (``page_size``, ``tokens``)."""
    return {}


@pytest.fixture
def hub(hub_options):
    """A LoopbackHub (``fixtures/hub_server.py``) serving on a loopback port for the test, stopped after it."""
    from fixtures.hub_server import LoopbackHub

    with LoopbackHub(**hub_options) as server:
        yield server


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


TINY_META = {"num_classes": NUM_CLASSES, "null_class": NUM_CLASSES, "class_names": ["a", "b", "c", "d"],
             "image_size": 8, "channels": 1}


def write_tiny_generator(root: Path) -> Path:
    """A 4-class pixel-space UNet generator (8x8, 1 channel) with a null class for guidance, written at ``root``."""
    return save_generator(root, tiny_unet(), meta=TINY_META)


def write_tiny_discriminator(root: Path) -> Path:
    """A SmallCNN discriminator (8x8 grey in, 16-d out), saved at ``root``."""
    from scoremix_ds.discriminators.loading import SmallCNN

    torch.manual_seed(0)
    SmallCNN(in_channels=1, image_size=8, embedding_dim=16).save_pretrained(root)
    return root


def write_tiny_real_data(root: Path) -> Path:
    """A real ``datasets`` parquet folder at ``root``: 4 classes x 6 images of 8x8 with distinct mean brightness."""
    import datasets
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    images = [Image.fromarray(np.clip(rng.normal(40 + 60 * c, 20, size=(8, 8)), 0, 255).astype("uint8"), mode="L")
              for c in range(NUM_CLASSES) for _ in range(6)]
    labels = [c for c in range(NUM_CLASSES) for _ in range(6)]
    feats = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["a", "b", "c", "d"])})
    (root / "data").mkdir(parents=True)
    datasets.Dataset.from_dict({"image": images, "label": labels}, features=feats).to_parquet(
        str(root / "data" / "train-00000.parquet"))
    return root


@pytest.fixture
def tiny_generator_dir(tmp_path) -> Path:
    """:func:`write_tiny_generator` in the test's folder."""
    return write_tiny_generator(tmp_path / "tiny-gen")


@pytest.fixture
def tiny_generator(tiny_generator_dir):
    from scoremix_ds.generators.loading import load_generator

    return load_generator(str(tiny_generator_dir))


@pytest.fixture
def tiny_discriminator_dir(tmp_path) -> Path:
    """:func:`write_tiny_discriminator` in the test's folder."""
    return write_tiny_discriminator(tmp_path / "tiny-disc")


@pytest.fixture
def tiny_real_data_dir(tmp_path) -> Path:
    """:func:`write_tiny_real_data` in the test's folder."""
    return write_tiny_real_data(tmp_path / "tiny-real")
