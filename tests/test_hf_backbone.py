"""The "hf" backbone: tiny transformers ResNet / ViT bodies built from a config in code, the embedding layer on
their pooled output, a pretrained folder (safetensors only, its preprocessing applied), and the
save_pretrained -> load_discriminator round trip without the original folder or the network."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from scoremix_ds.core.errors import ModelError
from scoremix_ds.discriminators.loading import BACKBONES, build_backbone, load_discriminator
from scoremix_ds.discriminators.hf_backbone import HFBackbone

TINY_RESNET = {"embedding_size": 8, "hidden_sizes": [8, 12], "depths": [1, 1]}
TINY_VIT = {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32,
            "patch_size": 8}


def test_tiny_resnet_embedding_is_linear_bn_on_the_pooled_output():
    torch.manual_seed(0)
    net = build_backbone("hf", model_type="resnet", config_overrides=TINY_RESNET, image_size=32, embedding_dim=4)
    assert isinstance(net, HFBackbone) and BACKBONES["hf"] is HFBackbone
    assert net.embedding.in_features == 12  # ResNet pools its last stage: hidden_sizes[-1] channels
    net.eval()
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    pooled = net.encoder(pixel_values=x).pooler_output.flatten(1)  # no pixel_mean/std: [-1, 1] goes in as is
    bn = net.features
    expected = (net.embedding(pooled) - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight + bn.bias
    assert torch.allclose(net(x), expected, atol=1e-6)
    assert net(x).shape == (3, 4)


def test_tiny_vit_on_one_channel_uses_the_pooler_width():
    torch.manual_seed(0)
    net = HFBackbone(model_type="vit", config_overrides=TINY_VIT, in_channels=1, image_size=32, embedding_dim=6)
    assert net.encoder.config.num_channels == 1 and net.encoder.config.image_size == 32
    assert net.embedding.in_features == 16
    out = net(torch.randn(4, 1, 32, 32))
    assert out.shape == (4, 6)
    out.pow(2).sum().backward()
    assert net.encoder.embeddings.patch_embeddings.projection.weight.grad is not None


@pytest.mark.parametrize("model_type,overrides,channels", [("resnet", TINY_RESNET, 3), ("vit", TINY_VIT, 1)])
def test_round_trip_through_load_discriminator(tmp_path, model_type, overrides, channels):
    torch.manual_seed(0)
    net = HFBackbone(model_type=model_type, config_overrides=overrides, in_channels=channels, image_size=32,
                     embedding_dim=5)
    with torch.no_grad():
        net.train()(torch.randn(4, channels, 32, 32))  # move the BN running statistics off their defaults
    net.eval()
    x = torch.randn(2, channels, 32, 32)
    expected = net(x)
    net.save_pretrained(tmp_path / "model")

    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["backbone"] == "hf" and config["hf_config"]["model_type"] == model_type
    assert "model_type" not in config and "config_overrides" not in config  # the full body config replaces them
    assert (tmp_path / "model" / "model.safetensors").is_file()
    loaded = load_discriminator(str(tmp_path / "model"))
    assert isinstance(loaded, HFBackbone) and (loaded.in_channels, loaded.image_size) == (channels, 32)
    assert torch.equal(loaded(x), expected)


def _pretrained_folder(folder, mean=None, std=None):
    from transformers import ResNetConfig, ResNetModel

    torch.manual_seed(1)
    body = ResNetModel(ResNetConfig(num_channels=3, **TINY_RESNET))
    body.save_pretrained(folder)
    if mean is not None:
        (folder / "preprocessor_config.json").write_text(json.dumps({"image_mean": mean, "image_std": std}))
    return body


def test_pretrained_folder_weights_and_preprocessing(tmp_path):
    body = _pretrained_folder(tmp_path / "body", mean=[0.5, 0.4, 0.3], std=[0.2, 0.25, 0.5])
    net = HFBackbone(pretrained=str(tmp_path / "body"), image_size=32, embedding_dim=4).eval()
    for name, value in body.state_dict().items():
        assert torch.equal(net.encoder.state_dict()[name], value), name
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    mean, std = torch.tensor([0.5, 0.4, 0.3]).view(1, 3, 1, 1), torch.tensor([0.2, 0.25, 0.5]).view(1, 3, 1, 1)
    with torch.no_grad():
        pooled = body.eval()(pixel_values=((x + 1) / 2 - mean) / std).pooler_output.flatten(1)
        assert torch.allclose(net.pooled(x), pooled, atol=1e-6)

    net.save_pretrained(tmp_path / "saved")
    shutil.rmtree(tmp_path / "body")  # the saved backbone must not need the folder it was initialised from
    config = json.loads((tmp_path / "saved" / "config.json").read_text())
    assert config["pixel_mean"] == [0.5, 0.4, 0.3] and config["initialised_from"] == str(tmp_path / "body")
    loaded = load_discriminator(str(tmp_path / "saved"))
    assert torch.equal(loaded(x), net(x))


def test_pretrained_vit_at_another_size_interpolates_its_position_embeddings(tmp_path):
    from transformers import ViTConfig, ViTModel

    torch.manual_seed(0)
    ViTModel(ViTConfig(image_size=32, **TINY_VIT)).save_pretrained(tmp_path / "vit")
    net = HFBackbone(pretrained=str(tmp_path / "vit"), image_size=48, embedding_dim=4).eval()
    assert net._forward_kwargs == {"interpolate_pos_encoding": True}
    assert net(torch.zeros(2, 3, 48, 48)).shape == (2, 4)  # 36 patches against 16 stored positions


def test_pretrained_pickle_only_folder_is_refused(tmp_path):
    body = _pretrained_folder(tmp_path / "body")
    (tmp_path / "body" / "model.safetensors").unlink()
    torch.save(body.state_dict(), tmp_path / "body" / "pytorch_model.bin")  # never loaded: safetensors only
    with pytest.raises(ModelError, match="cannot build the hf backbone"):
        HFBackbone(pretrained=str(tmp_path / "body"), image_size=32, embedding_dim=4)


def test_a_saved_config_cannot_ask_for_remote_code_or_a_download(tmp_path):
    torch.manual_seed(0)
    HFBackbone(model_type="resnet", config_overrides=TINY_RESNET, image_size=32, embedding_dim=4).save_pretrained(
        tmp_path / "model"
    )
    path = tmp_path / "model" / "config.json"
    honest = json.loads(path.read_text())
    assert "trust_remote_code" not in honest
    for tampered in ({"trust_remote_code": True}, {"pretrained": "someone/remote-code-model"}):
        path.write_text(json.dumps({**honest, **tampered}))
        with pytest.raises(ModelError, match="must hold its full 'hf_config'"):
            load_discriminator(str(tmp_path / "model"))
    path.write_text(json.dumps({k: v for k, v in honest.items() if k != "hf_config"} | {"model_type": "resnet"}))
    with pytest.raises(ModelError, match="must hold its full 'hf_config'"):
        load_discriminator(str(tmp_path / "model"))


def test_bad_configurations_raise_one_model_error(tmp_path):
    with pytest.raises(ModelError, match="exactly one of"):
        HFBackbone(image_size=32)
    with pytest.raises(ModelError, match="exactly one of"):
        HFBackbone(model_type="resnet", hf_config={"model_type": "resnet"}, image_size=32)
    with pytest.raises(ModelError, match="no model_type 'no-such-model'"):
        HFBackbone(model_type="no-such-model", image_size=32)
    with pytest.raises(ModelError, match="model_type 'no-such-model'"):
        HFBackbone(hf_config={"model_type": "no-such-model"}, image_size=32)
    with pytest.raises(ModelError, match="pixel_mean"):
        HFBackbone(model_type="resnet", config_overrides=TINY_RESNET, image_size=32, pixel_mean=[0.5, 0.5, 0.5])
    _pretrained_folder(tmp_path / "body")
    with pytest.raises(ModelError, match="takes 3 channels but in_channels is 1"):
        HFBackbone(pretrained=str(tmp_path / "body"), in_channels=1, image_size=32)
