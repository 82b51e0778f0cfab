"""Condition mixing (AugGen, the paper's predecessor and main baseline): mix the generator's class-condition
VECTORS, ``c* = sum_k w_k c_{i_k}``, and run the model ONCE per step on ``c*`` — instead of mixing its K outputs.

The model's class-embedding tables are ``nn.Embedding`` modules (UNet2DModel: ``class_embedding``; DiT: every
block's ``LabelEmbedding.embedding_table``). While :func:`mixed_class_embeddings` is active, a forward hook on each
table replaces the embedding of the first ``B`` rows of the batch with the weighted sum of that table's rows for
the sample's classes; other rows (the null class of classifier-free guidance) are untouched. With weights
``(1, 0, ...)`` the sum is exactly the first class's row, so the model sees what plain sampling gives it.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn


def class_tables(denoiser: nn.Module, kind: str) -> list[nn.Embedding]:
    """The class-embedding tables the model looks its labels up in."""
    if kind == "unet":
        return [denoiser.class_embedding]
    from diffusers.models.embeddings import LabelEmbedding

    return [m.embedding_table for m in denoiser.modules() if isinstance(m, LabelEmbedding)]


def mix_rows(table: torch.Tensor, classes: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``(B, d)``: ``sum_k weights[b, k] * table[classes[b, k]]`` (pure)."""
    return (weights.to(table.dtype).unsqueeze(-1) * table[classes]).sum(dim=1)


@contextmanager
def mixed_class_embeddings(denoiser: nn.Module, kind: str, classes: torch.Tensor, weights: torch.Tensor) -> Iterator[None]:
    """Within the block, the first ``B = len(classes)`` rows of every forward get mixed condition vectors."""
    b = classes.shape[0]

    def hook(module: nn.Embedding, _inputs, output: torch.Tensor) -> torch.Tensor:
        out = output.clone()
        out[:b] = mix_rows(module.weight, classes.to(module.weight.device), weights.to(module.weight.device)).to(out.dtype)
        return out

    handles = [t.register_forward_hook(hook) for t in class_tables(denoiser, kind)]
    try:
        yield
    finally:
        for h in handles:
            h.remove()
