"""Content digests of loaded models: what a plan file records so a build can refuse a plan made with other models.

A digest hashes the parameters and buffers (names, dtypes, shapes and bytes, in name order), so the same weights
give the same digest wherever they were loaded from (local folder, Hub cache, embedded default).
"""

from __future__ import annotations

import hashlib

import torch


def module_digest(*modules: torch.nn.Module | None) -> str:
    """sha256 (first 16 hex digits) over the state dicts of ``modules`` (None entries are skipped)."""
    h = hashlib.sha256()
    for m in modules:
        if m is None:
            continue
        for name, tensor in sorted(m.state_dict().items()):
            t = tensor.detach().to("cpu").contiguous()
            h.update(f"{name}:{t.dtype}:{tuple(t.shape)}:".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


def model_digest(model) -> str:
    """Digest of a generator (its denoiser and VAE), an ``nn.Module`` discriminator, or anything with ``digest()``."""
    if hasattr(model, "digest"):
        return str(model.digest())
    if hasattr(model, "denoiser"):
        return module_digest(model.denoiser, getattr(model, "vae", None))
    return module_digest(model)
