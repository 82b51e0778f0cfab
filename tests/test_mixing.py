"""The mixing rule (maths/mixing.py) against hand-computed numbers: mix, guide, weight validation, schedules."""

from __future__ import annotations

import math

import pytest
import torch

from scoremix_ds.core.errors import ConfigError
from scoremix_ds.maths.mixing import WeightSchedule, guide, mix, validate_weights
from scoremix_ds.synthesis.config import BuildConfig

from hints import as_build_prints


# --- mix -------------------------------------------------------------------------------------------------------


def test_mix_k2_hand_computed():
    # outputs (K=2, B=2, 2): condition-major.
    outputs = torch.tensor([[[1.0, 2.0], [10.0, 20.0]],
                            [[3.0, 6.0], [30.0, 60.0]]])
    weights = torch.tensor([[0.5, 0.5], [0.25, 0.75]])  # per-sample weights
    expected = torch.tensor([[0.5 * 1 + 0.5 * 3, 0.5 * 2 + 0.5 * 6],
                             [0.25 * 10 + 0.75 * 30, 0.25 * 20 + 0.75 * 60]])  # [[2, 4], [25, 50]]
    torch.testing.assert_close(mix(outputs, weights), expected)


def test_mix_k3_per_sample_weights_image_shaped():
    # K=3, B=2, images (1, 1, 2): sample 0 takes (0.2, 0.3, 0.5), sample 1 takes (1, 0, 0).
    outputs = torch.tensor([
        [[[[1.0, -1.0]]], [[[7.0, 8.0]]]],
        [[[[2.0, 0.0]]], [[[100.0, 100.0]]]],
        [[[[4.0, 10.0]]], [[[-5.0, 3.0]]]],
    ])
    assert outputs.shape == (3, 2, 1, 1, 2)
    weights = torch.tensor([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0]])
    out = mix(outputs, weights)
    assert out.shape == (2, 1, 1, 2)
    # sample 0: 0.2*1 + 0.3*2 + 0.5*4 = 2.8 ; 0.2*-1 + 0.3*0 + 0.5*10 = 4.8
    torch.testing.assert_close(out[0, 0, 0], torch.tensor([2.8, 4.8]))
    # sample 1: exactly the first condition
    assert torch.equal(out[1], outputs[0, 1])


def test_mix_one_hot_is_exact_and_double_weights_are_cast():
    outputs = torch.randn(2, 3, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    w = torch.tensor([[1.0, 0.0]] * 3, dtype=torch.float64)
    out = mix(outputs, w)
    assert out.dtype == torch.float32
    assert torch.equal(out, outputs[0])


# --- guide -----------------------------------------------------------------------------------------------------


def test_guide_formula():
    cond = torch.tensor([1.0, 2.0, -3.0])
    base = torch.tensor([0.5, 2.0, 1.0])
    # base + g (cond - base), g = 3
    torch.testing.assert_close(guide(cond, base, 3.0), torch.tensor([0.5 + 3 * 0.5, 2.0, 1.0 + 3 * -4.0]))
    # g = 0 -> base ; g = 1 -> cond (identity, returned as is)
    torch.testing.assert_close(guide(cond, base, 0.0), base)
    assert guide(cond, base, 1.0) is cond


def test_guide_then_mix_equals_mix_then_guide():
    """By linearity, guiding each condition then mixing equals guiding the mix."""
    g = torch.Generator().manual_seed(1)
    cond, base = torch.randn(2, 3, 5, generator=g), torch.randn(2, 3, 5, generator=g)
    w = torch.tensor([[0.3, 0.7]] * 3)
    lhs = mix(guide(cond, base, 2.5), w)
    rhs = guide(mix(cond, w), mix(base, w), 2.5)
    torch.testing.assert_close(lhs, rhs)


# --- validate_weights ------------------------------------------------------------------------------------------


def _mentions(err: ConfigError, *words: str) -> bool:
    text = str(err)  # message + hint
    return any(w in text for w in words)


@pytest.mark.parametrize(
    ("weights", "k", "flags"),
    [
        ((-0.5, 1.5), 2, ("--allow-nonconvex",)),  # negative
        ((0.5, 0.5, 0.0), 2, ("--weights",)),  # wrong count
        ((0.5,), 2, ("--weights",)),  # wrong count
        ((0.4, 0.4), 2, ("--allow-nonconvex",)),  # sums to 0.8
        ((0.7, 0.7), 2, ("--allow-nonconvex",)),  # sums to 1.4
        ((math.nan, 1.0), 2, ("--weights",)),  # NaN
        ((math.inf, 0.0), 2, ("--weights",)),  # inf
    ],
)
def test_validate_weights_refusals(weights, k, flags):
    with pytest.raises(ConfigError) as info:
        validate_weights(weights, k)
    assert _mentions(as_build_prints(info.value), *flags), str(as_build_prints(info.value))
    assert info.value.hint  # every refusal says how to fix it


def test_validate_weights_nonconvex_messages_name_both_flags():
    with pytest.raises(ConfigError) as info:
        validate_weights((0.4, 0.4), 2)
    shown = as_build_prints(info.value)
    assert "--weights" in shown.message and "--allow-nonconvex" in shown.hint


def test_validate_weights_accepts_convex_and_returns_floats():
    assert validate_weights([0.5, 0.5], 2) == (0.5, 0.5)
    assert validate_weights((1, 0), 2) == (1.0, 0.0)
    assert validate_weights((0.2, 0.3, 0.5), 3) == (0.2, 0.3, 0.5)
    assert validate_weights((0.1, 0.2, 0.7), 3) == (0.1, 0.2, 0.7)  # sums to 1 only up to float rounding
    assert all(type(x) is float for x in validate_weights((1, 0), 2))


def test_validate_weights_allow_nonconvex():
    assert validate_weights((0.7, 0.7), 2, allow_nonconvex=True) == (0.7, 0.7)
    assert validate_weights((-0.5, 1.5), 2, allow_nonconvex=True) == (-0.5, 1.5)
    # the count and finiteness are still checked
    with pytest.raises(ConfigError):
        validate_weights((0.5,), 2, allow_nonconvex=True)
    with pytest.raises(ConfigError):
        validate_weights((math.nan, 1.0), 2, allow_nonconvex=True)


# --- WeightSchedule --------------------------------------------------------------------------------------------


def test_constant_schedule_returns_weights_everywhere():
    w = torch.tensor([[0.3, 0.7], [0.5, 0.5]])
    s = WeightSchedule()
    for p in (0.0, 0.5, 0.99):
        assert torch.equal(s(w, p), w)


def test_window_schedule_inside_and_outside():
    w = torch.tensor([[0.3, 0.7], [0.5, 0.5]])
    s = WeightSchedule("window", 0.2, 0.6)
    one_hot = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    for p in (0.2, 0.4, 0.59):  # start inclusive
        assert torch.equal(s(w, p), w), p
    for p in (0.0, 0.19, 0.6, 0.9):  # end exclusive
        assert torch.equal(s(w, p), one_hot), p
    assert torch.equal(w, torch.tensor([[0.3, 0.7], [0.5, 0.5]]))  # input not modified


def test_window_schedule_k3_one_hot_first():
    w = torch.tensor([[0.2, 0.3, 0.5]])
    assert torch.equal(WeightSchedule("window", 0.5, 1.0)(w, 0.1), torch.tensor([[1.0, 0.0, 0.0]]))


@pytest.mark.parametrize(("start", "end"), [(0.6, 0.2), (0.5, 0.5), (-0.1, 0.5), (0.2, 1.5)])
def test_invalid_window_refused(start, end):
    with pytest.raises(ConfigError) as info:
        WeightSchedule("window", start, end)
    assert "--window-start" in as_build_prints(info.value).hint


def test_unknown_schedule_refused():
    with pytest.raises(ConfigError) as info:
        WeightSchedule("cosine")
    assert "--weight-schedule" in as_build_prints(info.value).hint


def test_a_build_samples_with_the_schedule_its_config_fields_name():
    assert BuildConfig().schedule == WeightSchedule()  # constant: the given weights at every step
    schedule = BuildConfig(weight_schedule="window", window_start=0.2, window_end=0.6).schedule
    assert schedule == WeightSchedule("window", 0.2, 0.6)
    w = torch.tensor([[0.3, 0.7]])
    assert torch.equal(schedule(w, 0.4), w) and torch.equal(schedule(w, 0.7), torch.tensor([[1.0, 0.0]]))
