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


class _MixState:
    """What a table's hook mixes during the current batch: ``(B, K)`` classes and weights already on the table's
    device, or None (the hook then leaves the output as it is)."""

    def __init__(self) -> None:
        self.classes: torch.Tensor | None = None
        self.weights: torch.Tensor | None = None
        self.count: torch.Tensor | None = None  # compiled denoisers: B as a 0-dim tensor (classes padded to >= 2 rows)


STATE = "_scoremix_mix_state"  # the attribute of an nn.Embedding that holds its hook's _MixState


def _mix_hook(state: _MixState):
    def hook(module: nn.Embedding, _inputs, output: torch.Tensor) -> torch.Tensor | None:
        if state.classes is None:
            return None
        if state.count is not None:  # compiled: no batch size is a shape the graph specialises on (not even B=1)
            rows = torch.arange(output.shape[0], device=output.device)
            take = rows.clamp(max=state.classes.shape[0] - 1)
            mixed = mix_rows(module.weight, state.classes[take], state.weights[take]).to(output.dtype)
            return torch.where((rows < state.count).unsqueeze(-1), mixed, output)
        mixed = mix_rows(module.weight, state.classes, state.weights).to(output.dtype)
        # the mixed rows, then the rest as they are: no Python int of the batch size enters a compiled graph
        return torch.cat([mixed, output[mixed.shape[0]:]])

    return hook


KEEP_HOOKS = "_scoremix_keep_mix_hooks"  # set on a denoiser compiled by sampling.compiled.compile_denoiser


def _state_of(table: nn.Embedding) -> tuple[_MixState, object]:
    """The table's hook state and handle, registering the hook the first time it is needed."""
    found = getattr(table, STATE, None)
    if found is None:
        state = _MixState()
        found = (state, table.register_forward_hook(_mix_hook(state)))
        object.__setattr__(table, STATE, found)
    return found


def _release(table: nn.Embedding) -> None:
    state, handle = getattr(table, STATE)
    if state.classes is None:  # the outermost block ended
        handle.remove()
        object.__delattr__(table, STATE)


@contextmanager
def mixed_class_embeddings(denoiser: nn.Module, kind: str, classes: torch.Tensor, weights: torch.Tensor) -> Iterator[None]:
    """Within the block, the first ``B = len(classes)`` rows of every forward get mixed condition vectors.

    ``classes`` and ``weights`` go to each table's device once here (not in the hook, at every step); their batch
    dimension is marked dynamic for ``torch.compile``. The hooks are removed when the block ends, except on a
    denoiser compiled by :func:`scoremix_ds.sampling.compiled.compile_denoiser`: there one hook per table stays for
    the module's life (inert outside a block), so every batch runs the same compiled graph instead of recompiling
    for new hooks."""
    import torch._dynamo

    if classes.shape[-1] == 1 and weights.device.type == "cpu" and bool((weights == 1).all()):
        yield  # one class at weight 1 (a repro row): its own table row, exactly; no hook, the plain forward
        return
    keep = getattr(denoiser, KEEP_HOOKS, False)
    on_device: dict[torch.device, tuple] = {}
    saved = []
    for table in class_tables(denoiser, kind):
        device = table.weight.device
        if device not in on_device:
            c, w = classes, weights
            if keep and c.shape[0] == 1:  # a size-1 dim is never symbolic: pad to 2 rows (the count masks them)
                c, w = c.repeat(2, 1), w.repeat(2, 1)
            pair = (c.to(device, non_blocking=True, copy=True), w.to(device, non_blocking=True, copy=True),
                    torch.tensor(classes.shape[0], device=device) if keep else None)
            for tensor in pair[:2]:
                torch._dynamo.maybe_mark_dynamic(tensor, 0)
            on_device[device] = pair
        state, _ = _state_of(table)
        saved.append((table, state, state.classes, state.weights, state.count))
        state.classes, state.weights, state.count = on_device[device]
    try:
        yield
    finally:
        for table, state, *old in reversed(saved):  # nested blocks restore the outer one's
            state.classes, state.weights, state.count = old
            if not keep:
                _release(table)
