"""Margin heads against their formulas, computed by hand with ``math`` on 2x3 cosine matrices.

AdaFace: Kim et al., CVPR 2022, and the official github.com/mk-minchul/AdaFace ``head.py`` (``AdaFace.forward``).
"""

from __future__ import annotations

import math

import pytest
import torch

from scoremix_ds.core.errors import ConfigError
from scoremix_ds.maths.margins import (
    HEADS,
    AdaFaceHead,
    ArcFaceHead,
    CosFaceHead,
    adaface_logits,
    adaface_statistics,
    arcface_logits,
    build_head,
    cosface_logits,
)

COS = [[0.8, 0.1, -0.3], [0.2, 0.6, 0.5]]
LABELS = [0, 2]


def cos_t() -> torch.Tensor:
    return torch.tensor(COS, dtype=torch.float64)


def labels_t() -> torch.Tensor:
    return torch.tensor(LABELS)


def test_cosface_subtracts_m_from_the_target_cosine_only():
    out = cosface_logits(cos_t(), labels_t(), scale=2.0, margin=0.35)
    expected = [[2 * (0.8 - 0.35), 2 * 0.1, 2 * -0.3], [2 * 0.2, 2 * 0.6, 2 * (0.5 - 0.35)]]
    assert torch.allclose(out, torch.tensor(expected, dtype=torch.float64), atol=1e-12)


def test_arcface_on_the_2x3_case():
    out = arcface_logits(cos_t(), labels_t(), scale=2.0, margin=0.5)
    expected = [row[:] for row in COS]
    expected[0][0] = math.cos(math.acos(0.8) + 0.5)
    expected[1][2] = math.cos(math.acos(0.5) + 0.5)
    assert torch.allclose(out, 2 * torch.tensor(expected, dtype=torch.float64), atol=1e-12)


def adaface_by_hand(cos, norms, labels, mean, std, s, m, h, eps=1e-3):
    """The AdaFace logits of one 2x3 case, element by element with ``math``."""
    out = []
    for row, norm, label in zip(cos, norms, labels):
        hat = min(max((min(max(norm, 0.001), 100.0) - mean) / (std + eps) * h, -1.0), 1.0)
        g_angle, g_add = -m * hat, m * hat + m
        logits = []
        for j, c in enumerate(row):
            c = min(max(c, -1 + eps), 1 - eps)
            if j == label:
                theta = min(max(math.acos(c) + g_angle, eps), math.pi - eps)
                c = math.cos(theta) - g_add
            logits.append(s * c)
        out.append(logits)
    return torch.tensor(out, dtype=torch.float64)


@pytest.mark.parametrize("norms", [[30.0, 10.0], [20.0, 25.0], [1000.0, 0.0]])
def test_adaface_logits_match_the_formulas(norms):
    norms_t = torch.tensor(norms, dtype=torch.float64)
    out = adaface_logits(cos_t(), norms_t, labels_t(), 20.0, 10.0, scale=3.0, margin=0.4, h=0.333)
    expected = adaface_by_hand(COS, norms, LABELS, 20.0, 10.0, s=3.0, m=0.4, h=0.333)
    assert torch.allclose(out, expected, atol=1e-12)


def test_adaface_interpolates_between_arcface_and_cosface():
    cos, labels = cos_t(), labels_t()
    mean, std = 20.0, 10.0
    # norm == mean: hat = 0, g_angle = 0, g_add = m  ->  CosFace with margin m
    at_mean = adaface_logits(cos, torch.tensor([20.0, 20.0]), labels, mean, std, scale=2.0, margin=0.4)
    assert torch.allclose(at_mean, cosface_logits(cos, labels, scale=2.0, margin=0.4), atol=1e-12)
    # very low norm: hat = -1, g_angle = +m, g_add = 0  ->  ArcFace (theta + m < pi here)
    low = adaface_logits(cos, torch.tensor([0.01, 0.01]), labels, mean, std, scale=2.0, margin=0.4, h=1.0)
    assert torch.allclose(low, arcface_logits(cos, labels, scale=2.0, margin=0.4), atol=1e-12)
    # very high norm: hat = +1, target = cos(theta - m) - 2m
    norms = torch.tensor([90.0, 90.0], dtype=torch.float64)
    high = adaface_logits(cos, norms, labels, mean, std, scale=1.0, margin=0.4, h=1.0)
    assert high[0, 0].item() == pytest.approx(math.cos(math.acos(0.8) - 0.4) - 0.8, abs=1e-12)


def test_adaface_statistics_ema_by_hand():
    norms = torch.tensor([30.0, 10.0, 20.0])  # mean 20, unbiased std 10
    mean, std = adaface_statistics(norms, torch.tensor([20.0]), torch.tensor([100.0]), t_alpha=0.01)
    assert mean.item() == pytest.approx(20.0) and std.item() == pytest.approx(0.01 * 10 + 0.99 * 100)
    mean, std = adaface_statistics(torch.tensor([0.0, 500.0]), torch.tensor([7.0]), torch.tensor([7.0]), t_alpha=1.0)
    # clipped to [0.001, 100]: mean (0.001 + 100) / 2, std |100 - 0.001| / sqrt(2)
    assert mean.item() == pytest.approx(50.0005) and std.item() == pytest.approx(99.999 / math.sqrt(2), rel=1e-6)


def test_adaface_head_takes_raw_embeddings_and_updates_statistics_in_training_only():
    head = AdaFaceHead(num_classes=3, dim=2, scale=2.0, margin=0.4, h=0.333, t_alpha=1.0)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0], [-3.0, 0.0]]))  # normalised: e_x, e_y, -e_x
    emb = torch.tensor([[3.0, 4.0], [0.0, -10.0]])  # norms 5 and 10; unit rows (0.6, 0.8) and (0, -1)
    out = head(emb, torch.tensor([1, 0]))
    assert head.batch_mean.item() == pytest.approx(7.5)  # t_alpha = 1: this batch alone, updated before use
    assert head.batch_std.item() == pytest.approx(5 / math.sqrt(2))
    cos = [[0.6, 0.8, -0.6], [0.0, -1.0, 0.0]]
    expected = adaface_by_hand(cos, [5.0, 10.0], [1, 0], 7.5, 5 / math.sqrt(2), s=2.0, m=0.4, h=0.333)
    assert torch.allclose(out.double(), expected, atol=1e-5)

    head.eval()
    head(torch.tensor([[50.0, 0.0], [60.0, 0.0]]), torch.tensor([0, 0]))
    assert head.batch_mean.item() == pytest.approx(7.5)  # eval: statistics untouched
    head.train()
    head(torch.tensor([[50.0, 0.0]]), torch.tensor([0]))
    assert head.batch_mean.item() == pytest.approx(7.5)  # one row has no std: untouched


def test_adaface_defaults_are_the_official_ones():
    head = AdaFaceHead(num_classes=2, dim=3)
    assert (head.scale, head.margin, head.h, head.t_alpha, head.eps) == (64.0, 0.4, 0.333, 0.01, 1e-3)
    assert head.batch_mean.item() == 20.0 and head.batch_std.item() == 100.0
    assert set(head.state_dict()) == {"weight", "batch_mean", "batch_std"}


def test_ignored_rows_get_no_margin():
    labels = torch.tensor([0, -1])
    for out in (
        arcface_logits(cos_t(), labels, scale=2.0, margin=0.5),
        cosface_logits(cos_t(), labels, scale=2.0, margin=0.5),
        adaface_logits(cos_t(), torch.tensor([5.0, 5.0]), labels, 20.0, 10.0, scale=2.0, margin=0.5),
    ):
        assert torch.allclose(out[1], 2 * cos_t()[1], atol=1e-12)
        assert out[0, 0].item() < 2 * 0.8 - 0.1


@pytest.mark.parametrize("name", ["arcface", "cosface", "adaface"])
def test_heads_share_a_constructor_and_normalise_inputs(name):
    torch.manual_seed(0)
    head = build_head(name, num_classes=5, dim=4, scale=8.0, margin=0.3)
    assert isinstance(head, HEADS[name]) and head.weight.shape == (5, 4)
    emb, labels = torch.randn(3, 4), torch.tensor([0, 4, 2])
    expected_cos = torch.nn.functional.normalize(emb, dim=1) @ torch.nn.functional.normalize(head.weight, dim=1).T
    assert torch.allclose(head.cosine(emb), expected_cos, atol=1e-6)
    head.eval()  # AdaFace: no statistics update, so two calls agree
    logits = head(emb, labels)
    assert logits.shape == (3, 5)
    if name != "adaface":  # only AdaFace looks at the embedding norms
        assert torch.allclose(logits, head(emb * 3.0, labels), atol=1e-5)
    off_target = torch.ones(3, 5, dtype=torch.bool)
    off_target[torch.arange(3), labels] = False
    assert torch.allclose(logits[off_target], 8.0 * expected_cos[off_target].clamp(-1 + 1e-3, 1 - 1e-3), atol=1e-5)
    head.train()
    head(emb, labels).sum().backward()
    assert torch.isfinite(head.weight.grad).all()


def test_registry_defaults_and_unknown_name():
    assert list(HEADS) == ["arcface", "cosface", "adaface"]
    assert HEADS["arcface"] is ArcFaceHead and HEADS["cosface"] is CosFaceHead
    arc, cos = ArcFaceHead(3, 2), CosFaceHead(3, 2)
    assert (arc.scale, arc.margin) == (64.0, 0.5) and (cos.scale, cos.margin) == (64.0, 0.4)
    with pytest.raises(ConfigError, match="unknown head"):
        build_head("sphereface", 3, 2)
