"""The generator trainer at scale, in miniature: architectures by name, split-independent batches, atomic
checkpoints, bit-exact resume, a real 2-process gloo run, and folders that ``load_generator`` reads.

Everything trains a tiny model for a few steps on 200 real MNIST digits (``mnist-5k-heldout[0-3]``, 4 classes)."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from fixtures.cli import run_two_processes
from scoremix_ds.sources.source import SourceSpec
from scoremix_ds.sources.openers import open_source
from scoremix_ds.core.errors import ConfigError, DataError
from scoremix_ds.generators.loading import load_generator
from scoremix_ds.core.recipes import config_from
from scoremix_ds.core.resources import default_model_dir
from scoremix_ds.training import checkpoints as ck
from scoremix_ds.training.generator import (LR_FLOOR, StepBatches, _loss, noise_schedule, process_share, snr_weights,
                                            train_generator)
from scoremix_ds.training.loop import lr_factors
from scoremix_ds.generators.architectures import ARCHITECTURES, count_parameters
from scoremix_ds.training.generator_config import GeneratorTrainConfig

pytestmark = pytest.mark.usefixtures("one_thread")  # bit-exact comparisons, and fair on a shared machine

ROOT = Path(__file__).resolve().parents[1]
DATA = "mnist-5k-heldout[0-3]"
TINY = {"real_data": DATA, "image_size": 16, "block_out_channels": (8, 16), "norm_num_groups": 4, "steps": 6,
        "batch_size": 4, "warmup_steps": 2, "learning_rate": 1e-2}


def lr_factor(step: int, warmup: int, total: int, schedule: str = "cosine", floor: float = 0.0) -> float:
    return lr_factors(schedule, warmup, total, floor)(step)


def weights(out: Path, folder: str = "unet") -> dict[str, torch.Tensor]:
    return load_file(str(out / folder / "diffusion_pytorch_model.safetensors"))


def meta(out: Path) -> dict:
    return json.loads((out / "scoremix.json").read_text())


def meta_build(name: str, image_size: int, channels: int, num_classes: int, **overrides):
    """An architecture built on the meta device: shapes and parameter counts without memory or init time."""
    arch = ARCHITECTURES[name]
    with torch.device("meta"):
        return arch.build(image_size, channels, num_classes, arch.resolve(name, overrides))


# ------------------------------------------------------------------------------------------- architectures


def test_default_recipe_validates_and_builds_the_shipped_model():
    config = config_from(GeneratorTrainConfig, "default-generator", {})
    assert config.architecture == "unet-small" and config.steps == 3000
    shipped = json.loads((default_model_dir("generator") / "unet" / "config.json").read_text())
    model = meta_build("unet-small", config.image_size, config.channels, 10, **{
        k: getattr(config, k) for k in ("block_out_channels", "layers_per_block", "norm_num_groups")})
    built = json.loads(json.dumps(dict(model.config)))  # tuples -> lists, as in the file
    assert {k: v for k, v in built.items() if not k.startswith("_")} == {
        k: v for k, v in shipped.items() if not k.startswith("_")}
    tensors = load_file(str(default_model_dir("generator") / "unet" / "diffusion_pytorch_model.safetensors"))
    assert count_parameters(model) == sum(t.numel() for t in tensors.values()) == 637_169
    # None fields take the preset: the recipe's explicit values and the bare defaults are the same config, but for
    # the min-SNR weighting the recipe turns on (the bare default keeps plain MSE, so older recipes keep their weights)
    assert config.snr_gamma == 5.0
    assert GeneratorTrainConfig(snr_gamma=5.0).fingerprint() == config.fingerprint()


def test_parameter_counts_of_the_face_architectures():
    """The numbers documented in generator_arch's table, at 3x112x112 with WebFace160K's ~10,000 classes."""
    assert count_parameters(meta_build("unet-face", 112, 3, 10_000)) == 81_815_555
    assert count_parameters(meta_build("dit-face", 112, 3, 10_000)) == 230_642_112
    def per_class(name: str) -> int:
        return count_parameters(meta_build(name, 112, 3, 2)) - count_parameters(meta_build(name, 112, 3, 1))

    assert per_class("unet-face") == 512 and per_class("dit-face") == 12 * 768  # one class table per DiT block
    assert count_parameters(meta_build("unet-face", 112, 3, 10_000)) - 512 * 10_001 == 76_695_043
    assert count_parameters(meta_build("dit-face", 112, 3, 10_000)) - 9_216 * 10_001 == 138_472_896
    dit = meta_build("dit-face", 112, 3, 10)
    assert dit.config.patch_size == 8 and dit.config.num_layers == 12 and dit.inner_dim == 768


@pytest.mark.parametrize("overrides, words", [
    ({"architecture": "unet-small", "patch_size": 4}, "does not apply"),
    ({"architecture": "unet-face", "image_size": 100}, "not divisible by 2^4"),
    ({"architecture": "dit-small", "image_size": 30}, "not divisible by patch_size"),
    ({"architecture": "unet-small", "block_out_channels": (8, 12), "norm_num_groups": 8}, "multiple of"),
    ({"architecture": "unet-big"}, "unknown architecture"),
    ({"mixed_precision": "fp8"}, "mixed_precision"),
    ({"batch_size": 6, "gradient_accumulation_steps": 4}, "multiple of gradient_accumulation_steps"),
    ({"snr_gamma": 0.0}, "snr_gamma"),
    ({"snr_gamma": float("nan")}, "snr_gamma"),
])
def test_bad_configs_are_refused_in_one_line(overrides, words):
    with pytest.raises(ConfigError) as err:
        GeneratorTrainConfig(**overrides)
    assert words in str(err.value) and "\n" not in str(err.value)


# ------------------------------------------------------------------------------------------- pure pieces


def test_lr_schedule_hand_values():
    assert lr_factor(0, 2, 6, "cosine", LR_FLOOR) == 0.5 and lr_factor(1, 2, 6, "cosine", LR_FLOOR) == 1.0
    assert lr_factor(2, 2, 6, "cosine", LR_FLOOR) == 1.0
    assert lr_factor(4, 2, 6, "cosine", LR_FLOOR) == pytest.approx(0.05 + 0.95 * 0.5)  # half-way through the cosine
    assert lr_factor(5, 2, 6, "cosine", LR_FLOOR) == pytest.approx(0.05 + 0.475 * (1 - math.sqrt(0.5)))  # cos(3 pi / 4)


def test_min_snr_weights_hand_values():
    """min(SNR, gamma) / SNR (epsilon), / (SNR + 1) (v), min(SNR, gamma) (sample), SNR = abar / (1 - abar)."""
    schedule = noise_schedule(GeneratorTrainConfig())
    t = torch.tensor([0, 100, 500, 900, 999])
    abar = schedule.alphas_cumprod[t].double()
    snr = abar / (1 - abar)
    assert snr[0] > 5 > snr[-2]  # the cosine schedule spans the clip at gamma = 5
    clipped = torch.minimum(snr, torch.tensor(5.0, dtype=torch.float64))
    assert torch.allclose(snr_weights(schedule, t, "epsilon", 5.0).double(), clipped / snr, rtol=1e-6)
    assert torch.allclose(snr_weights(schedule, t, "v_prediction", 5.0).double(), clipped / (snr + 1), rtol=1e-6)
    assert torch.allclose(snr_weights(schedule, t, "sample", 5.0).double(), clipped, rtol=1e-6)
    eps = snr_weights(schedule, t, "epsilon", 5.0)
    assert eps[-1] == 1.0 and eps[0] < 0.01  # noisy steps keep weight 1, nearly clean ones are down-weighted


def test_min_snr_loss_equals_plain_mse_when_gamma_exceeds_every_snr():
    torch.manual_seed(0)
    arch = ARCHITECTURES["unet-small"]
    model = arch.build(32, 1, 3, arch.resolve("unet-small", {"block_out_channels": (8, 16, 16), "norm_num_groups": 4}))
    schedule = noise_schedule(GeneratorTrainConfig())
    batch = {"x0": torch.rand(4, 1, 32, 32) * 2 - 1, "noise": torch.randn(4, 1, 32, 32),
             "timesteps": torch.tensor([0, 10, 400, 999]), "labels": torch.tensor([0, 1, 2, 3])}
    with torch.no_grad():
        plain = _loss(model, "unet", schedule, "epsilon", batch)
        every_t = torch.arange(1000)
        huge = _loss(model, "unet", schedule, "epsilon", batch, snr_weights(schedule, every_t, "epsilon", 1e12))
        weighted = _loss(model, "unet", schedule, "epsilon", batch, snr_weights(schedule, every_t, "epsilon", 5.0))
    assert torch.allclose(plain, huge, rtol=1e-5)
    assert weighted < plain  # the nearly clean sample at t = 0 is down-weighted


def test_added_fields_at_their_legacy_value_keep_old_fingerprints():
    """The fingerprint of the default config, frozen before snr_gamma existed: cached generators stay valid."""
    assert GeneratorTrainConfig().fingerprint() == "f951e09f286849e0"
    assert GeneratorTrainConfig(snr_gamma=5.0).fingerprint() != "f951e09f286849e0"


@pytest.fixture(scope="module")
def source():
    return open_source(SourceSpec(DATA, mode="L"))


def test_global_batch_is_the_same_for_any_number_of_processes(source):
    config = GeneratorTrainConfig(real_data=DATA, image_size=16, batch_size=8, label_dropout=0.5)
    whole = StepBatches(source, config, process_share(8, 0, 1))[3]
    for world in (2, 4):
        parts = [StepBatches(source, config, process_share(8, r, world))[3] for r in range(world)]
        for key in whole:
            assert torch.equal(torch.cat([p[key] for p in parts]), whole[key]), (world, key)
    assert whole["x0"].shape == (8, 1, 16, 16) and whole["x0"].min() >= -1 and whole["x0"].max() <= 1
    assert set(whole["labels"].tolist()) <= {0, 1, 2, 3, 4}  # 4 = the null class
    assert not torch.equal(StepBatches(source, config, range(8))[4]["noise"], whole["noise"])  # a new step, new draws


def test_flip_and_dropout_settings_do_not_move_the_other_draws(source):
    base = GeneratorTrainConfig(real_data=DATA, image_size=16, label_dropout=0.0)
    flipped = GeneratorTrainConfig(real_data=DATA, image_size=16, label_dropout=0.0, flip=True)
    dropped = GeneratorTrainConfig(real_data=DATA, image_size=16, label_dropout=0.999)
    a, b, c = (StepBatches(source, cfg, range(16))[0] for cfg in (base, flipped, dropped))
    assert torch.equal(a["noise"], b["noise"]) and torch.equal(a["timesteps"], c["timesteps"])
    assert torch.equal(a["labels"], b["labels"]) and (c["labels"] == 4).all() and (a["labels"] < 4).all()
    same = [torch.equal(a["x0"][i], b["x0"][i]) for i in range(16)]
    mirrored = [torch.equal(a["x0"][i].flip(-1), b["x0"][i]) for i in range(16)]
    assert all(s or m for s, m in zip(same, mirrored)) and not all(same)


# ------------------------------------------------------------------------------------------- checkpoints


def test_checkpoints_are_atomic_pruned_and_never_unpickle_code(tmp_path):
    root = tmp_path / "checkpoints"
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.ones(3))])
    opt.param_groups[0]["params"][0].grad = torch.ones(3)
    opt.step()
    for step in (1, 2, 3):
        ck.write_checkpoint(root, step, {"fingerprint": "f"}, tensors={"model": {"w": torch.full((2,), float(step))}},
                            objects={"optimizer": opt.state_dict()}, keep=2)
    assert [c.step for c in ck.list_checkpoints(root)] == [2, 3]
    (root / ".tmp-step-00000004-999").mkdir()  # a writer killed before its rename
    (root / ".tmp-step-00000004-999" / "state.json").write_text("{}")
    latest = ck.latest_checkpoint(root)
    assert latest.step == 3 and latest.state()["step"] == 3
    assert torch.equal(latest.tensors("model")["w"], torch.full((2,), 3.0))
    restored = torch.optim.AdamW([torch.nn.Parameter(torch.ones(3))])
    restored.load_state_dict(latest.objects("optimizer"))
    assert torch.equal(restored.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    assert ck.remove_partial(root) == 1 and not any(p.name.startswith(".tmp") for p in root.iterdir())
    torch.save({"payload": Path("/etc")}, latest.path / "evil.pt")  # an arbitrary class: needs unpickling code
    with pytest.raises(Exception, match="weights_only|Unsupported global"):
        latest.objects("evil")


# ------------------------------------------------------------------------------------------- training runs


def train_on_one_thread(config: GeneratorTrainConfig) -> Path:
    """For module fixtures, which are set up before the per-test thread fixture."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return train_generator(config, progress=False)
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "uninterrupted"
    return train_on_one_thread(GeneratorTrainConfig(out=str(out), checkpoint_every=3, **TINY))


@pytest.fixture(scope="module")
def stopped(tmp_path_factory) -> Path:
    """The same config, stopped after step 3 of 6 (as a time-limited job or a crash after the checkpoint)."""
    out = tmp_path_factory.mktemp("runs") / "stopped"
    return train_on_one_thread(GeneratorTrainConfig(out=str(out), checkpoint_every=3, stop_after=3, **TINY))


def test_stop_then_resume_equals_an_uninterrupted_run(uninterrupted, stopped, tmp_path):
    out = tmp_path / "resumed"
    shutil.copytree(stopped, out)
    assert [c.step for c in ck.list_checkpoints(out / "checkpoints")] == [3] and not (out / "unet").exists()
    torch.manual_seed(12345)  # the trainer must not read the global RNG: another state here changes nothing
    train_generator(GeneratorTrainConfig(out=str(out), checkpoint_every=3, **TINY), progress=False)
    a, b = weights(uninterrupted), weights(out)
    assert a.keys() == b.keys()
    # Same CPU, one thread, same ops in the same order: the EMA weights (which depend on every raw step) are EQUAL.
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert meta(out)["loss"]["first"] == meta(uninterrupted)["loss"]["first"] and len(meta(out)["loss"]["first"]) == 6
    assert not (out / "checkpoints").exists()  # removed once the model is saved
    gen = load_generator(str(out))
    assert gen.kind == "unet" and gen.num_classes == 4 and gen.null_class == 4 and gen.sample_shape == (1, 16, 16)
    assert gen.class_names == ("0", "1", "2", "3") and "classes [0-3]" in gen.metadata["real_data"]


def test_resume_refuses_a_checkpoint_of_another_config(stopped, tmp_path):
    out = tmp_path / "other"
    shutil.copytree(stopped, out)
    changed = GeneratorTrainConfig(out=str(out), checkpoint_every=3, **{**TINY, "learning_rate": 2e-2})
    with pytest.raises(ConfigError) as err:
        train_generator(changed, progress=False)
    assert "differs in learning_rate" in str(err.value) and "--no-resume" in str(err.value)
    state_file = out / "checkpoints" / "step-00000003" / "state.json"
    state = json.loads(state_file.read_text())
    state_file.write_text(json.dumps({**state, "data": {**state["data"], "num_rows": 199}}))
    with pytest.raises(DataError, match="trained on other data \\(num_rows changed since\\)"):
        train_generator(GeneratorTrainConfig(out=str(out), checkpoint_every=3, **TINY), progress=False)
    state_file.write_text(json.dumps(state))
    # a run-only field is not part of the config: another checkpoint interval resumes the same run
    same = GeneratorTrainConfig(out=str(out), checkpoint_every=2, keep_checkpoints=1, stop_after=4, **TINY)
    train_generator(same, progress=False)
    assert [c.step for c in ck.list_checkpoints(out / "checkpoints")] == [4]
    train_generator(GeneratorTrainConfig(out=str(out), resume=False, **{**TINY, "learning_rate": 2e-2}), progress=False)
    assert meta(out)["trained_with"]["config"]["learning_rate"] == 2e-2 and not (out / "checkpoints").exists()


def test_a_finished_output_of_the_same_config_is_not_trained_again(uninterrupted):
    file = uninterrupted / "unet" / "diffusion_pytorch_model.safetensors"
    before = file.stat().st_mtime_ns
    train_generator(GeneratorTrainConfig(out=str(uninterrupted), checkpoint_every=3, **TINY), progress=False)
    assert file.stat().st_mtime_ns == before


def test_rgb_dit_with_bf16_trains_and_loads(tmp_path):
    out = tmp_path / "dit"
    config = GeneratorTrainConfig(out=str(out), real_data=DATA, architecture="dit-small", image_size=16, channels=3,
                                  steps=2, batch_size=4, warmup_steps=1, mixed_precision="bf16",
                                  gradient_accumulation_steps=2, max_grad_norm=1.0, flip=True)
    train_generator(config, progress=False)
    assert (out / "transformer" / "diffusion_pytorch_model.safetensors").is_file() and not (out / "unet").exists()
    assert not list(out.rglob("*.bin")) and not list(out.rglob("*.pt"))
    gen = load_generator(str(out))
    assert gen.kind == "dit" and gen.num_classes == 4 and gen.null_class == 4 and gen.sample_shape == (3, 16, 16)
    assert gen.condition_table().shape == (4, 64)
    pred = gen.predict(torch.zeros(2, 3, 16, 16), torch.tensor(10), torch.tensor([0, 4]))
    assert pred.shape == (2, 3, 16, 16) and torch.isfinite(pred).all()
    assert next(gen.denoiser.parameters()).dtype == torch.float32  # bf16 is autocast only: fp32 weights


def test_no_label_dropout_means_no_null_class(tmp_path):
    out = tmp_path / "nonull"
    train_generator(GeneratorTrainConfig(out=str(out), label_dropout=0.0, **{**TINY, "steps": 1}), progress=False)
    assert load_generator(str(out)).null_class is None  # guidance is then refused instead of using an untrained row


def test_two_processes_under_accelerate_launch(uninterrupted, tmp_path):
    """A real 2-process gloo group on CPU (``--multi_gpu`` is what starts two processes without GPUs)."""
    recipe = tmp_path / "tiny.toml"
    recipe.write_text("\n".join(f"{k} = {json.dumps(list(v) if isinstance(v, tuple) else v)}"
                                for k, v in {**TINY, "checkpoint_every": 3}.items()) + "\n")
    out = tmp_path / "two"
    proc = run_two_processes("train-generator", "--recipe", str(recipe), "--out", str(out), "--no-progress")
    assert proc.returncode == 0, proc.stderr[-3000:]
    gen = load_generator(str(out))
    assert gen.kind == "unet" and gen.null_class == 4 and gen.sample_shape == (1, 16, 16)
    # Each process drew its half of the SAME global batch and DDP averaged the gradients, so every step's global
    # loss is the one-process loss up to float summation order (measured: ~1e-5 relative). The weights are not
    # compared element-wise: Adam's first steps move every weight by ~lr * sign(grad), and a gradient within
    # float noise of zero flips sign, so single weights differ by up to ~lr while the losses agree.
    two, one = meta(out)["loss"]["first"], meta(uninterrupted)["loss"]["first"]
    assert len(two) == len(one) == 6
    assert two == pytest.approx(one, rel=1e-4)
    assert two[0] == pytest.approx(one[0], rel=1e-6)  # before any update: only the reduction order differs
