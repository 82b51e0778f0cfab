"""``--no-cache``: the commands that compute class centres (``build``, ``plan``, ``align``, ``audit``,
``reproduce``) neither read nor write the user's class-centre cache (:mod:`scoremix_ds.synthesis.centres_cache`).

The flag sets ``SCOREMIX_NO_CACHE=1`` for the command's duration (so the processes a ``--num-processes`` build
starts inherit it) and restores the environment after it.
"""

from __future__ import annotations

import functools
import inspect
import os
from typing import Annotated, Any, Callable

import typer

from ..synthesis.centres_cache import NO_CACHE_ENV

NoCacheOpt = Annotated[bool, typer.Option("--no-cache", help=(
    "Neither read nor write the class-centre cache ($SCOREMIX_CACHE, default ~/.cache/scoremix-ds): embed the real "
    "data again."))]


def with_cache_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """``command`` with a ``--no-cache`` flag added after its own options."""
    params = list(inspect.signature(command, eval_str=True).parameters.values())
    extra = inspect.Parameter("no_cache", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=NoCacheOpt)

    @functools.wraps(command)
    def run(*args: Any, no_cache: bool = False, **values: Any) -> Any:
        if not no_cache:
            return command(*args, **values)
        before = os.environ.get(NO_CACHE_ENV)
        os.environ[NO_CACHE_ENV] = "1"
        try:
            return command(*args, **values)
        finally:
            if before is None:
                os.environ.pop(NO_CACHE_ENV, None)
            else:
                os.environ[NO_CACHE_ENV] = before

    params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
              else p for p in params] + [extra]
    run.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    run.__annotations__ = {p.name: p.annotation for p in params}
    return run
