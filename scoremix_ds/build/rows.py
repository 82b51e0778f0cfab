"""Sampling one work unit into dataset columns (mix rows, and the parents alone when ``repro``)."""

from __future__ import annotations

import math

import numpy as np
import torch

from ..data.transforms import to_uint8
from ..dataset.schema import COLUMNS
from ..dataset.writer import encode_png
from ..models.generator import ClassConditionalGenerator
from ..sampling.schedulers import make_scheduler
from ..sampling.scoremix import scoremix_sample
from .config import BuildConfig
from .plan import Identity, MixPlan


def sample_images(gen: ClassConditionalGenerator, weak, config: BuildConfig, classes: np.ndarray, weights: np.ndarray,
                  seeds: list[int], on_batch=None) -> list[np.ndarray]:
    """uint8 HxWxC images for ``(classes, weights, seeds)`` in batches of ``config.batch_size``."""
    out: list[np.ndarray] = []
    for start in range(0, len(seeds), config.batch_size):
        sl = slice(start, start + config.batch_size)
        scheduler = make_scheduler(config.scheduler, gen.scheduler_config, config.prediction_type)
        x = scoremix_sample(gen, scheduler, torch.as_tensor(np.asarray(classes[sl])),
                            torch.as_tensor(np.asarray(weights[sl]), dtype=torch.float32), seeds[sl],
                            config.steps, config.guidance, weak, config.schedule, mixing=config.mixing)
        imgs = list(to_uint8(x))
        out.extend(imgs)
        if on_batch is not None:
            on_batch(len(imgs))
    return out


def unit_columns(plan: MixPlan, ids: range, gen: ClassConditionalGenerator, config: BuildConfig, weak,
                 on_batch=None) -> dict[str, dict[str, list]]:
    """Sample every image of identities ``ids``; return config name -> column -> values."""
    items = [(plan.identities[i], j, s) for i in ids for j, s in enumerate(plan.seeds(i))]
    names = plan.names
    identity_names = plan.identity_names
    mix_imgs = sample_images(gen, weak, config, np.array([it.parents for it, _, _ in items]),
                             np.array([it.weights for it, _, _ in items]), [s for _, _, s in items], on_batch)
    columns = {"mix": _empty()}
    for (ident, j, seed), img in zip(items, mix_imgs):
        _append(columns["mix"], img, ident.index, identity_names[ident.index], ident, names, ident.parents,
                ident.weights, config.strategy, config.mixing, seed, j, identity_names[ident.index])
    if config.repro:
        columns["repro"] = _empty()
        rep = [(it, j, s, p) for it, j, s in items for p in it.parents]
        rep_imgs = sample_images(gen, weak, config, np.array([[p] for *_, p in rep]), np.ones((len(rep), 1)),
                                 [s for _, _, s, _ in rep], on_batch)
        for (ident, j, seed, parent), img in zip(rep, rep_imgs):
            _append(columns["repro"], img, parent, f"repro:{names[parent]}", ident, names, (parent,), (1.0,),
                    config.strategy, config.mixing, seed, j, identity_names[ident.index])
    return columns


def _empty() -> dict[str, list]:
    return {name: [] for name in COLUMNS}


def _append(cols: dict[str, list], img: np.ndarray, label: int, identity: str, ident: Identity, names: tuple[str, ...],
            parents: tuple[int, ...], weights: tuple[float, ...], strategy: str, mixing: str, seed: int, j: int,
            mix_identity: str) -> None:
    cols["image"].append(encode_png(img))
    cols["label"].append(int(label))
    cols["identity"].append(identity)
    cols["parents"].append(list(parents))
    cols["parent_names"].append([names[p] for p in parents])
    cols["weights"].append(list(weights))
    cols["embedding_distance"].append(None if math.isnan(ident.embedding_distance) else ident.embedding_distance)
    cols["condition_distance"].append(None if math.isnan(ident.condition_distance) else ident.condition_distance)
    cols["strategy"].append(strategy)
    cols["mixing"].append(mixing)
    cols["seed"].append(int(seed))
    cols["sample_index"].append(int(j))
    cols["mix_identity"].append(mix_identity)
