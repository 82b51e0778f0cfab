"""A ``transformers`` vision model (ResNet, ConvNeXt, ViT, Swin, DINOv2 ...) as a recognition backbone ("hf").

The model body comes from ``transformers`` (``AutoModel``); on top sits the embedding layer insightface's
backbones end with::

    pooled = pooler_output.flatten(1)    or the mean of last_hidden_state over positions / tokens if no pooler
    embedding = BN1d(Linear(pooled))     (N, embedding_dim)

Three ways to build the body, exactly one per call:

* ``model_type`` (+ ``config_overrides``): a fresh, randomly initialised model from
  ``AutoConfig.for_model(model_type, **config_overrides)``; ``num_channels`` / ``image_size`` follow
  ``in_channels`` / ``image_size`` unless overridden. No network.
* ``pretrained`` (+ ``pretrained_revision``): ``AutoModel.from_pretrained`` of a local folder or Hub id,
  safetensors only, in float32. Remote code runs only when the caller passes ``trust_remote_code=True``. When the
  folder has a ``preprocessor_config.json`` and no ``pixel_mean`` / ``pixel_std`` are given, its ``image_mean`` /
  ``image_std`` are used, so an ImageNet-pretrained body sees the inputs it was trained on.
* ``hf_config``: the full ``config.to_dict()`` of a body — what ``save_pretrained`` writes, so
  :func:`~scoremix_ds.discriminators.loading.load_discriminator` rebuilds the architecture offline and then reads
  the weights from ``model.safetensors``. A saved folder is data, not code: loading one refuses a config.json that
  asks for ``pretrained`` / ``model_type`` / ``trust_remote_code`` instead of ``hf_config`` (a config file from the
  Hub must not be able to make ``load_discriminator`` fetch and run remote code).

Inputs are NCHW in [-1, 1] like every :class:`EmbeddingNet`; with ``pixel_mean`` / ``pixel_std`` set they are
mapped to ``((x + 1) / 2 - mean) / std`` first. A ViT-like body used at another ``image_size`` than it was
built for gets ``interpolate_pos_encoding=True``.

>>> net = HFBackbone(model_type="resnet", config_overrides={"embedding_size": 8, "hidden_sizes": [8, 16],
...                  "depths": [1, 1]}, image_size=32, embedding_dim=4)
>>> net.eval()(torch.zeros(2, 3, 32, 32)).shape
torch.Size([2, 4])
"""

from __future__ import annotations

import inspect
import json
import logging
from typing import Any

import torch
from torch import nn

from ..core.errors import ModelError
from .embedding_net import EmbeddingNet

logger = logging.getLogger(__name__)

_HINT = "check the hf backbone's model_type / pretrained / config_overrides"


class HFBackbone(EmbeddingNet):
    """A ``transformers`` vision body + Linear + BatchNorm1d embedding layer (see the module docstring).

    Args:
        model_type: a ``transformers`` model type (``"resnet"``, ``"convnext"``, ``"vit"`` ...) for a fresh body.
        config_overrides: keyword arguments for the config (``hidden_sizes``, ``depths``, ``hidden_size`` ...).
        pretrained: a local folder or Hub model id to load the body's weights from (safetensors only).
        pretrained_revision: branch, tag or commit of a Hub ``pretrained``.
        hf_config: a full body config as a dict (written by ``save_pretrained``; rebuilds without the network).
        in_channels: image channels the body takes.
        image_size: input side in pixels.
        embedding_dim: width of the embedding.
        pixel_mean, pixel_std: per-channel normalisation of [0, 1] pixels the body expects (``None``: feed
            [-1, 1] as is).
        trust_remote_code: let ``transformers`` run code from the ``pretrained`` repository (off by default).
    """

    backbone_name = "hf"

    def __init__(
        self,
        model_type: str | None = None,
        config_overrides: dict | None = None,
        pretrained: str | None = None,
        pretrained_revision: str | None = None,
        hf_config: dict | None = None,
        in_channels: int = 3,
        image_size: int = 112,
        embedding_dim: int = 512,
        pixel_mean: list[float] | None = None,
        pixel_std: list[float] | None = None,
        trust_remote_code: bool = False,
    ) -> None:
        super().__init__()
        given = {"model_type": model_type, "pretrained": pretrained, "hf_config": hf_config}
        sources = [name for name, value in given.items() if value is not None]
        if len(sources) != 1:
            raise ModelError(
                f"the hf backbone needs exactly one of model_type, pretrained, hf_config; got {sources or 'none'}",
                hint=_HINT,
            )
        if image_size < 1 or in_channels < 1 or embedding_dim < 1:
            raise ModelError("the hf backbone needs positive image_size, in_channels and embedding_dim", hint=_HINT,
                             fields=("image_size", "channels", "embedding_dim"))
        self.in_channels = in_channels
        self.image_size = image_size
        self.embedding_dim = embedding_dim

        if pretrained is not None and pixel_mean is None and pixel_std is None:
            pixel_mean, pixel_std = _preprocessor_stats(pretrained, pretrained_revision)
        if (pixel_mean is None) != (pixel_std is None):
            raise ModelError("pass both pixel_mean and pixel_std, or neither", hint=_HINT)
        if pixel_mean is not None and not (len(pixel_mean) == len(pixel_std) == in_channels):
            raise ModelError(
                f"pixel_mean / pixel_std need {in_channels} values each, got {len(pixel_mean)} / {len(pixel_std)}",
                hint=_HINT,
            )
        self._normalise = pixel_mean is not None
        mean = torch.tensor(pixel_mean or [0.0] * in_channels, dtype=torch.float32).view(1, -1, 1, 1)
        std = torch.tensor(pixel_std or [1.0] * in_channels, dtype=torch.float32).view(1, -1, 1, 1)
        self.register_buffer("pixel_mean", mean, persistent=False)  # derived from config.json, not weights
        self.register_buffer("pixel_std", std, persistent=False)

        self.encoder = _build_body(
            model_type, dict(config_overrides or {}), pretrained, pretrained_revision, hf_config, in_channels,
            image_size, trust_remote_code,
        )
        config = self.encoder.config
        if getattr(config, "num_channels", in_channels) != in_channels:
            raise ModelError(
                f"the hf body takes {config.num_channels} channels but in_channels is {in_channels}", hint=_HINT
            )
        accepts = inspect.signature(self.encoder.forward).parameters
        built_for = getattr(config, "image_size", image_size)
        self._forward_kwargs: dict[str, Any] = {}
        if "interpolate_pos_encoding" in accepts and built_for != image_size:
            self._forward_kwargs["interpolate_pos_encoding"] = True

        width = self._probe_width()
        self.embedding = nn.Linear(width, embedding_dim)
        self.features = nn.BatchNorm1d(embedding_dim)

        # What save_pretrained writes: the body's FULL config (so loading needs neither the network nor the
        # pretrained folder) plus where it came from, for the model card; never trust_remote_code.
        self._hub_mixin_config = {
            "hf_config": json.loads(config.to_json_string(use_diff=False)),
            "in_channels": in_channels,
            "image_size": image_size,
            "embedding_dim": embedding_dim,
            "pixel_mean": pixel_mean,
            "pixel_std": pixel_std,
            "initialised_from": pretrained,
            "initialised_from_revision": pretrained_revision,
        }

    @classmethod
    def _from_pretrained(cls, *, model_id: str, **kwargs):
        """A saved backbone rebuilds from its ``hf_config`` only: nothing in its config.json may fetch or run code."""
        unsafe = [key for key in ("model_type", "pretrained", "pretrained_revision", "config_overrides")
                  if kwargs.get(key) is not None]
        if kwargs.get("trust_remote_code"):
            unsafe.append("trust_remote_code")
        if kwargs.get("hf_config") is None or unsafe:
            raise ModelError(
                f"saved hf backbone {model_id} must hold its full 'hf_config' and none of {unsafe or 'the others'}",
                hint="re-save it with save_pretrained",
            )
        return super()._from_pretrained(model_id=model_id, **kwargs)

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """The body's pooled features ``(N, width)`` for NCHW input in [-1, 1]."""
        if self._normalise:
            x = ((x + 1.0) * 0.5 - self.pixel_mean) / self.pixel_std
        out = self.encoder(pixel_values=x, **self._forward_kwargs)
        pooled = getattr(out, "pooler_output", None)
        if pooled is None:
            hidden = out.last_hidden_state
            pooled = hidden.mean(dim=(2, 3)) if hidden.dim() == 4 else hidden.mean(dim=1)
        return pooled.flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(self.embedding(self.pooled(x)))

    def _probe_width(self) -> int:
        """Width of the pooled features, from one zero image (robust across model families)."""
        was_training = self.encoder.training
        self.encoder.eval()
        try:
            with torch.no_grad():
                probe = torch.zeros(1, self.in_channels, self.image_size, self.image_size)
                return int(self.pooled(probe).shape[1])
        except (RuntimeError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(
                f"the hf body does not run on {self.in_channels}x{self.image_size}x{self.image_size} input: {first}",
                hint=_HINT,
            ) from exc
        finally:
            self.encoder.train(was_training)


def _build_body(
    model_type: str | None,
    overrides: dict,
    pretrained: str | None,
    revision: str | None,
    hf_config: dict | None,
    in_channels: int,
    image_size: int,
    trust_remote_code: bool,
) -> nn.Module:
    from transformers import AutoConfig, AutoModel

    try:
        if pretrained is not None:
            config = AutoConfig.from_pretrained(
                pretrained, revision=revision, trust_remote_code=trust_remote_code, **overrides
            )
            return AutoModel.from_pretrained(
                pretrained, config=config, revision=revision, trust_remote_code=trust_remote_code, use_safetensors=True,
                dtype=torch.float32,  # checkpoints may be stored in bf16/fp16; training casts itself (autocast)
            )
        if hf_config is not None:  # a saved backbone: a built-in architecture, never remote code
            return AutoModel.from_config(_config_from_dict(hf_config), trust_remote_code=False, dtype=torch.float32)
        _check_model_type(model_type)
        for key, value in (("num_channels", in_channels), ("image_size", image_size)):
            overrides.setdefault(key, value)
        config = AutoConfig.for_model(model_type, **overrides)
        return AutoModel.from_config(config, trust_remote_code=trust_remote_code, dtype=torch.float32)
    except ModelError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        source = pretrained or model_type or (hf_config or {}).get("model_type")
        raise ModelError(f"cannot build the hf backbone from '{source}': {first}", hint=_HINT) from exc


def _check_model_type(model_type: str) -> None:
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    if model_type not in CONFIG_MAPPING:
        raise ModelError(
            f"transformers has no model_type '{model_type}' (vision bodies: resnet, convnext, vit, swin, dinov2 ...)",
            hint=_HINT,
        )


def _config_from_dict(hf_config: dict):
    """A ``PretrainedConfig`` from its ``to_dict()`` (the class is looked up by ``model_type``; no network)."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    model_type = hf_config.get("model_type")
    if model_type not in CONFIG_MAPPING:
        raise ModelError(
            f"saved hf backbone has model_type '{model_type}', which this transformers version does not know"
            + (" (it came from remote code, which a saved backbone cannot rebuild offline)" if "auto_map" in hf_config
               else ""),
            hint="upgrade transformers or re-save the backbone",
        )
    return CONFIG_MAPPING[model_type].from_dict(dict(hf_config))


def _preprocessor_stats(pretrained: str, revision: str | None) -> tuple[list[float] | None, list[float] | None]:
    """``image_mean`` / ``image_std`` from the checkpoint's ``preprocessor_config.json``, if it has one."""
    from transformers.utils import cached_file

    try:
        path = cached_file(
            pretrained, "preprocessor_config.json", revision=revision,
            _raise_exceptions_for_missing_entries=False, _raise_exceptions_for_connection_errors=False,
        )
    except OSError:
        path = None
    if path is None:
        return None, None
    with open(path, encoding="utf-8") as f:
        stats = json.load(f)
    mean, std = stats.get("image_mean"), stats.get("image_std")
    if mean is None or std is None:
        return None, None
    logger.info("hf backbone %s: normalising inputs with image_mean=%s image_std=%s", pretrained, mean, std)
    return [float(v) for v in mean], [float(v) for v in std]

