"""The training mixture: label namespaces, the synthetic:real sampler (ratio, determinism, resume), preprocessing."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from scoremix_ds.training.mixture import MixtureDataset, make_loader
from scoremix_ds.sources.preprocess import PreprocessConfig, preprocess, resize_uint8
from scoremix_ds.training.batching import MixtureBatchSampler
from scoremix_ds.sources.source import ArraySource, SourceInfo
from scoremix_ds.core.errors import ConfigError


def array_source(name: str, labels: list[int], num_classes: int, size: int = 8, base: int = 0) -> ArraySource:
    """Row i is the constant image ``base + i`` (so a batch can be traced back to its rows)."""
    images = np.stack([np.full((size, size, 3), base + i, np.uint8) for i in range(len(labels))])
    info = SourceInfo(location=name, kind="builtin", revision=None, commit=None, config=None, split=None,
                      num_rows=len(labels), num_classes=num_classes,
                      class_names=tuple(f"{name}-{c}" for c in range(num_classes)), image_column=None,
                      label_column=None, mode="RGB", size=(size, size), skipped=0, licence="x", provenance=f"{name}@1")
    return ArraySource(images, np.asarray(labels, dtype=np.int64), info)


def test_real_and_synthetic_labels_never_collide():
    real_a = array_source("real-a", [0, 3, 4], 5)
    real_b = array_source("real-b", [1], 2, base=50)
    syn = array_source("syn", [3, 0], 4, base=100)
    ds = MixtureDataset([real_a, real_b], [syn], PreprocessConfig(size=8, channels=3, flip=False))
    space = ds.label_space
    assert (space.num_real_classes, space.num_synthetic_classes, space.num_classes) == (7, 4, 11)
    assert ds.num_real == 4 and ds.num_synthetic == 2
    _, labels = ds.gather(np.arange(6))
    # rows: real-a (labels 0, 3, 4 at offset 0), real-b (1 at offset 5), syn (3, 0 at offset 7)
    assert labels.tolist() == [0, 3, 4, 6, 10, 7]
    assert ds[1][1] != ds[4][1]  # real class 3 and synthetic class 3: different identities
    assert space.name(10) == "synthetic:syn-3" and space.name(3) == "real:real-a-3"
    assert space.to_dict() == {
        "num_classes": 11, "real_classes": [0, 7], "synthetic_classes": [7, 11],
        "sources": [{"role": "real", "source": "real-a@1", "labels": [0, 5]},
                    {"role": "real", "source": "real-b@1", "labels": [5, 7]},
                    {"role": "synthetic", "source": "syn@1", "labels": [7, 11]}],
    }


@pytest.mark.parametrize("ratio, batch, per_batch", [(3.0, 8, {6}), (0.5, 5, {1, 2}), (1.0, 7, {3, 4})])
def test_ratio_holds_per_batch_and_exactly_over_many(ratio, batch, per_batch):
    num_real, steps = 37, 300
    sampler = MixtureBatchSampler(num_real, 53, batch, ratio, seed=3, num_steps=steps)
    counts = [sum(i >= num_real for i, _ in b) for b in sampler]
    assert set(counts) == per_batch
    expected = steps * batch * ratio / (1 + ratio)
    assert abs(sum(counts) - expected) <= 1  # r synthetic draws per real draw, to within one draw
    assert math.isclose(sum(counts) / (steps * batch - sum(counts)), ratio, rel_tol=0.01)


def test_pools_without_the_other_and_bad_ratios():
    only_real = MixtureBatchSampler(10, 0, 4, ratio=2.0, num_steps=5)
    assert all(i < 10 for b in only_real for i, _ in b)
    only_syn = MixtureBatchSampler(10, 6, 4, ratio=math.inf, num_steps=5)
    assert all(i >= 10 for b in only_syn for i, _ in b)
    assert only_syn.steps_per_epoch == 2  # one pass over the 6 synthetic rows at 4 per step
    for bad in (-1.0, float("nan")):
        with pytest.raises(ConfigError, match="ratio"):
            MixtureBatchSampler(10, 6, 4, ratio=bad)
    with pytest.raises(ConfigError, match="no rows"):
        MixtureBatchSampler(0, 0, 4, ratio=1.0)


def test_each_pool_is_drawn_without_replacement_per_pass():
    sampler = MixtureBatchSampler(12, 9, 4, ratio=1.0, seed=5)  # 2 real + 2 synthetic per step
    assert sampler.steps_per_epoch == 6 and len(sampler) == 6
    batches = list(sampler)
    real = sorted(i for b in batches for i, _ in b if i < 12)
    assert real == list(range(12))  # one epoch: every real row exactly once
    batches = list(MixtureBatchSampler(12, 9, 4, ratio=1.0, seed=5, num_steps=9))  # 18 synthetic draws: 2 passes
    syn = np.bincount([i - 12 for b in batches for i, _ in b if i >= 12])
    assert syn.tolist() == [2] * 9
    assert len({i for b in batches[:4] for i, _ in b if i >= 12}) == 8  # within a pass no row repeats


def test_deterministic_and_resumes_exactly():
    def run(start: int, steps: int, seed: int = 11) -> list:
        return list(MixtureBatchSampler(23, 41, 6, ratio=1.5, seed=seed, start_step=start, num_steps=steps))

    full = run(0, 30)
    assert full == run(0, 30)  # same seed, fresh sampler: same batches and flips
    for k in (1, 7, 17, 29):
        assert run(k, 30 - k) == full[k:]  # resumed at step k == the tail of the uninterrupted run
    assert run(0, 30, seed=12) != full
    flips = [f for b in full for _, f in b]
    assert 0.35 < np.mean(flips) < 0.65  # about half flipped
    assert not any(f for b in MixtureBatchSampler(23, 41, 6, 1.5, flip=False, num_steps=5) for _, f in b)


def test_ranks_split_the_global_batch():
    world = [MixtureBatchSampler(20, 30, 4, 2.0, seed=1, rank=r, world_size=3, num_steps=4) for r in range(3)]
    reference = MixtureBatchSampler(20, 30, 12, 2.0, seed=1, num_steps=4)  # same global batch on one rank
    for step in range(4):
        rows, flips = reference.global_batch_at(step)
        parts = [w.batch_at(step) for w in world]
        np.testing.assert_array_equal(np.concatenate([p[0] for p in parts]), rows)
        np.testing.assert_array_equal(np.concatenate([p[1] for p in parts]), flips)


def test_preprocess_hand_values():
    sq = np.array([[[[0, 51, 255], [100, 200, 50]], [[255, 255, 255], [10, 10, 10]]]], np.uint8)  # 1x2x2x3
    x = preprocess(sq, size=2, channels=3)
    np.testing.assert_allclose(x[0, :, 0, 0].numpy(), [-1.0, 51 / 127.5 - 1, 1.0])  # (x/255 - 0.5) / 0.5
    grey = preprocess(sq, size=2, channels=1)
    assert grey.shape == (1, 1, 2, 2)
    np.testing.assert_allclose(grey[0, 0, 0, 1].item(), (0.299 * 100 + 0.587 * 200 + 0.114 * 50) / 127.5 - 1, atol=1e-6)
    rgb = preprocess(sq[..., :1], size=2, channels=3)  # one channel repeated
    assert torch.equal(rgb[:, 0], rgb[:, 2])
    flipped = preprocess(np.concatenate([sq, sq]), np.array([True, False]), size=2, channels=3)
    assert torch.equal(flipped[0], preprocess(sq[:, :, ::-1], size=2, channels=3)[0])  # mirrored left-right
    assert torch.equal(flipped[1], x[0])  # the unflagged sample is untouched
    assert sq[0, 0, 0, 1] == 51  # the input is not modified


def test_resize_matches_pil_bilinear():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (1, 24, 20, 3), dtype=np.uint8)
    for size in (8, 31):  # 31: odd margins, so resized rather than padded
        ours = resize_uint8(img, size, 3)[0].astype(int)
        ref = np.asarray(Image.fromarray(img[0]).resize((size, size), Image.Resampling.BILINEAR)).astype(int)
        assert np.abs(ours - ref).max() <= 1  # PIL's antialiased bilinear, to one grey level


def test_small_images_are_centre_padded_like_embed_images():
    from scoremix_ds.maths.image_tensors import to_model_tensor

    img = np.random.default_rng(1).integers(0, 256, (2, 28, 28, 1), dtype=np.uint8)
    padded = resize_uint8(img, 32, 1)
    assert (padded[:, :2] == 0).all() and (padded[:, 2:30, 2:30] == img).all()  # black margins, digit unscaled
    assert torch.equal(preprocess(img, size=32, channels=1), to_model_tensor(img, 32, 1))


def test_batches_cached_or_decoded_per_batch_are_identical():
    real = array_source("r", [0, 1, 2, 0, 1], 3, size=16)
    syn = array_source("s", [0, 1, 1], 2, size=16, base=100)
    cfg = PreprocessConfig(size=8, channels=1, flip=True)
    cached, lazy = MixtureDataset([real], [syn], cfg), MixtureDataset([real], [syn], cfg, cache_bytes=0)
    assert cached.images[0] is not None and lazy.images[0] is None
    sampler = cached.batch_sampler(batch_size=4, ratio=1.0, seed=2, num_steps=3)
    for keys in sampler:
        x, y = cached.__getitems__(keys)
        x2, y2 = lazy.__getitems__(keys)
        assert x.shape == (4, 1, 8, 8) and x.dtype == torch.float32 and y.dtype == torch.int64
        assert torch.equal(x, x2) and torch.equal(y, y2)
        singles = [cached[k] for k in keys]
        assert torch.equal(torch.stack([s[0] for s in singles]), x) and y.tolist() == [s[1] for s in singles]
        for (row, _), value, label in zip(keys, x[:, 0, 0, 0].tolist(), y.tolist()):
            assert value == pytest.approx((row if row < 5 else 100 + row - 5) / 127.5 - 1)  # row traced back
            assert label == (real.labels[row] if row < 5 else 3 + syn.labels[row - 5])


def test_loader_with_workers_gives_the_same_batches():
    ds = MixtureDataset([array_source("r", [0, 1, 2, 3], 4)], [array_source("s", [0, 1], 2, base=9)],
                        PreprocessConfig(size=8))
    plain = list(make_loader(ds, ds.batch_sampler(3, ratio=0.5, seed=4, num_steps=4)))
    workers = list(make_loader(ds, ds.batch_sampler(3, ratio=0.5, seed=4, num_steps=4), num_workers=1))
    assert len(plain) == len(workers) == 4
    for (x, y), (x2, y2) in zip(plain, workers):
        assert torch.equal(x, x2) and torch.equal(y, y2)


def test_uint8_loader_normalised_equals_the_float_loader():
    """The trainer's loader (uint8 NHWC, 1 worker) followed by ``normalise`` gives the float loader's batches bit
    for bit, flips, shifts and channel conversion included."""
    from scoremix_ds.sources.preprocess import normalise

    real, syn = array_source("r", [0, 1, 2, 3], 4, size=12), array_source("s", [0, 1], 2, base=9, size=12)
    rng = np.random.default_rng(0)  # textured images, so that flips and shifts show
    real, syn = (ArraySource(rng.integers(0, 256, s.images.shape, dtype=np.uint8), s.labels, s.info) for s in (real, syn))
    ds = MixtureDataset([real], [syn], PreprocessConfig(size=8, channels=1, flip=True, shift_pixels=2))
    sampler = lambda: ds.batch_sampler(5, ratio=0.5, seed=4, num_steps=4)  # noqa: E731
    floats = list(make_loader(ds, sampler()))
    raw = list(make_loader(ds, sampler(), num_workers=1, uint8=True))
    assert len(floats) == len(raw) == 4
    for (x, y), (u, y2) in zip(floats, raw):
        assert u.dtype == torch.uint8 and u.shape == (5, 8, 8, 1)
        assert torch.equal(normalise(u, 8, 1), x) and torch.equal(y, y2)
