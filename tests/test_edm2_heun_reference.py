"""The sampler's EDM2 images from fixed noise equal an independent Heun implementation (issue 22; the reference in
tests/fixtures/edm2_heun.py):
Karras et al. 2022 Algorithm 1 with S_churn = 0 — Karras sigmas, an Euler step and the 2nd-order correction on
every step but the last — over the EDM2 denoiser called one class at a time (no batching, no shared code with
the sampler), for a plain class, a 0.5/0.5 score mix, an autoguided mix, and an AugGen condition mix."""

from __future__ import annotations

import pytest
import torch

from fixtures.edm2_heun import karras_sigmas, reference_heun
from fixtures.edm2_pickles import tiny_net
from scoremix_ds.generators.edm2.folder import write_edm2_folder
from scoremix_ds.generators.loading import load_generator
from scoremix_ds.sampling.batches import SamplingSettings, sample_batch

STEPS, SMIN, SMAX, RHO = 5, 0.002, 80.0, 7.0


def _reference(main, guide, latents, labels, weights, w):
    """``labels``: per mixed condition k, a (B, L) label batch; D = sum_k weights[k] (Dg_k + w (Dm_k - Dg_k))."""
    ts = karras_sigmas(STEPS, SMIN, SMAX, RHO)

    def denoise(x, t):
        total = 0
        for y, wk in zip(labels, weights):
            sigma = torch.full((x.shape[0],), t, dtype=torch.float64)
            d = main(x, sigma, y).double()
            if guide is not None:
                g = guide(x, sigma, y).double()
                d = g + w * (d - g)
            total = total + wk * d
        return total

    return reference_heun(denoise, latents, ts)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("edm2-ref") / "g"
    return write_edm2_folder(root, tiny_net(11), ["a", "b", "c"], guide=tiny_net(12, model_channels=8,
                             channels_per_head=8), sampler={"steps": STEPS, "sigma_min": SMIN, "sigma_max": SMAX,
                                                             "rho": RHO})


@pytest.mark.parametrize("case", ["plain", "mix", "autoguided-mix", "condition-mix"])
def test_sampler_equals_written_out_heun(folder, case):
    gen = load_generator(str(folder))
    main = tiny_net(11)
    guide = tiny_net(12, model_channels=8, channels_per_head=8)
    latents = torch.randn(2, 1, 16, 16, generator=torch.Generator().manual_seed(5))
    onehot = torch.eye(3)
    if case == "plain":
        classes, weights, w = [[0], [2]], [[1.0], [1.0]], 1.0
        ref = _reference(main, None, latents, [onehot[[0, 2]]], [1.0], 1.0)
    elif case == "condition-mix":
        classes, weights, w = [[0, 1], [0, 1]], [[0.5, 0.5]] * 2, 1.0
        mixed = 0.5 * onehot[[0, 0]] + 0.5 * onehot[[1, 1]]  # AugGen: ONE label vector, w_a e_a + w_b e_b
        ref = _reference(main, None, latents, [mixed], [1.0], 1.0)
    else:
        classes, weights = [[0, 1], [0, 1]], [[0.5, 0.5]] * 2
        w = 1.8 if case == "autoguided-mix" else 1.0
        ref = _reference(main, guide if w != 1.0 else None, latents, [onehot[[0, 0]], onehot[[1, 1]]], [0.5, 0.5], w)
    settings = SamplingSettings(steps=STEPS, guidance=w, scheduler="edm-heun",
                                mixing="condition" if case == "condition-mix" else "score")
    out = sample_batch(gen, settings, classes, weights, [0, 1], noise=(latents, None), return_latents=True)
    assert out.shape == ref.shape
    assert torch.allclose(out.double(), ref, rtol=1e-4, atol=1e-4), (out.double() - ref).abs().max()
    images = sample_batch(gen, settings, classes, weights, [0, 1], noise=(latents, None))
    assert torch.equal(images, out.clamp(-1, 1))  # pixel space: the image is the sample, clipped to [-1, 1]
    if case == "mix":  # not trivially equal: the mix differs from each parent and from the autoguided mix
        alone = _reference(main, None, latents, [onehot[[0, 0]]], [1.0], 1.0)
        assert (alone - ref).abs().max() > 1e-3
