"""What a local folder publishes as: a build (``dataset``), a trained generator (``generator``: a diffusers UNet/DiT
or EDM2 pipeline folder) or a trained model (``model``: a discriminator saved with ``save_pretrained``).

One rule, read from the files each command writes, so ``scoremix-ds push FOLDER`` needs no flag to say what it is:

- ``manifest.json``: a build (``scoremix-ds build --out``), a Hub dataset repository;
- ``model_index.json``: a generator (``train-generator`` / ``import-generator``), a Hub model repository;
- ``model.safetensors`` (or pickle weights only, which the model push refuses in its own line): a trained model.
"""

from __future__ import annotations

from pathlib import Path

from ..core.errors import ConfigError
from ..dataset.manifest import MANIFEST

KINDS = ("dataset", "generator", "model")
PICKLE_WEIGHTS = ("pytorch_model.bin", "model.bin", "model.pt", "model.pth")


def folder_kind(folder: str | Path) -> str:
    """``dataset``, ``generator`` or ``model``; a one-line ConfigError for a folder that is none of them."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"{folder} is not a folder", hint="give the folder a build, train or train-generator wrote",
                          field="folder")
    if (folder / MANIFEST).is_file():
        return "dataset"
    if (folder / "model_index.json").is_file():
        return "generator"
    if (folder / "model.safetensors").is_file() or any((folder / name).is_file() for name in PICKLE_WEIGHTS):
        return "model"
    raise ConfigError(f"{folder} holds none of manifest.json (a build), model_index.json (a generator) or "
                      "model.safetensors (a trained model): there is nothing to push",
                      hint="give the folder `scoremix-ds build`, `train-generator` or `train` wrote with --out",
                      field="folder")
