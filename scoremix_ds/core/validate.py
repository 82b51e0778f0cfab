"""One validation rule per numeric setting, used by the config dataclasses' ``__post_init__``.

A rule names the config FIELD (``learning_rate``), never a flag: the same config is built from recipes, from flags
and from code. The CLI boundary turns the field into the command's flag when it has one (``--learning-rate``).
NaN and infinities fail every rule: no setting of this tool means anything when it is not finite.
"""

from __future__ import annotations

import math
import numbers

from .errors import ConfigError


def in_range(field: str, value: float | None, lo: float | None = None, hi: float | None = None, *,
             lo_open: bool = False, hi_open: bool = False, optional: bool = False, example: str | None = None) -> None:
    """``value`` is a finite number in the interval (``lo``/``hi`` None: unbounded; ``*_open``: excluded)."""
    if value is None and optional:
        return
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and lo is not None:
        ok = value > lo if lo_open else value >= lo
    if ok and hi is not None:
        ok = value < hi if hi_open else value <= hi
    if ok:
        return
    left = "(" if lo_open else "["
    right = ")" if hi_open else "]"
    span = f"in {left}{'-inf' if lo is None else f'{lo:g}'}, {'inf' if hi is None else f'{hi:g}'}{right}"
    if lo is not None and hi is None:
        span = f"{'>' if lo_open else '>='} {lo:g}"
    elif hi is not None and lo is None:
        span = f"{'<' if hi_open else '<='} {hi:g}"
    elif lo is None and hi is None:
        span = "a finite number"
    raise ConfigError(f"{field} must be a finite number {span}, got {value!r}" if span != "a finite number"
                      else f"{field} must be a finite number, got {value!r}",
                      hint=f"set `{field}` to e.g. {example}" if example else f"set `{field}` to a value {span}", field=field)


def positive_count(field: str, value: int | None, *, optional: bool = False) -> None:
    """``value`` is an integer >= 1 (None allowed with ``optional``): counts of pairs, images, steps, rows."""
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ConfigError(f"{field} must be a positive count, got {value!r}", hint=f"set `{field}` to 1 or more", field=field)


def device_name(field: str, value: str | None, *, available: bool = False) -> str | None:
    """A torch device string (``cpu``, ``cuda``, ``cuda:1``, ``mps``) or ``auto`` (the accelerator when present,
    :func:`scoremix_ds.core.devices.resolve_device`); with ``available`` it must exist here."""
    if value is None or value == "auto":
        return value
    import torch

    try:
        device = torch.device(value)
    except (RuntimeError, TypeError, ValueError):
        raise ConfigError(f"{field} '{value}' is not a device", hint=f"set `{field}` to cpu, cuda or cuda:N",
                          field=field) from None
    if available:
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"{field} '{value}' asks for CUDA, but no CUDA GPU is usable here",
                              hint=f"set `{field}` to cpu, or run on a machine with a GPU", field=field)
        if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"{field} '{value}': this machine has {torch.cuda.device_count()} CUDA device(s)",
                              hint=f"set `{field}` to cuda:0 .. cuda:{torch.cuda.device_count() - 1}", field=field)
        if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise ConfigError(f"{field} '{value}' asks for MPS, which is not available here",
                              hint=f"set `{field}` to cpu", field=field)
        if device.type not in ("cpu", "cuda", "mps"):
            raise ConfigError(f"{field} '{value}' is not a device scoremix-ds runs on", hint=f"set `{field}` to cpu or cuda",
                              field=field)
    return value
