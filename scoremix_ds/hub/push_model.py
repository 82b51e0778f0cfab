"""``push_model``: publish a trained recognition model to a Hub model repository and tag the exact commit pushed.

Same code path as datasets (:func:`~scoremix_ds.hub.push.publish`: create the repository, refuse an existing tag
before uploading, identical content makes no commit, bounded retries, tag the commit that was pushed); this file
owns only what is model-specific:

- :func:`verify_model`: the folder holds ``config.json`` + ``model.safetensors`` (a pickle-only folder is refused)
  and, when present, a ``scoremix.json`` that is a JSON object; with the caller's ``load`` (the CLI passes
  :func:`~scoremix_ds.discriminators.loading.load_discriminator`), the folder also loads. Checked before the network
  is touched. Publishing knows folders and files, never a model class.
- :func:`staged_model`: the files pushed, exactly :data:`MODEL_FILES` — ``config.json``, ``model.safetensors``,
  ``README.md`` (the model card) and ``scoremix.json``; never ``checkpoints/``, ``train_log.jsonl`` or anything
  else the training folder holds. In the card, the ``load_discriminator("<local folder>")`` snippet (and the
  ``scoremix-ds eval <local folder>`` one) is pointed at ``ORG/NAME`` and the version; in the card and
  ``scoremix.json``, local paths are published as ``local:<name>``, as dataset pushes do.

What is pushed loads anywhere with ``load_discriminator("ORG/NAME", revision="vX")`` (or
``SmallCNN.from_pretrained`` etc. of ``huggingface_hub``'s mixin).
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..dataset.manifest import file_sha256
from ..core.errors import ModelError
from ..core.refs import public_text
from .push import Publication, PushResult, RepoPushConfig, publish
from .stage import _link_or_copy

logger = logging.getLogger(__name__)

REPO_TYPE = "model"
CONFIG = "config.json"
WEIGHTS = "model.safetensors"
CARD = "README.md"
META = "scoremix.json"
MODEL_FILES = (CONFIG, WEIGHTS, CARD, META)  # all that is ever pushed; on the Hub, the push replaces them as a set
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
FIX = "push the folder `scoremix-ds train --out DIR` wrote (config.json + model.safetensors, written by save_pretrained)"

_LOAD_CALL = re.compile(r'load_discriminator\("([^"\n]*)"\)')  # as cards/model_card.md renders it


@dataclass(frozen=True)
class ModelPushConfig(RepoPushConfig):
    """Publish a trained model folder (``folder``) to a Hub model repository; fields as :class:`RepoPushConfig`."""



def verify_model(folder: str | Path, load: Callable[[str], Any] | None = None) -> dict[str, Any]:
    """The folder's ``config.json``, once the folder is known to be a saved model (and, with ``load``, one that
    ``load(folder)`` loads); else a one-line ModelError."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelError(f"model folder {folder} does not exist", hint=FIX)
    if not (folder / WEIGHTS).is_file():
        pickles = sorted(p.name for p in folder.iterdir() if p.is_file() and p.suffix in PICKLE_SUFFIXES)
        if pickles:
            raise ModelError(f"{folder} holds only pickle weights ({pickles[0]}); models are published as {WEIGHTS} only",
                             hint="re-save the model with save_pretrained, which writes model.safetensors")
        raise ModelError(f"{folder} has no {WEIGHTS}: it is not a saved model", hint=FIX)
    config = _json_object(folder / CONFIG)
    if (folder / META).exists():
        _json_object(folder / META)
    check_loads(folder, load, FIX)
    if not (folder / CARD).is_file():
        logger.warning("%s has no %s: the model is published without a model card", folder, CARD)
    return config


def check_loads(folder: Path, load: Callable[[str], Any] | None, fix: str) -> None:
    """``load(folder)`` (the caller's loader: publishing knows no model class) accepts the folder, or a one-line
    ModelError that says the folder is not published."""
    if load is None:
        return
    try:
        load(str(folder))
    except ModelError as exc:
        raise ModelError(f"{exc.message} (refusing to publish it)", hint=fix) from exc


def _json_object(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ModelError(f"{path.parent} has no {path.name}", hint=FIX)
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelError(f"{path} is not valid JSON ({type(exc).__name__})", hint=FIX) from exc
    if not isinstance(value, dict):
        raise ModelError(f"{path} is not a JSON object", hint=FIX)
    return value


def public_model_card(text: str, repo_id: str, revision: str | None) -> str:
    """The card as published: load snippets point at ``repo_id`` (and ``revision``), local paths are reduced.

    ``load_discriminator("runs/x")`` -> ``load_discriminator("org/net", revision="v1")``;
    ``scoremix-ds eval runs/x`` -> ``scoremix-ds eval org/net --revision v1``.
    """
    return repoint_card(text, repo_id, revision, _LOAD_CALL, "load_discriminator", "scoremix-ds eval", "--revision")


def repoint_card(text: str, repo_id: str, revision: str | None, load_call: re.Pattern, loader: str, command: str,
                 revision_flag: str) -> str:
    """A card's snippets pointed at ``repo_id``: every ``loader("LOCAL")`` that ``load_call`` finds becomes
    ``loader("repo_id", revision="...")``, every ``command LOCAL`` becomes ``command repo_id revision_flag REV``; then
    the remaining local paths are reduced. The one rule for model and generator cards."""
    pinned = f', revision="{revision}"' if revision else ""
    flag = f" {revision_flag} {revision}" if revision else ""
    for local in sorted({m.group(1) for m in load_call.finditer(text)}, key=len, reverse=True):
        text = re.sub(re.escape(command) + " " + re.escape(local) + r"(?=[\s`]|$)",
                      lambda _: f"{command} {repo_id}{flag}", text)
    text = load_call.sub(lambda _: f'{loader}("{repo_id}"{pinned})', text)
    return public_text(text)


def _public_meta(value: Any) -> Any:
    """``scoremix.json`` as published: local paths reduced in every string."""
    if isinstance(value, dict):
        return {k: _public_meta(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_public_meta(v) for v in value]
    return public_text(value) if isinstance(value, str) else value


@contextmanager
def staged_model(folder: str | Path, repo_id: str, revision: str | None) -> Iterator[Path]:
    """A temporary folder holding exactly what is pushed for the verified model in ``folder``; removed on exit.

    The staged bytes depend only on the folder, ``repo_id`` and ``revision`` (named in the card), so an identical
    re-push uploads identical files and the client makes no commit.
    """
    folder = Path(folder)
    with tempfile.TemporaryDirectory(prefix="scoremix-push-model-") as tmp:
        stage = Path(tmp) / "model"
        stage.mkdir()
        for name in (CONFIG, WEIGHTS):
            _link_or_copy(folder / name, stage / name)
        if (folder / CARD).is_file():
            card = (folder / CARD).read_text(encoding="utf-8")
            (stage / CARD).write_text(public_model_card(card, repo_id, revision), encoding="utf-8")
        if (folder / META).is_file():
            meta = json.loads((folder / META).read_text(encoding="utf-8"))
            public = _public_meta(meta)
            if public == meta:
                _link_or_copy(folder / META, stage / META)
            else:  # written as training._save writes it
                (stage / META).write_text(json.dumps(public, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        yield stage


def _default_message(folder: Path, config: dict[str, Any], tag: str | None) -> str:
    """``scoremix-ds: <backbone> model <first 16 hex of the weights' sha256> (<tag>)``."""
    backbone = config.get("backbone") or "small-cnn"
    return f"scoremix-ds: {backbone} model {file_sha256(folder / WEIGHTS)[:16]}" + (f" ({tag})" if tag else "")


def push_model(config: ModelPushConfig, load: Callable[[str], Any] | None = None) -> PushResult:
    """Publish the trained model in ``config.folder`` to the model repository ``config.repo_id``; tag that commit.
    ``load``: the loader that must accept the folder first (``load_discriminator``); without it, only its files are
    checked.

    >>> push_model(ModelPushConfig("recognition-model", "my-org/face-net", tag="v1"))  # doctest: +SKIP
    PushResult(repo_id='my-org/face-net', commit_sha='9b2e...', tag='v1', url='https://huggingface.co/my-org/face-net', ...)
    >>> load_discriminator("my-org/face-net", revision="v1")  # doctest: +SKIP
    """
    folder = Path(config.folder)
    model_config = verify_model(folder, load)
    return publish(config, Publication(
        repo_type=REPO_TYPE, noun="model",
        stage=lambda revision: staged_model(folder, config.repo_id, revision),
        message=_default_message(folder, model_config, config.tag), stale=MODEL_FILES,
        versions_hint=f"check it with `hf repos tag list {config.repo_id}`",
    ))
