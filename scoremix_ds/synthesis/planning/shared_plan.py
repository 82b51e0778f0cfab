"""A build's plan, made once by one process and read by every other: ``OUT/.scoremix/plan.npz``.

Process 0 of a launch (the only process of a one-process build) plans: it opens the real data, digests it, reads or
computes the class centres and chooses the tuples (:func:`~.choose.plan_and_spaces`), then, once the output folder is
claimed as this build's, writes the plan and the provenance the manifest records into the build's in-progress state.
Every other process waits for that file (one log line saying so, polling, up to ``SCOREMIX_WAIT_TIMEOUT`` seconds:
not in a collective, whose watchdog would fire) and reads it: it never opens the real data, never loads or hashes
the discriminator for planning. A resumed (unfinished) build finds the file and plans nothing: the real data is not
read again. A FINISHED build has no file (finalize removes it), so repairing one of its damaged shards plans again.

The file is tied to the build's fingerprint (a folder holding another build's stale plan is never read as this
one's) and is exact: parents, weights, float64 distances (NaN kept) and seeds round-trip bit for bit, so the rows are
those of the plan as chosen.
"""

from __future__ import annotations

import io
import json
import logging
import os
import time
import uuid
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ...core.errors import DataError
from .mix_plan import Identity, MixPlan

logger = logging.getLogger(__name__)

PLAN_STATE = ".scoremix/plan.npz"
POLL_SECONDS = 0.2


def state_path(out: str | Path) -> Path:
    return Path(out) / PLAN_STATE


def write_state(out: str | Path, fingerprint: str, plan: MixPlan, provenance: dict[str, Any]) -> Path:
    """Write the plan state atomically (a temporary file, then a rename)."""
    ids = plan.identities
    meta = {"fingerprint": fingerprint, "provenance": provenance, "class_names": list(plan.class_names)}
    arrays = {
        "parents": np.array([i.parents for i in ids], dtype=np.int64),
        "weights": np.array([i.weights for i in ids], dtype=np.float64),
        "embedding_distance": np.array([i.embedding_distance for i in ids], dtype=np.float64),
        "condition_distance": np.array([i.condition_distance for i in ids], dtype=np.float64),
        "seeds": np.array([i.seeds for i in ids], dtype=np.int64),
        "meta": np.array(json.dumps(meta, sort_keys=True)),
    }
    path = state_path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        tmp.write_bytes(buffer.getvalue())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read_state(out: str | Path, fingerprint: str, warn: bool = True) -> tuple[MixPlan, dict[str, Any]] | None:
    """The plan and provenance of THIS build (``fingerprint``) from ``out``'s state; None when absent, another
    build's, or unreadable (then it is planned again; ``warn``: say so as a warning, else at debug level)."""
    path = state_path(out)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            if meta.get("fingerprint") != fingerprint:
                return None
            parents, weights, seeds = z["parents"], z["weights"], z["seeds"]
            emb, cond = z["embedding_distance"], z["condition_distance"]
        ids = tuple(Identity(index=n, parents=tuple(int(c) for c in parents[n]),
                             weights=tuple(float(w) for w in weights[n]), embedding_distance=float(emb[n]),
                             condition_distance=float(cond[n]), seeds=tuple(int(s) for s in seeds[n]))
                    for n in range(len(parents)))
        return MixPlan(ids, class_names=tuple(meta["class_names"])), meta["provenance"]
    # A torn or damaged file: not a zip (BadZipFile), cut short (EOFError), a member missing or of another shape
    # (KeyError, IndexError, TypeError, AttributeError for a meta that is not a dict): planned again, never trusted.
    except (OSError, ValueError, KeyError, IndexError, TypeError, AttributeError, EOFError,
            zipfile.BadZipFile) as exc:
        logger.log(logging.WARNING if warn else logging.DEBUG, "ignoring the unreadable plan state %s (%s)", path, exc)
        return None


def wait_for_state(out: str | Path, fingerprint: str, timeout: float, rank: int = 1,
                   poll: float = POLL_SECONDS) -> tuple[MixPlan, dict[str, Any]]:
    """Wait (polling the file, no collective) until process 0 has written this build's plan, up to ``timeout``
    seconds; one log line when the wait begins, one error naming the timeout's variable when it runs out."""
    from ...core.processes import WAIT_TIMEOUT

    started = time.monotonic()
    found = read_state(out, fingerprint)
    if found is None:
        logger.info("process %d waits for process 0's plan in %s (up to %.0f s, %s)", rank, state_path(out), timeout,
                    WAIT_TIMEOUT)
    while found is None:
        if time.monotonic() - started > timeout:
            # no field: what fixes a wait that is too short is the environment variable, not a flag (not --out)
            raise DataError(f"process {rank} waited {timeout:.0f} s for process 0's plan ({state_path(out)}) and it "
                            f"never came", hint=f"see process 0's error above; if it is still planning a very large "
                            f"real set, raise {WAIT_TIMEOUT} (seconds)")
        time.sleep(poll)
        found = read_state(out, fingerprint, warn=False)  # an unreadable state warned once above, not at every poll
    logger.debug("process %d read the plan after %.1f s", rank, time.monotonic() - started)
    return found


__all__ = ["PLAN_STATE", "read_state", "state_path", "wait_for_state", "write_state"]
