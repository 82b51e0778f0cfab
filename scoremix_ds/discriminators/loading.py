"""The "discriminator": a recognition network that maps images to L2-normalised identity embeddings.

ScoreMix picks which classes to mix by their distance in this embedding space. This file builds a backbone by its
name in :data:`scoremix_ds.discriminators.BACKBONES`, loads one from the embedded default, a local folder, a Hub id
(safetensors only: a pickle is never unpickled) or an ONNX model (:mod:`.onnx_embedder`), and embeds uint8 images.
The backbones themselves live in :mod:`.embedding_net` (the base and ``small-cnn``), :mod:`.iresnet` and
:mod:`.hf_backbone`.

>>> model = SmallCNN(in_channels=1, image_size=32, embedding_dim=8)
>>> embed_images(model, np.zeros((2, 28, 28, 1), dtype=np.uint8)).shape
(2, 8)
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..maths.image_tensors import to_model_tensor
from ..core.errors import DataError, ModelError
from ..core.hub_client import download_errors
from ..core.processes import is_main_process
from ..core.refs import could_be_hub_id, with_revision  # ORG/NAME@REVISION, the one reference grammar
from ..core.resources import default_model_dir
from .arcface_torch import is_state_dict_file, load_state_dict_file
from .embedding_net import BACKBONES, CONFIG_NAME, WEIGHTS_NAME, EmbeddingNet, SmallCNN, backbone_class
from .onnx_embedder import OnnxEmbedder, is_onnx_reference, load_onnx_embedder

logger = logging.getLogger(__name__)

_PICKLE_NAMES = ("pytorch_model.bin", "model.pt", "model.pth", "model.ckpt")


def build_backbone(name: str, **kwargs) -> EmbeddingNet:
    """A fresh backbone by its name in :data:`BACKBONES`."""
    if name not in BACKBONES:
        raise ModelError(f"unknown backbone '{name}'", hint=f"`backbone` takes one of {', '.join(BACKBONES)}",
                         field="backbone")
    return BACKBONES[name](**kwargs)


def load_discriminator(name_or_path: str | None = None, revision: str | None = None,
                       flag: str = "discriminator") -> EmbeddingNet | OnnxEmbedder:
    """Load a saved backbone in eval mode, or a frozen ONNX face embedder. ``flag``: the config field that named it, for
    the errors (``init``, ``other_discriminator``; the CLI names it by its flag).

    Args:
        name_or_path: ``None`` or ``"default"`` for the embedded default trained on mnist-5k; a local folder; or a
            Hub model id (``org/name``). The folder must hold ``config.json`` and ``model.safetensors``. A ``.onnx``
            file or a name in :data:`~scoremix_ds.discriminators.onnx_embedder.PRETRAINED` (``"sface"``) loads an
            :class:`~scoremix_ds.discriminators.onnx_embedder.OnnxEmbedder`.
        revision: branch, tag or commit of a Hub model (ignored for local folders and ONNX embedders).

    Returns:
        The backbone (a subclass of :class:`EmbeddingNet`, e.g. :class:`SmallCNN`) on CPU, in eval mode, or an
        :class:`~scoremix_ds.discriminators.onnx_embedder.OnnxEmbedder`; :func:`embed_images` takes either.

    Raises:
        ModelError: the folder or repository is missing, or it only holds pickle weights, or its weights do not
            match its config; or the ONNX file is missing, not ONNX, or has no single 4-D image input.
    """
    if name_or_path not in (None, "default") and not is_onnx_reference(name_or_path):
        name_or_path, revision = with_revision(name_or_path, revision, flag)
    return _load(name_or_path, revision, flag)


def _load(name_or_path: str | None, revision: str | None, flag: str) -> EmbeddingNet | OnnxEmbedder:
    if is_onnx_reference(name_or_path):
        return load_onnx_embedder(name_or_path, flag=flag)
    if is_state_dict_file(name_or_path):  # an arcface_torch backbone.pth: tensors only, strict, architecture inferred
        model = load_state_dict_file(name_or_path, field=flag)
        logger.info("loaded discriminator %s (arcface_torch state dict: %s, %d-d)", name_or_path,
                    type(model).backbone_name, model.embedding_dim)
        return model
    folder = _resolve(name_or_path, revision, flag)
    backbone = backbone_class(folder / CONFIG_NAME, flag)
    try:
        model = backbone.from_pretrained(str(folder))
    except ModelError as exc:
        if not set(exc.fields) & {"image_size", "channels", "embedding_dim"}:
            raise
        # the architecture comes from the folder's config.json, not from the command line: name that file
        raise ModelError(f"{folder / CONFIG_NAME}: {exc.message}", hint=f"fix that file, or give another `{flag}`",
                         field=flag) from exc
    except Exception as exc:  # a config that does not fit the weights, a truncated model.safetensors
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"discriminator {folder / WEIGHTS_NAME} does not load: {first[:120]}", hint=f"check `{flag}`", field=flag) from exc
    logger.info("loaded discriminator %s (%s, %d-d)", folder, backbone.backbone_name, model.embedding_dim)
    return model.eval()


def _resolve(name_or_path: str | None, revision: str | None, flag: str) -> Path:
    """A local folder holding config.json + model.safetensors (Hub repos are downloaded into the cache first)."""
    if name_or_path in (None, "default"):
        folder = default_model_dir("discriminator")
        if not (folder / WEIGHTS_NAME).is_file():
            raise ModelError(
                f"the embedded default discriminator is missing from {folder}",
                hint=f"reinstall scoremix-ds or give another `{flag}`", field=flag,
            )
        return folder
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        _check_folder(path, flag)
        return path
    if path.exists():
        raise ModelError(
            f"discriminator '{name_or_path}' is a file, not a model folder",
            hint=f"check `{flag}`; ONNX files must end in .onnx", field=flag,
        )
    if not could_be_hub_id(name_or_path):
        raise ModelError(f"discriminator folder '{name_or_path}' does not exist", hint=f"check `{flag}`", field=flag)
    return _download(name_or_path, revision, flag)


def _check_folder(folder: Path, flag: str) -> None:
    if not (folder / WEIGHTS_NAME).is_file():
        pickles = [p for p in _PICKLE_NAMES if (folder / p).is_file()]
        if pickles:
            raise ModelError(
                f"discriminator {folder} has only pickle weights ({pickles[0]}); scoremix-ds loads {WEIGHTS_NAME} only",
                hint=f"check `{flag}` (convert it with save_pretrained)", field=flag,
            )
        raise ModelError(f"discriminator {folder} has no {WEIGHTS_NAME}", hint=f"check `{flag}`", field=flag)
    if not (folder / CONFIG_NAME).is_file():
        raise ModelError(f"discriminator {folder} has no {CONFIG_NAME}", hint=f"check `{flag}`", field=flag)


def _download(repo_id: str, revision: str | None, flag: str) -> Path:
    from huggingface_hub import hf_hub_download

    with download_errors("discriminator", repo_id, revision, flag,
                         needs=f"{CONFIG_NAME} or {WEIGHTS_NAME} (pickle weights are refused)"):
        config = hf_hub_download(repo_id, CONFIG_NAME, revision=revision)
        hf_hub_download(repo_id, WEIGHTS_NAME, revision=revision)
    return Path(config).parent


MIN_SIDE = 4  # below this an image holds no identity to embed (a 1x1 "image" would be upscaled into a flat square)


def _check_image_size(images: np.ndarray, model_size: int | None) -> None:
    """Refuse images too small to hold a face or a character; warn when the model must upscale them 4x or more."""
    if not len(images):
        return
    side = min(images.shape[1], images.shape[2])
    if side < MIN_SIDE:
        raise DataError(f"the images are {images.shape[1]}x{images.shape[2]} pixels: too small to embed (at least "
                        f"{MIN_SIDE}x{MIN_SIDE})", hint="give the real images themselves, not thumbnails",
                        field="real_data")
    if model_size and side * 4 <= model_size:
        logger.warning("images of %dx%d are upscaled %.0fx to the discriminator's %dx%d input: embeddings of so "
                       "little detail rank pairs poorly", images.shape[1], images.shape[2], model_size / side,
                       model_size, model_size)


CPU_BATCH_PIXELS = 32 * 32 * 32  # on CPU, small images are embedded this many input pixels at a time


def _cpu_batch(image_size: int, batch_size: int) -> int:
    """The batch run at once on CPU with one intra-op thread: small inputs (up to 64x64) in batches of about
    :data:`CPU_BATCH_PIXELS` pixels, whose activations stay in cache (SmallCNN at 32x32: batch 32 embeds ~2x faster
    than 512, the same numbers). Larger inputs, or several threads (whose many short parallel regions on small
    batches lose 2x on a shared 2-core machine), run at ``batch_size``."""
    if not image_size or image_size > 64 or torch.get_num_threads() != 1:
        return batch_size
    return max(1, min(batch_size, CPU_BATCH_PIXELS // (image_size * image_size)))


def embed_images(
    model: EmbeddingNet | OnnxEmbedder,
    images_uint8_nhwc: np.ndarray,
    batch_size: int = 512,
    device: str | torch.device = "cpu",
    progress: bool | str = False,
) -> np.ndarray:
    """Embed uint8 NHWC images; returns float32 ``(N, embedding_dim)`` with unit-norm rows.

    ``progress`` (True, or the bar's label) shows a bar with ETA, on the main process of a launch only.

    Images are converted with :func:`to_model_tensor` at the model's ``image_size`` / ``in_channels`` (MNIST 28 is
    centre-padded to 32). The model is moved to ``device`` and run in eval mode; its train/eval state is restored.
    An :class:`~scoremix_ds.discriminators.onnx_embedder.OnnxEmbedder` embeds with its own face preprocessing, on CPU.
    """
    images = np.asarray(images_uint8_nhwc)
    if images.ndim != 4 or images.dtype != np.uint8:
        raise DataError(
            f"embed_images takes uint8 NHWC images, got {images.dtype} {images.shape}", hint="check `real_data`", field="real_data"
        )
    if batch_size <= 0:
        raise DataError("batch size must be positive", hint="check `batch_size`", field="batch_size")
    _check_image_size(images, getattr(model, "image_size", None))
    if isinstance(model, OnnxEmbedder):
        return model.embed(images, batch_size=batch_size)
    from tqdm.auto import tqdm

    was_training = model.training
    model.to(device).eval()
    chunks = []
    bar = tqdm(total=len(images), unit="img", desc=progress if isinstance(progress, str) else "embed", leave=False,
               disable=not progress or not is_main_process() or len(images) <= batch_size)
    try:
        step = _cpu_batch(model.image_size, batch_size) if torch.device(device).type == "cpu" else batch_size
        with torch.inference_mode():
            for start in range(0, len(images), step):
                x = to_model_tensor(images[start : start + step], model.image_size, model.in_channels, device)
                chunks.append(F.normalize(model(x).float(), dim=1).cpu())
                bar.update(len(x))
    finally:
        bar.close()
        model.train(was_training)
    if not chunks:
        return np.zeros((0, model.embedding_dim), dtype=np.float32)
    return torch.cat(chunks).numpy().astype(np.float32, copy=False)
