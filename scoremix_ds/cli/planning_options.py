"""The planning options ``plan`` and ``build`` share: which tuples to mix, from which models and data, with what
weights, how many images each. Declared once (:data:`PLANNING_OPTIONS`), added to a command by
:func:`with_planning_options`, and turned into the ``BuildConfig`` overrides once (:func:`planning_overrides`)."""

from __future__ import annotations

import functools
import inspect
import typing
from copy import copy
from typing import Any, Callable, Mapping

from .options import (
    AllowNonconvexOpt,
    BandOpt,
    ClassesOpt,
    DiscriminatorOpt,
    DiscriminatorRevisionOpt,
    GeneratorOpt,
    GeneratorRevisionOpt,
    MaxUsesOpt,
    NullClassOpt,
    PairsOpt,
    PerIdentityOpt,
    RealDataOpt,
    RealDataRevisionOpt,
    SeedOpt,
    StrategyOpt,
    WeightsOpt,
)
from .parsing import parse_band, parse_class_ids, parse_floats

PANEL = "Planning (the same in plan and build)"  # their section of --help

# (BuildConfig field, its option), in --help order.
PLANNING_OPTIONS: tuple[tuple[str, Any], ...] = (
    ("strategy", StrategyOpt),
    ("generator", GeneratorOpt),
    ("generator_revision", GeneratorRevisionOpt),
    ("null_class", NullClassOpt),
    ("discriminator", DiscriminatorOpt),
    ("discriminator_revision", DiscriminatorRevisionOpt),
    ("real_data", RealDataOpt),
    ("real_data_revision", RealDataRevisionOpt),
    ("classes", ClassesOpt),
    ("pairs", PairsOpt),
    ("per_identity", PerIdentityOpt),
    ("weights", WeightsOpt),
    ("allow_nonconvex", AllowNonconvexOpt),
    ("band", BandOpt),
    ("max_uses", MaxUsesOpt),
    ("seed", SeedOpt),
)

# The options whose flag text is parsed into the field's type; the others pass through as given.
PARSERS: dict[str, Callable[[Any], Any]] = {
    "classes": parse_class_ids,
    "band": parse_band,
    "weights": lambda text: parse_floats(text, "--weights"),
}


def planning_overrides(values: Mapping[str, Any]) -> dict[str, Any]:
    """The ``BuildConfig`` overrides of the planning options' flag values (``None``: not given)."""
    return {name: PARSERS.get(name, _as_given)(values[name]) for name, _ in PLANNING_OPTIONS}


def _as_given(value: Any) -> Any:
    return value


def _in_panel(option: Any) -> Any:
    """``option`` (an ``Annotated`` alias) listed under :data:`PANEL` in --help; the shared alias is not changed."""
    base, info = typing.get_args(option)
    info = copy(info)
    info.rich_help_panel = PANEL
    return typing.Annotated[base, info]


def with_planning_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``command(planning, **own_options)`` as a CLI command that takes the planning options first, then its own;
    ``planning`` is :func:`planning_overrides` of what was given."""
    own = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
           for p in inspect.signature(command, eval_str=True).parameters.values() if p.name != "planning"]
    group = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=_in_panel(option))
             for name, option in PLANNING_OPTIONS]

    @functools.wraps(command)
    def run(**values: Any) -> Any:
        planning = planning_overrides({name: values.pop(name) for name, _ in PLANNING_OPTIONS})
        return command(planning, **values)

    params = group + own
    run.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    run.__annotations__ = {p.name: p.annotation for p in params}
    return run
