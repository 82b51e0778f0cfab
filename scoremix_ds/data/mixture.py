"""Real + synthetic sources as ONE training set: label namespaces, the synthetic:real sampler, face preprocessing.

**Label namespaces.** Real sources come first, then synthetic ones, each offset by the classes before it::

    global label = offset(source) + local label,   offset(s) = sum of num_classes of the sources before s

so real identities are ``0..R-1`` and synthetic ones ``R..R+S-1``: a real class 3 and a synthetic class 3 are two
different identities. :meth:`LabelSpace.to_dict` is that mapping, for the model card.

**Sampling.** :class:`MixtureBatchSampler` gives, at step ``k``, a global batch of ``G`` draws of which
``S(k+1) - S(k)`` are synthetic and the rest real, with ``S(k) = floor(k * G * f)``, ``f = r / (1 + r)`` for ``r``
synthetic draws per real draw (exact rational arithmetic), so any run of steps holds ``r`` synthetic draws per real
one to within one draw. Each pool is drawn without replacement, one fresh permutation per pass over it: the
``d``-th draw of a pool of ``N`` rows is ``perm(seed, pool, d // N)[d % N]``. The order inside a batch and the
horizontal flip of each sample are drawn from ``(seed, step)``, the translation of each sample (``shift_pixels``)
from its own ``(seed, step)`` stream. Everything is a pure function of ``(seed, step)``: the sampler started at step
``k`` yields exactly the tail of the one started at 0, whatever the worker count.

**Preprocessing.** :func:`preprocess` maps uint8 NHWC to float NCHW: optional horizontal flip per sample, optional
translation per sample by ``(dy, dx)`` pixels with black (0) filling the uncovered border, channels
(RGB -> 1 by ITU-R 601 luma ``0.299 R + 0.587 G + 0.114 B``, 1 -> RGB by repetition), bilinear antialiased resize to
``size`` x ``size``, then ``x / 127.5 - 1 = (x / 255 - 0.5) / 0.5`` (insightface's normalisation), in ``[-1, 1]``.

**Cost.** Sources that fit ``cache_bytes`` are decoded once and kept as uint8 already at the input size, so a batch
is one gather plus one vectorised flip-and-normalise. :meth:`MixtureDataset.__getitems__` builds a whole batch;
use :func:`make_loader` (``batch_sampler`` + :func:`collate_batched`), which works with ``num_workers > 0``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ..errors import ConfigError
from .sources import Source, SourceInfo, SourceSpec, open_source
from .transforms import fit_size, to_channels

logger = logging.getLogger(__name__)

# Seed-stream ids: the real pool, the synthetic pool, per-step order and flips, per-step translations.
_REAL, _SYNTHETIC, _BATCH, _SHIFT = 0, 1, 2, 3


@dataclass(frozen=True)
class PreprocessConfig:
    size: int = 112  # insightface's aligned face crops are 112x112
    channels: int = 3  # 3: RGB; 1: grey (digits, or a grey-level model)
    flip: bool = True  # random horizontal flips: right for faces, wrong for digits
    shift_pixels: int = 0  # random translation of up to this many pixels per axis (cheap augmentation for digits)

    def __post_init__(self) -> None:
        if self.size <= 0:
            raise ConfigError(f"input size must be positive, got {self.size}", hint="check --image-size")
        if not 0 <= self.shift_pixels < self.size:
            raise ConfigError(f"shift_pixels must be in [0, {self.size}), got {self.shift_pixels}",
                              hint="check shift_pixels in the recipe")
        if self.channels not in (1, 3):
            raise ConfigError(f"channels must be 1 or 3, got {self.channels}", hint="check --channels")


# ------------------------------------------------------------------------------------------ preprocessing (pure)


def _uint8_tensor(x: np.ndarray) -> torch.Tensor:
    """A tensor on ``x``'s memory when it is contiguous and writable (torch refuses read-only arrays), else a copy."""
    x = np.ascontiguousarray(x)
    return torch.from_numpy(x if x.flags.writeable else x.copy())


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """float NCHW in 0..255 -> ``size``: the same pad-or-resize rule as ``embed_images`` (black margins)."""
    return fit_size(x, size, fill=0.0)


def shift_images(images: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """Translate each image of ``(N, H, W, C)`` by ``shifts[i] = (dy, dx)`` pixels (down, right), filling with 0.

    ``out[i, y, x] = images[i, y - dy, x - dx]`` where that pixel exists, else 0 (black background). One slice copy
    per image (a fancy-index gather is ~100x slower at 112x112 RGB); a new array (the input is never modified).

    >>> shift_images(np.arange(1, 5, dtype=np.uint8).reshape(1, 2, 2, 1), np.array([[0, 1]]))[0, :, :, 0].tolist()
    [[0, 1], [0, 3]]
    """
    n, h, w = images.shape[:3]
    out = np.zeros_like(images)
    for i, (dy, dx) in enumerate(np.asarray(shifts, dtype=np.int64).reshape(n, 2).tolist()):
        if abs(dy) < h and abs(dx) < w:  # else nothing of the image is left
            out[i, max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
                images[i, max(-dy, 0):h - max(dy, 0), max(-dx, 0):w - max(dx, 0)]
    return out


def preprocess(images: np.ndarray | torch.Tensor, flips: np.ndarray | torch.Tensor | None = None, size: int = 112,
               channels: int = 3, shifts: np.ndarray | None = None) -> torch.Tensor:
    """uint8 ``(N, H, W, C)`` -> float32 ``(N, channels, size, size)`` in [-1, 1]; ``flips[i]`` mirrors image i, then
    ``shifts[i] = (dy, dx)`` translates it (:func:`shift_images`, in pixels of the input images).

    >>> preprocess(np.full((1, 2, 2, 1), 255, np.uint8), size=2, channels=3).flatten().tolist()
    [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    """
    x = images.numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if flips is not None:
        f = np.asarray(flips, dtype=bool)
        if f.any():
            x = x.copy()  # never modify the caller's (possibly cached) array
            x[f] = x[f][:, :, ::-1]  # NHWC: axis 2 is the width
    if shifts is not None and np.any(shifts):
        x = shift_images(x, shifts)
    t = _uint8_tensor(x.transpose(0, 3, 1, 2))  # uint8 NCHW: cheap to lay out
    t = to_channels(t.float(), channels)
    return _resize(t, size).div_(127.5).sub_(1.0)


def resize_uint8(images: np.ndarray, size: int, channels: int, chunk: int = 512) -> np.ndarray:
    """uint8 NHWC -> uint8 ``(N, size, size, channels)``: :func:`preprocess`'s channel rule and resize, rounded.

    Returns ``images`` itself when they already have that shape.
    """
    if images.shape[1:] == (size, size, channels):
        return images
    out = np.empty((len(images), size, size, channels), dtype=np.uint8)
    for a in range(0, len(images), chunk):
        x = _uint8_tensor(images[a:a + chunk]).permute(0, 3, 1, 2).float()
        x = _resize(to_channels(x, channels), size).round_().clamp_(0, 255)
        out[a:a + chunk] = x.to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return out


# -------------------------------------------------------------------------------------------- label namespaces


@dataclass(frozen=True)
class LabelBlock:
    """One source's classes in the global label space: ``offset .. offset + num_classes - 1``."""

    role: str  # "real" or "synthetic"
    source: str  # the source's provenance line
    offset: int
    num_classes: int
    class_names: tuple[str, ...]


@dataclass(frozen=True)
class LabelSpace:
    blocks: tuple[LabelBlock, ...]

    @property
    def num_classes(self) -> int:
        return sum(b.num_classes for b in self.blocks)

    @property
    def num_real_classes(self) -> int:
        return sum(b.num_classes for b in self.blocks if b.role == "real")

    @property
    def num_synthetic_classes(self) -> int:
        return sum(b.num_classes for b in self.blocks if b.role == "synthetic")

    def locate(self, label: int) -> tuple[LabelBlock, int]:
        """Global label -> (its block, the label inside its source)."""
        for block in self.blocks:
            if block.offset <= label < block.offset + block.num_classes:
                return block, label - block.offset
        raise IndexError(f"label {label} outside 0..{self.num_classes - 1}")

    def name(self, label: int) -> str:
        """``role:source-class-name`` of a global label."""
        block, local = self.locate(label)
        return f"{block.role}:{block.class_names[local]}"

    def to_dict(self) -> dict[str, Any]:
        """The mapping for a model card (class names left out: there can be millions)."""
        return {
            "num_classes": self.num_classes,
            "real_classes": [0, self.num_real_classes],
            "synthetic_classes": [self.num_real_classes, self.num_classes],
            "sources": [{"role": b.role, "source": b.source, "labels": [b.offset, b.offset + b.num_classes]}
                        for b in self.blocks],
        }


def label_space(real: Sequence[SourceInfo], synthetic: Sequence[SourceInfo]) -> LabelSpace:
    """Real sources first, then synthetic, each offset by the classes of the sources before it."""
    blocks, offset = [], 0
    for role, infos in (("real", real), ("synthetic", synthetic)):
        for info in infos:
            blocks.append(LabelBlock(role, info.provenance, offset, info.num_classes, info.class_names))
            offset += info.num_classes
    return LabelSpace(tuple(blocks))


# ------------------------------------------------------------------------------------------------- the sampler


def synthetic_fraction(ratio: float, num_real: int, num_synthetic: int) -> Fraction:
    """``f = r / (1 + r)``: the share of synthetic draws (1 when there is no real data, 0 when no synthetic)."""
    if num_real + num_synthetic == 0:
        raise ConfigError("the training mixture has no rows", hint="pass --real and/or --synthetic")
    if not (ratio >= 0):  # also refuses NaN
        raise ConfigError(f"the synthetic:real ratio must be >= 0, got {ratio}", hint="check --synthetic-ratio")
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

    Indices ``0 .. num_real - 1`` are real rows and ``num_real ..`` synthetic rows (as :class:`MixtureDataset` numbers
    them). The global batch is ``batch_size * world_size``; rank ``r`` takes positions ``r*B .. (r+1)*B - 1``.
    ``num_steps`` defaults to one epoch: :attr:`steps_per_epoch` (one pass over the real pool, or the synthetic pool
    when there is no real data).
    """

    def __init__(self, num_real: int, num_synthetic: int, batch_size: int, ratio: float, seed: int = 0, *,
                 flip: bool = True, shift_pixels: int = 0, start_step: int = 0, num_steps: int | None = None,
                 rank: int = 0, world_size: int = 1) -> None:
        if batch_size <= 0 or world_size <= 0 or not 0 <= rank < world_size or min(start_step, seed, shift_pixels) < 0:
            raise ConfigError("batch_size and world_size must be positive, 0 <= rank < world_size, start_step, seed"
                              " and shift_pixels >= 0", hint="check --batch-size / --seed")
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


# ------------------------------------------------------------------------------------------------- the dataset


class MixtureDataset(Dataset):
    """Rows ``0 .. num_real - 1`` from the real sources, then the synthetic ones; labels in :attr:`label_space`.

    ``dataset[i]``, ``dataset[(i, flip)]`` or ``dataset[(i, flip, dy, dx)]`` -> ``(float CHW, global label)``;
    ``dataset.__getitems__([(i, flip), ...])`` -> ``(float NCHW, int64 labels)`` for a whole batch.
    """

    def __init__(self, real: Sequence[Source], synthetic: Sequence[Source] = (),
                 preprocess_config: PreprocessConfig = PreprocessConfig(), cache_bytes: int = 4 << 30,
                 progress: bool = False) -> None:
        self.config = preprocess_config
        self.sources = [*real, *synthetic]
        self.label_space = label_space([s.info for s in real], [s.info for s in synthetic])
        self.num_real, self.num_synthetic = sum(map(len, real)), sum(map(len, synthetic))
        self.starts = np.cumsum([0] + [len(s) for s in self.sources])
        self.offsets = [b.offset for b in self.label_space.blocks]
        size, channels = self.config.size, self.config.channels
        self.images: list[np.ndarray | None] = []
        self.labels: list[np.ndarray | None] = []
        budget = cache_bytes
        for src in self.sources:
            need = len(src) * size * size * channels
            if need <= budget:
                images, labels = src.load_all(progress)
                self.images.append(resize_uint8(images, size, channels))
                self.labels.append(np.asarray(labels, dtype=np.int64))
                budget -= need
            else:
                logger.info("%s (%d rows) exceeds the cache budget: decoded per batch", src.info.location, len(src))
                self.images.append(None)
                self.labels.append(None)

    def __len__(self) -> int:
        return int(self.starts[-1])

    def batch_sampler(self, batch_size: int, ratio: float, seed: int = 0, **kwargs) -> MixtureBatchSampler:
        """A :class:`MixtureBatchSampler` for this dataset's pools, flipping and shifting as the preprocessing config
        says."""
        return MixtureBatchSampler(self.num_real, self.num_synthetic, batch_size, ratio, seed, flip=self.config.flip,
                                   shift_pixels=self.config.shift_pixels, **kwargs)

    def gather(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rows -> uint8 ``(N, size, size, channels)`` and global int64 labels."""
        size, channels = self.config.size, self.config.channels
        rows = np.asarray(rows, dtype=np.int64)
        if len(rows) and (rows.min() < 0 or rows.max() >= len(self)):
            raise IndexError(f"rows outside 0..{len(self) - 1}")
        which = np.searchsorted(self.starts, rows, side="right") - 1
        images = np.empty((len(rows), size, size, channels), dtype=np.uint8)
        labels = np.empty(len(rows), dtype=np.int64)
        for s in np.unique(which):
            mask = which == s
            local = rows[mask] - self.starts[s]
            if self.images[s] is not None:
                images[mask], labels[mask] = self.images[s][local], self.labels[s][local]
            else:
                pairs = [self.sources[s][int(j)] for j in local]
                images[mask] = np.stack([resize_uint8(im[None], size, channels)[0] for im, _ in pairs])
                labels[mask] = [label for _, label in pairs]
            labels[mask] += self.offsets[s]
        return images, labels

    def __getitems__(self, keys: Sequence[int | tuple]) -> tuple[torch.Tensor, torch.Tensor]:
        rows = np.fromiter((k[0] if isinstance(k, tuple) else k for k in keys), dtype=np.int64, count=len(keys))
        flips = np.fromiter((bool(k[1]) if isinstance(k, tuple) else False for k in keys), dtype=bool, count=len(keys))
        shifts = np.array([k[2:4] if isinstance(k, tuple) and len(k) == 4 else (0, 0) for k in keys],
                          dtype=np.int64).reshape(len(keys), 2)
        images, labels = self.gather(rows)
        return preprocess(images, flips, self.config.size, self.config.channels, shifts), torch.from_numpy(labels)

    def __getitem__(self, key: int | tuple) -> tuple[torch.Tensor, int]:
        x, y = self.__getitems__([key])
        return x[0], int(y[0])


def collate_batched(batch: Any) -> Any:
    """``collate_fn`` for batches that :meth:`MixtureDataset.__getitems__` already built."""
    return batch


def make_loader(dataset: MixtureDataset, sampler: MixtureBatchSampler, num_workers: int = 0,
                pin_memory: bool = False) -> DataLoader:
    """A ``DataLoader`` yielding ``(float NCHW, int64 labels)``, one batch per sampler step, in step order."""
    return DataLoader(dataset, batch_sampler=sampler, collate_fn=collate_batched, num_workers=num_workers,
                      pin_memory=pin_memory, persistent_workers=num_workers > 0)


def open_mixture(real: Sequence[SourceSpec], synthetic: Sequence[SourceSpec] = (),
                 preprocess_config: PreprocessConfig = PreprocessConfig(), cache_bytes: int = 4 << 30,
                 progress: bool = False) -> MixtureDataset:
    """Open every source and combine them (see :class:`MixtureDataset`)."""
    if not real and not synthetic:
        raise ConfigError("no training data given", hint="pass --real and/or --synthetic")
    return MixtureDataset([open_source(s, progress) for s in real], [open_source(s, progress) for s in synthetic],
                          preprocess_config, cache_bytes, progress)
