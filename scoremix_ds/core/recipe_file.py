"""``build.toml``: the recipe that rebuilds a dataset, written beside its card.

It holds every field that decides the rows (the build's content config, ``BuildConfig.content_config``) plus the
plan file's path when the build had one, so ``scoremix-ds build --recipe DIR/build.toml --out COPY`` makes the same
rows (same fingerprint). Model and data references are written as the build was given them: a local path is only
meaningful on the machine (and from the folder) where the build ran. Fields left at ``None`` are omitted (TOML has
no null; every such field defaults to ``None``).

``--recipe DIR/manifest.json`` is read the same way (:func:`manifest_recipe`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .outputs import atomic_write

RECIPE = "build.toml"
HEADER = ("# The recipe of this dataset: `scoremix-ds build --recipe build.toml --out COPY` rebuilds the same rows.\n"
          "# Written by scoremix-ds {version}; flags given with --recipe override these values.\n")


def toml_value(value: Any) -> str:
    """One TOML value (strings as basic strings, whose escapes JSON's are a subset of)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {type(value).__name__}")


def recipe_text(values: dict[str, Any], version: str) -> str:
    """``values`` (field -> JSON-able value) as a flat TOML recipe, keys sorted, ``None`` values left out."""
    lines = [f"{key} = {toml_value(value)}" for key, value in sorted(values.items()) if value is not None]
    return HEADER.format(version=version) + "\n".join(lines) + "\n"


def write_recipe(out: Path, config: dict[str, Any], plan: str | None, version: str) -> Path:
    """Write ``out/build.toml`` from a manifest's content config (and the plan path, a layout field)."""
    path = Path(out) / RECIPE
    atomic_write(path, recipe_text({**config, "plan": plan}, version))
    return path


def manifest_recipe(path: Path) -> dict[str, Any]:
    """A build's ``manifest.json`` as recipe values: its content config, ``None`` values dropped."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"recipe {path.name} is not valid JSON: {exc}", hint="give a TOML recipe or a build's manifest.json",
                          field="recipe")
    if not isinstance(data, dict) or not isinstance(data.get("config"), dict) or "fingerprint" not in data:
        raise ConfigError(f"{path} is not a scoremix-ds manifest (no config / fingerprint)",
                          hint="give a TOML recipe or a build's manifest.json", field="recipe")
    return {k: v for k, v in data["config"].items() if v is not None}
