"""arcface_torch's ``backbone.pth`` in (strict, weights_only) and out (state dict + ONNX that onnxruntime runs)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from scoremix_ds.core.errors import ModelError
from scoremix_ds.discriminators.arcface_torch import export_arcface, is_state_dict_file, load_state_dict_file
from scoremix_ds.discriminators.iresnet import IResNet18


@pytest.fixture
def backbone_pth(tmp_path):
    torch.manual_seed(0)
    model = IResNet18(3, 32, 64).eval()
    path = tmp_path / "backbone.pth"
    torch.save(model.state_dict(), path)  # what arcface_torch saves: a plain state dict
    return model, path


def test_a_plain_state_dict_loads_strictly_with_identical_embeddings(backbone_pth):
    model, path = backbone_pth
    assert is_state_dict_file(str(path))
    loaded = load_state_dict_file(path, "iresnet18", image_size=32, embedding_dim=64)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_a_ddp_prefixed_or_wrapped_checkpoint_also_loads(backbone_pth, tmp_path):
    model, _ = backbone_pth
    path = tmp_path / "ckpt.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, path)
    loaded = load_state_dict_file(path, "iresnet18", image_size=32, embedding_dim=64)
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))


def test_wrong_architecture_missing_backbone_and_pickled_code_are_refused(backbone_pth, tmp_path):
    _, path = backbone_pth
    with pytest.raises(ModelError, match="not a iresnet34") as exc:
        load_state_dict_file(path, "iresnet34", image_size=32, embedding_dim=64)
    assert "backbone" in exc.value.fields
    from scoremix_ds.discriminators.embedding_net import SmallCNN

    small = tmp_path / "small.pth"
    torch.save(SmallCNN(1, 32, 16).state_dict(), small)  # not an IResNet: its architecture cannot be read off
    with pytest.raises(ModelError, match="cannot be read off its tensors"):
        load_state_dict_file(small)
    assert isinstance(load_state_dict_file(small, "small-cnn", image_size=32, channels=1, embedding_dim=16), SmallCNN)

    class Payload:
        def __reduce__(self):
            return (open, (str(tmp_path / "pwned"), "w"))

    evil = tmp_path / "evil.pth"
    evil.write_bytes(pickle.dumps({"conv1.weight": Payload()}))
    with pytest.raises(ModelError, match="not a plain torch state dict"):
        load_state_dict_file(evil, "iresnet18", image_size=32, embedding_dim=64)
    assert not (tmp_path / "pwned").exists()  # weights_only: the payload never ran


def test_export_writes_a_state_dict_and_an_onnx_model_onnxruntime_runs(backbone_pth, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    model, _ = backbone_pth
    files = export_arcface(model, tmp_path / "export")
    reloaded = IResNet18(3, 32, 64)
    reloaded.load_state_dict(torch.load(files["state_dict"], weights_only=True), strict=True)
    x = torch.rand(3, 3, 32, 32) * 2 - 1  # a batch of 3: the batch axis is dynamic
    with torch.no_grad():
        want = model(x).numpy()
        assert np.array_equal(reloaded.eval()(x).numpy(), want)
    session = ort.InferenceSession(str(files["onnx"]))
    (got,) = session.run(None, {"input": x.numpy()})
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


def test_export_discriminator_command_round_trips_through_the_loader(tmp_path, capsys):
    from scoremix_ds.cli import main
    from scoremix_ds.discriminators.loading import load_discriminator

    assert main(["export-discriminator", "default", "--out", str(tmp_path / "arc")]) == 0
    default = load_discriminator("default")
    back = load_state_dict_file(tmp_path / "arc" / "backbone.pth", "small-cnn", image_size=default.image_size,
                                channels=default.in_channels, embedding_dim=default.embedding_dim)
    x = torch.rand(2, default.in_channels, default.image_size, default.image_size) * 2 - 1
    with torch.no_grad():
        assert torch.equal(back(x), default(x))
    user = tmp_path / "mine"
    user.mkdir()
    (user / "notes.txt").write_text("keep")
    assert main(["export-discriminator", "default", "--out", str(user)]) == 2  # a folder this tool did not write
    assert [p.name for p in user.iterdir()] == ["notes.txt"]


def test_the_architecture_is_read_off_an_iresnet_state_dict(backbone_pth):
    from scoremix_ds.discriminators.arcface_torch import infer_iresnet

    model, path = backbone_pth
    assert infer_iresnet(model.state_dict()) == {"backbone": "iresnet18", "channels": 3, "image_size": 32,
                                                 "embedding_dim": 64}
    loaded = load_state_dict_file(path)  # nothing named: read off the tensors
    assert type(loaded).__name__ == "IResNet18" and loaded.embedding_dim == 64
    assert infer_iresnet({"conv.weight": torch.zeros(1)}) is None


def test_discriminator_backbone_pth_works_wherever_a_discriminator_does(backbone_pth, tmp_path, capsys):
    from scoremix_ds.cli import main
    from scoremix_ds.discriminators.loading import embed_images, load_discriminator

    model, path = backbone_pth
    loaded = load_discriminator(str(path))
    images = (np.random.default_rng(0).random((3, 32, 32, 3)) * 255).astype(np.uint8)
    np.testing.assert_array_equal(embed_images(loaded, images), embed_images(model, images))
    rc = main(["eval", str(path), "--benchmark", "heldout:mnist-5k-heldout[0-3]:40", "--out", str(tmp_path / "ev")])
    assert rc == 0, capsys.readouterr().err
