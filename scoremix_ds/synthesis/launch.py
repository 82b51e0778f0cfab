"""``build --num-processes N``: relaunch the same build under accelerate's launcher, one process per device.

The resolved config is written to a temporary TOML recipe and the child processes run ``build --recipe`` on it,
so they see exactly the configuration the parent validated. On a CPU-only machine ``--multi_gpu`` is what makes
accelerate start N processes in one gloo group (``--cpu`` alone starts one).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from ..core.processes import RELAUNCHED
from ..core.recipes import to_dict
from .config import BuildConfig


def to_toml(values: dict) -> str:
    """Flat TOML for config values (strings, numbers, booleans, lists); ``None`` keys are left out."""
    lines = []
    for key, value in values.items():
        if value is None:
            continue
        lines.append(f"{key} = {json.dumps(value)}")  # JSON scalars and arrays are valid TOML values
    return "\n".join(lines) + "\n"


def relaunch(config: BuildConfig, num_processes: int, progress: bool) -> int:
    """Run the build in ``num_processes`` processes; returns the launcher's exit code."""
    with tempfile.TemporaryDirectory(prefix="scoremix-launch-") as tmp:
        recipe = Path(tmp) / "build.toml"
        recipe.write_text(to_toml(to_dict(config)), encoding="utf-8")
        cmd = [
            sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(num_processes),
            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
            "-m", "scoremix_ds", "build", "--recipe", str(recipe), "--progress" if progress else "--no-progress",
        ]
        env = dict(os.environ, **{RELAUNCHED: "1"})  # the children: rank-0 output, but no push or summary
        if not torch.cuda.is_available():
            env.setdefault("OMP_NUM_THREADS", "1")  # one thread per process: N processes share the cores
        return subprocess.call(cmd, env=env)
