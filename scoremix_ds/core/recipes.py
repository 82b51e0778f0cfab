"""Typed, frozen config dataclasses from TOML recipes and flag overrides.

A recipe in ``builders/`` is a saved config: its keys are the dataclass fields, checked for unknown names and wrong
types before anything runs. Flags given on the command line override recipe values.
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, Mapping, TypeVar

from .errors import ConfigError
from .recipe_file import manifest_recipe
from .resources import resource_dir

T = TypeVar("T")


def _matches(value: Any, annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if annotation is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin is tuple:
        args = typing.get_args(annotation)
        if not isinstance(value, (list, tuple)):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_matches(v, args[0]) for v in value)
        return len(value) == len(args) and all(_matches(v, a) for v, a in zip(value, args))
    if origin is typing.Literal:
        return value in typing.get_args(annotation)
    if isinstance(annotation, type):
        return isinstance(value, annotation)
    return True


def _coerce(value: Any, annotation: Any) -> Any:
    """Lists from TOML/JSON become tuples where the field is a tuple (frozen configs stay hashable)."""
    if isinstance(value, list):
        return tuple(value)
    return value


def from_mapping(cls: type[T], values: Mapping[str, Any], source: str) -> T:
    """Build the dataclass ``cls`` from ``values``, refusing unknown keys and wrong types with one clear line."""
    return cls(**check_mapping(cls, values, source))


def check_mapping(cls: type, values: Mapping[str, Any], source: str) -> dict[str, Any]:
    """Check keys and value types against the fields of ``cls``; return the values ready for its constructor."""
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(values) - fields)
    if unknown:
        raise ConfigError(
            f"{source}: unknown key(s) {', '.join(unknown)}",
            hint=f"valid keys: {', '.join(sorted(fields))}",
        )
    kwargs = {}
    for key, value in values.items():
        if not _matches(value, hints[key]):
            raise ConfigError(
                f"{source}: key '{key}' has the wrong type ({type(value).__name__}: {value!r})",
                hint=f"expected {_describe(hints[key])}",
            )
        kwargs[key] = _coerce(value, hints[key])
    return kwargs


def _describe(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def resolve_recipe(name_or_path: str | Path) -> Path:
    """A recipe is a path to a TOML file (or a build's ``manifest.json``), the name of one in ``builders/``
    (with or without ``.toml``), or a pushed dataset ``ORG/NAME[@REV]`` (its ``build.toml``)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    bundled = resource_dir("builders")
    for candidate in (bundled / path.name, bundled / f"{path.name}.toml"):
        if candidate.is_file():
            return candidate
    hub_recipe = _hub_build_recipe(str(name_or_path))
    if hub_recipe is not None:
        return hub_recipe
    known = ", ".join(sorted(p.stem for p in bundled.glob("*.toml")))
    raise ConfigError(f"recipe '{name_or_path}' not found",
                      hint=f"set recipe to a TOML file, a pushed dataset ORG/NAME[@REV] or one of: {known}",
                      field="recipe")  # --recipe for build/train, the RECIPE argument of reproduce


HUB_RECIPE = "build.toml"  # what ``push`` publishes beside a dataset's card: the build's config as a recipe


def _hub_build_recipe(text: str) -> Path | None:
    """``ORG/NAME[@REV]`` (no such local file): the ``build.toml`` of that Hub dataset at ``REV``, downloaded into
    the Hugging Face cache (the token of ``HF_TOKEN`` / the login, if any); ``None`` for a text that is no Hub id."""
    from .refs import could_be_hub_id, split_revision

    if "/" not in text:
        return None
    repo_id, revision = split_revision(text, "recipe")
    if not could_be_hub_id(repo_id):
        return None
    from .hub_client import download_errors, make_api, resolve_token

    api = make_api(resolve_token(None, required=False))
    with download_errors("the build recipe of dataset", repo_id, revision, field="recipe", needs=HUB_RECIPE):
        return Path(api.hf_hub_download(repo_id, HUB_RECIPE, repo_type="dataset", revision=revision))


def load_recipe(name_or_path: str | Path, section: str | None = None) -> dict[str, Any]:
    """Read a recipe's key/values (optionally one ``[section]`` of it) without validating them yet."""
    path = resolve_recipe(name_or_path)
    if path.suffix == ".json" and section is None:  # a build's manifest.json: its config is a build recipe
        return manifest_recipe(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"recipe {path.name} is not valid TOML: {exc}", hint="fix that recipe file", field="recipe")
    if section is not None:
        if section not in data:
            raise ConfigError(f"recipe {path.name} has no [{section}] section", hint="check that recipe file", field="recipe")
        data = data[section]
    return dict(data)


def merge(recipe: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Recipe values overridden by flags that were actually given (``None`` means 'not given')."""
    merged = dict(recipe)
    merged.update({k: v for k, v in overrides.items() if v is not None})
    return merged


def config_from(cls: type[T], recipe: str | None, overrides: Mapping[str, Any]) -> T:
    """The CLI's one way to make a config: a recipe (checked on its own), then the flags given on top."""
    base = check_mapping(cls, load_recipe(recipe), f"recipe {recipe}") if recipe else {}
    return from_mapping(cls, merge(base, overrides), source=f"recipe {recipe} + flags" if recipe else "flags")


def to_dict(config: Any) -> dict[str, Any]:
    """A config as plain JSON-able data (tuples become lists)."""
    return json_ready(dataclasses.asdict(config))


def without_added_fields(values: dict[str, Any], added: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` (a config's fingerprint payload) without the fields added after configs were fingerprinted, where
    they hold the value that reproduces the older behaviour: older configs keep their fingerprints (and their cached
    or shipped results stay valid)."""
    return {k: v for k, v in values.items() if not (k in added and v == added[k])}


def json_ready(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value
