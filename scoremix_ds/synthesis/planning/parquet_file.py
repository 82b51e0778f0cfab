"""The plan file: a mixing plan as parquet, so it can be inspected, edited, shared and built later.

One row per synthetic identity::

    identity            int64          index of the identity (its label in the ``mix`` config)
    identity_name       string         mix:<parent names joined by +>
    parents             list<int64>    the K mixed classes
    parent_names        list<string>
    weights             list<float64>  mixing weights, one per parent
    embedding_distance  float64        mean pairwise cosine distance of the parents' discriminator class centres
    condition_distance  float64        the same between the generator's class-condition vectors
    seeds               list<int64>    one seed per image

The schema metadata (key ``scoremix``) holds JSON: the format version, strategy, its settings, and the generator and
discriminator with their content digests (:mod:`scoremix_ds.core.digest`). ``build --plan`` refuses a plan made
with other models. Any parquet reader opens the file (``datasets.load_dataset("parquet", data_files=...)``).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ...core.errors import ConfigError, DataError
from .mix_plan import Identity, MixPlan

FORMAT = "scoremix-plan/1"
_SCHEMA = pa.schema([
    ("identity", pa.int64()),
    ("identity_name", pa.string()),
    ("parents", pa.list_(pa.int64())),
    ("parent_names", pa.list_(pa.string())),
    ("weights", pa.list_(pa.float64())),
    ("embedding_distance", pa.float64()),
    ("condition_distance", pa.float64()),
    ("seeds", pa.list_(pa.int64())),
])


@dataclass(frozen=True)
class PlanFile:
    plan: MixPlan
    meta: dict[str, Any]  # format, strategy, seed, generator/discriminator refs and digests, class names...


def write_plan(path: str | Path, plan: MixPlan, meta: dict[str, Any]) -> Path:
    """Write atomically (tmp + rename): an interrupted write never leaves a half plan under ``path``."""
    import dataclasses

    path = Path(path)
    if not plan.class_names:
        plan = dataclasses.replace(plan, class_names=tuple(meta["class_names"]))
    names = plan.names
    ids = plan.identities
    table = pa.table({
        "identity": [i.index for i in ids],
        "identity_name": list(plan.identity_names),
        "parents": [list(i.parents) for i in ids],
        "parent_names": [[names[p] for p in i.parents] for i in ids],
        "weights": [list(i.weights) for i in ids],
        "embedding_distance": [_null_nan(i.embedding_distance) for i in ids],
        "condition_distance": [_null_nan(i.condition_distance) for i in ids],
        "seeds": [list(i.seeds) for i in ids],
    }, schema=_SCHEMA.with_metadata({"scoremix": json.dumps({"format": FORMAT, **meta}, sort_keys=True)}))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    pq.write_table(table, tmp)
    os.replace(tmp, path)
    return path


def _null_nan(x: float) -> float | None:
    """A distance that does not exist (no class centres without --real-data) is written as null, never NaN."""
    return None if x is None or math.isnan(x) else float(x)


def _nan_null(x: float | None) -> float:
    return math.nan if x is None else float(x)


def _meta(schema: pa.Schema) -> dict[str, Any]:
    """The plan's ``scoremix`` metadata (empty when absent or not a JSON object)."""
    raw = (schema.metadata or {}).get(b"scoremix")
    try:
        meta = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return meta if isinstance(meta, dict) else {}


def is_plan_file(path: str | Path) -> bool:
    """True when ``path`` is a plan file `scoremix-ds plan` wrote (so writing a new plan over it loses nothing)."""
    try:
        return _meta(pq.read_schema(path)).get("format") == FORMAT
    except Exception:  # not parquet, unreadable: not ours
        return False


def read_plan(path: str | Path) -> PlanFile:
    """Read and check a plan file: its format, columns, and that every identity is well formed."""
    path = Path(path)
    hint = "give as `plan` a file written by `scoremix-ds plan`"  # the errors below name the field plan
    if not path.is_file():
        raise ConfigError(f"plan file {path} does not exist", hint=hint, field="plan")
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"plan file {path} is not parquet: {exc}", hint=hint, field="plan") from exc
    meta = _meta(table.schema)
    if meta.get("format") != FORMAT:
        raise DataError(f"plan file {path} is not a scoremix plan (format {meta.get('format')!r}, expected {FORMAT!r})", hint=hint, field="plan")
    missing = [f.name for f in _SCHEMA if f.name not in table.column_names]
    if missing:
        raise DataError(f"plan file {path} lacks column(s) {', '.join(missing)}", hint=hint, field="plan")
    rows = table.select(_SCHEMA.names).to_pylist()
    identities = []
    for n, r in enumerate(rows):
        where = f"plan file {path}, row {n}"
        if any(r[c] is None for c in _SCHEMA.names if c not in ("identity_name", "parent_names")) or any(
                v is None for c in ("parents", "weights", "seeds") for v in r[c]):
            raise DataError(f"{where}: has empty (null) values", hint=hint, field="plan")
        if not all(math.isfinite(v) for v in (*r["weights"], r["embedding_distance"], r["condition_distance"])):
            raise DataError(f"{where}: has a weight or distance that is not a finite number", hint=hint, field="plan")
        if r["identity"] != n:
            raise DataError(f"{where}: identity {r['identity']} out of order (identities must be 0..N-1 in order)", hint=hint, field="plan")
        k = len(r["parents"] or [])
        if k < 2 or len(set(r["parents"])) != k or len(r["weights"] or []) != k or not r["seeds"]:
            raise DataError(f"{where}: needs >= 2 distinct parents, one weight per parent and >= 1 seed", hint=hint, field="plan")
        identities.append(Identity(index=n, parents=tuple(r["parents"]), weights=tuple(r["weights"]),
                                   embedding_distance=_nan_null(r["embedding_distance"]),
                                   condition_distance=_nan_null(r["condition_distance"]), seeds=tuple(r["seeds"])))
    if not identities:
        raise DataError(f"plan file {path} has no identities", hint=hint, field="plan")
    return PlanFile(MixPlan(tuple(identities)), meta)
