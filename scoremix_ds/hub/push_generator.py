"""``push_generator``: publish a trained generator folder to a Hub model repository and tag the exact commit.

The same publication path as models and datasets (:func:`~scoremix_ds.hub.push.publish`); this file owns what is
generator-specific:

- :func:`verify_generator`: the folder holds ``model_index.json``, ``scoremix.json`` and a denoiser (``unet/``,
  ``transformer/`` or an EDM2 ``edm2/``) with safetensors weights, and, with the caller's ``load`` (the CLI passes
  :func:`~scoremix_ds.generators.loading.load_generator`), it loads; checked before the network is touched.
  Publishing knows folders and files, never a model class or a trainer.
- :func:`staged_generator`: exactly the pipeline's files: ``model_index.json``, ``scoremix.json`` (local paths
  reduced to ``local:<name>``), ``README.md`` (the folder's card, its snippets pointed at ``ORG/NAME``), and each component's
  JSON config and ``*.safetensors`` (``unet/``, ``transformer/`` or ``edm2/`` and its guide ``edm2_guide/``,
  ``vae/``, ``scheduler/``); never
  ``checkpoints/`` or anything else the training folder holds.

What is pushed loads with ``DiffusionPipeline.from_pretrained("ORG/NAME", revision="vX")`` (after
``from scoremix_ds import ScoreMixPipeline``) and builds with ``scoremix-ds build --generator ORG/NAME``.
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..dataset.manifest import file_sha256
from ..core.errors import ModelError
from .push import Publication, PushResult, publish
from .push_model import ModelPushConfig, _public_meta, check_loads, repoint_card
from .stage import _link_or_copy

logger = logging.getLogger(__name__)

# The card's load snippet, as cards/generator_card.md renders it for a local folder (no revision).
_LOAD_CALL = re.compile(r'from_pretrained\("([^"\n]*)"\)')

INDEX = "model_index.json"
META = "scoremix.json"
CARD = "README.md"
DENOISERS = ("unet", "transformer", "edm2")
COMPONENT_FOLDERS = (*DENOISERS, "edm2_guide", "vae", "scheduler")
STALE = (INDEX, META, CARD, *(f"{c}/*" for c in COMPONENT_FOLDERS))
FIX = "push the folder `scoremix-ds train-generator --out DIR` wrote"


def verify_generator(folder: str | Path, load: Callable[[str], Any] | None = None) -> dict:
    """The folder's ``scoremix.json``, once the folder is known to be a generator pipeline (that ``load`` loads)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelError(f"generator folder {folder} does not exist", hint=FIX)
    for name in (INDEX, META):
        if not (folder / name).is_file():
            raise ModelError(f"{folder} has no {name}: it is not a finished generator", hint=FIX)
    denoisers = [folder / c for c in DENOISERS if (folder / c / "config.json").is_file()]
    if not denoisers or not any(denoisers[0].glob("*.safetensors")):
        raise ModelError(f"{folder} has no unet/, transformer/ or edm2/ with safetensors weights: it is not a finished "
                         "generator", hint=FIX)
    check_loads(folder, load, FIX)
    return json.loads((folder / META).read_text(encoding="utf-8"))


@contextmanager
def staged_generator(folder: str | Path, repo_id: str, revision: str | None) -> Iterator[Path]:
    """A temporary folder holding exactly what is pushed for the generator in ``folder``; removed on exit."""
    folder = Path(folder)
    with tempfile.TemporaryDirectory(prefix="scoremix-push-generator-") as tmp:
        stage = Path(tmp) / "generator"
        stage.mkdir()
        _link_or_copy(folder / INDEX, stage / INDEX)
        meta = json.loads((folder / META).read_text(encoding="utf-8"))
        (stage / META).write_text(json.dumps(_public_meta(meta), indent=2) + "\n", encoding="utf-8")
        for component in COMPONENT_FOLDERS:
            for file in sorted((folder / component).glob("*")) if (folder / component).is_dir() else ():
                if file.is_file() and file.suffix in (".json", ".safetensors"):
                    _link_or_copy(file, stage / component / file.name)
        if (folder / CARD).is_file():
            card = (folder / CARD).read_text(encoding="utf-8")
            (stage / CARD).write_text(public_generator_card(card, repo_id, revision), encoding="utf-8")
        yield stage


def public_generator_card(text: str, repo_id: str, revision: str | None) -> str:
    """The card as published: its load snippets point at ``repo_id`` (and ``revision``), local paths are reduced.

    ``from_pretrained("runs/gen")`` -> ``from_pretrained("org/gen", revision="v1")``;
    ``scoremix-ds build --generator runs/gen`` -> ``scoremix-ds build --generator org/gen --generator-revision v1``.
    """
    return repoint_card(text, repo_id, revision, _LOAD_CALL, "from_pretrained", "scoremix-ds build --generator",
                        "--generator-revision")


def push_generator(config: ModelPushConfig, load: Callable[[str], Any] | None = None) -> PushResult:
    """Publish the generator in ``config.folder`` to the model repository ``config.repo_id``; tag that commit.
    ``load``: the loader that must accept the folder first (``load_generator``); without it, only its files are
    checked. A folder without ``README.md`` is published without a card (with a warning).

    >>> push_generator(ModelPushConfig("generator", "my-org/faces-dit", tag="v1"))  # doctest: +SKIP
    """
    folder = Path(config.folder)
    meta = verify_generator(folder, load)
    if not (folder / CARD).is_file():
        logger.warning("%s has no %s: the generator is published without a model card", folder, CARD)
    weights = sorted(folder.glob("*/diffusion_pytorch_model*.safetensors"))
    digest = file_sha256(weights[0])[:16] if weights else "?"
    message = f"scoremix-ds: {meta.get('architecture', 'generator')} generator {digest}" + (f" ({config.tag})" if config.tag else "")
    return publish(config, Publication(
        repo_type="model", noun="generator",
        stage=lambda revision: staged_generator(folder, config.repo_id, revision),
        message=message, stale=STALE, versions_hint=f"check it with `hf repos tag list {config.repo_id}`",
    ))
