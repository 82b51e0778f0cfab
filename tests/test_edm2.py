"""EDM2 foundations (issue 22): MP primitives against hand-computed values, the preconditioner's formulas, the Heun
sampler against a straightforward re-implementation on Gaussian data (whose ideal denoiser and ODE solution are
known in closed form), mixing/guidance linearity, and the code-free snapshot reader on EDM2-format pickles made
here in code (no NVlabs code involved)."""

from __future__ import annotations

import math
import pickle
import sys
import types

import numpy as np
import pytest
import torch

from scoremix_ds.core.errors import ConfigError, DataError, ModelError
from scoremix_ds.generators.edm2 import (
    EDM2Denoiser, heun_sample, karras_sigmas, mixed_denoiser, precond_coefficients, preset, read_edm2_snapshot)
from scoremix_ds.generators.edm2.shapes import infer_denoiser_kwargs
from scoremix_ds.generators.edm2.snapshot import _load_legacy_storage
from scoremix_ds.generators.edm2.unet import Block, MPConv, MPFourier, mp_cat, mp_silu, mp_sum, normalize, resample
from fixtures.edm2_pickles import EASY_DICT, TINY, _NewObj, _snapshot_bytes, _SnapshotPickler, tiny_net

# ---- MP primitives --------------------------------------------------------------------------------------------

def test_mp_sum_cat_silu_by_hand():
    a, b = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    assert torch.allclose(mp_sum(a, b, 0.3), torch.tensor([0.7, 0.3]) / math.sqrt(0.49 + 0.09))
    ca, cb = torch.ones(1, 2), torch.ones(1, 3)
    out = mp_cat(ca, cb, dim=1, t=0.5)  # C = sqrt(5 / 0.5); a scaled by C*0.5/sqrt(2), b by C*0.5/sqrt(3)
    want = [math.sqrt(10) * 0.5 / math.sqrt(2)] * 2 + [math.sqrt(10) * 0.5 / math.sqrt(3)] * 3
    assert torch.allclose(out, torch.tensor([want]))
    assert out.square().mean().item() == pytest.approx(1.0)  # unit-RMS parts stay unit RMS
    assert mp_silu(torch.tensor(1.0)).item() == pytest.approx((1 / (1 + math.exp(-1))) / 0.596)


def test_weight_normalisation_by_hand_and_forced_only_in_training():
    conv = MPConv(2, 2, [])
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[3.0, 4.0], [0.0, 0.5]]))
    # row norms 5 and 0.5, fan_in 2: w / (1e-4 + |w| / sqrt(2)), then * gain / sqrt(2)
    n0 = torch.tensor([3.0, 4.0]) / (1e-4 + 5 / math.sqrt(2))
    n1 = torch.tensor([0.0, 0.5]) / (1e-4 + 0.5 / math.sqrt(2))
    assert torch.allclose(normalize(conv.weight.detach()), torch.stack([n0, n1]))
    x = torch.tensor([[1.0, 2.0]])
    want = torch.stack([n0 @ x[0], n1 @ x[0]]) * (0.7 / math.sqrt(2))
    conv.eval()
    assert torch.allclose(conv(x, gain=0.7)[0], want, atol=1e-6)
    assert torch.equal(conv.weight.detach(), torch.tensor([[3.0, 4.0], [0.0, 0.5]]))  # eval: stored weight kept
    conv.train()
    conv(x)
    assert torch.allclose(conv.weight.detach(), torch.stack([n0, n1]))  # train: overwritten with normalised value
    assert conv.weight.requires_grad


def test_resample_is_average_pool_down_and_nearest_up():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    down = resample(x, "down")
    assert torch.equal(down, torch.tensor([[[[(0 + 1 + 4 + 5) / 4, (2 + 3 + 6 + 7) / 4],
                                             [(8 + 9 + 12 + 13) / 4, (10 + 11 + 14 + 15) / 4]]]]))
    up = resample(torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]]), "up")
    assert torch.equal(up, torch.tensor([[[[1.0, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]]]]))
    assert resample(x, "keep") is x


def test_magnitude_preserved_at_init():
    torch.manual_seed(0)
    conv, linear = MPConv(64, 64, [3, 3]).eval(), MPConv(256, 128, []).eval()
    y = conv(torch.randn(16, 64, 12, 12))[:, :, 1:-1, 1:-1]  # interior: no zero padding in the receptive field
    assert y.std().item() == pytest.approx(1.0, abs=0.05)
    assert linear(torch.randn(4096, 256)).std().item() == pytest.approx(1.0, abs=0.05)
    fourier = MPFourier(512)(torch.randn(64))
    assert fourier.square().mean().item() == pytest.approx(1.0, abs=0.1)
    assert sorted(n for n, _ in MPFourier(4).named_buffers()) == ["freqs", "phases"]


def test_attention_layout_and_qkv_pixel_norm_written_out():
    torch.manual_seed(0)
    blk = Block(4, 4, 3, flavor="dec", attention=True, channels_per_head=2).eval()  # 2 heads of 2 channels
    x = torch.randn(1, 4, 1, 3)
    qkv = blk.attn_qkv(x)[0].reshape(12, 3)  # (channel, pixel); channel = head*6 + c*3 + (0 q | 1 k | 2 v)
    heads = []
    for h in range(2):
        def part(s):
            m = torch.stack([qkv[h * 6 + c * 3 + s] for c in range(2)])
            return m / (1e-4 + m.norm(dim=0, keepdim=True) / math.sqrt(2))  # pixel norm over the head's channels
        q, k, v = part(0), part(1), part(2)
        weights = torch.softmax(q.T @ k / math.sqrt(2), dim=1)  # (query pixel, key pixel)
        heads.append(v @ weights.T)
    want = blk.attn_proj(torch.cat(heads).reshape(1, 4, 1, 3))
    assert torch.allclose(blk._attention(x), want, atol=1e-6)


def test_block_order_written_out():
    torch.manual_seed(0)
    emb, x = torch.randn(2, 8), torch.randn(2, 4, 4, 4)
    balance = lambda a, b: (0.7 * a + 0.3 * b) / math.sqrt(0.49 + 0.09)  # noqa: E731
    enc = Block(4, 6, 8, flavor="enc", resample_mode="down").eval()
    dec = Block(4, 6, 8, flavor="dec", resample_mode="up").eval()
    for blk in (enc, dec):
        with torch.no_grad():
            blk.emb_gain.fill_(0.5)
    main = enc.conv_skip(resample(x, "down"))  # encoder: resample, skip conv, pixel norm, then the residual
    main = main / (1e-4 + main.norm(dim=1, keepdim=True) / math.sqrt(6))
    res = enc.conv_res0(mp_silu(main)) * (enc.emb_linear(emb, gain=0.5) + 1)[:, :, None, None]
    assert torch.allclose(enc(x, emb), balance(main, enc.conv_res1(mp_silu(res))), atol=1e-5)
    up = resample(x, "up")  # decoder: the residual branch reads the unskipped input; skip conv after it
    res = dec.conv_res0(mp_silu(up)) * (dec.emb_linear(emb, gain=0.5) + 1)[:, :, None, None]
    assert torch.allclose(dec(x, emb), balance(dec.conv_skip(up), dec.conv_res1(mp_silu(res))), atol=1e-5)
    wide = Block(4, 4, 8, flavor="dec").eval()
    assert wide(1000 * x, emb).abs().max().item() == 256  # clip_act


def test_unet_layout_is_edm2s():
    unet = EDM2Denoiser(**{**TINY, "num_blocks": 2}).unet
    assert list(unet.enc) == ["16x16_conv", "16x16_block0", "16x16_block1", "8x8_down", "8x8_block0", "8x8_block1"]
    assert list(unet.dec) == ["8x8_in0", "8x8_in1", "8x8_block0", "8x8_block1", "8x8_block2", "16x16_up",
                              "16x16_block0", "16x16_block1", "16x16_block2"]
    assert unet.enc["16x16_conv"].weight.shape == (16, 2, 3, 3)  # image + the constant-ones channel
    assert unet.dec["8x8_block0"].conv_skip.weight.shape == (32, 64, 1, 1)  # mp_cat(main 32, skip 32)
    assert unet.dec["16x16_block0"].conv_res0.weight.shape == (16, 32 + 16, 3, 3)  # the 8x8_down skip went to 8x8
    assert unet.dec["16x16_block2"].conv_skip.weight.shape == (16, 16 + 16, 1, 1)
    assert [n for n, b in unet.dec.items() if b.num_heads] == ["8x8_in0", "8x8_block0", "8x8_block1", "8x8_block2"]
    assert [n for n, b in unet.enc.items() if getattr(b, "num_heads", 0)] == ["8x8_block0", "8x8_block1"]
    assert unet.emb_noise.weight.shape == (32, 16) and unet.emb_label.weight.shape == (32, 3)  # noise 16, emb max 32


# ---- preconditioning -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("sigma", [0.002, 0.5, 80.0])
def test_precond_coefficients_are_the_formulas(sigma):
    c_skip, c_out, c_in, c_noise = precond_coefficients(torch.tensor([sigma], dtype=torch.float64))
    sd = 0.5
    assert c_skip.item() == pytest.approx(sd * sd / (sigma * sigma + sd * sd), rel=1e-12)
    assert c_out.item() == pytest.approx(sigma * sd / math.sqrt(sigma * sigma + sd * sd), rel=1e-12)
    assert c_in.item() == pytest.approx(1 / math.sqrt(sd * sd + sigma * sigma), rel=1e-12)
    assert c_noise.item() == pytest.approx(math.log(sigma) / 4, rel=1e-12)
    if sigma == 0.5:  # written out: 0.25/0.5, 0.25/sqrt(0.5), 1/sqrt(0.5), ln(0.5)/4
        assert [v.item() for v in (c_skip, c_out, c_in, c_noise)] == pytest.approx(
            [0.5, 0.35355339059, 1.41421356237, -0.17328679514])


def test_denoiser_with_zero_out_gain_is_c_skip_x_and_logvar_head():
    net = EDM2Denoiser(**TINY).eval()  # out_gain starts at 0: F contributes nothing
    x = torch.randn(2, 1, 16, 16)
    d, logvar = net(x, torch.tensor([0.5, 2.0]), torch.eye(3)[:2], return_logvar=True)
    assert torch.allclose(d, x * torch.tensor([0.5, 0.25 / 4.25]).reshape(-1, 1, 1, 1))
    assert logvar.shape == (2, 1, 1, 1) and torch.isfinite(logvar).all()
    assert {"unet.emb_fourier.freqs", "unet.enc.16x16_conv.weight", "unet.enc.16x16_block0.conv_res0.weight",
            "unet.enc.8x8_down.emb_gain", "unet.enc.8x8_block0.conv_skip.weight", "unet.enc.8x8_block0.attn_qkv.weight",
            "unet.dec.8x8_in0.attn_proj.weight", "unet.dec.16x16_up.emb_linear.weight", "unet.out_conv.weight",
            "unet.out_gain", "unet.emb_label.weight", "logvar_fourier.phases", "logvar_linear.weight"} <= set(
                net.state_dict())


@pytest.mark.parametrize("channels, published_millions", [(128, 125), (192, 280), (256, 498), (320, 777)])
def test_parameter_counts_match_the_published_imagenet512_models(channels, published_millions):
    """EDM2 paper, Table 2: XS/S/M/L at ImageNet-512 (64x64x4 latents, 1000 classes) have 125M/280M/498M/777M."""
    with torch.device("meta"):
        net = EDM2Denoiser(img_resolution=64, img_channels=4, label_dim=1000, model_channels=channels)
    assert sum(p.numel() for p in net.parameters()) / 1e6 == pytest.approx(published_millions, abs=0.6)


def test_presets_and_save_pretrained_round_trip(tmp_path):
    assert preset("edm2-s").guide == "edm2-xs" and preset("edm2-s").attn_resolutions == (28, 14)
    assert preset("edm2-s").img_resolution == 112 and preset("edm2-xs").model_channels == 128
    with pytest.raises(ConfigError, match="unknown EDM2 preset"):
        preset("edm2-xl")
    net = EDM2Denoiser(**preset("edm2-cpu").denoiser_kwargs(label_dim=5)).eval()
    net.save_pretrained(tmp_path / "g")
    again = EDM2Denoiser.from_pretrained(tmp_path / "g").eval()
    assert (tmp_path / "g" / "diffusion_pytorch_model.safetensors").is_file()
    x, s, y = torch.randn(2, 1, 32, 32), torch.tensor([1.0, 3.0]), torch.eye(5)[:2]
    assert torch.equal(net(x, s, y), again(x, s, y))


# ---- sampler -----------------------------------------------------------------------------------------------------

def _reference_heun(denoise, noise, n, smin=0.002, smax=80.0, rho=7.0):
    """Karras et al. 2022 Algorithm 1 (S_churn = 0), written out with Python floats for the step sizes."""
    ts = [(smax ** (1 / rho) + i / (n - 1) * (smin ** (1 / rho) - smax ** (1 / rho))) ** rho for i in range(n)]
    ts.append(0.0)
    x = noise.double() * ts[0]
    for i in range(n):
        d = (x - denoise(x, ts[i])) / ts[i]
        x_new = x + (ts[i + 1] - ts[i]) * d
        if ts[i + 1] != 0:
            d2 = (x_new - denoise(x_new, ts[i + 1])) / ts[i + 1]
            x_new = x + (ts[i + 1] - ts[i]) * (d + d2) / 2
        x = x_new
    return x


def test_heun_matches_reference_and_gaussian_ode_solution():
    s = 0.5  # data N(0, s^2): D(x; sigma) = x s^2 / (s^2 + sigma^2); the ODE maps x(80) to x(80) s / sqrt(s^2 + 80^2)
    calls = []

    def gaussian(x, sigma):
        calls.append(float(sigma))
        return x * s * s / (s * s + float(sigma) ** 2)

    noise = torch.randn(3, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    sigmas = karras_sigmas(32)
    assert len(sigmas) == 33 and sigmas[0] == 80.0 and sigmas[-2].item() == pytest.approx(0.002) and sigmas[-1] == 0
    out = heun_sample(gaussian, noise, sigmas)
    assert len(calls) == 2 * 32 - 1
    assert torch.allclose(out, _reference_heun(gaussian, noise, 32), rtol=1e-12, atol=1e-14)
    exact = noise.double() * 80 * s / math.sqrt(s * s + 80 * 80)
    err32 = ((out - exact).abs() / exact.abs()).max().item()
    err64 = ((heun_sample(gaussian, noise, karras_sigmas(64)) - exact).abs() / exact.abs()).max().item()
    assert err32 < 0.02 and 3.5 < err32 / err64 < 4.5  # second order: twice the steps, a quarter of the error
    assert torch.equal(out, heun_sample(gaussian, noise, sigmas))  # deterministic
    with pytest.raises(ConfigError):
        karras_sigmas(1)


def _toy(scale):
    """A network linear in its label: D(x; sigma, y) = scale * x / (1 + sigma) + y . (1, 2, 3)."""
    def net(x, sigma, labels):
        net.calls.append(x.shape[0])
        shift = (labels @ torch.tensor([1.0, 2.0, 3.0])).reshape(-1, 1, 1, 1)
        return scale * x / (1 + sigma.reshape(-1, 1, 1, 1)) + shift
    net.calls = []
    return net


def test_mix_then_guide_equals_guide_then_mix_in_one_forward_per_network():
    main, guide = _toy(1.0), _toy(0.4)
    labels = torch.eye(3)[torch.tensor([[0, 1], [2, 0]])]  # (B=2, K=2, 3)
    weights = torch.tensor([0.3, 0.7])
    x, sigma = torch.randn(2, 1, 2, 2), torch.tensor(1.5)
    d = mixed_denoiser(main, labels, weights, guide=guide, guidance=1.7)(x, sigma)
    assert main.calls == [4] and guide.calls == [4]
    per_class = []
    for k in range(2):
        rows, sig = x, sigma.expand(2)
        dm, dg = main(rows, sig, labels[:, k]), guide(rows, sig, labels[:, k])
        per_class.append(dg + 1.7 * (dm - dg))
    assert torch.allclose(d, 0.3 * per_class[0] + 0.7 * per_class[1])
    plain = mixed_denoiser(main, labels[:, :1], torch.tensor([1.0]))(x, sigma)
    assert torch.allclose(plain, main(x, sigma.expand(2), labels[:, 0]))
    main.calls.clear()
    cfg = mixed_denoiser(main, labels, weights, guide=main, guidance=2.0, guide_labels=torch.zeros_like(labels))
    assert torch.isfinite(cfg(x, sigma)).all() and main.calls == [8]  # main and null rows in one forward


def test_heun_with_mixed_edm2_denoiser_is_finite():
    net = tiny_net()
    network = lambda x, s, y: net(x, s, y)  # noqa: E731
    labels = torch.stack([torch.eye(3)[[0, 1]], torch.eye(3)[[2, 2]]])
    out = heun_sample(mixed_denoiser(network, labels, torch.tensor([0.5, 0.5])), torch.randn(2, 1, 16, 16),
                      karras_sigmas(3))
    assert out.shape == (2, 1, 16, 16) and out.dtype == torch.float64 and torch.isfinite(out).all()


# ---- snapshot import: EDM2-format pickles made here, in code -------------------------------------------------

def test_snapshot_round_trips_tensors_and_loads_strictly(tmp_path):
    import hashlib

    net = tiny_net(seed=3)
    source = "# training/networks_edm2.py stand-in\nclass Precond: pass\n"
    path = tmp_path / "network-snapshot-0001000-0.100.pkl"
    path.write_bytes(_snapshot_bytes(net, source))
    snap = read_edm2_snapshot(path)
    assert snap.class_name == "training.networks_edm2.Precond" and snap.encoder == "pixel"
    assert snap.init_kwargs == TINY and snap.extra["dataset_kwargs"]["path"] == "faces.zip"
    assert snap.file_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert snap.source_sha256 == hashlib.sha256(source.encode()).hexdigest()
    want = net.state_dict()
    assert set(snap.state_dict) == set(want)
    for key, value in want.items():
        assert snap.state_dict[key].dtype == torch.float16 and torch.equal(snap.state_dict[key], value.half()), key
    rebuilt = EDM2Denoiser(**snap.init_kwargs).eval()
    rebuilt.load_state_dict(snap.state_dict, strict=True)
    source_net = tiny_net(seed=3)  # the source network with its fp16-rounded weights: the same D(x; sigma, y)
    source_net.load_state_dict({k: v.half().float() for k, v in source_net.state_dict().items()})
    x, sigma, y = torch.randn(2, 1, 16, 16), torch.tensor([0.3, 7.0]), torch.tensor([[0, 1.0, 0], [0.5, 0, 0.5]])
    out = rebuilt(x, sigma, y)
    assert torch.isfinite(out).all() and torch.equal(out, source_net(x, sigma, y))
    assert "torch_utils" not in sys.modules and "dnnlib" not in sys.modules and "dnnlib.util" not in sys.modules


def test_snapshot_source_is_never_executed(tmp_path):
    marker = tmp_path / "executed.txt"
    source = f"open({str(marker)!r}, 'w').write('the embedded source ran')\n"
    path = tmp_path / "network-snapshot.pkl"
    path.write_bytes(_snapshot_bytes(tiny_net(), source))
    snap = read_edm2_snapshot(path)
    assert not marker.exists() and snap.state_dict
    assert "torch_utils" not in sys.modules and "dnnlib" not in sys.modules


class _Boom:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        import os
        return (os.system, (self.command,))


def test_snapshot_refuses_other_globals_in_one_line(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "network-snapshot.pkl"
    path.write_bytes(_snapshot_bytes(tiny_net(), extra={"augment_pipe": _Boom(f"touch {marker}")}))
    with pytest.raises(DataError) as err:
        read_edm2_snapshot(path)
    message = str(err.value)
    assert "\n" not in message and "refused global posix.system" in message and not marker.exists()
    # the same inside the legacy storage bytes: a global where torch writes torch.HalfStorage
    legacy = b"".join(pickle.dumps(v, protocol=2) for v in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}))
    legacy += b"\x80\x02(X\x07\x00\x00\x00storagecbuiltins\neval\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x01Ntq\x00Q."
    with pytest.raises(DataError, match="refused global builtins.eval"):
        _load_legacy_storage(legacy)


def test_legacy_storage_bytes_parsed_without_torch_load():
    storage = torch.tensor([1.5, -2.0, 3.25], dtype=torch.float16).untyped_storage()
    typed = torch.storage.TypedStorage(wrap_storage=storage, dtype=torch.float16, _internal=True)
    data = typed.__reduce__()[1][0]  # torch's own legacy bytes for this storage
    assert torch.equal(_load_legacy_storage(data), torch.tensor([1.5, -2.0, 3.25], dtype=torch.float16))
    with pytest.raises(DataError, match="truncated"):
        _load_legacy_storage(data[:-3])


def test_bad_snapshots_are_one_line_errors(tmp_path):
    good = _snapshot_bytes(tiny_net())
    truncated = tmp_path / "network-snapshot-truncated.pkl"
    truncated.write_bytes(good[: len(good) // 2])
    with pytest.raises(DataError, match="truncated or corrupt"):
        read_edm2_snapshot(truncated)
    other = tmp_path / "other.pkl"
    other.write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    with pytest.raises(DataError, match="no 'ema' network"):
        read_edm2_snapshot(other)
    latent = tmp_path / "network-snapshot-latent.pkl"
    scale = np.float32(0.5) / np.float32([4.17, 4.62, 3.71, 3.28])  # a latent encoder holds numpy values
    state = {"vae_name": "stabilityai/sd-vae-ft-mse", "scale": scale, "bias": -scale, "gain": np.float32(2.0)}
    latent.write_bytes(_snapshot_bytes(tiny_net(), encoder="StabilityVAEEncoder", encoder_state=state))
    with pytest.raises(ModelError, match="latent-space") as err:
        read_edm2_snapshot(latent)
    assert err.value.field == "vae"
    snap = read_edm2_snapshot(latent, vae_available=True)
    record = snap.extra["encoder"]
    assert snap.encoder == "latent" and record["class_name"] == "training.encoders.StabilityVAEEncoder"
    assert np.array_equal(record["state"]["scale"], scale) and record["state"]["scale"].dtype == np.float32
    assert record["state"]["gain"] == np.float32(2.0) and record["state"]["vae_name"] == "stabilityai/sd-vae-ft-mse"
    objects = tmp_path / "network-snapshot-objects.pkl"
    objects.write_bytes(_snapshot_bytes(tiny_net(), encoder_state={"x": np.array([None, 1], dtype=object)}))
    with pytest.raises(DataError, match="refused numpy dtype 'O8'"):
        read_edm2_snapshot(objects)


@pytest.mark.parametrize("kwargs", [
    TINY, {**preset("edm2-cpu").denoiser_kwargs(label_dim=0), "channels_per_head": 64},
    {**TINY, "channel_mult_noise": 2, "channel_mult_emb": 3, "num_blocks": 2}])
def test_denoiser_kwargs_recovered_from_shapes(kwargs):
    net = EDM2Denoiser(**kwargs)
    inferred = infer_denoiser_kwargs(net.state_dict(), channels_per_head=kwargs["channels_per_head"])
    rebuilt = EDM2Denoiser(**inferred)
    rebuilt.load_state_dict(net.state_dict(), strict=True)
    public = lambda cfg: {k: v for k, v in cfg.items() if not k.startswith("_")}  # noqa: E731
    assert public(rebuilt.config) == public(net.config)
    assert infer_denoiser_kwargs(net.unet.state_dict(), 16)["model_channels"] == kwargs["model_channels"]
    if kwargs["model_channels"] < 64:
        with pytest.raises(DataError, match="channels_per_head"):
            infer_denoiser_kwargs(net.state_dict(), channels_per_head=128)


def test_training_state_loads_weights_only_with_easydict_as_dict(tmp_path):
    net = tiny_net()
    data = {"state": _NewObj(EASY_DICT, items={"cur_nimg": 1000}), "net": net.state_dict(),
            "optimizer": {"state": {}, "param_groups": []}}
    path = tmp_path / "training-state-0000001.pt"
    writer = types.ModuleType("edm2_test_pickle")
    writer.Pickler = _SnapshotPickler
    torch.save(data, path, pickle_module=writer)
    snap = read_edm2_snapshot(path)
    assert snap.init_kwargs is None and snap.extra["state"] == {"cur_nimg": 1000}
    EDM2Denoiser(**TINY).load_state_dict(snap.state_dict, strict=True)
    bad = tmp_path / "training-state-bad.pt"
    torch.save({"net": net.state_dict(), "x": _Boom("true")}, bad)
    with pytest.raises(DataError, match="refused global posix.system") as err:
        read_edm2_snapshot(bad)
    assert "\n" not in str(err.value)
