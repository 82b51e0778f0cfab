"""``build --num-processes N``: the build's side of :func:`scoremix_ds.core.processes.relaunch`.

The resolved config is written to a temporary TOML recipe (:func:`~scoremix_ds.core.recipe_file.recipe_text`, the
form of ``build.toml``) and the child processes run ``build --recipe`` on it, so they see exactly the configuration
the parent validated.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from .. import __version__
from ..core.processes import relaunch as relaunch_processes
from ..core.recipe_file import recipe_text
from ..core.recipes import to_dict
from .config import BuildConfig


def relaunch(config: BuildConfig, num_processes: int, progress: bool) -> int:
    """Run the build in ``num_processes`` processes; returns the launcher's exit code."""
    with tempfile.TemporaryDirectory(prefix="scoremix-launch-") as tmp:
        recipe = Path(tmp) / "build.toml"
        recipe.write_text(recipe_text(to_dict(config), __version__), encoding="utf-8")
        return relaunch_processes(num_processes, ["build", "--recipe", str(recipe),
                                                  "--progress" if progress else "--no-progress"])
