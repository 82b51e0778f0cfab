"""IResNet-18/34/50/100: the "improved ResNet" face-recognition backbones of insightface's ``arcface_torch``.

Layer for layer the architecture of insightface ``recognition/arcface_torch/backbones/iresnet.py`` (Deng et al.,
ArcFace, CVPR 2019; Duta et al. for the improved residual block), so its parameter names and counts match:

* stem: conv3x3(in_channels -> 64, stride 1) + BN2d + PReLU;
* four stages of :class:`IBasicBlock` with 64/128/256/512 channels, each halving the resolution;
  blocks per stage: IR-18 ``[2, 2, 2, 2]``, IR-34 ``[3, 4, 6, 3]``, IR-50 ``[3, 4, 14, 3]``, IR-100 ``[3, 13, 30, 3]``;
* output: BN2d(512), flatten, dropout, Linear(512 * h * w -> embedding_dim), BN1d (its gamma frozen at 1).

The FC input depends on the feature map the stages leave: every stage maps a side ``n`` to ``ceil(n / 2)``, so a
112x112 face gives 7x7 (insightface's ``fc_scale = 7 * 7``) and a 32x32 test image 2x2. At 112x112, 3 channels and a
512-d embedding IR-18 has 24,025,600 parameters, IR-34 34,139,328, IR-50 43,590,848 and IR-100 65,156,160 (BN
running statistics are buffers, not parameters; 512 of them, the frozen BN1d gamma, get no gradient); the FC alone
is 12.8M of them.

>>> model = IResNet18(image_size=32, embedding_dim=8).eval()
>>> model(torch.zeros(2, 3, 32, 32)).shape
torch.Size([2, 8])
"""

from __future__ import annotations

import torch
from torch import nn

from ..core.errors import ModelError
from .embedding_net import EmbeddingNet

STAGE_WIDTHS = (64, 128, 256, 512)


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


def output_side(image_size: int, stages: int = len(STAGE_WIDTHS)) -> int:
    """Side of the last feature map: each stride-2 stage maps ``n`` to ``floor((n + 2 - 3) / 2) + 1 = ceil(n / 2)``."""
    side = image_size
    for _ in range(stages):
        side = (side + 1) // 2
    return side


class IBasicBlock(nn.Module):
    """Pre-activation-style residual block: ``x + BN(conv3x3_s(PReLU(BN(conv3x3(BN(x))))))``.

    The stride sits on the SECOND conv (insightface), and the shortcut is conv1x1(stride) + BN when the shape changes.
    """

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes, eps=1e-05)
        self.conv1 = conv3x3(inplanes, planes)
        self.bn2 = nn.BatchNorm2d(planes, eps=1e-05)
        self.prelu = nn.PReLU(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn3 = nn.BatchNorm2d(planes, eps=1e-05)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        return out + identity


class IResNet(EmbeddingNet):
    """An IResNet whose depth is set by the subclass's ``layers``; ``forward`` maps NCHW in [-1, 1] to features.

    Args:
        in_channels: input channels (3 for RGB faces, as insightface; 1 for the MNIST demo data).
        image_size: input side in pixels (112 for aligned faces; any size >= 1, e.g. 32 for fast tests).
        embedding_dim: width of the embedding (insightface's ``num_features``, 512).
        dropout: dropout probability before the FC (insightface's ``dropout``, 0 by default).
        zero_init_residual: start each block's ``bn2`` gamma at 0 (insightface's option of the same name).
    """

    layers: tuple[int, int, int, int] = (0, 0, 0, 0)

    def __init__(
        self,
        in_channels: int = 3,
        image_size: int = 112,
        embedding_dim: int = 512,
        dropout: float = 0.0,
        zero_init_residual: bool = False,
    ) -> None:
        super().__init__()
        if type(self) is IResNet:
            raise ModelError("IResNet is abstract: build IResNet18/34/50/100", hint="e.g. `backbone` iresnet50", field="backbone")
        if image_size < 1 or in_channels < 1 or embedding_dim < 1:
            raise ModelError(
                f"IResNet needs positive sizes, got image_size={image_size}, in_channels={in_channels}, "
                f"embedding_dim={embedding_dim}",
                hint="check `image_size` / `channels` / `embedding_dim`", fields=("image_size", "channels", "embedding_dim"),
            )
        if not 0.0 <= dropout < 1.0:
            raise ModelError(f"dropout must be in [0, 1), got {dropout}", hint="set dropout in [0, 1) (in the model folder's config.json, or the constructor call)")
        self.in_channels = in_channels
        self.image_size = image_size
        self.embedding_dim = embedding_dim

        self.inplanes = 64
        self.conv1 = nn.Conv2d(in_channels, self.inplanes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes, eps=1e-05)
        self.prelu = nn.PReLU(self.inplanes)
        self.layer1 = self._make_layer(STAGE_WIDTHS[0], self.layers[0])
        self.layer2 = self._make_layer(STAGE_WIDTHS[1], self.layers[1])
        self.layer3 = self._make_layer(STAGE_WIDTHS[2], self.layers[2])
        self.layer4 = self._make_layer(STAGE_WIDTHS[3], self.layers[3])
        self.bn2 = nn.BatchNorm2d(STAGE_WIDTHS[3], eps=1e-05)
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(STAGE_WIDTHS[3] * output_side(image_size) ** 2, embedding_dim)
        self.features = nn.BatchNorm1d(embedding_dim, eps=1e-05)
        nn.init.constant_(self.features.weight, 1.0)
        self.features.weight.requires_grad = False  # insightface freezes the embedding BN's gamma at 1

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0, 0.1)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, IBasicBlock):
                    nn.init.constant_(m.bn2.weight, 0)

    def _make_layer(self, planes: int, blocks: int, stride: int = 2) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(conv1x1(self.inplanes, planes, stride), nn.BatchNorm2d(planes, eps=1e-05))
        layers = [IBasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes
        layers += [IBasicBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.dropout(torch.flatten(self.bn2(x), 1))
        return self.features(self.fc(x))


class IResNet18(IResNet):
    backbone_name = "iresnet18"
    layers = (2, 2, 2, 2)


class IResNet34(IResNet):
    backbone_name = "iresnet34"
    layers = (3, 4, 6, 3)


class IResNet50(IResNet):
    backbone_name = "iresnet50"
    layers = (3, 4, 14, 3)


class IResNet100(IResNet):
    backbone_name = "iresnet100"
    layers = (3, 13, 30, 3)


IRESNETS: dict[str, type[IResNet]] = {cls.backbone_name: cls for cls in (IResNet18, IResNet34, IResNet50, IResNet100)}
