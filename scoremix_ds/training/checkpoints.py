"""Training checkpoints on disk, for both trainers: written atomically by one or several processes, pruned to the
last K, read back without unpickling code.

Layout under a checkpoint root (``<out>/checkpoints``)::

    step-00000300/       one folder per checkpoint, named by the number of optimizer steps done
        NAME.safetensors   tensors: a module (``save_model``) or a dict of tensors, e.g. the model, EMA weights, or
                           one process's shard of a Partial FC head (``head-rank1``)
        NAME.pt            optimizer / grad-scaler state: torch.save, read with torch.load(weights_only=True)
        state.json         step, config fingerprint and anything else JSON-able; written last

Why each rule: every process may hold state no other process has (its Partial FC shard and that shard's momentum),
so each writes its own files into one staging folder; process 0 then writes ``state.json`` and renames the folder
into place in one ``os.replace``, after an fsync. A process killed mid-write therefore leaves a ``.tmp-`` folder that
is never read (and removed by :func:`remove_partial`), never a half checkpoint. ``.pt`` files are loaded with
``weights_only=True``: a checkpoint folder from elsewhere cannot run code.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..core.errors import DataError
from ..core.outputs import read_json_object

logger = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"  # the checkpoint root's name in an output folder
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
                        hint="delete that checkpoint folder and re-run (or choose another `out`)", field="out") from None
    except (EOFError, RuntimeError, OSError) as exc:
        raise DataError(f"{path} is truncated or corrupt ({type(exc).__name__})",
                        hint="delete that checkpoint folder and re-run (or choose another `out`)", field="out") from None


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

    def load_module(self, name: str, module: torch.nn.Module) -> None:
        """Load ``NAME.safetensors`` into ``module`` (strict: every tensor present, none extra)."""
        from safetensors.torch import load_model

        load_model(module, str(self.path / f"{name}.safetensors"), strict=True)

    def missing(self, names: list[str]) -> list[str]:
        """Which of the files ``names`` this checkpoint lacks (e.g. a shard of a process count it was not saved by)."""
        return [name for name in names if not (self.path / name).is_file()]


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


def staging_dir(root: str | Path, step: int) -> Path:
    """Where every process writes its files of checkpoint ``step`` (``.tmp-``: never listed as a checkpoint)."""
    return Path(root) / f"{_TMP_PREFIX}{step_dir_name(step)}-parts"


def write_checkpoint(
    root: str | Path,
    step: int,
    state: Mapping[str, Any],
    tensors: Mapping[str, Mapping[str, torch.Tensor] | torch.nn.Module] | None = None,
    objects: Mapping[str, Any] | None = None,
    keep: int | None = None,
    *,
    main: bool = True,
    barrier: Callable[[], None] | None = None,
) -> Checkpoint:
    """Write ``step-NNNNNNNN`` atomically (staging folder, fsync, rename), then keep only the newest ``keep``.

    Several processes write one checkpoint by all calling this with the same ``step`` and ``barrier`` (e.g.
    ``accelerator.wait_for_everyone``), each with its own ``tensors`` / ``objects``; only ``main`` creates the
    staging folder and seals it (its ``state`` is the one written). ``tensors`` maps a file name to a module
    (``safetensors.torch.save_model``: shared tensors once) or to a dict of tensors."""
    from safetensors.torch import save_file, save_model

    wait = barrier or (lambda: None)
    root = Path(root)
    staging = staging_dir(root, step)
    if main:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
    wait()
    for name, value in (tensors or {}).items():
        if isinstance(value, torch.nn.Module):
            save_model(value, str(staging / f"{name}.safetensors"))
        else:
            save_file({k: v.detach().to("cpu").contiguous() for k, v in value.items()}, str(staging / f"{name}.safetensors"))
    for name, obj in (objects or {}).items():
        torch.save(obj, staging / f"{name}.pt")
    wait()
    if main:
        commit(root, step, state, keep)
    wait()
    return Checkpoint(root / step_dir_name(step), step)


def commit(root: str | Path, step: int, state: Mapping[str, Any], keep: int | None = None) -> Path:
    """Seal the staged checkpoint ``step`` (process 0): ``state.json`` last, fsync, one rename, prune to ``keep``."""
    root = Path(root)
    staging, final = staging_dir(root, step), root / step_dir_name(step)
    (staging / STATE_NAME).write_text(json.dumps({**state, "step": step}, indent=1) + "\n", encoding="utf-8")
    for path in staging.iterdir():
        _fsync(path)
    if final.exists():  # the same step written again (a re-run of a finished stage): swap, then drop the old one
        old = root / f"{_TMP_PREFIX}old-{final.name}-{os.getpid()}"
        os.replace(final, old)
        os.replace(staging, final)
        shutil.rmtree(old)
    else:
        os.replace(staging, final)
    _fsync(root)
    if keep is not None:
        prune(root, keep)
    return final


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


def prepare_checkpoints(root: str | Path, resume: bool, accelerator) -> Checkpoint | None:
    """At the start of a run: process 0 removes ``.tmp-`` folders (and, without ``resume``, every checkpoint); all
    processes wait; the newest complete checkpoint to resume from, or None."""
    root = Path(root)
    if accelerator.is_main_process:
        remove_partial(root)
        if not resume and root.exists():
            logger.warning("resume is off: discarding the checkpoints in %s", root)
            shutil.rmtree(root)
    accelerator.wait_for_everyone()
    return latest_checkpoint(root) if resume else None


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
