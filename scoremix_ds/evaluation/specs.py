"""What a ``--benchmark`` string means: :func:`parse_benchmark` reads it, :func:`load_benchmark` builds the object
:func:`~scoremix_ds.evaluation.runner.evaluate` takes.

Accepted forms (``REV`` is a Hub branch, tag or commit; ``[0-6]`` keeps those classes, as everywhere in scoremix-ds):

==============================================  =================================================================
``PATH.bin``                                    an insightface verification file (LFW, CFP-FP, AgeDB-30, ...),
                                                read by the restricted reader inside the runner (timed there)
``heldout:NAME[@REV][:PAIRS]``                  ``PAIRS`` balanced pairs (default 3000, drawn with ``--seed``)
                                                from labelled data ``NAME``: ``mnist-5k-heldout``, ``NAME[7-9]``,
                                                a dataset folder or a Hub id (:func:`~..sources.openers.read_real_data`)
``NAME[:PAIRS]``, ``NAME[7-9][:PAIRS]``         the same, for a name in :data:`~..sources.readers.READERS` or with a
                                                class subset (a labelled set cannot be a pair list)
``pairs:NAME[@REV][:SPLIT]``, ``FOLDER``,       a ``datasets`` pair dataset (``image_a``/``image_b``/``is_same``),
``ORG/NAME[@REV]``                              split ``test`` unless given (:func:`~.verification_pairs.load_pair_dataset`)
``ijbb:ROOT``, ``ijbc:ROOT``                    IJB-B / IJB-C 1:1 template verification from a release folder
``openset:NAME[@REV]``                          labelled data of unseen identities: EVERY genuine and impostor
                                                pair (TAR@FAR down to 1e-6) and rank-1 identification
                                                (:class:`~.runner.OpenSetSet`), e.g. ``openset:glyphs-han-verify``
==============================================  =================================================================

``tinyface:ROOT`` is refused: its 153,428 gallery distractors do not fit the in-memory
:class:`~.runner.IdentificationSet`; build one in Python for a smaller gallery. Anything else, or a name that is
both a known data name and an existing path, is a :class:`~scoremix_ds.core.errors.ConfigError` naming ``--benchmark``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.errors import ConfigError, DataError
from .verification_pairs import VerificationPairs, load_pair_dataset
from .runner import HeldOutSet, IJBSet, OpenSetSet

DEFAULT_PAIRS = 3000  # held-out pairs when PAIRS is not given: half genuine, half impostor (LFW has 6,000)
DEFAULT_SPLIT = "test"
FORMS = ("PATH.bin, heldout:NAME[:PAIRS], mnist-5k-heldout, NAME[7-9], pairs:NAME[:SPLIT], a pair dataset folder, "
         "ORG/NAME[@REV], ijbb:ROOT, ijbc:ROOT or openset:NAME")
_HINT = f"benchmark takes {FORMS}"
_PREFIX = re.compile(r"^(?P<kind>[A-Za-z][A-Za-z0-9_-]*):(?P<rest>.*)$")
_TRAILING = re.compile(r"^(?P<head>.+):(?P<tail>[^:/\]]+)$")  # NAME:PAIRS / NAME:SPLIT, never inside a path or [..]
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class BenchmarkSpec:
    """One parsed ``--benchmark``.

    ``kind`` is ``bin`` (``target`` a file), ``heldout`` or ``openset`` (``target`` a real-data name; ``num_pairs``
    pairs for ``heldout``, every pair for ``openset``),
    ``pairs`` (``target`` a dataset folder or Hub id, ``split``) or ``ijb`` (``target`` a release folder). ``name``
    is the report's name for ``bin`` (the file stem) and ``ijb`` (``ijbb``/``ijbc``); the others name themselves.
    ``text`` is what the user wrote, for error messages.
    """

    kind: str
    target: str
    text: str
    name: str = ""
    revision: str | None = None
    num_pairs: int = DEFAULT_PAIRS
    split: str = DEFAULT_SPLIT

    def __post_init__(self) -> None:
        if self.kind not in ("bin", "heldout", "pairs", "ijb", "openset"):
            raise ConfigError(f"benchmark '{self.text}': unknown kind '{self.kind}'", hint=_HINT, field="benchmark")
        if self.kind == "heldout" and self.num_pairs < 2:
            raise ConfigError(f"benchmark '{self.text}': PAIRS must be at least 2, got {self.num_pairs}",
                              hint="e.g. `benchmark` heldout:mnist-5k-heldout:3000", field="benchmark")


def _split_revision(text: str) -> tuple[str, str | None]:
    """``NAME@REV`` -> ``(NAME, REV)`` unless ``text`` is an existing path: the one grammar of :mod:`..core.refs`."""
    from ..core.refs import split_revision

    return split_revision(text, "benchmark")


def _is_data_name(name: str) -> bool:
    """A name :func:`~..sources.openers.read_real_data` knows by itself, with or without a class subset."""
    from ..sources.readers import READERS
    from ..sources.subsets import split_subset

    return split_subset(name)[0] in READERS


def _heldout(rest: str, text: str) -> BenchmarkSpec:
    if not rest:
        raise ConfigError(f"benchmark '{text}' names no data", hint="e.g. `benchmark` heldout:mnist-5k-heldout:3000", field="benchmark")
    num_pairs = DEFAULT_PAIRS
    m = _TRAILING.match(rest)
    if m is not None and not Path(rest).expanduser().exists():
        if not m.group("tail").isdigit():
            raise ConfigError(f"benchmark '{text}': PAIRS '{m.group('tail')}' is not a whole number",
                              hint="e.g. `benchmark` heldout:mnist-5k-heldout:3000", field="benchmark")
        rest, num_pairs = m.group("head"), int(m.group("tail"))
    name, revision = _split_revision(rest)
    return BenchmarkSpec("heldout", name, text, revision=revision, num_pairs=num_pairs)


def _openset(rest: str, text: str) -> BenchmarkSpec:
    if not rest:
        raise ConfigError(f"benchmark '{text}' names no data", hint="e.g. `benchmark` openset:glyphs-han-verify", field="benchmark")
    name, revision = _split_revision(rest)
    return BenchmarkSpec("openset", name, text, name=f"openset:{rest}", revision=revision)


def _pairs(rest: str, text: str) -> BenchmarkSpec:
    if not rest:
        raise ConfigError(f"benchmark '{text}' names no dataset", hint="e.g. `benchmark` pairs:ORG/NAME@main:test", field="benchmark")
    split = DEFAULT_SPLIT
    m = _TRAILING.match(rest)
    if m is not None and not Path(rest).expanduser().exists():
        rest, split = m.group("head"), m.group("tail")
    name, revision = _split_revision(rest)
    return BenchmarkSpec("pairs", name, text, revision=revision, split=split)


def _ijb(kind: str):
    def parse(rest: str, text: str) -> BenchmarkSpec:
        if not Path(rest).expanduser().is_dir():
            raise ConfigError(f"benchmark '{text}': '{rest}' is not a folder",
                              hint=f"{kind}:ROOT takes the IJB release folder (meta/, loose_crop/)", field="benchmark")
        return BenchmarkSpec("ijb", str(Path(rest).expanduser()), text, name=kind)

    return parse


def _tinyface(rest: str, text: str) -> BenchmarkSpec:
    raise ConfigError(
        f"benchmark '{text}': TinyFace is not supported by the CLI (its 153,428 gallery distractors do not fit the "
        "in-memory identification set)",
        hint="run scoremix_ds.evaluation.evaluate with an IdentificationSet, or give another `benchmark`", field="benchmark",
    )


# The one table of benchmark kinds: each ``KIND:`` prefix and its parser. ``scoremix-ds reproduce`` checks its
# recipes' benchmarks against it too (and reads ``tinyface:``, refused here, itself: reproduce/benchmarks.py).
KINDS = {"heldout": _heldout, "pairs": _pairs, "ijbb": _ijb("ijbb"), "ijbc": _ijb("ijbc"), "tinyface": _tinyface,
         "openset": _openset}


def parse_benchmark(text: str) -> BenchmarkSpec:
    """Read one ``--benchmark`` string (module docstring); looks at the file system only to tell paths apart.

    >>> parse_benchmark("heldout:mnist-5k-heldout[7-9]:300").num_pairs
    300
    >>> parse_benchmark("org/lfw-pairs@v1").revision
    'v1'
    """
    text = text.strip()
    if not text:
        raise ConfigError("benchmark is empty", hint=_HINT, field="benchmark")
    m = _PREFIX.match(text)
    if m is not None and m.group("kind").lower() in KINDS:
        return KINDS[m.group("kind").lower()](m.group("rest"), text)
    path = Path(text).expanduser()
    if text.lower().endswith(".bin"):
        if not path.is_file():
            raise ConfigError(f"benchmark '{text}': no such .bin file", hint="check the path of the benchmark", field="benchmark")
        return BenchmarkSpec("bin", str(path), text, name=path.stem)
    name, _ = _split_revision(text)
    trailing = _TRAILING.match(name)
    if _is_data_name(name) or (trailing is not None and _is_data_name(trailing.group("head"))):  # NAME or NAME:PAIRS
        if path.exists():
            raise ConfigError(f"benchmark '{text}' is both a data name and a path here",
                              hint=f"write `benchmark` heldout:{text} or `benchmark` ./{text}", field="benchmark")
        return _heldout(text, text)
    if path.is_dir():
        return _pairs(text, text)
    if path.exists():
        raise ConfigError(f"benchmark '{text}' is a file but not a .bin", hint=_HINT, field="benchmark")
    if m is not None:
        raise ConfigError(f"benchmark '{text}': unknown kind '{m.group('kind')}'",
                          hint=f"known kinds: {', '.join(k + ':' for k in KINDS)}", field="benchmark")
    if _HUB_ID.match(name):
        return _pairs(text, text)
    if name.endswith("]") and _HUB_ID.match(name.rpartition("[")[0]):
        return _heldout(text, text)  # a class subset marks labelled data: ORG/NAME[0-9] is never a pair list
    raise ConfigError(f"unknown `benchmark` '{text}' (not a file, folder, data name or Hub id)", hint=_HINT, field="benchmark")


def max_balanced_pairs(labels: np.ndarray) -> int:
    """The most pairs :func:`~.verification_pairs.make_pairs_from_labels` can draw: ``n // 2 <= G`` genuine and
    ``n - n // 2 <= I`` impostor, with ``G = sum_c n_c (n_c - 1) / 2`` and ``I = N (N - 1) / 2 - G``."""
    labels = np.asarray(labels).ravel()
    _, sizes = np.unique(labels, return_counts=True)
    genuine = int(np.sum(sizes * (sizes - 1) // 2))
    impostor = len(labels) * (len(labels) - 1) // 2 - genuine
    return 2 * min(genuine, impostor) + int(impostor > genuine)


def _unloadable():
    """What ``datasets.load_dataset`` raises beyond what the readers catch: a folder whose files do not form one
    table, or a Hub id with no network (``ConnectionError``)."""
    import datasets

    return (datasets.exceptions.DatasetGenerationError, ConnectionError)


def _first_line(exc: BaseException) -> str:
    """The first line of ``exc``, and of its cause (datasets wraps the real reason in a generic message)."""
    def line(e: BaseException) -> str:
        text = str(e).strip()
        return text.splitlines()[0] if text else type(e).__name__

    return line(exc) + (f" ({line(exc.__cause__)})" if exc.__cause__ is not None else "")


def _labelled(spec: BenchmarkSpec):
    """The labelled images a ``heldout:`` / ``openset:`` spec names, errors re-worded for ``--benchmark``."""
    from ..sources.openers import read_real_data
    from ..core.errors import ScoreMixError

    hint = f"{spec.kind}:NAME takes mnist-5k-heldout, glyphs-han-verify, NAME[7-9], a labelled dataset folder or a Hub id"
    try:
        data = read_real_data(spec.target, spec.revision)
    except ScoreMixError as exc:  # the reader's hint names real_data; here it is the benchmark
        raise type(exc)(f"benchmark '{spec.text}': {exc.message}", hint=hint, field="benchmark") from exc
    except _unloadable() as exc:
        raise DataError(f"benchmark '{spec.text}': cannot load '{spec.target}': {_first_line(exc)}",
                        hint=hint, field="benchmark") from exc
    return data


def _load_heldout(spec: BenchmarkSpec, seed: int) -> HeldOutSet:
    data = _labelled(spec)
    most = max_balanced_pairs(data.labels)
    if spec.num_pairs > most:
        raise ConfigError(f"benchmark '{spec.text}': {len(data.labels)} images in {data.num_classes} classes offer "
                          f"at most {most} distinct balanced pairs, {spec.num_pairs} asked",
                          hint=f"use `benchmark` heldout:{spec.target}:{most}", field="benchmark")
    name = spec.target if spec.revision is None else f"{spec.target}@{spec.revision}"
    return HeldOutSet(data.images, data.labels, name=name, num_pairs=spec.num_pairs, seed=seed)


def _load_pairs(spec: BenchmarkSpec) -> VerificationPairs:
    hint = ("a pair dataset has image_a/image_b/is_same columns (pairs:NAME:SPLIT picks the split); "
            "for labelled images write heldout:NAME")
    try:
        return load_pair_dataset(spec.target, spec.revision, spec.split)
    except DataError as exc:
        raise DataError(f"benchmark '{spec.text}': {exc.message}", hint=hint, field="benchmark") from exc
    except _unloadable() as exc:
        raise DataError(f"benchmark '{spec.text}': cannot load '{spec.target}': {_first_line(exc)}",
                        hint=hint, field="benchmark") from exc


def load_benchmark(spec: BenchmarkSpec, seed: int = 0) -> str | HeldOutSet | VerificationPairs | IJBSet | OpenSetSet:
    """The object :func:`~.runner.evaluate` takes for ``spec``. Held-out and pair data are read here; ``.bin`` and
    IJB files are read by the runner, which times their loading.

    Raises:
        ConfigError: more held-out pairs asked than the labelled set offers (the hint gives the most).
        DataError: the data does not load, or is not a pair dataset / labelled set.
    """
    if spec.kind == "bin":
        return spec.target
    if spec.kind == "heldout":
        return _load_heldout(spec, seed)
    if spec.kind == "pairs":
        return _load_pairs(spec)
    if spec.kind == "openset":
        data = _labelled(spec)
        return OpenSetSet(data.images, data.labels, name=spec.name, seed=seed)
    return IJBSet(spec.target, spec.name)


def benchmarks_from(texts: list[str], seed: int = 0) -> list:
    """Parse every string first (so a typo fails before any data loads), then load each."""
    specs = [parse_benchmark(t) for t in texts]
    if not specs:
        raise ConfigError("no benchmark given", hint=f"e.g. `benchmark` mnist-5k-heldout; {_HINT}", field="benchmark")
    return [load_benchmark(s, seed) for s in specs]
