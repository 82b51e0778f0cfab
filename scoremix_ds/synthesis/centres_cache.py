"""Class centres computed once per build and cached, so ``build --plan`` and resumed builds never re-embed.

Embedding the whole real set is the costliest CPU-side step of planning (IR-50 at 112x112: ~0.17 s per image per
core). It runs once, on the main process (on the accelerator in bfloat16 when there is one); the other processes of
a launch receive the result by broadcast, waiting for it up to the group's explicit timeout (``SCOREMIX_WAIT_TIMEOUT``,
:class:`~scoremix_ds.synthesis.layout.ProcessGroup`), not torch's 10-minute default. The centres are saved as safetensors, keyed by the discriminator's content
digest and the real data's digest (images, labels, class count):

- a build keeps them in ``OUT/.scoremix/centres.safetensors`` (its in-progress state), so a resumed build reads
  them instead of embedding again;
- ``scoremix-ds plan --out P.parquet`` keeps them beside the plan (``P.centres.safetensors``), so planning again
  with other settings over the same models and data reuses them; ``build --plan`` needs no centres at all.

A cache whose key does not match (other weights, other data) is ignored and rewritten.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import numpy as np
import torch

from ..core.processes import WAIT_TIMEOUT
from ..sources.real_data import RealData
from ..maths.centres import class_centres
from ..discriminators.loading import embed_images

logger = logging.getLogger(__name__)

BUILD_CACHE = ".scoremix/centres.safetensors"


def plan_cache(plan_path: str | Path) -> Path:
    """The centres file beside a plan file: ``plan.parquet`` -> ``plan.centres.safetensors``."""
    p = Path(plan_path)
    return p.with_name(f"{p.stem}.centres.safetensors")


def data_digest(real: RealData, num_classes: int) -> str:
    """blake2b of the real images and labels (bytes, dtype, shape) and the class count, 16 hex digits."""
    h = hashlib.blake2b(digest_size=8)
    for arr in (np.ascontiguousarray(real.images), np.ascontiguousarray(real.labels)):
        h.update(f"{arr.dtype}:{arr.shape}:".encode())
        h.update(memoryview(arr).cast("B"))
    h.update(f"classes:{num_classes}".encode())
    return h.hexdigest()


def cache_key(discriminator_digest: str, real_digest: str) -> str:
    return f"{discriminator_digest}:{real_digest}"


def load_centres(path: Path, key: str) -> np.ndarray | None:
    """The cached centres if ``path`` holds them for ``key``, else None."""
    from safetensors import safe_open

    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="numpy") as f:
            if (f.metadata() or {}).get("key") != key:
                logger.info("class centres in %s are for other models or data; computing them again", path)
                return None
            return f.get_tensor("centres")
    except Exception as exc:  # a torn or foreign file: recompute rather than fail the build
        logger.warning("ignoring unreadable class-centre cache %s (%s)", path, exc)
        return None


def save_centres(path: Path, key: str, centres: np.ndarray) -> None:
    """Write atomically (tmp + rename)."""
    from safetensors.numpy import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    save_file({"centres": np.ascontiguousarray(centres, dtype=np.float64)}, str(tmp), metadata={"key": key})
    os.replace(tmp, path)


def compute_centres(disc, real: RealData, num_classes: int, device: str, batch_size: int = 512,
                    progress: bool = False) -> np.ndarray:
    """Embed every real image (bfloat16 autocast on CUDA) and average per class."""
    dev = torch.device(device)
    bar = "embed real data" if progress else False
    if dev.type == "cuda":
        with torch.autocast("cuda", dtype=torch.bfloat16):
            emb = embed_images(disc, real.images, batch_size=batch_size, device=dev, progress=bar)
    else:
        emb = embed_images(disc, real.images, batch_size=batch_size, device=dev, progress=bar)
    return class_centres(emb, real.labels, num_classes)


def shared_centres(disc, real: RealData, num_classes: int, key: str, caches: list[Path], device: str,
                   group=None, progress: bool = False) -> tuple[np.ndarray, bool]:
    """The centres from the first matching cache, else computed; with a multi-process ``group`` only the main
    process reads or computes them and broadcasts them to the others. Returns (centres, computed_here)."""
    distributed = group is not None and group.world > 1
    if not distributed or group.rank == 0:
        centres = next((c for c in (load_centres(p, key) for p in caches) if c is not None), None)
        computed = centres is None
        if computed:
            logger.info("embedding %d real images for the class centres on %s", len(real.images), device)
            if distributed:
                logger.info("the other %d process(es) wait for them up to %.0f s (%s)", group.world - 1,
                            getattr(group, "timeout", 0.0), WAIT_TIMEOUT)
            centres = compute_centres(disc, real, num_classes, device, progress=progress)
    else:
        centres, computed = None, False
    if distributed:
        import torch.distributed as dist

        box = [centres]
        dist.broadcast_object_list(box, src=0)
        centres = box[0]
    return centres, computed


__all__ = ["BUILD_CACHE", "cache_key", "data_digest", "load_centres", "plan_cache", "save_centres", "shared_centres"]
