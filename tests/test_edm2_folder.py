"""EDM2 generator folders (issue 22): written from a network, read back by load_generator as the one generator
interface, and made by `scoremix-ds import-generator` from EDM2-format snapshots built in code
(tests/fixtures/edm2_pickles.py): the folder's tensors are the snapshot's, the imported denoiser is the source
network's D(x; sigma, y), and bad input is one line naming the problem and the flag, exit 2, nothing written."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch
from safetensors.torch import load_file

from fixtures.cli import run_cli
from fixtures.edm2_pickles import TINY, _snapshot_bytes, tiny_net
from scoremix_ds.core.errors import ModelError
from scoremix_ds.generators.edm2 import EDM2Denoiser
from scoremix_ds.generators.edm2.folder import write_edm2_folder
from scoremix_ds.generators.edm2.generator import EDM2Generator
from scoremix_ds.generators.loading import load_generator


def _fp16_rounded(net: EDM2Denoiser) -> EDM2Denoiser:
    """The source network with the fp16-rounded weights a snapshot's ``ema`` holds: the D(x; sigma, y) it defines."""
    net.load_state_dict({k: v.half().float() for k, v in net.state_dict().items()})
    return net


def test_folder_round_trip_and_loading(tmp_path):
    net, guide = tiny_net(1), tiny_net(2, model_channels=16)
    write_edm2_folder(tmp_path / "g", net, ["a", "b", "c"], null_class=3, architecture="edm2-test", guide=guide)
    meta = json.loads((tmp_path / "g" / "scoremix.json").read_text())
    assert meta["num_classes"] == 3 and meta["null_class"] == 3 and meta["class_names"] == ["a", "b", "c"]
    assert meta["image_size"] == 16 and meta["channels"] == 1 and meta["architecture"] == "edm2-test"
    assert meta["sigma_data"] == 0.5
    assert meta["sampler"] == {"scheduler": "edm-heun", "steps": 32, "sigma_min": 0.002, "sigma_max": 80.0,
                               "rho": 7.0, "guidance": 1.0}
    index = json.loads((tmp_path / "g" / "model_index.json").read_text())
    assert index["_class_name"] == "ScoreMixPipeline" and index["edm2"] == ["scoremix_ds.generators.edm2.precond",
                                                                             "EDM2Denoiser"]
    gen = load_generator(str(tmp_path / "g"))
    assert isinstance(gen, EDM2Generator) and gen.kind == "edm2" and gen.num_classes == 3 and gen.null_class == 3
    assert gen.class_names == ("a", "b", "c") and gen.sample_shape == (1, 16, 16)
    assert gen.guide is not None and gen.guide.sample_shape == (1, 16, 16)
    bare = load_generator(str(tmp_path / "g" / "edm2_guide"), flag="weak_generator")  # the guide as a weak generator
    assert isinstance(bare, EDM2Generator) and bare.class_names == ("a", "b", "c") and bare.num_classes == 3
    assert torch.equal(bare.denoiser.unet.out_gain, guide.unet.out_gain)
    x, sigma = torch.randn(2, 1, 16, 16), torch.tensor([0.4, 3.0])
    assert torch.equal(gen.predict(x, sigma, torch.tensor([0, 2])), net(x, sigma, torch.eye(3)[[0, 2]]))
    assert torch.equal(gen.predict(x, sigma, torch.tensor([3, 3])), net(x, sigma, torch.zeros(2, 3)))  # null: zeros
    assert gen.condition_table().shape == (3, net.unet.emb_label.weight.shape[0])
    with pytest.raises(ModelError, match="zero label"):
        load_generator(str(tmp_path / "g"), null_class=1)
    for weights in (tmp_path / "g" / "edm2").glob("*.safetensors"):
        weights.rename(weights.with_suffix(".bin"))
    with pytest.raises(ModelError, match="pickle form"):
        load_generator(str(tmp_path / "g"))


def _snapshot(tmp_path, name, net, kwargs=None, **more):
    path = tmp_path / name
    path.write_bytes(_snapshot_bytes(net, init_kwargs=kwargs, **more))
    return path


def test_import_generator_writes_the_snapshots_tensors_and_network(tmp_path, capsys):
    marker = tmp_path / "source-ran.txt"
    source = f"open({str(marker)!r}, 'w').write('the embedded source ran')  # networks_edm2.py stand-in\n"
    snap = _snapshot(tmp_path, "network-snapshot-0001.pkl", tiny_net(5), source=source)
    guide_kwargs = {**TINY, "model_channels": 8, "channels_per_head": 8}
    guide = _snapshot(tmp_path, "network-snapshot-guide.pkl", tiny_net(6, model_channels=8, channels_per_head=8),
                      guide_kwargs)
    out = tmp_path / "imported"
    rc, stdout, stderr = run_cli(capsys, "import-generator", str(snap), "--out", str(out), "--guide", str(guide),
                                 "--class-names", "ann,bob,cy", "--guidance", "1.5")
    assert rc == 0, stderr
    tensors = load_file(next((out / "edm2").glob("*.safetensors")))
    want = tiny_net(5).state_dict()
    assert set(tensors) == set(want)
    for key, value in want.items():  # the snapshot holds fp16 values; the folder holds them exactly
        assert torch.equal(tensors[key], value.half().float()), key
    guide_tensors = load_file(next((out / "edm2_guide").glob("*.safetensors")))
    assert torch.equal(guide_tensors["unet.out_conv.weight"],
                       tiny_net(6, model_channels=8, channels_per_head=8).state_dict()["unet.out_conv.weight"].half().float())
    gen = load_generator(str(out))
    x, sigma, y = torch.randn(3, 1, 16, 16), torch.tensor([0.01, 0.7, 40.0]), torch.tensor([[1.0, 0, 0], [0, 0.5, 0.5], [0, 0, 1]])
    assert torch.equal(gen.denoiser(x, sigma, y), _fp16_rounded(tiny_net(5))(x, sigma, y))
    assert gen.class_names == ("ann", "bob", "cy") and gen.null_class is None and gen.guide is not None
    meta = json.loads((out / "scoremix.json").read_text())
    assert meta["sampler"]["guidance"] == 1.5 and meta["imported_from"]["sha256"] == hashlib.sha256(
        snap.read_bytes()).hexdigest()
    card = (out / "README.md").read_text()
    assert hashlib.sha256(snap.read_bytes()).hexdigest() in card
    assert hashlib.sha256(source.encode()).hexdigest() in card
    assert "training.networks_edm2.Precond" in card and "CC BY-NC-SA 4.0" in card and "other terms" in card
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temporary folder left
    assert not marker.exists()  # the embedded source was hashed, never run


def test_import_training_state_rebuilds_the_config_from_shapes(tmp_path, capsys):
    path = tmp_path / "training-state-0001.pt"
    net = tiny_net(7)
    torch.save({"net": net.state_dict(), "state": {"cur_nimg": 10}}, path)
    out = tmp_path / "from-state"
    rc, _, stderr = run_cli(capsys, "import-generator", str(path), "--out", str(out), "--channels-per-head", "16")
    assert rc == 0, stderr
    gen = load_generator(str(out))
    x, sigma, y = torch.randn(2, 1, 16, 16), torch.tensor([0.3, 5.0]), torch.eye(3)[:2]
    assert torch.equal(gen.denoiser(x, sigma, y), net(x, sigma, y))


def _bad(tmp_path, capsys, *args):
    out = tmp_path / "never"
    rc, stdout, stderr = run_cli(capsys, "import-generator", *args, "--out", str(out))
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert rc == 2 and len(lines) == 1, stderr
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".never")]
    return lines[0]


class _Boom:
    def __reduce__(self):
        import os
        return (os.system, ("true",))


def test_import_bad_input_is_one_line_exit_2_nothing_written(tmp_path, capsys):
    good = _snapshot(tmp_path, "network-snapshot-good.pkl", tiny_net())
    evil = _snapshot(tmp_path, "network-snapshot-evil.pkl", tiny_net(), extra={"augment_pipe": _Boom()})
    line = _bad(tmp_path, capsys, str(evil))
    assert "refused global posix.system" in line and "SNAPSHOT" in line
    truncated = tmp_path / "network-snapshot-cut.pkl"
    truncated.write_bytes(good.read_bytes()[:4000])
    assert "truncated or corrupt" in _bad(tmp_path, capsys, str(truncated))
    other = tmp_path / "other.pkl"
    other.write_bytes(b"\x80\x04}\x94.")
    assert "no 'ema' network" in _bad(tmp_path, capsys, str(other))
    latent = _snapshot(tmp_path, "network-snapshot-latent.pkl", tiny_net(), encoder="StabilityVAEEncoder")
    line = _bad(tmp_path, capsys, str(latent))
    assert "latent-space" in line and "--vae" in line
    small = _snapshot(tmp_path, "g-res.pkl", tiny_net(img_resolution=8, attn_resolutions=[4]),
                      {**TINY, "img_resolution": 8, "attn_resolutions": [4]})
    line = _bad(tmp_path, capsys, str(good), "--guide", str(small))
    assert "resolution" in line and "--guide" in line
    rgb = _snapshot(tmp_path, "g-rgb.pkl", tiny_net(img_channels=3), {**TINY, "img_channels": 3})
    assert "channel count" in _bad(tmp_path, capsys, str(good), "--guide", str(rgb))
    labels = _snapshot(tmp_path, "g-lab.pkl", tiny_net(label_dim=4), {**TINY, "label_dim": 4})
    line = _bad(tmp_path, capsys, str(good), "--guide", str(labels))
    assert "label count" in line and "--guide" in line
    line = _bad(tmp_path, capsys, str(good), "--guide", str(evil))
    assert "refused global posix.system" in line and "--guide" in line
    assert "--class-names" in _bad(tmp_path, capsys, str(good), "--class-names", "a,b")
    used = tmp_path / "used"
    used.mkdir()
    (used / "mine.txt").write_text("x")
    rc, _, stderr = run_cli(capsys, "import-generator", str(good), "--out", str(used))
    assert rc == 2 and "--out" in stderr and sorted(p.name for p in used.iterdir()) == ["mine.txt"]


def _tiny_vae(path, latent_channels=1):
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    vae = AutoencoderKL(in_channels=1, out_channels=1, down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 8), layers_per_block=1,
                        latent_channels=latent_channels, norm_num_groups=4, sample_size=32).eval()
    vae.save_pretrained(path, safe_serialization=True)
    return vae


def test_import_latent_snapshot_with_its_vae(tmp_path, capsys):
    import numpy as np

    scale, bias = np.float32([0.25]), np.float32([-0.1])
    state = {"vae_name": "stabilityai/sd-vae-ft-mse", "scale": scale, "bias": bias}
    snap = _snapshot(tmp_path, "network-snapshot-latent.pkl", tiny_net(8), encoder="StabilityVAEEncoder",
                     encoder_state=state)
    vae = _tiny_vae(tmp_path / "vae")
    out = tmp_path / "latent-gen"
    rc, _, err = run_cli(capsys, "import-generator", str(snap), "--out", str(out), "--vae", str(tmp_path / "vae"))
    assert rc == 0, err
    meta = json.loads((out / "scoremix.json").read_text())
    assert meta["latent"]["scale"] == [0.25] and meta["latent"]["bias"] == pytest.approx([-0.1])
    assert meta["image_size"] == 32 and meta["channels"] == 1
    gen = load_generator(str(out))
    assert gen.sample_shape == (1, 16, 16) and gen.vae is not None
    z = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        want = vae.decode((z - float(bias[0])) / float(scale[0])).sample.clamp(-1, 1)
        assert torch.allclose(gen.decode(z), want, atol=1e-6) and gen.decode(z).shape == (2, 1, 32, 32)
    from scoremix_ds.sampling.batches import SamplingSettings, sample_batch

    images = sample_batch(gen, SamplingSettings(steps=2, guidance=1.0, scheduler="edm-heun"), [[0, 1]], [[0.5, 0.5]],
                          [3])
    assert images.shape == (1, 1, 32, 32) and torch.isfinite(images).all()
    # a latent snapshot's VAE with other latent channels, or a pixel snapshot given a VAE: one line, nothing written
    _tiny_vae(tmp_path / "vae4", latent_channels=4)
    line = _bad(tmp_path, capsys, str(snap), "--vae", str(tmp_path / "vae4"))
    assert "latent channels" in line and "--vae" in line
    pixel = _snapshot(tmp_path, "network-snapshot-pixel.pkl", tiny_net(8))
    assert "--vae" in _bad(tmp_path, capsys, str(pixel), "--vae", str(tmp_path / "vae"))
