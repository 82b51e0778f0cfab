"""The models a build and a training run load, as adapters with one interface each.

- :mod:`.generator`: a class-conditional diffusers generator (UNet or DiT, optional VAE) behind
  ``ClassConditionalGenerator``, loaded from the embedded default, a local folder or a Hub id;
- :mod:`.discriminator`: a recognition network ("discriminator") that embeds images for class centres; its
  backbones are :mod:`.embedding_net` (the base class and ``small-cnn``), :mod:`.iresnet` (IResNet-18/34/50/100) and
  :mod:`.hf_backbone` (a ``transformers`` vision body), named in :data:`BACKBONES`; :mod:`.onnx_embedder` runs a
  pretrained ONNX face model instead;
- :mod:`.digest`: content digests of loaded weights, which plan files record.

:data:`BACKBONES` maps a ``--backbone`` name to its class, in the order ``--backbone`` lists them.
"""

from __future__ import annotations

from .embedding_net import EmbeddingNet, SmallCNN
from .hf_backbone import HFBackbone
from .iresnet import IRESNETS

BACKBONES: dict[str, type[EmbeddingNet]] = {
    SmallCNN.backbone_name: SmallCNN,
    **IRESNETS,
    HFBackbone.backbone_name: HFBackbone,
}

__all__ = ["BACKBONES"]
