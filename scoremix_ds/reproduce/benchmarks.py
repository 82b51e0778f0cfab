"""Benchmark specs of a reproduce recipe: the forms of ``scoremix-ds eval --benchmark``, plus TinyFace.

| spec                          | benchmark                                                                  |
|-------------------------------|----------------------------------------------------------------------------|
| ``heldout:NAME:PAIRS``        | balanced pairs from labelled data (open set: classes no model saw)        |
| ``PATH.bin``                  | insightface verification pairs (LFW, CFP-FP, CPLFW, AgeDB-30, CALFW)       |
| ``pairs:NAME[:SPLIT]``        | a ``datasets`` pair dataset                                                |
| ``ijbb:DIR``, ``ijbc:DIR``    | an IJB release folder (``meta/``, ``loose_crop/``): 1:1 template TAR@FAR  |
| ``openset:NAME``              | every genuine / impostor pair of labelled unseen identities + rank-1       |
| ``tinyface:DIR``              | TinyFace ``Testing_Set``: ``probe_img_ID_pairs.mat``, ``gallery_match_img_ID_pairs.mat``, |
|                               | ``Probe/``, ``Gallery_Match/``, ``Gallery_Distractor/``: rank-k identification |

:func:`check_benchmark` checks only the form, so a recipe naming files of another machine still validates;
:func:`open_benchmark` reads them (through :mod:`scoremix_ds.evaluation.specs`, except TinyFace, which the CLI
refuses for memory: its 153,428 distractors take about 5.8 GB as 112x112 RGB uint8, fine on a training server).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..core.errors import ConfigError, DataError
from ..evaluation.runner import IdentificationSet
from ..evaluation.specs import KINDS, load_benchmark, parse_benchmark

_HINT = "[eval] benchmarks take heldout:NAME:PAIRS, openset:NAME, PATH.bin, pairs:NAME, ijbb:DIR, ijbc:DIR or tinyface:DIR"


def check_benchmark(spec: str) -> str:
    """The kind of a spec string (``bin`` or a key of :data:`scoremix_ds.evaluation.specs.KINDS`, the one table of
    benchmark kinds); :class:`ConfigError` for any other form."""
    kind, sep, rest = spec.partition(":")
    if sep and kind.lower() in KINDS and rest:
        return kind.lower()
    if spec.lower().endswith(".bin"):
        return "bin"
    raise ConfigError(f"benchmark '{spec}' is neither PATH.bin nor KIND:TARGET", hint=_HINT)


def expected_name(spec: str) -> str | None:
    """The name the report will give the benchmark (None for ``pairs:``, named by its dataset when read)."""
    kind = check_benchmark(spec)
    rest = spec.partition(":")[2]
    if kind == "bin":
        return Path(spec).stem
    if kind == "heldout":
        head, _, tail = rest.rpartition(":")
        return head if head and tail.isdigit() else rest
    if kind == "openset":
        return spec
    return None if kind == "pairs" else kind


def _read_images(paths: list[Path], size: int) -> np.ndarray:
    """uint8 ``(N, size, size, 3)`` RGB, each image resized (bilinear) to ``size``."""
    from PIL import Image

    out = np.empty((len(paths), size, size, 3), dtype=np.uint8)
    for i, p in enumerate(paths):
        try:
            with Image.open(p) as img:
                out[i] = np.asarray(img.convert("RGB").resize((size, size), Image.BILINEAR))
        except OSError as exc:
            raise DataError(f"TinyFace image {p} does not read ({exc})", hint=_HINT) from exc
    return out


def _mat_list(path: Path, names: str, ids: str) -> tuple[list[str], np.ndarray]:
    try:
        from scipy.io import loadmat  # MATLAB v5 reader: plain arrays, no pickle
    except ImportError as exc:  # pragma: no cover - scipy comes with scikit-learn / scikit-image
        raise ConfigError("reading TinyFace's .mat lists needs scipy", hint="pip install scipy") from exc
    if not path.is_file():
        raise DataError(f"TinyFace list {path} is missing", hint=_HINT)
    mat = loadmat(str(path))
    files = [str(np.asarray(x).ravel()[0]) for x in np.asarray(mat[names]).ravel()]
    return files, np.asarray(mat[ids]).ravel().astype(np.int64)


def tinyface_set(root: str | Path, image_size: int = 112):
    """TinyFace 1:N as an :class:`~scoremix_ds.evaluation.IdentificationSet` (distractors: every image of
    ``Gallery_Distractor/``)."""
    root = Path(root)
    probe_files, probe_ids = _mat_list(root / "probe_img_ID_pairs.mat", "probe_set", "probe_ids")
    gallery_files, gallery_ids = _mat_list(root / "gallery_match_img_ID_pairs.mat", "gallery_set", "gallery_ids")
    distractors = sorted(p for p in (root / "Gallery_Distractor").rglob("*") if p.is_file())
    return IdentificationSet(
        _read_images([root / "Probe" / f for f in probe_files], image_size), probe_ids,
        _read_images([root / "Gallery_Match" / f for f in gallery_files], image_size), gallery_ids,
        _read_images(distractors, image_size) if distractors else None, name="tinyface")


def open_benchmark(spec: str, image_size: int = 112, seed: int = 0):
    """The ``evaluate`` input a spec names (files are read here, not when the recipe is checked)."""
    if check_benchmark(spec) == "tinyface":
        root = spec.partition(":")[2]
        if not Path(root).is_dir():
            raise DataError(f"benchmark {spec}: {root} is not a folder", hint=_HINT)
        return tinyface_set(root, image_size)
    return load_benchmark(parse_benchmark(spec), seed)
