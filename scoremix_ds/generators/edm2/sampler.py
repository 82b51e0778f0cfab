"""EDM's deterministic 2nd-order Heun sampler and the ScoreMix/guidance denoiser it samples, as pure functions
(tensors in, tensors out; no IO, no randomness: the noise comes in as ``latents``).

Owns: :func:`karras_sigmas`, :func:`heun_sample` (:func:`heun_sample_steps`: a denoiser per step) and :func:`mixed_denoiser` (K-way ScoreMix mixing of the denoiser
output, autoguidance or classifier-free guidance, the K classes and the guide evaluated in ONE batched forward per
network).

Facts relied on (Karras et al. 2022 Alg. 1 with S_churn = 0, EDM2/autoguidance papers, issue 22):
sigma_i = (smax^(1/rho) + i/(N-1) (smin^(1/rho) - smax^(1/rho)))^rho for i < N, sigma_N = 0, with smax 80,
smin 0.002, rho 7; x_0 = latents * sigma_0; Euler step with d = (x - D(x; sigma))/sigma, corrected by the average
slope at the next point on every step but the last (2N - 1 evaluations); the state is kept in float64.
ScoreMix mixes the denoiser outputs, sum_k w_k D(x; sigma, c_k); guidance is D_g + w (D_m - D_g). Both are linear,
so mixing before or after guiding agrees when both nets get the same weights.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch

from ...core.errors import ConfigError

Denoise = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
# (x (M, C, H, W), sigma (M,), labels (M, L)) -> D (M, C, H, W)
Network = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def karras_sigmas(num_steps: int = 32, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0,
                  dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The N + 1 noise levels sigma_0 = sigma_max > ... > sigma_{N-1} = sigma_min > sigma_N = 0."""
    if int(num_steps) < 2:
        raise ConfigError(f"the Heun sampler needs at least 2 steps, got {num_steps}", field="num_steps")
    if not 0 < sigma_min < sigma_max:
        raise ConfigError(f"need 0 < sigma_min < sigma_max, got {sigma_min} and {sigma_max}",
                          fields=("sigma_min", "sigma_max"))
    if not rho > 0:
        raise ConfigError(f"need rho > 0 (the Karras spacing exponent, 7 in EDM2), got {rho}", field="rho")
    i = torch.arange(num_steps, dtype=dtype)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    steps = (hi + i / (num_steps - 1) * (lo - hi)) ** rho
    return torch.cat([steps, torch.zeros(1, dtype=dtype)])


def heun_sample(denoise: Denoise, latents: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """Integrate the probability-flow ODE from ``latents * sigmas[0]`` down to sigma = 0. ``denoise(x, sigma)``
    gets x in the sigmas' dtype and sigma as a 0-d tensor; the result is in that dtype too."""
    return heun_sample_steps(lambda _step: denoise, latents, sigmas)


def heun_sample_steps(denoise_at: Callable[[int], Denoise], latents: torch.Tensor, sigmas: torch.Tensor
                      ) -> torch.Tensor:
    """:func:`heun_sample` with the denoiser of step i given by ``denoise_at(i)`` (both evaluations of a step use
    it): mixing weights that vary along the trajectory."""
    dtype = sigmas.dtype
    x = latents.to(dtype) * sigmas[0]
    last = len(sigmas) - 2
    for i, (s_cur, s_next) in enumerate(zip(sigmas[:-1], sigmas[1:])):
        denoise = denoise_at(i)
        slope = (x - denoise(x, s_cur).to(dtype)) / s_cur
        x_next = x + (s_next - s_cur) * slope
        if i < last:
            slope_next = (x_next - denoise(x_next, s_next).to(dtype)) / s_next
            x_next = x + (s_next - s_cur) * (0.5 * slope + 0.5 * slope_next)
        x = x_next
    return x


def _mix(outputs: torch.Tensor, weights: torch.Tensor, batch: int) -> torch.Tensor:
    """(B*K, ...) outputs laid out sample-major -> sum_k w[b, k] D[b, k] of shape (B, ...)."""
    k = weights.shape[1]
    per = outputs.reshape(batch, k, *outputs.shape[1:])
    w = weights.to(per.dtype).reshape(batch, k, *([1] * (per.ndim - 2)))
    return (per * w).sum(dim=1)


def mixed_denoiser(network: Network, labels: torch.Tensor, weights: torch.Tensor,
                   guide: Optional[Network] = None, guidance: float = 1.0,
                   guide_labels: Optional[torch.Tensor] = None) -> Denoise:
    """A ``denoise(x, sigma)`` for :func:`heun_sample` giving, per sample b,
    D_g + w (D_m - D_g) with D_m = sum_k weights[b, k] network(x_b, sigma, labels[b, k]) and D_g the same mix of
    ``guide`` (autoguidance: a weaker net; classifier-free guidance: ``guide=network`` with null
    ``guide_labels``). ``labels`` is (B, K, L) (any float label vectors, so AugGen's w_a e_a + w_b e_b is one
    vector), ``weights`` (B, K) or (K,). Each network runs ONE forward over all B*K rows per call; when the guide is
    the main network, main and guide rows share that one forward."""
    if labels.ndim != 3:
        raise ConfigError(f"labels must be (batch, K, label_dim), got shape {tuple(labels.shape)}", field="labels")
    batch, k = labels.shape[:2]
    weights = torch.as_tensor(weights, dtype=torch.float64)
    weights = weights.expand(batch, k) if weights.ndim == 1 else weights
    if tuple(weights.shape) != (batch, k):
        raise ConfigError(f"weights must be (K,) or (batch, K) = ({batch}, {k}), got {tuple(weights.shape)}",
                          field="weights")
    flat = labels.reshape(batch * k, labels.shape[2])
    flat_guide = flat if guide_labels is None else guide_labels.reshape(batch * k, labels.shape[2])
    guided = guide is not None and guidance != 1.0

    def denoise(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        rows = x.repeat_interleave(k, dim=0)
        sig = torch.as_tensor(sigma, dtype=x.dtype).reshape(-1).expand(rows.shape[0])
        if not guided:
            return _mix(network(rows, sig, flat), weights, batch)
        if guide is network:
            both = network(torch.cat([rows, rows]), torch.cat([sig, sig]), torch.cat([flat, flat_guide]))
            main_out, guide_out = both[: batch * k], both[batch * k:]
        else:
            main_out, guide_out = network(rows, sig, flat), guide(rows, sig, flat_guide)
        d_main, d_guide = _mix(main_out, weights, batch), _mix(guide_out, weights, batch)
        return d_guide + guidance * (d_main - d_guide)

    return denoise
