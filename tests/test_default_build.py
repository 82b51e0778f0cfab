"""Integration: the README's main job on the embedded default generator and discriminator (real MNIST data).

Checks that the shipped models produce recognisable digits and that ScoreMix identities lie between their parents
in the discriminator's embedding space, measured with the embedded discriminator itself.
"""

from __future__ import annotations

import datasets
import numpy as np
import pytest

from scoremix_ds.cli import main
from scoremix_ds.sources.readers import read_mnist_5k
from scoremix_ds.maths.centres import class_centres, l2_normalise
from scoremix_ds.discriminators.loading import embed_images, load_discriminator

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def default_build(tmp_path_factory):
    out = tmp_path_factory.mktemp("default") / "out"
    rc = main(["build", "--strategy", "distant", "--pairs", "10", "--per-identity", "4", "--out", str(out), "--no-progress"])
    assert rc == 0
    return out


@pytest.fixture(scope="module")
def centres():
    disc = load_discriminator()
    real = read_mnist_5k()
    return disc, l2_normalise(class_centres(embed_images(disc, real.images), real.labels, 10))


def _embed(disc, ds) -> np.ndarray:
    images = np.stack([np.asarray(img)[..., None] for img in ds["image"]])
    return embed_images(disc, images)


def test_default_build_has_the_promised_columns_and_counts(default_build):
    mix = datasets.load_dataset(str(default_build), "mix", split="train")
    repro = datasets.load_dataset(str(default_build), "repro", split="train")
    assert len(mix) == 40 and len(repro) == 80 and len(set(mix["identity"])) == 10
    assert mix[0]["image"].size == (32, 32)
    pairs = {tuple(p) for p in mix["parents"]}
    assert len(pairs) == 10 and all(a != b for a, b in pairs)
    # distant pairs: their centre distance is above the median over all 45 pairs
    assert np.mean(mix["embedding_distance"]) > 1.0
    assert "cc-by-sa-3.0" in (default_build / "README.md").read_text()


def test_parent_reproductions_are_recognisable_digits(default_build, centres):
    disc, c = centres
    repro = datasets.load_dataset(str(default_build), "repro", split="train")
    predicted = (_embed(disc, repro) @ c.T).argmax(axis=1)
    accuracy = float(np.mean(predicted == np.asarray(repro["label"])))
    assert accuracy >= 0.85, accuracy  # measured 0.8875 on these 80 images (chance: 0.1)


def test_mixes_lie_between_their_parents(default_build, centres):
    disc, c = centres
    mix = datasets.load_dataset(str(default_build), "mix", split="train")
    sims = _embed(disc, mix) @ c.T
    parents = np.asarray(mix["parents"])
    top2 = np.argsort(-sims, axis=1)[:, :2]
    # a mix is closer to one of its parents than to any other class in most images...
    hit = np.mean([bool(set(t) & set(p)) for t, p in zip(top2, parents)])
    assert hit >= 0.7, hit
    # ...but it is not simply a copy of one parent: on average it is less similar to its nearest parent than a
    # parent's own reproduction is to that parent's centre.
    repro = datasets.load_dataset(str(default_build), "repro", split="train")
    repro_sim = np.mean((_embed(disc, repro) @ c.T)[np.arange(len(repro)), np.asarray(repro["label"])])
    mix_sim = np.mean(np.max(sims[np.arange(len(mix))[:, None], parents], axis=1))
    assert mix_sim < repro_sim - 0.05, (mix_sim, repro_sim)
