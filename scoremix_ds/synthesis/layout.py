"""Who builds which units: processes of one launch (accelerate / torchrun) and independent job-array parts.

The work is divided into fixed units (``shard_size`` consecutive identities, all their images). Units go to parts
by ``unit % num_parts == part``, then to the processes of that part by size (largest first to the least loaded). Seeds depend on the build seed
and the identity/image index only, so this assignment changes who makes a row, never the row.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..core.errors import ConfigError
from ..core.processes import launched_distributed, wait_timeout


@dataclass(frozen=True)
class Layout:
    rank: int = 0
    world: int = 1
    part: int = 0  # --shard i
    parts: int = 1  # --num-shards n

    def __post_init__(self) -> None:
        if self.parts < 1 or not 0 <= self.part < self.parts:
            raise ConfigError(f"shard {self.part} is outside 0..{self.parts - 1}", hint="use 0 <= `shard` < `num_shards`",
                              fields=("shard", "num_shards"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def part_units(self, num_units: int) -> list[int]:
        """The units this job-array part is responsible for."""
        return [u for u in range(num_units) if u % self.parts == self.part]

    def my_units(self, units: list[int], sizes: list[int] | None = None) -> list[int]:
        """This process's share of ``units``: round-robin, or with ``sizes`` (images per unit) the largest unit first
        to the least-loaded process (ties: the lower rank), so unequal units still give every process about the
        same work. Returned in unit order."""
        if sizes is None:
            return [u for i, u in enumerate(units) if i % self.world == self.rank]
        load = [0] * self.world
        mine = []
        for i in sorted(range(len(units)), key=lambda i: (-sizes[i], i)):
            rank = min(range(self.world), key=lambda r: (load[r], r))
            load[rank] += sizes[i]
            if rank == self.rank:
                mine.append(units[i])
        return sorted(mine)


class ProcessGroup:
    """The launch's processes: accelerate's ``PartialState`` (gloo on CPU, NCCL on GPUs), or a single process.

    The group's collective timeout is set explicitly, :func:`~scoremix_ds.core.processes.wait_timeout` seconds
    (``SCOREMIX_WAIT_TIMEOUT``, default 6 h), not torch's 10 minutes: the other processes wait in the last barrier
    while process 0 alone finalizes the folder. (While process 0 plans, they wait for its plan file, not in a
    collective: :mod:`~scoremix_ds.synthesis.planning.shared_plan`.)"""

    def __init__(self) -> None:
        self.state = None
        if launched_distributed():
            from datetime import timedelta

            from accelerate import PartialState

            self.timeout = wait_timeout()
            self.state = PartialState(cpu=not torch.cuda.is_available(), timeout=timedelta(seconds=self.timeout))

    timeout: float = 0.0  # seconds one collective may wait (multi-process only)

    @property
    def rank(self) -> int:
        return self.state.process_index if self.state else 0

    @property
    def world(self) -> int:
        return self.state.num_processes if self.state else 1

    @property
    def device(self) -> str | None:
        return str(self.state.device) if self.state and torch.cuda.is_available() else None

    def all_gather(self, value):
        """``value`` of every process, in rank order (a short collective: small picklable values only)."""
        if not self.state:
            return [value]
        import torch.distributed as dist

        box = [None] * self.world
        dist.all_gather_object(box, value)
        return box

    def barrier(self) -> None:
        if self.state:
            self.state.wait_for_everyone()
