"""Device and precision by name: ``auto`` means the accelerator when one is present, else the CPU.

Every command that runs a model takes ``--device`` (``auto``, ``cpu``, ``cuda``, ``cuda:1``, ``mps``) and, where
it matters, a precision: ``auto`` is bfloat16 on CUDA (tensor cores) and float32 elsewhere.
"""

from __future__ import annotations

import torch

from .errors import ConfigError

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_device(name: str | None = "auto") -> str:
    """``auto`` / None -> ``cuda`` when available, else ``mps`` when available, else ``cpu``; other names are
    checked (``cuda`` without CUDA is refused with the flag that fixes it)."""
    if name in (None, "", "auto"):
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return "mps"
        return "cpu"
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError):
        raise ConfigError(f"unknown device '{name}'", hint="set `device` to auto, cpu, cuda or cuda:N", field="device") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name} asked for CUDA but torch sees no CUDA device", hint="use `device` auto or cpu",
                          field="device")
    return str(dev)


def names_cuda(device: str | None) -> bool:
    """Whether a run on ``device`` (a name, maybe not resolved yet) lands on CUDA: ``auto`` / None / "" when torch
    sees CUDA, ``cuda`` / ``cuda:N`` always (a recorded config may name an absent device). The build's "auto"
    ``compute_dtype`` is bfloat16 by this rule alone (so a recorded config resolves the same on any machine); the
    trainer's "auto" ``mixed_precision`` also needs CUDA present and bfloat16-capable (fp32 otherwise: a run must
    train where it lands), so a ``cuda`` training config resolves, and is fingerprinted, by the machine it runs on."""
    if device in (None, "", "auto"):
        return torch.cuda.is_available()
    return str(device).split(":", 1)[0] == "cuda"


def resolve_dtype(name: str | None, device: str) -> torch.dtype:
    """``auto`` / None -> bfloat16 on CUDA, float32 elsewhere; else a name from :data:`DTYPES`."""
    if name in (None, "", "auto"):
        return torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32
    try:
        return DTYPES[name]
    except KeyError:
        raise ConfigError(f"unknown precision '{name}'", hint=f"`dtype` takes auto or one of {', '.join(DTYPES)}",
                          field="dtype") from None


__all__ = ["DTYPES", "resolve_device", "resolve_dtype"]
