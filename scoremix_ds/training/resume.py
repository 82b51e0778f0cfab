"""Training checkpoints that resume exactly: ``OUT/checkpoints/step-NNNNNNNN/``.

Each process writes its PART: ``<module>.safetensors`` for its modules and ``state-<part>.pt`` (its optimizer and
LR-schedule state: plain tensors and numbers, read back with ``torch.load(weights_only=True)``, which refuses
anything else). Process 0 then writes ``state.json`` (step, config fingerprint) and renames the folder into place,
so a crash leaves either a whole checkpoint or none. Only the newest ``keep`` are kept.

Usage (every process, in order): ``staging = begin(out, step)`` on process 0, barrier; ``write_part(staging, ...)``
everywhere, barrier; ``commit(out, step, ...)`` on process 0, barrier. Listing, naming and pruning are
:mod:`scoremix_ds.training.checkpoints`' (the single-writer layout the generator trainer uses); this module adds the
parts written by several processes.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_model, save_model

from ..core.errors import ConfigError
from ..core.outputs import read_json_object
from . import checkpoints

CHECKPOINTS = "checkpoints"
STATE = checkpoints.STATE_NAME


def checkpoint_dir(out: Path, step: int) -> Path:
    return Path(out) / CHECKPOINTS / checkpoints.step_dir_name(step)


def staging_dir(out: Path, step: int) -> Path:
    """``.tmp-`` prefixed: never listed as a checkpoint, removed by ``checkpoints.remove_partial``."""
    return Path(out) / CHECKPOINTS / f".tmp-{checkpoints.step_dir_name(step)}-parts"


def latest_checkpoint(out: Path) -> Path | None:
    """The newest complete checkpoint (one with ``state.json``) under ``out``, or None."""
    found = checkpoints.latest_checkpoint(Path(out) / CHECKPOINTS)
    return found.path if found else None


def begin(out: Path, step: int) -> Path:
    """A fresh, empty staging folder for checkpoint ``step`` (process 0)."""
    tmp = staging_dir(out, step)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def write_part(staging: Path, modules: dict[str, torch.nn.Module], stateful: dict[str, Any], part: str) -> None:
    for name, module in modules.items():
        save_model(module, str(staging / f"{name}.safetensors"))
    torch.save({name: obj.state_dict() for name, obj in stateful.items()}, staging / f"state-{part}.pt")


def commit(out: Path, step: int, fingerprint: str, keep: int, extra: dict[str, Any] | None = None) -> Path:
    """Seal the staged checkpoint (``state.json`` last), rename it into place, drop all but the newest ``keep``."""
    staging, final = staging_dir(out, step), checkpoint_dir(out, step)
    (staging / STATE).write_text(json.dumps({"step": step, "fingerprint": fingerprint, **(extra or {})}, indent=2) + "\n")
    shutil.rmtree(final, ignore_errors=True)
    staging.rename(final)
    checkpoints.prune(final.parent, keep)
    return final


def load_checkpoint(path: Path, modules: dict[str, torch.nn.Module], stateful: dict[str, Any], fingerprint: str,
                    part: str) -> dict[str, Any]:
    """Restore ``modules`` and this part's ``stateful`` objects from ``path``; refuses a checkpoint of another config."""
    state = read_json_object(path / STATE)
    if state.get("fingerprint") != fingerprint:
        raise ConfigError(
            f"{path.parent.parent} holds checkpoints of a different training config (fingerprint {state.get('fingerprint')}, "
            f"this run {fingerprint})",
            hint="resume with the original flags and process count, or give a new --out",
        )
    missing = [f for f in [*(f"{n}.safetensors" for n in modules), f"state-{part}.pt"] if not (path / f).is_file()]
    if missing:
        raise ConfigError(f"checkpoint {path} lacks {missing[0]} (saved with another number of processes?)",
                          hint="resume with the original number of processes, or give a new --out")
    for name, module in modules.items():
        load_model(module, str(path / f"{name}.safetensors"), strict=True)
    saved = checkpoints.load_state(path / f"state-{part}.pt")  # weights_only: a pickle payload is refused
    for name, obj in stateful.items():
        obj.load_state_dict(saved[name])
    return state
