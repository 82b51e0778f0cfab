"""Turning flag strings into typed values, with errors that name the flag."""

from __future__ import annotations

from ..core.errors import ConfigError


def parse_floats(text: str | None, flag: str) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise ConfigError(f"{flag} '{text}' is not a comma-separated list of numbers", hint=f"e.g. {flag} 0.5,0.5") from None


def parse_ints(text: str | None, flag: str) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise ConfigError(f"{flag} '{text}' is not a comma-separated list of integers", hint=f"e.g. {flag} 0,3,7") from None


def parse_band(text: str | None) -> tuple[float, float] | None:
    values = parse_floats(text, "--band")
    if values is not None and len(values) != 2:
        raise ConfigError(f"--band takes two percentiles LO,HI, got '{text}'", hint="e.g. --band 40,60")
    return values  # type: ignore[return-value]


def parse_class_ids(text: str | None, flag: str = "--classes") -> tuple[int, ...] | None:
    """``"0,3,7"`` or ``"0-7"`` or ``"0-3,9"`` -> class ids (sorted, each once), the ``NAME[classes]`` grammar."""
    if text is None:
        return None
    from ..sources.subsets import parse_classes

    try:
        return parse_classes(text)
    except ConfigError as exc:
        raise ConfigError(f"{flag} '{text}': {exc.message}", hint=f"e.g. {flag} 0,3,7 or {flag} 0-7") from None
