"""The open-set benchmark: every pair streamed in chunks gives exactly the ROC's TAR@FAR; rank-1; the spec form."""

from __future__ import annotations

import numpy as np
import pytest

from scoremix_ds.core.errors import ConfigError, DataError
from scoremix_ds.evaluation import OpenSetSet, evaluate, open_set, roc_curve, tar_at_far
from scoremix_ds.evaluation.identification import identification
from scoremix_ds.evaluation.openset import _gallery
from scoremix_ds.evaluation.specs import load_benchmark, parse_benchmark


def _all_pairs(e: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    e = e / np.linalg.norm(e, axis=1, keepdims=True)
    i, j = np.triu_indices(len(e), k=1)
    return np.sum(e[i] * e[j], axis=1), labels[i] == labels[j]


@pytest.mark.parametrize("chunk", [1, 7, 1024])
def test_tar_at_far_equals_the_roc_over_every_pair(chunk):
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(30), 6)
    e = rng.normal(size=(30, 8))[labels] + 0.9 * rng.normal(size=(len(labels), 8))
    fars = (1e-3, 1e-2, 0.05, 0.3)
    scores, same = _all_pairs(e, labels)
    expected = tar_at_far(roc_curve(scores, same), fars)
    got = open_set(e, labels, fars=fars, chunk=chunk)
    assert got.num_genuine == int(same.sum()) and got.num_impostor == int((~same).sum())
    assert got.num_genuine + got.num_impostor == len(labels) * (len(labels) - 1) // 2
    for g, x in zip(got.tar_at_far, expected):
        assert g.far == x.far
        assert g.tar == pytest.approx(x.tar, abs=1e-12)
        assert g.achieved_far == pytest.approx(x.achieved_far, abs=1e-12)
    assert got.genuine_mean == pytest.approx(scores[same].mean(), abs=1e-6)
    assert got.impostor_mean == pytest.approx(scores[~same].mean(), abs=1e-6)


def test_ties_at_the_cut_count_like_the_roc():
    # unit vectors of +-0.5 entries: every score is exactly one of -1, -0.5, 0, 0.5, 1, so the cuts land on ties
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(12), 4)
    e = 0.5 * rng.choice([-1.0, 1.0], size=(len(labels), 4))
    fars = (0.01, 0.1, 0.5, 0.7)
    scores, same = _all_pairs(e, labels)
    expected = tar_at_far(roc_curve(scores, same), fars)
    got = open_set(e, labels, fars=fars, chunk=5)
    assert [g.tar for g in got.tar_at_far] == pytest.approx([x.tar for x in expected], abs=1e-12)


def test_unresolvable_far_is_reported_not_guessed():
    labels = np.repeat(np.arange(3), 2)
    got = open_set(np.eye(3)[labels], labels, fars=(1e-3, 0.5))
    assert got.tar_at_far[0].tar is None and "needs >= 1000 impostor pairs" in got.tar_at_far[0].reason
    assert got.tar_at_far[1].tar == 1.0


def test_rank_one_uses_one_gallery_image_per_identity():
    rng = np.random.default_rng(2)
    labels = np.repeat(np.arange(20), 5)
    e = rng.normal(size=(20, 16))[labels] + 0.8 * rng.normal(size=(100, 16))
    got = open_set(e, labels, seed=3)
    gallery = _gallery(labels, 3)
    assert sorted(labels[gallery]) == list(range(20))
    probe = np.setdiff1d(np.arange(100), gallery)
    want = identification(e[probe], labels[probe], e[gallery], labels[gallery], ranks=(1, 5)).rank_accuracy
    assert got.rank_accuracy == want and 0.0 < got.rank_accuracy[1] <= got.rank_accuracy[5] <= 1.0


def test_too_few_identities_is_one_data_error():
    with pytest.raises(DataError, match="identities"):
        open_set(np.eye(2), np.array([0, 0]))


def test_openset_spec_loads_labelled_data_and_runs_in_evaluate():
    import torch

    from scoremix_ds.discriminators.loading import SmallCNN

    spec = parse_benchmark("openset:mnist-5k-heldout[0-2]")
    assert spec.kind == "openset" and spec.name == "openset:mnist-5k-heldout[0-2]"
    bench = load_benchmark(spec)
    assert isinstance(bench, OpenSetSet) and len(bench.images) == 150
    torch.manual_seed(0)
    result = evaluate(SmallCNN(in_channels=1, image_size=32, embedding_dim=8), [bench], batch_size=64).benchmarks[0]
    assert result.kind == "openset" and result.metrics.num_identities == 3
    assert result.metrics.num_genuine == 3 * 50 * 49 // 2
    assert [t.far for t in result.metrics.tar_at_far] == [1e-6, 1e-5, 1e-4, 1e-3]
    with pytest.raises(ConfigError, match="names no data"):
        parse_benchmark("openset:")
