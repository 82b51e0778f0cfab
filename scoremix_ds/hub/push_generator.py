"""``push_generator``: publish a trained generator folder to a Hub model repository and tag the exact commit.

The same publication path as models and datasets (:func:`~scoremix_ds.hub.push.publish`); this file owns what is
generator-specific:

- :func:`verify_generator`: the folder loads with :func:`~scoremix_ds.generators.loading.load_generator` (safetensors
  only) and holds ``model_index.json`` and ``scoremix.json``; checked before the network is touched.
- :func:`staged_generator`: exactly the pipeline's files: ``model_index.json``, ``scoremix.json`` (local paths
  reduced to ``local:<name>``), ``README.md`` (the card re-rendered to load ``ORG/NAME``), and each component's
  JSON config and ``*.safetensors`` (``unet/`` or ``transformer/``, ``vae/``, ``scheduler/``); never
  ``checkpoints/`` or anything else the training folder holds.

What is pushed loads with ``DiffusionPipeline.from_pretrained("ORG/NAME", revision="vX")`` (after
``from scoremix_ds import ScoreMixPipeline``) and builds with ``scoremix-ds build --generator ORG/NAME``.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..dataset.manifest import file_sha256
from ..core.errors import ModelError
from .push import Publication, PushResult, publish
from .push_model import ModelPushConfig, _public_meta, reduce_local_paths
from .stage import _link_or_copy

INDEX = "model_index.json"
META = "scoremix.json"
CARD = "README.md"
COMPONENT_FOLDERS = ("unet", "transformer", "vae", "scheduler")
STALE = (INDEX, META, CARD, *(f"{c}/*" for c in COMPONENT_FOLDERS))
FIX = "push the --out folder of `scoremix-ds train-generator`"


def verify_generator(folder: str | Path) -> dict:
    """The folder's ``scoremix.json``, once the folder is known to be a loadable generator pipeline."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelError(f"generator folder {folder} does not exist", hint=FIX)
    for name in (INDEX, META):
        if not (folder / name).is_file():
            raise ModelError(f"{folder} has no {name}: it is not a finished generator", hint=FIX)
    from ..generators.loading import load_generator

    try:
        load_generator(str(folder))
    except ModelError as exc:
        raise ModelError(f"{exc.message} (refusing to publish it)", hint=FIX) from exc
    return json.loads((folder / META).read_text(encoding="utf-8"))


@contextmanager
def staged_generator(folder: str | Path, repo_id: str, revision: str | None) -> Iterator[Path]:
    """A temporary folder holding exactly what is pushed for the generator in ``folder``; removed on exit."""
    from ..training.generator_card import generator_card

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
        index = json.loads((folder / INDEX).read_text(encoding="utf-8"))
        denoiser = next(v[1] for k, v in index.items() if k in ("unet", "transformer") and isinstance(v, list) and v[0])
        card = generator_card(_public_meta(meta), denoiser, repo_id, revision)
        (stage / CARD).write_text(reduce_local_paths(str(card)), encoding="utf-8")
        yield stage


def push_generator(config: ModelPushConfig) -> PushResult:
    """Publish the generator in ``config.folder`` to the model repository ``config.repo_id``; tag that commit.

    >>> push_generator(ModelPushConfig("generator", "my-org/faces-dit", tag="v1"))  # doctest: +SKIP
    """
    folder = Path(config.folder)
    meta = verify_generator(folder)
    weights = sorted(folder.glob("*/diffusion_pytorch_model*.safetensors"))
    digest = file_sha256(weights[0])[:16] if weights else "?"
    message = f"scoremix-ds: {meta.get('architecture', 'generator')} generator {digest}" + (f" ({config.tag})" if config.tag else "")
    return publish(config, Publication(
        repo_type="model", noun="generator",
        stage=lambda revision: staged_generator(folder, config.repo_id, revision),
        message=message, stale=STALE, versions_hint=f"check it with `hf repos tag list {config.repo_id}`",
    ))
