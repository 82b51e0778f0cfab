"""The synthetic:real batch sampler: which rows, flips and translations each step of training draws.

:class:`MixtureBatchSampler` gives, at step ``k``, a global batch of ``G`` draws of which ``S(k+1) - S(k)`` are
synthetic and the rest real, with ``S(k) = floor(k * G * f)``, ``f = r / (1 + r)`` for ``r`` synthetic draws per real
draw (:func:`synthetic_fraction`, exact rational arithmetic; :func:`synthetic_draws_before`), so any run of steps
holds ``r`` synthetic draws per real one to within one draw. Each pool is drawn without replacement, one fresh
permutation per pass over it: the ``d``-th draw of a pool of ``N`` rows is ``perm(seed, pool, d // N)[d % N]``. The
order inside a batch and the horizontal flip of each sample are drawn from ``(seed, step)``, the translation of each
sample (``shift_pixels``) from its own ``(seed, step)`` stream. Everything is a pure function of ``(seed, step)``:
the sampler started at step ``k`` yields exactly the tail of the one started at 0, whatever the worker count.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Iterator

import numpy as np
from torch.utils.data import Sampler

from ..core.errors import ConfigError

# Seed-stream ids: the real pool, the synthetic pool, per-step order and flips, per-step translations.
_REAL, _SYNTHETIC, _BATCH, _SHIFT = 0, 1, 2, 3


def synthetic_fraction(ratio: float, num_real: int, num_synthetic: int) -> Fraction:
    """``f = r / (1 + r)``: the share of synthetic draws (1 when there is no real data, 0 when no synthetic)."""
    if num_real + num_synthetic == 0:
        raise ConfigError("the training mixture has no rows", hint="give `real` and/or `synthetic` data",
                          fields=("real", "synthetic"))
    if not (ratio >= 0):  # also refuses NaN
        raise ConfigError(f"the synthetic:real ratio must be >= 0, got {ratio}", hint="check `synthetic_ratio`",
                          field="synthetic_ratio")
    if num_real == 0:
        return Fraction(1)
    if num_synthetic == 0:
        return Fraction(0)
    if math.isinf(ratio):
        return Fraction(1)
    r = Fraction(ratio).limit_denominator(10_000)
    return r / (1 + r)


def synthetic_draws_before(step: int, global_batch: int, fraction: Fraction) -> int:
    """``S(k) = floor(k * G * f)``: synthetic draws in the steps before ``step``."""
    return (step * global_batch * fraction.numerator) // fraction.denominator


class MixtureBatchSampler(Sampler):
    """Yields, for steps ``start_step .. start_step + num_steps - 1``, this rank's ``[(index, flip), ...]``, or
    ``[(index, flip, dy, dx), ...]`` when ``shift_pixels > 0`` (``dy, dx`` uniform in ``-shift_pixels..shift_pixels``).

    Indices ``0 .. num_real - 1`` are real rows and ``num_real ..`` synthetic rows (as
    :class:`.mixture.MixtureDataset` numbers them). The global batch is ``batch_size * world_size``; rank ``r`` takes
    positions ``r*B .. (r+1)*B - 1``.
    ``num_steps`` defaults to one epoch: :attr:`steps_per_epoch` (one pass over the real pool, or the synthetic pool
    when there is no real data).
    """

    def __init__(self, num_real: int, num_synthetic: int, batch_size: int, ratio: float, seed: int = 0, *,
                 flip: bool = True, shift_pixels: int = 0, start_step: int = 0, num_steps: int | None = None,
                 rank: int = 0, world_size: int = 1) -> None:
        if batch_size <= 0 or world_size <= 0 or not 0 <= rank < world_size or min(start_step, seed, shift_pixels) < 0:
            raise ConfigError("batch_size and world_size must be positive, 0 <= rank < world_size, start_step, seed"
                              " and shift_pixels >= 0", hint="check `batch_size` / `seed`",
                              fields=("batch_size", "seed", "shift_pixels"))
        self.num_real, self.num_synthetic = num_real, num_synthetic
        self.batch_size, self.seed, self.flip, self.shift_pixels = batch_size, seed, flip, shift_pixels
        self.rank, self.world_size = rank, world_size
        self.global_batch = batch_size * world_size
        self.fraction = synthetic_fraction(ratio, num_real, num_synthetic)
        self.start_step = start_step
        self.num_steps = self.steps_per_epoch if num_steps is None else num_steps
        self._perms: dict[tuple[int, int], np.ndarray] = {}

    @property
    def steps_per_epoch(self) -> int:
        """Smallest ``K`` whose first ``K`` steps draw every row of the main pool (real, else synthetic) once."""
        g, f = self.global_batch, self.fraction
        if self.num_real and f < 1:
            pool, share, drawn = self.num_real, 1 - f, self._real_draws_before
        else:
            pool, share, drawn = self.num_synthetic, f, lambda k: synthetic_draws_before(k, g, f)
        k = max(1, math.ceil(pool / (g * share)))
        while drawn(k) < pool:
            k += 1
        return k

    def _real_draws_before(self, step: int) -> int:
        return step * self.global_batch - synthetic_draws_before(step, self.global_batch, self.fraction)

    def _perm(self, pool: int, size: int, epoch: int) -> np.ndarray:
        key = (pool, epoch)
        if key not in self._perms:
            if len(self._perms) >= 4:
                self._perms.pop(next(iter(self._perms)))
            self._perms[key] = np.random.default_rng([self.seed, pool, epoch]).permutation(size)
        return self._perms[key]

    def _draws(self, pool: int, size: int, first: int, count: int) -> np.ndarray:
        """Rows drawn ``first .. first + count - 1`` of a pool, one permutation per pass."""
        out, d = [], first
        while d < first + count:
            epoch, pos = divmod(d, size)
            take = min(size - pos, first + count - d)
            out.append(self._perm(pool, size, epoch)[pos:pos + take])
            d += take
        return np.concatenate(out) if out else np.empty(0, dtype=np.int64)

    def global_batch_at(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """All ranks' draws at ``step``: (row indices int64, flips bool), both of length ``batch_size * world_size``."""
        s0 = synthetic_draws_before(step, self.global_batch, self.fraction)
        n_syn = synthetic_draws_before(step + 1, self.global_batch, self.fraction) - s0
        n_real = self.global_batch - n_syn
        real = self._draws(_REAL, self.num_real, step * self.global_batch - s0, n_real) if n_real else []
        syn = self._draws(_SYNTHETIC, self.num_synthetic, s0, n_syn) + self.num_real if n_syn else []
        rows = np.concatenate([np.asarray(real, dtype=np.int64), np.asarray(syn, dtype=np.int64)])
        rng = np.random.default_rng([self.seed, _BATCH, step])
        rows = rows[rng.permutation(len(rows))]
        flips = rng.random(len(rows)) < 0.5 if self.flip else np.zeros(len(rows), dtype=bool)
        return rows, flips

    def global_shifts_at(self, step: int) -> np.ndarray:
        """All ranks' translations at ``step``: int64 ``(batch_size * world_size, 2)`` rows ``(dy, dx)``, each uniform
        in ``-shift_pixels .. shift_pixels`` from the ``(seed, step)`` stream of its own (zeros when off)."""
        p = self.shift_pixels
        if not p:
            return np.zeros((self.global_batch, 2), dtype=np.int64)
        return np.random.default_rng([self.seed, _SHIFT, step]).integers(-p, p + 1, size=(self.global_batch, 2))

    def _part(self) -> slice:
        return slice(self.rank * self.batch_size, (self.rank + 1) * self.batch_size)

    def batch_at(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """This rank's share of :meth:`global_batch_at`."""
        rows, flips = self.global_batch_at(step)
        return rows[self._part()], flips[self._part()]

    def __iter__(self) -> Iterator[list[tuple]]:
        for step in range(self.start_step, self.start_step + self.num_steps):
            rows, flips = self.batch_at(step)
            if self.shift_pixels:
                shifts = self.global_shifts_at(step)[self._part()].tolist()
                yield [(r, f, dy, dx) for r, f, (dy, dx) in zip(rows.tolist(), flips.tolist(), shifts)]
            else:
                yield list(zip(rows.tolist(), flips.tolist()))

    def __len__(self) -> int:
        return self.num_steps
