"""Cached pipeline stages: ``REPORT/stages/<name>-<fingerprint>/`` with a ``done.json`` marker written LAST.

The fingerprint is ``sha256(JSON(spec))[:12]`` of everything that decides a stage's output: its settings and the ids
of the stages it reads (never absolute paths, so a report folder can be moved). A stage is:

- **cached** when its folder holds a ``done.json`` with the same fingerprint: it is skipped;
- **partial** when its folder exists without a valid marker (a run was interrupted): the folder is deleted and the
  stage redone from scratch, unless the stage resumes by itself (``resumable``: a build keeps its finished shards, a training its
  checkpoints). A resumable stage whose own half-done state names other stages by absolute path (a build names its
  models, an arm's training its synthetic sets: ``pinned``) resumes only in the folder it started in: ``started.json``
  records that folder, and a report folder moved since is redone from scratch there, with a warning, instead of
  being refused by the build's or the trainer's own "different settings" check;
- **new** otherwise.

``done.json`` is written to a temporary file and renamed into place, so it exists only once the stage's files do.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.fingerprints import config_fingerprint
from ..core.recipes import json_ready

logger = logging.getLogger(__name__)

DONE = "done.json"
STARTED = "started.json"  # the absolute folder a stage started in (pinned stages resume only there)
STAGES = "stages"


def fingerprint(spec: dict[str, Any]) -> str:
    """``sha256`` of the canonical JSON of ``spec`` (sorted keys, no spaces), first 12 hex digits."""
    return config_fingerprint(spec, digits=12, compact=True)


@dataclass(frozen=True)
class Stage:
    """A finished stage: its id (``name-fingerprint``), folder, the result its body returned, and whether it ran now."""

    id: str
    folder: Path
    result: dict[str, Any]
    cached: bool
    seconds: float


def read_done(folder: Path, fp: str) -> dict[str, Any] | None:
    """The marker's content if ``folder`` holds a finished stage with fingerprint ``fp``, else None."""
    try:
        done = json.loads((folder / DONE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return done if isinstance(done, dict) and done.get("fingerprint") == fp else None


def _write_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(json_ready(data), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _started_elsewhere(folder: Path) -> str | None:
    """The folder a partial stage started in, if it was not ``folder`` (the report folder was moved or copied)."""
    try:
        started = json.loads((folder / STARTED).read_text(encoding="utf-8")).get("folder")
    except (OSError, ValueError, AttributeError):
        return None  # no record (a stage started before it was kept): resume as before
    return started if isinstance(started, str) and started != str(folder.resolve()) else None


def run_stage(root: Path, name: str, spec: dict[str, Any], body: Callable[[Path], dict[str, Any]],
              resumable: bool = False, pinned: bool = False) -> Stage:
    """Run ``body(folder)`` unless ``root/stages/<name>-<fp>`` is already done; ``body`` returns a JSON-able result.

    ``resumable``: a partial folder is kept for ``body`` to resume; ``pinned``: only in the folder it started in.
    """
    fp = fingerprint(spec)
    stage_id = f"{name}-{fp}"
    folder = Path(root) / STAGES / stage_id
    done = read_done(folder, fp)
    if done is not None:
        logger.info("stage %s: cached", stage_id)
        return Stage(stage_id, folder, done["result"], True, float(done.get("seconds", 0.0)))
    moved_from = _started_elsewhere(folder) if folder.exists() and resumable and pinned else None
    if moved_from is not None:
        logger.warning("stage %s: its interrupted run started in %s, whose paths its partial files name; redoing it "
                       "from scratch here", stage_id, moved_from)
        shutil.rmtree(folder)
    elif folder.exists() and not resumable:
        logger.info("stage %s: removing the partial folder of an interrupted run", stage_id)
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if pinned and not (folder / STARTED).exists():  # read only for pinned stages, so written only for them
        _write_atomic(folder / STARTED, {"folder": str(folder.resolve())})
    (folder / "spec.json").write_text(json.dumps(json_ready(spec), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    logger.info("stage %s: running", stage_id)
    started = time.perf_counter()
    result = body(folder)
    seconds = time.perf_counter() - started
    _write_atomic(folder / DONE, {"stage": name, "fingerprint": fp, "seconds": seconds, "result": result})
    logger.info("stage %s: done in %.1fs", stage_id, seconds)
    return Stage(stage_id, folder, json_ready(result), False, seconds)
