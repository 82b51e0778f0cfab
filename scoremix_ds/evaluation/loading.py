"""Benchmark images read ahead of the forwards that embed them, in DataLoader worker processes.

An evaluation's CPU work (decoding a ``.bin``'s JPEGs, reading and aligning IJB faces) would otherwise run in the
main process between forwards, with the accelerator idle (IJB-C: ~19 min of CPU for ~1.6 min of GPU work). Here a
benchmark is cut into chunks of one forward batch; :func:`chunks_ahead` yields ``load(0), load(1), ...`` in order
while ``workers`` processes make the next ones (two each ahead). Processes, not threads: alignment and Pillow's
Python-level code hold the GIL. Which chunk a row is in never changes what the model sees (the runner embeds each
chunk as the batch it embedded before), so the results are the same with any worker count.

A :class:`~scoremix_ds.core.errors.ScoreMixError` raised while loading (an image that does not decode) is carried back
whole and raised in the main process, with its message and hint (DataLoader would re-raise it as a traceback).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from torch.utils.data import DataLoader, Dataset

from ..core.errors import ScoreMixError


def default_load_workers(cuda: bool) -> int:
    """Worker processes when the caller does not say: on CUDA ``min(8, cores)`` (the accelerator embeds far faster
    than one core decodes); on a CPU 0, as the trainer's loader: the forwards already keep the cores busy, and
    shipping decoded chunks between processes costs more than the overlap gains (measured on 2 cores:
    ``benchmarks/bench_eval.py``, docs/performance.md)."""
    return min(8, os.cpu_count() or 1) if cuda else 0


@dataclass(frozen=True)
class _Failure:
    """A ScoreMixError, as plain fields (exceptions with keyword arguments lose them when pickled)."""

    kind: type
    message: str
    hint: str | None
    field: str | None
    fields: tuple[str, ...]

    def raise_(self) -> None:
        raise self.kind(self.message, hint=self.hint, field=self.field, fields=self.fields)


class _Chunks(Dataset):
    def __init__(self, load: Callable[[int], Any], n: int) -> None:
        self.load, self.n = load, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, k: int) -> tuple[Any, _Failure | None]:
        try:
            return self.load(k), None
        except ScoreMixError as exc:
            return None, _Failure(type(exc), exc.message, exc.hint, exc.field, exc.fields)


def _as_is(item: Any) -> Any:
    return item


def chunks_ahead(load: Callable[[int], Any], n: int, workers: int) -> Iterator[Any]:
    """``load(k)`` for ``k = 0 .. n - 1``, in order; made by ``workers`` DataLoader processes ahead of the caller
    (``workers = 0``, or a single chunk: in this process, one at a time). ``load`` must be picklable where worker
    processes are spawned (a module-level function or a ``functools.partial`` of one)."""
    if workers <= 0 or n <= 1:
        for k in range(n):
            yield load(k)
        return
    loader = DataLoader(_Chunks(load, n), batch_size=None, shuffle=False, num_workers=min(workers, n),
                        collate_fn=_as_is, prefetch_factor=2)
    for value, failure in loader:
        if failure is not None:
            failure.raise_()
        yield value


__all__ = ["chunks_ahead", "default_load_workers"]
