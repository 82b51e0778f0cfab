"""What a local folder publishes as: a build (``dataset``), a trained generator (``generator``: a diffusers UNet/DiT
or EDM2 pipeline folder) or a trained model (``model``: a discriminator saved with ``save_pretrained``).

One rule, read from the files each command writes, so ``scoremix-ds push FOLDER`` needs no flag to say what it is:

- ``manifest.json``: a build (``scoremix-ds build --out``), a Hub dataset repository; so is a folder with a build's
  ``data/`` shards or in-progress state but no manifest (the dataset push then says what is missing from it);
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
    if (folder / MANIFEST).is_file() or (folder / "data").is_dir() or (folder / ".scoremix").is_dir():
        return "dataset"
    if (folder / "model_index.json").is_file():
        return "generator"
    if (folder / "model.safetensors").is_file() or any((folder / name).is_file() for name in PICKLE_WEIGHTS):
        return "model"
    raise ConfigError(f"{folder} holds none of manifest.json (a build), model_index.json (a generator) or "
                      "model.safetensors (a trained model): there is nothing to push",
                      hint="give the folder that `scoremix-ds build --out DIR`, `scoremix-ds train-generator --out "
                           "DIR` or `scoremix-ds train --out DIR` wrote",
                      field="folder")
