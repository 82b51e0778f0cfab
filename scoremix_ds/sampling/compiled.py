"""``--compile``: ``torch.compile`` a denoiser ONCE for every batch a build gives it.

A build's forwards have many batch sizes: mix batches of ``3B`` rows (K=2 parents + null class under guidance),
repro batches of ``2B``, short last batches. Compiled as it was (``module.compile()``, static shapes), each new
size failed a guard ("size mismatch at index 0. expected 4, actual 8") and compiled again. Here:

* the batch dimension (dim 0) of every tensor argument is marked dynamic up front
  (:func:`torch._dynamo.maybe_mark_dynamic`, outside the compiled region), so the first compile is already
  shape-generic in the batch and no later size compiles again; height, width and channels stay static (the
  kernels a fixed sample shape deserves);
* a forward of ONE row (guidance 1 and a last batch of one identity: with guidance a forward has 2 or 3 rows
  per identity) compiles one more graph, once: dynamo never makes a size-1 dimension symbolic, and running it as
  two rows would change its bits (the CPU's kernels round differently by batch size);
* condition mixing's own tensors (the batch's classes and weights) have a batch dimension that may be 1: the
  hook pads them and masks by the true count (:mod:`scoremix_ds.sampling.condition_mix`), with the same values;
* condition mixing keeps one forward hook per class table for the module's life
  (:data:`scoremix_ds.sampling.condition_mix.KEEP_HOOKS`), so the hooks the compiled graph was traced with are
  the hooks of every batch.

The module is compiled in place (its ``forward``): the same module, the same ``state_dict`` keys, so the same
model digest.
"""

from __future__ import annotations

import torch
from torch import nn

from .condition_mix import KEEP_HOOKS

BACKEND = "inductor"  # torch.compile's default; tests count compilations with a counting backend instead


def compile_denoiser(denoiser: nn.Module, backend=None) -> nn.Module:
    """Compile ``denoiser.forward`` in place with a dynamic batch dimension (see the module docstring)."""
    import torch._dynamo

    compiled = torch.compile(denoiser.forward, backend=backend or BACKEND)

    def forward(*args, **kwargs):
        tensors = [v for v in (*args, *kwargs.values()) if isinstance(v, torch.Tensor) and v.dim() >= 1]
        rows = tensors[0].shape[0] if tensors else None
        for value in tensors:
            if value.shape[0] == rows:
                torch._dynamo.maybe_mark_dynamic(value, 0)  # a no-op for a one-row batch (specialised)
        return compiled(*args, **kwargs)

    denoiser.forward = forward
    object.__setattr__(denoiser, KEEP_HOOKS, True)
    return denoiser


__all__ = ["BACKEND", "compile_denoiser"]
