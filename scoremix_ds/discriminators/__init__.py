"""Recognition networks ("discriminators"): what embeds images for class centres, and what ``train`` trains.

- :mod:`.embedding_net`: the base class of every backbone (safetensors save and load, :data:`BACKBONES`) and
  ``small-cnn``; :mod:`.iresnet` (IResNet-18/34/50/100) and :mod:`.hf_backbone` (a ``transformers`` vision body);
- :mod:`.onnx_embedder`: a pretrained ONNX face model behind the same interface;
- :mod:`.loading`: :func:`~.loading.load_discriminator` (embedded default, local folder, Hub id, ONNX) and
  :func:`~.loading.embed_images`.

:data:`BACKBONES` maps a ``--backbone`` name to its class, in the order ``--backbone`` lists them.
"""

from __future__ import annotations

# Each backbone class adds itself to BACKBONES as its module is imported: this order is --backbone's.
from .embedding_net import BACKBONES  # small-cnn
from . import iresnet  # noqa: F401,E402  iresnet18 .. iresnet100
from . import hf_backbone  # noqa: F401,E402  hf

__all__ = ["BACKBONES"]
