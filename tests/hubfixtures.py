"""Helpers for tests that drive the REAL huggingface_hub / datasets clients against a LoopbackHub.

The clients run in fresh subprocesses: huggingface_hub reads HF_ENDPOINT at import time (see the docstring of
test_hub_server.py), so "what a user's process does with HF_ENDPOINT set" is only faithful in a new interpreter.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

from fixtures.hub_server import LoopbackHub

REPO_ROOT = Path(__file__).resolve().parents[1]
_MARK = "@@RESULT@@"


def client_env(hub: LoopbackHub, hf_home: Path, token: str | None = None, with_repo: bool = True) -> dict[str, str]:
    """The caller's environment minus any HF_* setting, pointed at ``hub`` (``token`` None: the write token)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    env.pop("PYTHONPATH", None)
    env.update(hub.client_env(hf_home=str(hf_home), token=token))
    if with_repo:
        env["PYTHONPATH"] = str(REPO_ROOT)
    return env


@dataclass(frozen=True)
class CliRun:
    rc: int
    out: str
    err: str

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.startswith("error:")]


def run_cli(hub: LoopbackHub, hf_home: Path, *args: str, token: str | None = None, timeout: float = 600,
            extra_env: dict[str, str] | None = None) -> CliRun:
    """``python -m scoremix_ds ARGS`` in a fresh interpreter configured for ``hub``.

    ``timeout`` only stops a hung command: a build-and-push took over 120 s on a loaded 2-core machine.
    """
    env = client_env(hub, hf_home, token=token)
    env.update(extra_env or {})
    proc = subprocess.run([sys.executable, "-m", "scoremix_ds", *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    return CliRun(proc.returncode, proc.stdout, proc.stderr)


def run_plain_datasets(hub: LoopbackHub, hf_home: Path, workdir: Path, code: str, timeout: float = 180) -> dict:
    """Run ``code`` in a fresh interpreter that has only the installed packages (no repository on sys.path).

    The snippet fills the dict ``result``; the returned dict also says whether anything imported scoremix_ds.
    """
    script = ("import json, sys\nresult = {}\n" + textwrap.dedent(code)
              + "\nresult['scoremix_imported'] = any(m.startswith('scoremix_ds') for m in sys.modules)"
              + f"\nprint({_MARK!r} + json.dumps(result))\n")
    workdir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([sys.executable, "-c", script], cwd=workdir, capture_output=True, text=True,
                          env=client_env(hub, hf_home, with_repo=False), timeout=timeout)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(_MARK)]
    if proc.returncode != 0 or not lines:
        raise AssertionError(f"snippet failed (rc={proc.returncode})\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return json.loads(lines[-1][len(_MARK):])


# Rows as (label, sample_index, seed, identity, sha256 of the PNG bytes): what "the same rows" means in these tests.
ROW_KEY_CODE = """
import hashlib
def row_key(row):
    return [row["label"], row["sample_index"], row["seed"], row["identity"], hashlib.sha256(row["image"]["bytes"]).hexdigest()]
"""


def local_rows(folder: Path, config: str = "mix") -> list[list]:
    """The rows of a local dataset folder, read straight from its parquet shards, as sorted row keys."""
    import pyarrow.parquet as pq

    keys = []
    for shard in sorted((folder / "data" / config).glob("*.parquet")):
        for row in pq.read_table(shard).to_pylist():
            keys.append([row["label"], row["sample_index"], row["seed"], row["identity"],
                         hashlib.sha256(row["image"]["bytes"]).hexdigest()])
    return sorted(keys)


# ---------------------------------------------------------------------- tiny datasets (module-scoped builds)


def make_tiny_inputs(root: Path) -> dict[str, str]:
    """Generator, discriminator and real data folders under ``root``: the tiny models of conftest's fixtures."""
    from conftest import write_tiny_discriminator, write_tiny_generator, write_tiny_real_data

    return {"generator": str(write_tiny_generator(root / "tiny-gen")),
            "discriminator": str(write_tiny_discriminator(root / "tiny-disc")),
            "real_data": str(write_tiny_real_data(root / "tiny-real"))}


def build_tiny(inputs: dict[str, str], out: Path, **overrides) -> Path:
    from scoremix_ds.synthesis.config import BuildConfig
    from scoremix_ds.synthesis.runner import run_build

    values = dict(inputs, pairs=3, per_identity=2, steps=2, batch_size=8, out=str(out))
    values.update(overrides)
    return run_build(BuildConfig(**values), progress=False).out
