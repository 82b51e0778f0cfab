"""Training checkpoints on disk: written atomically, pruned to the last K, read back without unpickling code.

Layout under a checkpoint root (e.g. ``<out>/checkpoints``)::

    step-00000300/       one folder per checkpoint, named by the number of optimizer steps done
        NAME.safetensors   tensor dicts (model weights, EMA weights)
        NAME.pt            optimizer / grad-scaler state: torch.save, read with torch.load(weights_only=True)
        state.json         step, config fingerprint and anything else JSON-able; written last

A checkpoint exists only under its final name: it is written into ``.tmp-step-...`` and renamed in one
``os.replace``, so a process killed mid-write leaves a ``.tmp-`` folder that is never read (and removed by
:func:`remove_partial`), never a half checkpoint.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..core.errors import DataError
from ..core.outputs import read_json_object

logger = logging.getLogger(__name__)

STATE_NAME = "state.json"
_STEP_DIR = re.compile(r"^step-(\d{8,})$")
_TMP_PREFIX = ".tmp-"


def step_dir_name(step: int) -> str:
    return f"step-{step:08d}"


def load_state(path: Path) -> Any:
    """``torch.load(weights_only=True)``: tensors and plain containers only. Anything else (a pickle payload, a
    truncated file) is refused in one line naming the file; the file is never unpickled."""
    import pickle

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise DataError(f"refused to load {path}: it holds pickled objects other than tensors (torch.load with "
                        "weights_only=True rejects them; scoremix-ds never unpickles code)",
                        hint="delete that checkpoint folder and re-run (or use a new --out)") from None
    except (EOFError, RuntimeError, OSError) as exc:
        raise DataError(f"{path} is truncated or corrupt ({type(exc).__name__})",
                        hint="delete that checkpoint folder and re-run (or use a new --out)") from None


@dataclass(frozen=True)
class Checkpoint:
    """One complete checkpoint folder."""

    path: Path
    step: int

    def state(self) -> dict[str, Any]:
        return read_json_object(self.path / STATE_NAME)

    def tensors(self, name: str) -> dict[str, torch.Tensor]:
        from safetensors.torch import load_file

        return load_file(str(self.path / f"{name}.safetensors"))

    def objects(self, name: str) -> Any:
        """A ``torch.save``'d state dict, loaded with ``weights_only=True`` (tensors and plain containers only)."""
        return load_state(self.path / f"{name}.pt")


def list_checkpoints(root: str | Path) -> list[Checkpoint]:
    """The complete checkpoints under ``root``, oldest first (``.tmp-`` folders are not checkpoints)."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        m = _STEP_DIR.match(path.name)
        if m and path.is_dir() and (path / STATE_NAME).is_file():
            found.append(Checkpoint(path, int(m.group(1))))
    return sorted(found, key=lambda c: c.step)


def latest_checkpoint(root: str | Path) -> Checkpoint | None:
    found = list_checkpoints(root)
    return found[-1] if found else None


def write_checkpoint(
    root: str | Path,
    step: int,
    state: Mapping[str, Any],
    tensors: Mapping[str, Mapping[str, torch.Tensor]] | None = None,
    objects: Mapping[str, Any] | None = None,
    keep: int | None = None,
) -> Checkpoint:
    """Write ``step-NNNNNNNN`` atomically (temporary folder, fsync, rename), then keep only the newest ``keep``."""
    from safetensors.torch import save_file

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / step_dir_name(step)
    tmp = root / f"{_TMP_PREFIX}{final.name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    for name, tensor_dict in (tensors or {}).items():
        cpu = {k: v.detach().to("cpu").contiguous() for k, v in tensor_dict.items()}
        save_file(cpu, str(tmp / f"{name}.safetensors"))
    for name, obj in (objects or {}).items():
        torch.save(obj, tmp / f"{name}.pt")
    (tmp / STATE_NAME).write_text(json.dumps({**state, "step": step}, indent=1) + "\n", encoding="utf-8")
    for path in tmp.iterdir():
        _fsync(path)
    if final.exists():  # the same step written again (a re-run of a finished stage): swap, then drop the old one
        old = root / f"{_TMP_PREFIX}old-{final.name}-{os.getpid()}"
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old)
    else:
        os.replace(tmp, final)
    _fsync(root)
    if keep is not None:
        prune(root, keep)
    return Checkpoint(final, step)


def prune(root: str | Path, keep: int) -> None:
    """Delete all but the newest ``keep`` complete checkpoints."""
    found = list_checkpoints(root)
    for ckpt in found[: max(0, len(found) - keep)]:
        shutil.rmtree(ckpt.path)
        logger.debug("removed old checkpoint %s", ckpt.path)


def remove_partial(root: str | Path) -> int:
    """Remove ``.tmp-`` folders left by a process killed while writing; returns how many."""
    root = Path(root)
    if not root.is_dir():
        return 0
    stale = [p for p in root.iterdir() if p.name.startswith(_TMP_PREFIX) and p.is_dir()]
    for path in stale:
        shutil.rmtree(path)
    return len(stale)


def _fsync(path: Path) -> None:
    """Flush a file or a folder entry to disk (a rename is only durable once its folder is synced)."""
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if path.is_dir() else 0)
    try:
        fd = os.open(path, flags)
    except OSError:  # e.g. folders cannot be opened on some platforms
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
