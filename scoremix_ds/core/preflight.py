"""The machine-side checks every long command makes BEFORE its first forward pass: the output folder can be
written, and its disk has room for what the run will write. Each check is one line naming the config field that
fixes it (the CLI maps it to its flag) and writes nothing.

The Hub-side checks (token, write access, tag absent) are :func:`scoremix_ds.hub.push.preflight`'s; the device is
:func:`scoremix_ds.core.validate.device_name` with ``available=True``; the per-command compositions are
:mod:`scoremix_ds.cli.preflight`.

Disk estimates are deliberately simple upper-bound guesses, documented where they are made:

* a build: ``images x height x width x channels`` bytes (:func:`image_bytes`): the raw pixels, which a PNG of a
  sampled image (noise-free, smooth) does not exceed in practice; the parquet and card overhead is small;
* a training: ``(kept checkpoints + 1) x 3 x parameter bytes`` (:func:`training_bytes`): weights, optimizer state
  (SGD momentum / AdamW's two moments count as two) per checkpoint, plus the final model; a generator counts
  4 copies (weights, EMA, AdamW's two moments).

The free space is read with :func:`shutil.disk_usage` on the nearest folder of ``out`` that exists.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from .errors import ConfigError, DataError

CHECKPOINT_COPIES = 3  # weights + up to two optimizer moments per parameter


def existing_parent(path: str | Path) -> Path:
    """``path`` itself when it exists, else its nearest existing parent (where it would be created)."""
    p = Path(path).expanduser().absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def check_output_folder(path: str | Path, field: str = "out") -> Path:
    """``path`` is a folder, or can be created as one: not a file, and the nearest existing folder is writable.
    Returns that nearest existing folder. Nothing is created."""
    p = Path(path).expanduser()
    if p.exists() and not p.is_dir():
        raise DataError(f"{field} {p} is a file, not a folder", hint=f"give `{field}` a new or empty folder", field=field)
    base = existing_parent(p)
    if not base.is_dir():
        raise DataError(f"{field} {p} cannot be created: {base} is a file", hint=f"give `{field}` a folder path",
                        field=field)
    if not os.access(base, os.W_OK | os.X_OK):
        read_only = bool(os.statvfs(base).f_flag & os.ST_RDONLY)
        why = f"{base} is on a read-only file system" if read_only else f"permission denied on {base}"
        raise DataError(f"{field} {p} cannot be written: {why}", hint=f"give `{field}` a folder you can write",
                        field=field)
    return base


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")  # pragma: no cover


def check_free_disk(path: str | Path, needed: int, what: str, field: str = "out") -> None:
    """The disk holding ``path`` (or its nearest existing parent) has at least ``needed`` bytes free for
    ``what`` (e.g. "about 1,000,000 images of 112x112x3"); refused in one line otherwise."""
    if needed <= 0:
        return
    base = existing_parent(path)
    free = shutil.disk_usage(base).free
    if free < needed:
        raise ConfigError(f"{field} {path}: {what} needs about {human_bytes(needed)} free, but {base} has "
                          f"{human_bytes(free)} free", hint=f"give `{field}` a folder on a disk with more room, or "
                          "make the run smaller", field=field)


def image_bytes(images: int, height: int, width: int, channels: int) -> int:
    """The build estimate: raw pixel bytes of ``images`` images (see the module docstring)."""
    return int(images) * int(height) * int(width) * int(channels)


def training_bytes(parameters: int, kept_checkpoints: int, copies: int = CHECKPOINT_COPIES,
                   bytes_per_parameter: int = 4) -> int:
    """The training estimate: ``(kept + 1) x copies x parameter bytes`` (see the module docstring)."""
    return (int(kept_checkpoints) + 1) * int(copies) * int(parameters) * bytes_per_parameter


__all__ = ["check_free_disk", "check_output_folder", "existing_parent", "human_bytes", "image_bytes",
           "training_bytes"]
