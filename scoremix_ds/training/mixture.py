"""Real + synthetic sources as ONE training set: label namespaces, the dataset that gathers batches, the loader.

**Label namespaces.** Real sources come first, then synthetic ones, each offset by the classes before it::

    global label = offset(source) + local label,   offset(s) = sum of num_classes of the sources before s

so real identities are ``0..R-1`` and synthetic ones ``R..R+S-1``: a real class 3 and a synthetic class 3 are two
different identities. :meth:`LabelSpace.to_dict` is that mapping, for the model card.

**Sampling and preprocessing** live in :mod:`.batching` (the synthetic:real ratio, a pure function of
``(seed, step)``) and :mod:`.preprocess` (flip, shift, channels, resize, ``[-1, 1]``).

**Cost.** Sources that fit ``cache_bytes`` are decoded once and kept as uint8 already at the input size, so a batch
is one gather plus one vectorised flip-and-normalise. :meth:`MixtureDataset.__getitems__` builds a whole batch;
use :func:`make_loader` (``batch_sampler`` + :func:`collate_batched`), which works with ``num_workers > 0``. The
trainer's loader stops at uint8 (``uint8=True``): the float conversion runs on the device.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..core.errors import ConfigError
from ..sources.preprocess import PreprocessConfig, as_uint8_tensor, augment, normalise, resize_uint8
from .batching import MixtureBatchSampler
from ..sources.source import Source, SourceInfo, SourceSpec
from ..sources.openers import open_source

logger = logging.getLogger(__name__)


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

    def uint8_batch(self, keys: Sequence[int | tuple]) -> tuple[torch.Tensor, torch.Tensor]:
        """A whole batch, flipped and shifted, still uint8 ``(N, size, size, channels)``: what the trainer's loader
        workers make (:func:`~.preprocess.normalise` then runs on the device)."""
        rows = np.fromiter((k[0] if isinstance(k, tuple) else k for k in keys), dtype=np.int64, count=len(keys))
        flips = np.fromiter((bool(k[1]) if isinstance(k, tuple) else False for k in keys), dtype=bool, count=len(keys))
        shifts = np.array([k[2:4] if isinstance(k, tuple) and len(k) == 4 else (0, 0) for k in keys],
                          dtype=np.int64).reshape(len(keys), 2)
        images, labels = self.gather(rows)
        return as_uint8_tensor(augment(images, flips, shifts)), torch.from_numpy(labels)

    def __getitems__(self, keys: Sequence[int | tuple]) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.uint8_batch(keys)
        return normalise(x, self.config.size, self.config.channels), y

    def __getitem__(self, key: int | tuple) -> tuple[torch.Tensor, int]:
        x, y = self.__getitems__([key])
        return x[0], int(y[0])


def collate_batched(batch: Any) -> Any:
    """``collate_fn`` for batches that :meth:`MixtureDataset.__getitems__` already built."""
    return batch


class _Uint8Batches(Dataset):
    """A view of a :class:`MixtureDataset` whose batches stay uint8 NHWC (:meth:`MixtureDataset.uint8_batch`)."""

    def __init__(self, dataset: MixtureDataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitems__(self, keys: Sequence[int | tuple]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.dataset.uint8_batch(keys)

    def __getitem__(self, key: int | tuple):
        x, y = self.dataset.uint8_batch([key])
        return x[0], int(y[0])


def make_loader(dataset: MixtureDataset, sampler: MixtureBatchSampler, num_workers: int = 0,
                pin_memory: bool = False, uint8: bool = False) -> DataLoader:
    """A ``DataLoader`` yielding ``(float NCHW, int64 labels)``, one batch per sampler step, in step order; with
    ``uint8``, ``(uint8 NHWC, int64 labels)`` for :func:`~.preprocess.normalise` on the device (the trainer)."""
    return DataLoader(_Uint8Batches(dataset) if uint8 else dataset, batch_sampler=sampler, collate_fn=collate_batched,
                      num_workers=num_workers, pin_memory=pin_memory, persistent_workers=num_workers > 0)


def open_mixture(real: Sequence[SourceSpec], synthetic: Sequence[SourceSpec] = (),
                 preprocess_config: PreprocessConfig = PreprocessConfig(), cache_bytes: int = 4 << 30,
                 progress: bool = False) -> MixtureDataset:
    """Open every source and combine them (see :class:`MixtureDataset`)."""
    if not real and not synthetic:
        raise ConfigError("no training data given", hint="give `real` and/or `synthetic` data", fields=("real", "synthetic"))
    return MixtureDataset([open_source(s, progress) for s in real], [open_source(s, progress) for s in synthetic],
                          preprocess_config, cache_bytes, progress)
