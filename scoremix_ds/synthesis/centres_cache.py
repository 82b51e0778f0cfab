"""Class centres computed once and cached, so a new build, ``build --plan``, a resumed build, ``plan``, ``align``
and ``reproduce`` over the same discriminator and real data never embed the real set again.

Embedding the whole real set is the costliest CPU-side step of planning (IR-50 at 112x112: ~0.17 s per image per
core). It runs once, in the one process that plans (process 0 of a launch; the others read its plan, see
:mod:`scoremix_ds.synthesis.planning.shared_plan`), reading the real set as a stream
(:mod:`scoremix_ds.synthesis.planning.real_stream`), on the accelerator in bfloat16 when there is one.

Centres are keyed by the discriminator's content digest, the real data's digest (its decoded pixels, labels and the
class count) and the preprocessing (how the images reach the network, and in which precision it runs): a CPU float32
entry and a CUDA bfloat16 one are different entries. They are looked up, in order, in

- the build's in-progress state ``OUT/.scoremix/centres.safetensors`` (a resumed build);
- beside a plan file, ``P.centres.safetensors`` (``plan --out P.parquet`` again with other settings);
- the user cache, :func:`cache_root`: ``$SCOREMIX_CACHE``, else ``$XDG_CACHE_HOME/scoremix-ds``, else
  ``~/.cache/scoremix-ds`` (as huggingface_hub keeps its downloads), one file per key under ``centres/``;
  ``--no-cache`` (``SCOREMIX_NO_CACHE=1``) neither reads nor writes it.

Every entry is written to a temporary file and renamed into place (concurrent writers of one key leave one whole
entry: the last rename wins, and both wrote the same numbers), and records the sha256 of its centres: an entry
whose key or digest does not match, or that does not read, is ignored with a warning and computed again, never
trusted.
"""

from __future__ import annotations

import hashlib
import logging
import os
import uuid
from pathlib import Path

import numpy as np

from ..sources.real_data import RealData

logger = logging.getLogger(__name__)

BUILD_CACHE = ".scoremix/centres.safetensors"
CACHE_ENV = "SCOREMIX_CACHE"
NO_CACHE_ENV = "SCOREMIX_NO_CACHE"
PREPROCESSING_VERSION = "1"  # bump when embed_images changes how images reach a network


def plan_cache(plan_path: str | Path) -> Path:
    """The centres file beside a plan file: ``plan.parquet`` -> ``plan.centres.safetensors``."""
    p = Path(plan_path)
    return p.with_name(f"{p.stem}.centres.safetensors")


def cache_root() -> Path | None:
    """The user cache folder, or None when ``SCOREMIX_NO_CACHE`` is set (``--no-cache``)."""
    if os.environ.get(NO_CACHE_ENV, "").strip().lower() not in ("", "0", "false", "no"):
        return None
    given = os.environ.get(CACHE_ENV, "").strip()
    if given:
        return Path(given).expanduser()
    base = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(base).expanduser() if base else Path.home() / ".cache") / "scoremix-ds"


def user_cache(key: str) -> Path | None:
    """The user-cache file of ``key`` (None with the cache off)."""
    root = cache_root()
    if root is None:
        return None
    return root / "centres" / f"{hashlib.sha256(key.encode()).hexdigest()[:40]}.safetensors"


def data_digest(real: RealData, num_classes: int) -> str:
    """blake2b of the real images and labels (bytes, dtype, shape) and the class count, 16 hex digits (the same
    digest :func:`~scoremix_ds.synthesis.planning.real_stream.stream_digest` computes a block at a time)."""
    h = hashlib.blake2b(digest_size=8)
    for arr in (np.ascontiguousarray(real.images), np.ascontiguousarray(real.labels)):
        h.update(f"{arr.dtype}:{arr.shape}:".encode())
        h.update(memoryview(arr).cast("B"))
    h.update(f"classes:{num_classes}".encode())
    return h.hexdigest()


def preprocessing(disc, device: str) -> str:
    """How the images reach the discriminator and in which precision it runs: part of the key."""
    import torch

    cuda = torch.device(device).type == "cuda" and isinstance(disc, torch.nn.Module)
    return (f"embed_images/{PREPROCESSING_VERSION}:{type(disc).__name__}:size={getattr(disc, 'image_size', None)}:"
            f"channels={getattr(disc, 'in_channels', None)}:{'cuda-bf16-autocast' if cuda else 'float32'}")


def cache_key(discriminator_digest: str, real_digest: str, preprocessing: str = "") -> str:
    return f"{discriminator_digest}:{real_digest}:{preprocessing}"


def _tensors_sha256(tensors: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for name in sorted(tensors):
        arr = np.ascontiguousarray(tensors[name])
        h.update(f"{name}:{arr.dtype}:{arr.shape}:".encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def load_tensors(path: Path, key: str) -> dict[str, np.ndarray] | None:
    """The cached arrays if ``path`` holds them, whole, for ``key``, else None."""
    from safetensors import safe_open

    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata() or {}
            if meta.get("key") != key:
                logger.info("the cache entry %s is for other models or data; computing it again", path)
                return None
            tensors = {name: f.get_tensor(name) for name in f.keys()}
    except Exception as exc:  # a torn or foreign file: recompute rather than fail the run
        logger.warning("ignoring the unreadable cache entry %s (%s); computing it again", path, exc)
        return None
    if meta.get("sha256") != _tensors_sha256(tensors):
        logger.warning("the cache entry %s is damaged (its arrays do not match their sha256); computing it again", path)
        return None
    return tensors


def save_tensors(path: Path, key: str, tensors: dict[str, np.ndarray]) -> None:
    """Write atomically (a temporary file of this writer's own, then a rename) with the arrays' sha256."""
    from safetensors.numpy import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {name: np.ascontiguousarray(arr) for name, arr in tensors.items()}
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        save_file(tensors, str(tmp), metadata={"key": key, "sha256": _tensors_sha256(tensors)})
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_centres(path: Path, key: str) -> np.ndarray | None:
    """The cached centres if ``path`` holds them, whole, for ``key``, else None."""
    tensors = load_tensors(path, key)
    return None if tensors is None or "centres" not in tensors else tensors["centres"]


def save_centres(path: Path, key: str, centres: np.ndarray) -> None:
    save_tensors(path, key, {"centres": np.ascontiguousarray(centres, dtype=np.float64)})


def cached_tensors(key: str, compute) -> dict[str, np.ndarray]:
    """``compute()`` (a dict of arrays) through the user cache: read when an entry of ``key`` is whole, else
    computed and kept (what ``audit`` keeps its real reference in)."""
    path = user_cache(key)
    found = load_tensors(path, key) if path is not None else None
    if found is not None:
        logger.info("read from the cache %s (no real image embedded)", path)
        return found
    tensors = compute()
    if path is not None:
        try:
            save_tensors(path, key, tensors)
        except OSError as exc:
            logger.warning("could not write the cache entry %s (%s)", path, exc)
    return tensors


def find_centres(key: str, caches: tuple | list = ()) -> tuple[np.ndarray | None, Path | None]:
    """The centres of ``key`` from the first of ``caches`` (then the user cache) that holds them whole."""
    places = [Path(c) for c in caches]
    mine = user_cache(key)
    if mine is not None:
        places.append(mine)
    for place in places:
        centres = load_centres(place, key)
        if centres is not None:
            return centres, place
    return None, None


def remember(key: str, centres: np.ndarray) -> None:
    """Keep freshly computed centres in the user cache (a failed write is a warning: the run goes on)."""
    path = user_cache(key)
    if path is None:
        return
    try:
        save_centres(path, key, centres)
    except OSError as exc:
        logger.warning("could not write the class-centre cache %s (%s)", path, exc)


def planning_centres(disc, real, rows: np.ndarray, num_classes: int, key: str, caches: tuple | list, device: str,
                     progress: bool = False) -> tuple[np.ndarray, bool]:
    """The centres of ``rows`` of the streamed real set (:class:`~.planning.real_stream.RealSet`): from a cache,
    else embedded a block at a time and kept in the user cache. Returns (centres, computed_here)."""
    from .planning.real_stream import stream_centres

    centres, where = find_centres(key, caches)
    if centres is not None:
        logger.info("class centres read from %s (no real image embedded)", where)
        return centres, False
    logger.info("embedding %d real images for the class centres on %s", len(rows), device)
    centres = stream_centres(disc, real, rows, num_classes, device, progress=progress)
    remember(key, centres)
    return centres, True


def cached_centres(disc, disc_digest: str, real: RealData, num_classes: int, device: str = "cpu",
                   progress: bool | str = False) -> np.ndarray:
    """Class centres of an in-memory real set through the user cache (what ``align`` uses): the same key, and so
    the same entry, as a build over that discriminator and data."""
    from ..discriminators.loading import embed_images
    from ..maths.centres import class_centres

    key = cache_key(disc_digest, data_digest(real, num_classes), preprocessing(disc, device))
    centres, where = find_centres(key)
    if centres is not None:
        logger.info("class centres read from %s (no real image embedded)", where)
        return centres
    centres = class_centres(embed_images(disc, real.images, device=device, progress=progress), real.labels,
                            num_classes)
    remember(key, centres)
    return centres


__all__ = ["BUILD_CACHE", "CACHE_ENV", "NO_CACHE_ENV", "cache_key", "cache_root", "cached_centres", "cached_tensors",
           "data_digest", "load_tensors", "save_tensors",
           "find_centres", "load_centres", "plan_cache", "planning_centres", "preprocessing", "remember",
           "save_centres", "user_cache"]
