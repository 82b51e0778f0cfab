"""IResNet-18/34/50/100: insightface's architecture (parameter counts, layout, strides), shapes, and the
save_pretrained -> load_discriminator round trip. Full-size networks are built on the meta device (no memory,
no forward); forwards run on 32x32 inputs."""

from __future__ import annotations

import json

import pytest
import torch

from scoremix_ds.core.errors import ModelError
from scoremix_ds.discriminators.loading import BACKBONES, build_backbone, load_discriminator
from scoremix_ds.discriminators.iresnet import IResNet18, IResNet50, IResNet100, output_side

LAYERS = {
    "iresnet18": (2, 2, 2, 2), "iresnet34": (3, 4, 6, 3), "iresnet50": (3, 4, 14, 3), "iresnet100": (3, 13, 30, 3),
}


def counted_by_hand(layers, in_channels=3, side=7, dim=512) -> int:
    """Parameters of insightface's IResNet, summed layer by layer (BN: gamma + beta; PReLU: one slope per channel)."""
    total = in_channels * 64 * 9 + 2 * 64 + 64  # stem conv3x3, BN, PReLU
    inplanes = 64
    for planes, blocks in zip((64, 128, 256, 512), layers):
        for b in range(blocks):
            cin = inplanes if b == 0 else planes
            total += 2 * cin + cin * planes * 9 + 2 * planes + planes + planes * planes * 9 + 2 * planes
            if b == 0:  # every stage starts with a stride-2 block: conv1x1 + BN shortcut
                total += cin * planes + 2 * planes
        inplanes = planes
    return total + 2 * 512 + (512 * side * side * dim + dim) + 2 * dim  # BN2d, FC, BN1d


@pytest.mark.parametrize("name", list(LAYERS))
def test_parameter_counts_match_insightface_at_112(name):
    with torch.device("meta"):
        model = BACKBONES[name]()
    assert model.image_size == 112 and model.in_channels == 3 and model.embedding_dim == 512
    assert sum(p.numel() for p in model.parameters()) == counted_by_hand(LAYERS[name])


def test_published_sizes_of_ir50_and_ir100():
    # insightface's model zoo lists IR-50 at 43.6M and IR-100 at 65.2M parameters (112x112, 512-d).
    with torch.device("meta"):
        ir50, ir100 = IResNet50(), IResNet100()
    assert sum(p.numel() for p in ir50.parameters()) == 43_590_848
    assert sum(p.numel() for p in ir100.parameters()) == 65_156_160
    assert ir100.fc.in_features == 512 * 7 * 7  # insightface's fc_scale = 7 * 7
    assert [len(getattr(ir100, f"layer{i}")) for i in range(1, 5)] == [3, 13, 30, 3]


def test_block_layout_and_strides_are_insightfaces():
    model = IResNet18(image_size=32, embedding_dim=8)
    block = model.layer2[0]
    # BN -> conv3x3 (stride 1) -> BN -> PReLU -> conv3x3 (stride 2) -> BN, shortcut conv1x1 stride 2 + BN
    assert block.conv1.stride == (1, 1) and block.conv2.stride == (2, 2)
    assert tuple(block.conv1.weight.shape) == (128, 64, 3, 3) and tuple(block.conv2.weight.shape) == (128, 128, 3, 3)
    assert block.downsample[0].stride == (2, 2) and tuple(block.downsample[0].weight.shape) == (128, 64, 1, 1)
    assert model.layer2[1].downsample is None
    assert model.layer1[0].downsample is not None  # stride 2 even though 64 -> 64
    assert tuple(model.prelu.weight.shape) == (64,) and model.bn2.num_features == 512
    assert not model.features.weight.requires_grad  # BN1d gamma frozen at 1
    assert torch.equal(model.features.weight, torch.ones(8))


def test_output_side_is_ceil_half_four_times():
    assert output_side(112) == 7
    assert output_side(32) == 2
    assert output_side(28) == 2  # 14, 7, 4, 2
    assert output_side(20) == 2  # 10, 5, 3, 2
    assert output_side(1) == 1


def test_forward_and_backward_at_32():
    torch.manual_seed(0)
    model = IResNet18(in_channels=3, image_size=32, embedding_dim=16)
    assert model.fc.in_features == 512 * 2 * 2
    out = model(torch.randn(3, 3, 32, 32))
    assert out.shape == (3, 16)
    out.sum().backward()
    assert model.conv1.weight.grad is not None and model.features.weight.grad is None


@pytest.mark.parametrize("size,channels", [(28, 1), (20, 3), (9, 3)])
def test_forward_shapes_at_other_sizes(size, channels):
    model = IResNet18(in_channels=channels, image_size=size, embedding_dim=4).eval()
    assert model.fc.in_features == 512 * output_side(size) ** 2
    with torch.no_grad():
        assert model(torch.randn(2, channels, size, size)).shape == (2, 4)


def test_save_pretrained_load_discriminator_round_trip(tmp_path):
    torch.manual_seed(0)
    model = build_backbone("iresnet18", in_channels=3, image_size=16, embedding_dim=8)
    model.train()
    with torch.no_grad():
        model(torch.randn(4, 3, 16, 16))  # move the BN running statistics off their defaults
    model.eval()
    x = torch.randn(2, 3, 16, 16)
    expected = model(x)
    model.save_pretrained(tmp_path / "ir18")

    config = json.loads((tmp_path / "ir18" / "config.json").read_text())
    assert config["backbone"] == "iresnet18" and config["image_size"] == 16 and config["embedding_dim"] == 8
    loaded = load_discriminator(str(tmp_path / "ir18"))
    assert type(loaded).__name__ == "IResNet18" and not loaded.training
    assert torch.equal(loaded(x), expected)


def test_registry_and_bad_sizes():
    assert {"iresnet18", "iresnet34", "iresnet50", "iresnet100", "small-cnn"} <= set(BACKBONES)
    with pytest.raises(ModelError, match="positive sizes"):
        IResNet18(image_size=0)
    with pytest.raises(ModelError, match="dropout"):
        IResNet18(image_size=32, dropout=1.0)
