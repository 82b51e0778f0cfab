"""Class subsets of any labelled data: ``NAME[0-6]`` or ``org/faces[0,3,10-19]`` keeps those classes only.

This is how open-set experiments are written down: the generator and discriminator train on ``mnist-5k-train[0-6]``
and verification pairs come from ``mnist-5k-heldout[7-9]``, classes neither has seen. Kept classes are relabelled
``0..k-1`` in ascending order of their original ids; their names are kept.
"""

from __future__ import annotations

import re

import numpy as np

from ..core.errors import ConfigError, DataError

_SUBSET = re.compile(r"^(?P<base>.+)\[(?P<classes>[0-9][0-9,\- ]*)\]$")


def parse_classes(text: str) -> tuple[int, ...]:
    """``"0-2,5"`` -> ``(0, 1, 2, 5)`` (sorted, each once)."""
    out: set[int] = set()
    for part in (p.strip() for p in text.split(",") if p.strip()):
        lo, _, hi = part.partition("-")
        try:
            a, b = int(lo), int(hi or lo)
        except ValueError:
            raise ConfigError(f"class range '{part}' is not N or N-M", hint="write subsets as NAME[0-6] or NAME[0,3,5]") from None
        if b < a:
            raise ConfigError(f"class range '{part}' is empty", hint="write ranges low-high, e.g. NAME[0-6]")
        repeated = sorted(out.intersection(range(a, b + 1)))
        if repeated:  # a typo (0,3,3 or 0-5,4) is refused at once, not merged into a smaller set than was written
            raise ConfigError(f"class {repeated[0]} is listed twice in '{text}'", hint="list each class once")
        out.update(range(a, b + 1))
    if not out:
        raise ConfigError(f"no classes in '[{text}]'", hint="write subsets as NAME[0-6] or NAME[0,3,5]")
    return tuple(sorted(out))


def split_subset(name: str) -> tuple[str, tuple[int, ...] | None]:
    """``"mnist-5k[0-6]"`` -> ``("mnist-5k", (0, ..., 6))``; a name without brackets -> ``(name, None)``."""
    m = _SUBSET.match(name)
    return (name, None) if m is None else (m.group("base"), parse_classes(m.group("classes")))


def take_classes(labels: np.ndarray, class_names: tuple[str, ...], classes: tuple[int, ...], where: str
                 ) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Row indices of ``classes``, their labels relabelled ``0..k-1``, and the kept names."""
    missing = [c for c in classes if c >= len(class_names)]
    if missing:
        raise DataError(f"{where} has classes 0..{len(class_names) - 1}; the subset asks for {missing[0]}",
                        hint="check the [classes] after the data name")
    lookup = np.full(len(class_names), -1, dtype=np.int64)
    lookup[list(classes)] = np.arange(len(classes))
    rows = np.flatnonzero(lookup[labels] >= 0)
    return rows, lookup[labels[rows]], tuple(class_names[c] for c in classes)
