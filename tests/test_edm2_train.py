"""`train-generator --architecture edm2-*` (issue 22): EDM2's loss, learning rate and power-function EMA on the shared
loop, the guide trained alongside, a folder every command reads, exact resume, and `build` with edm-heun and
autoguidance on the trained folder. Everything is tiny: edm2-cpu at 8x8 on the 4-class tiny real data, 1 thread."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import NUM_CLASSES, write_tiny_discriminator, write_tiny_real_data
from fixtures.cli import run_two_processes
from scoremix_ds.core.errors import ConfigError
from scoremix_ds.generators.architectures import ARCHITECTURES
from scoremix_ds.generators.edm2 import EDM2Denoiser
from scoremix_ds.generators.loading import load_generator
from scoremix_ds.training import checkpoints as ck
from scoremix_ds.training.edm2 import EDM2Batches
from scoremix_ds.training.edm2_loss import edm2_loss, onehot_labels
from scoremix_ds.training.generator import train_generator
from scoremix_ds.training.generator_steps import process_share
from scoremix_ds.training.generator_config import GeneratorTrainConfig
from scoremix_ds.training.loop import PowerEMA, inverse_sqrt_factors, power_ema_gamma

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def real(tmp_path_factory) -> Path:
    return write_tiny_real_data(tmp_path_factory.mktemp("real") / "tiny-real")


def tiny(real: Path, out: Path, **overrides) -> GeneratorTrainConfig:
    values = dict(out=str(out), real_data=str(real), architecture="edm2-cpu", image_size=8, channels=1, steps=4,
                  batch_size=4, warmup_steps=2, learning_rate=1e-2, guide_steps=2, checkpoint_every=2, device="cpu")
    values.update(overrides)
    return GeneratorTrainConfig(**values)


def tiny_net(seed: int) -> EDM2Denoiser:
    arch = ARCHITECTURES["edm2-cpu"]
    torch.manual_seed(seed)
    net = arch.build(8, 1, NUM_CLASSES, arch.resolve("edm2-cpu", {}))
    with torch.no_grad():
        for p in net.parameters():
            if p.ndim == 0:
                p.fill_(0.5)  # a fresh out_gain is 0: make F reach the output
        net.logvar_linear.weight.normal_()  # and a non-zero uncertainty
    return net


# ------------------------------------------------------------------------------------------- pure pieces


def test_power_ema_gamma_solves_the_relative_std_equation():
    for sigma_rel in (0.05, 0.10, 0.2):
        g = power_ema_gamma(sigma_rel)
        assert math.isclose(math.sqrt((g + 1) / ((g + 2) ** 2 * (g + 3))), sigma_rel, rel_tol=1e-12)
    assert abs(power_ema_gamma(0.10) - 6.94) < 0.01 and abs(power_ema_gamma(0.05) - 16.97) < 0.01  # EDM2's values
    with pytest.raises(ConfigError, match="ema_sigma_rel"):
        power_ema_gamma(0.3)


def test_power_ema_follows_beta_t():
    p = torch.nn.Parameter(torch.zeros(3))
    ema = PowerEMA([p], sigma_rel=0.10)
    g = power_ema_gamma(0.10)
    expected = None
    for t, value in enumerate([1.0, 2.0, 5.0, -1.0], start=1):
        with torch.no_grad():
            p.fill_(value)
        ema.step([p])
        beta = (1 - 1 / t) ** (g + 1)
        expected = value if expected is None else beta * expected + (1 - beta) * value
        assert torch.allclose(ema.shadow_params[0], torch.full((3,), expected), rtol=1e-6, atol=1e-6)


def test_inverse_sqrt_learning_rate_hand_values():
    f = inverse_sqrt_factors(t_ref=4, warmup=2)
    assert [f(s) for s in range(6)] == [0.5, 1.0, 1.0, 1.0, 1.0, 1 / math.sqrt(5 / 4)]
    assert inverse_sqrt_factors(t_ref=10)(40) == 0.5  # 1 / sqrt(40 / 10)


def test_loss_on_a_fixed_batch_is_the_edm2_formula_written_out():
    net = tiny_net(0).train()
    g = torch.Generator().manual_seed(1)
    x = torch.rand(3, 1, 8, 8, generator=g) * 2 - 1
    noise = torch.randn(3, 1, 8, 8, generator=g)
    sigma = torch.tensor([0.05, 0.7, 12.0])
    labels = onehot_labels(torch.tensor([0, 3, NUM_CLASSES]), NUM_CLASSES)
    assert labels.tolist()[2] == [0.0] * NUM_CLASSES and labels.tolist()[1] == [0.0, 0.0, 0.0, 1.0]
    got = edm2_loss(net, x, sigma, noise, labels)
    got.backward()  # the uncertainty head learns
    assert net.logvar_linear.weight.grad is not None and net.logvar_linear.weight.grad.abs().sum() > 0
    # By hand: D and logvar from the network (its weights were normalised by the train-mode forward), the rest here
    net.eval()
    with torch.no_grad():
        denoised, logvar = net(x + sigma.reshape(-1, 1, 1, 1) * noise, sigma, labels, return_logvar=True)
    total = 0.0
    for i in range(3):
        s = float(sigma[i])
        weight = (s * s + 0.25) / (s * 0.5) ** 2
        lv = float(logvar[i])
        sq = ((denoised[i] - x[i]) ** 2).double()
        total += float((weight / math.exp(lv) * sq + lv).mean())
    assert math.isclose(float(got.detach()), total / 3, rel_tol=1e-5)


def test_forced_weight_normalisation_in_train_mode_only():
    net = tiny_net(0)
    conv = net.unet.out_conv
    w = conv.weight.detach().clone()
    net.eval()(torch.zeros(1, 1, 8, 8), 1.0)
    assert torch.equal(conv.weight, w)
    net.train()(torch.zeros(1, 1, 8, 8), 1.0)
    norms = conv.weight.detach().flatten(1).norm(dim=1) / math.sqrt(conv.weight[0].numel())
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-3)


def test_batches_draw_log_normal_sigmas_per_sample(real, tmp_path):
    from scoremix_ds.sources.openers import open_source
    from scoremix_ds.sources.source import SourceSpec

    source = open_source(SourceSpec(str(real), None, mode="L"))
    config = tiny(real, tmp_path / "x", batch_size=8)
    whole = EDM2Batches(source, config, process_share(8, 0, 1))[3]
    halves = [EDM2Batches(source, config, process_share(8, r, 2))[3] for r in range(2)]
    for key in whole:
        assert torch.equal(whole[key], torch.cat([h[key] for h in halves]))  # independent of the split
    assert whole["sigma"].shape == (8,) and bool((whole["sigma"] > 0).all())
    moved = EDM2Batches(source, tiny(real, tmp_path / "y", batch_size=8, p_mean=0.2), process_share(8, 0, 1))[3]
    assert torch.allclose(moved["sigma"], whole["sigma"] * math.exp(1.0), rtol=1e-5)  # ln sigma shifted by 1.0


def test_configs_refused_and_fingerprints_kept(real, tmp_path):
    with pytest.raises(ConfigError, match="EDM2 architectures only"):
        GeneratorTrainConfig(out="x", guide_steps=3)
    with pytest.raises(ConfigError, match="snr_gamma"):
        tiny(real, tmp_path, snr_gamma=5.0)
    with pytest.raises(ConfigError, match="guide_architecture"):
        tiny(real, tmp_path, guide_architecture="unet-small")
    with pytest.raises(ConfigError, match="image_size"):
        tiny(real, tmp_path, image_size=6)
    base = GeneratorTrainConfig(out="x")
    assert "p_mean" not in base.fingerprint_payload()  # added fields at their default leave old fingerprints alone
    assert tiny(real, tmp_path).fingerprint() != tiny(real, tmp_path, p_std=1.2).fingerprint()
    assert tiny(real, tmp_path).guide_name() == "edm2-cpu-guide"
    assert tiny(real, tmp_path, guide_steps=None, steps=16).guide_step_count() == 2
    assert tiny(real, tmp_path, guide_steps=0).guide_name() is None
    with pytest.raises(ConfigError, match="guide_source"):
        tiny(real, tmp_path, guide_source="older")
    with pytest.raises(ConfigError, match="guide_architecture"):
        tiny(real, tmp_path, guide_source="early-ema", guide_architecture="edm2-cpu-guide")
    assert "guide_source" not in tiny(real, tmp_path).fingerprint_payload()  # the default keeps every fingerprint
    early = tiny(real, tmp_path, guide_source="early-ema")
    assert early.fingerprint() != tiny(real, tmp_path).fingerprint() and early.guide_name() == "edm2-cpu"
    assert not early.trains_guide() and early.guide_step_count() == 2


# ------------------------------------------------------------------------------------------- training


@pytest.fixture(scope="module")
def uninterrupted(real, tmp_path_factory) -> Path:
    threads = torch.get_num_threads()  # module fixtures are set up before the per-test thread fixture
    torch.set_num_threads(1)
    try:
        return train_generator(tiny(real, tmp_path_factory.mktemp("runs") / "whole"), progress=False)
    finally:
        torch.set_num_threads(threads)


def weights(out: Path, folder: str) -> dict[str, torch.Tensor]:
    return load_file(str(next((out / folder).glob("*.safetensors"))))


def test_training_writes_a_folder_load_generator_reads(uninterrupted):
    gen = load_generator(str(uninterrupted))
    assert gen.kind == "edm2" and gen.num_classes == NUM_CLASSES and gen.null_class == NUM_CLASSES
    assert gen.sample_shape == (1, 8, 8) and gen.class_names == ("a", "b", "c", "d") and gen.guide is not None
    meta = json.loads((uninterrupted / "scoremix.json").read_text())
    assert meta["architecture"] == "edm2-cpu" and meta["guide_architecture"] == "edm2-cpu-guide"
    assert meta["sampler"]["scheduler"] == "edm-heun" and len(meta["loss"]["first"]) == 4
    assert meta["trained_with"]["fingerprint"] == tiny(Path(meta["trained_with"]["config"]["real_data"]),
                                                       uninterrupted).fingerprint()
    assert not (uninterrupted / "checkpoints").exists()
    guide = json.loads((uninterrupted / "edm2_guide" / "config.json").read_text())
    assert guide["model_channels"] == 16 and guide["img_resolution"] == 8  # the edm2-cpu-guide preset at 8x8


def test_stop_then_resume_equals_an_uninterrupted_run(real, uninterrupted, tmp_path):
    out = tmp_path / "resumed"
    train_generator(tiny(real, out, stop_after=3, checkpoint_every=3), progress=False)  # the guide stopped at 2
    assert [c.step for c in ck.list_checkpoints(out / "checkpoints")] == [3] and not (out / "edm2").exists()
    torch.manual_seed(12345)  # the trainer must not read the global RNG
    train_generator(tiny(real, out), progress=False)
    for folder in ("edm2", "edm2_guide"):
        a, b = weights(uninterrupted, folder), weights(out, folder)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), folder
    assert json.loads((out / "scoremix.json").read_text())["loss"] == \
        json.loads((uninterrupted / "scoremix.json").read_text())["loss"]


def test_early_ema_guide_is_the_main_runs_ema_at_guide_steps(real, uninterrupted, tmp_path):
    out = tmp_path / "early"
    config = tiny(real, out, guide_source="early-ema", keep_checkpoints=5)
    train_generator(tiny(real, out, guide_source="early-ema", keep_checkpoints=5, stop_after=3), progress=False)
    at_guide_steps = ck.list_checkpoints(out / "checkpoints")[0]
    assert at_guide_steps.step == 2
    kept = at_guide_steps.tensors("ema")  # the main network's EMA after step 2 (= guide_steps)
    train_generator(config, progress=False)  # resumed from step 3: the kept EMA comes from the checkpoint
    guide, main = weights(out, "edm2_guide"), weights(out, "edm2")
    assert guide.keys() == main.keys() and set(kept) < set(guide)
    for name, value in guide.items():  # parameters: the EMA at step 2; buffers: the main network's
        assert torch.equal(value, kept[name] if name in kept else main[name]), name
    assert not torch.equal(guide["unet.out_conv.weight"], main["unet.out_conv.weight"])
    # the main network trains exactly as beside a smaller guide (nothing couples them without clipping)
    other = weights(uninterrupted, "edm2")
    assert all(torch.equal(main[k], other[k]) for k in main)
    meta = json.loads((out / "scoremix.json").read_text())
    assert meta["guide_source"] == "early-ema" and meta["guide_architecture"] == "edm2-cpu"
    assert load_generator(str(out)).guide is not None


def test_without_guide_or_dropout(real, tmp_path):
    out = train_generator(tiny(real, tmp_path / "plain", guide_steps=0, label_dropout=0.0, steps=2), progress=False)
    gen = load_generator(str(out))
    assert gen.guide is None and gen.null_class is None and not (out / "edm2_guide").exists()


def test_cli_trains_an_edm2_folder(real, tmp_path, capsys):
    from fixtures.cli import run_cli

    out = tmp_path / "cli"
    rc, _, err = run_cli(capsys, "train-generator", "--architecture", "edm2-cpu", "--real-data", str(real),
                         "--image-size", "8", "--channels", "1", "--steps", "2", "--batch-size", "2",
                         "--guide-steps", "1", "--device", "cpu", "--out", str(out), "--no-progress")
    assert rc == 0, err
    assert load_generator(str(out)).guide is not None
    early = tmp_path / "cli-early"
    rc, _, err = run_cli(capsys, "train-generator", "--architecture", "edm2-cpu", "--real-data", str(real),
                         "--image-size", "8", "--channels", "1", "--steps", "2", "--batch-size", "2",
                         "--guide-steps", "1", "--guide-source", "early-ema", "--device", "cpu", "--out", str(early),
                         "--no-progress")
    assert rc == 0, err
    recorded = json.loads((early / "scoremix.json").read_text())
    assert "early-ema" in json.dumps(recorded) and load_generator(str(early)).guide is not None
    rc, _, err = run_cli(capsys, "train-generator", "--architecture", "edm2-cpu", "--real-data", str(real),
                         "--guide-source", "older", "--out", str(tmp_path / "bad"), "--no-progress")
    assert rc == 2 and "--guide-source" in err and not (tmp_path / "bad").exists(), err


def test_build_with_edm_heun_and_autoguidance_on_the_trained_folder(uninterrupted, tmp_path):
    import datasets
    import numpy as np

    from scoremix_ds.synthesis.config import BuildConfig
    from scoremix_ds.synthesis.resolve import with_generator_sampler
    from scoremix_ds.synthesis.runner import run_build

    disc = write_tiny_discriminator(tmp_path / "disc")
    real = write_tiny_real_data(tmp_path / "real")

    def build(name: str, batch_size: int):
        config = with_generator_sampler(BuildConfig(
            generator=str(uninterrupted), discriminator=str(disc), real_data=str(real), strategy="distant", pairs=3,
            per_identity=2, out=str(tmp_path / name), batch_size=batch_size, steps=3, guidance=1.5, repro=False))
        assert config.scheduler == "edm-heun" and config.weak_generator == str(uninterrupted / "edm2_guide")
        return run_build(config, progress=False)

    def rows(path: Path) -> list[dict]:
        ds = datasets.load_dataset(str(path), "mix", split="train")
        return [{k: (np.asarray(v).tobytes() if k == "image" else v) for k, v in row.items()} for row in ds]

    first = build("a", 4)
    assert first.rows == {"mix": 6}
    manifest = json.loads((first.out / "manifest.json").read_text())
    assert manifest["config"]["scheduler"] == "edm-heun" and manifest["config"]["guidance"] == 1.5
    assert rows(first.out) == rows(build("b", 4).out) == rows(build("c", 2).out)  # deterministic, any batch size


@pytest.mark.slow
def test_two_processes_under_accelerate_launch(real, uninterrupted, tmp_path):
    """A real 2-process gloo group on CPU: the guide stops receiving gradients after guide_steps (DDP is told), and
    each step's global loss is the one-process one up to float summation order."""

    values = {"real_data": str(real), "architecture": "edm2-cpu", "image_size": 8, "channels": 1, "steps": 4,
              "batch_size": 4, "warmup_steps": 2, "learning_rate": 1e-2, "guide_steps": 2, "checkpoint_every": 2,
              "device": "cpu"}
    recipe = tmp_path / "tiny.toml"
    recipe.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items()))
    out = tmp_path / "two"
    proc = run_two_processes("train-generator", "--recipe", str(recipe), "--out", str(out), "--no-progress")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert load_generator(str(out)).guide is not None
    two = json.loads((out / "scoremix.json").read_text())["loss"]["first"]
    one = json.loads((uninterrupted / "scoremix.json").read_text())["loss"]["first"]
    assert two == pytest.approx(one, rel=1e-4)
