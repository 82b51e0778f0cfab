"""Which process of a launch this is, and the rule for side effects: ONCE, from the main process.

A command can run as one process, as N processes the CLI started itself (``--num-processes N``: the parent
relaunches under ``accelerate launch`` and waits), or as N processes the user started (``accelerate launch`` or
``torchrun``). Both launchers set ``RANK`` / ``WORLD_SIZE`` in every process. The rule, the same for every command:

- output lines ("built ...", "saved ...", summaries) and log records come from rank 0 only (warnings and errors of
  the other ranks still show, tagged with their rank: a rank's failure must not be silent);
- pushes, cards and summaries come from the process that OWNS the run: rank 0 of the user's launch, or the
  parent of the CLI's own relaunch (its children are marked with :data:`RELAUNCHED`, and skip them).

>>> import os; os.environ.pop("RANK", None) and None; is_main_process()
True
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import torch

from .errors import ConfigError

RELAUNCHED = "SCOREMIX_RELAUNCHED"  # set in the children of the CLI's own relaunch
_ARGV: list[str] = []  # the command line of this CLI call (set by scoremix_ds.cli.main), for relaunching it


def set_argv(argv: list[str]) -> None:
    _ARGV[:] = list(argv)


def current_argv() -> list[str]:
    return list(_ARGV)


def rank() -> int:
    """This process's global rank (0 without a launcher)."""
    return int(os.environ.get("RANK", "0") or 0)


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def is_main_process() -> bool:
    return rank() == 0


def owns_side_effects() -> bool:
    """True in the one process that pushes and writes summaries: rank 0, unless the CLI's relaunch made it (then
    the waiting parent does them, once, after every child finished)."""
    return is_main_process() and not os.environ.get(RELAUNCHED)


class MainProcessFilter(logging.Filter):
    """Log records of rank 0; of other ranks only warnings and errors, tagged ``[rank N]``."""

    def filter(self, record: logging.LogRecord) -> bool:
        r = rank()
        if r == 0:
            return True
        if record.levelno < logging.WARNING:
            return False
        record.msg = f"[rank {r}] {record.msg}"
        return True


WAIT_TIMEOUT = "SCOREMIX_WAIT_TIMEOUT"  # seconds a process waits in a collective (for process 0's one-process work)
DEFAULT_WAIT_TIMEOUT = 6 * 3600  # generous: process 0 embeds a WebFace-scale real set while the others wait


def wait_timeout() -> float:
    """How long, in seconds, the processes of a launch wait for each other in one collective: ``$SCOREMIX_WAIT_TIMEOUT``
    or :data:`DEFAULT_WAIT_TIMEOUT` (torch's own default, 10 minutes for NCCL, is shorter than process 0's
    one-process phases at scale: embedding the real set for the class centres, finalizing the folder)."""
    raw = os.environ.get(WAIT_TIMEOUT, "").strip()
    if not raw:
        return float(DEFAULT_WAIT_TIMEOUT)
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not seconds > 0 or seconds != seconds or seconds == float("inf"):
        raise ConfigError(f"{WAIT_TIMEOUT}={raw!r} is not a number of seconds > 0",
                          hint=f"set {WAIT_TIMEOUT} to seconds, e.g. 21600, or unset it for the default")
    return seconds


def launched_distributed() -> bool:
    """True under ``accelerate launch`` / ``torchrun`` with more than one process."""
    return world_size() > 1


def check_num_processes(num_processes: int) -> None:
    if num_processes < 1:
        raise ConfigError(f"num_processes must be >= 1, got {num_processes}", hint="use `num_processes` 1 or more",
                          field="num_processes")


# What the parent of a relaunch does itself, after its children: they never see these options.
PARENT_OPTIONS = {"--num-processes": 1, "--push-to": 1, "--tag": 1, "--token": 1, "--force-tag": 0}


def relaunch(num_processes: int, args: list[str]) -> int:
    """THE relaunch: run ``scoremix-ds ARGS`` in ``num_processes`` processes under accelerate's launcher and wait;
    returns its exit code. The children are marked :data:`RELAUNCHED` (rank-0 output, but no push or summary: the
    waiting parent does those). On a CPU-only machine ``--multi_gpu`` is what makes accelerate start N processes in
    one gloo group (``--cpu`` alone starts one), each on one thread so they share the cores."""
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(num_processes),
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "scoremix_ds", *args]
    env = dict(os.environ, **{RELAUNCHED: "1"})
    if not torch.cuda.is_available():
        env.setdefault("OMP_NUM_THREADS", "1")
        env.setdefault("ACCELERATE_USE_CPU", "true")
    return subprocess.call(cmd, env=env)


def relaunch_command(num_processes: int, argv: list[str] | None = None) -> int:
    """:func:`relaunch` of this CLI call's own command line (``argv``), less :data:`PARENT_OPTIONS`."""
    return relaunch(num_processes, strip_options(current_argv() if argv is None else argv, PARENT_OPTIONS))


def strip_options(argv: list[str], options: dict[str, int]) -> list[str]:
    """``argv`` without ``options`` (name -> number of values), in both ``--opt v`` and ``--opt=v`` forms.

    >>> strip_options(["train", "--num-processes", "2", "--steps=3", "--push-to=o/n"], {"--num-processes": 1, "--push-to": 1})
    ['train', '--steps=3']
    """
    out, skip = [], 0
    for arg in argv:
        if skip:
            skip -= 1
            continue
        name = arg.split("=", 1)[0]
        if name in options:
            skip = 0 if "=" in arg else options[name]
            continue
        out.append(arg)
    return out
