"""Parquet shards written through ``datasets`` (so the ``Image()`` feature is in the file's schema).

A shard becomes visible only when complete: it is written to a hidden temporary name and renamed into place.
"""

from __future__ import annotations

import io
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import datasets
import numpy as np
from PIL import Image

from ..core.outputs import atomic_path
from .manifest import file_sha256
from .schema import FEATURES


def encode_png(image: np.ndarray) -> bytes:
    """uint8 HxWx1 or HxWx3 -> PNG bytes."""
    arr = image[..., 0] if image.shape[-1] == 1 else image
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def decode_png(data: bytes) -> np.ndarray:
    """PNG (or any PIL-readable) bytes -> uint8 HxWxC (a grey image gets C = 1)."""
    arr = np.asarray(Image.open(io.BytesIO(data)))
    return arr[..., None] if arr.ndim == 2 else arr


def shard_path(config: str, index: int) -> str:
    """Relative path of shard ``index`` of a config, e.g. ``data/mix/train-00003.parquet``."""
    return f"data/{config}/train-{index:05d}.parquet"


def write_shard(root: Path, relpath: str, rows: dict[str, list[Any]]) -> str:
    """Write ``rows`` (column -> values; ``image`` as PNG bytes) atomically; return the file's sha256."""
    target = root / relpath
    target.parent.mkdir(parents=True, exist_ok=True)
    columns = dict(rows)
    columns["image"] = [{"bytes": b, "path": None} for b in rows["image"]]
    with atomic_path(target) as tmp:
        with tmp.open("wb") as fh:  # our handle: closed even when the writer fails (a full disk), so none leaks
            datasets.Dataset.from_dict(columns, features=FEATURES).to_parquet(fh)
        digest = file_sha256(tmp)
    return digest


@contextmanager
def datasets_bars_off() -> Iterator[None]:
    """Hide ``datasets``' own progress bars (one per shard written) for the duration, then restore what was set:
    the build shows one bar of its own. Enter it once, from the thread that drives the writers."""
    from datasets.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    was_disabled = are_progress_bars_disabled()
    disable_progress_bars()
    try:
        yield
    finally:
        if not was_disabled:
            enable_progress_bars()


def arrow_bytes(path: Path) -> int:
    """Uncompressed size of a parquet shard's data (what the Hub's ``dataset_info.num_bytes`` reports)."""
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(path).metadata
    return sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
