"""Loading generators (UNet, DiT, latent UNet + VAE), their refusals, and the scheduler table."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import NUM_CLASSES, save_generator, tiny_unet

from scoremix_ds.core.errors import ConfigError, ModelError
from scoremix_ds.generators.loading import load_generator
from scoremix_ds.sampling.batches import SamplingSettings, sample_batch
from scoremix_ds.sampling.schedulers import make_scheduler

from hints import as_build_prints


pytestmark = pytest.mark.usefixtures("one_thread")  # bit-exact comparisons, and fair on a shared machine


def _sample(gen, classes, weights, seeds, steps=3, guidance=1.0, **kw):
    return sample_batch(gen, SamplingSettings(steps=steps, guidance=guidance), classes, weights, seeds, **kw)


def tiny_dit(seed: int = 0):
    from diffusers import DiTTransformer2DModel

    torch.manual_seed(seed)
    return DiTTransformer2DModel(num_attention_heads=2, attention_head_dim=8, in_channels=4, out_channels=8,
                                 num_layers=1, sample_size=8, patch_size=2, num_embeds_ada_norm=3,
                                 norm_num_groups=1).eval()


def tiny_vae(seed: int = 0):
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    return AutoencoderKL(in_channels=1, out_channels=1, block_out_channels=(8, 16), layers_per_block=1,
                         down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                         latent_channels=4, norm_num_groups=4, sample_size=8).eval()


# --- UNet ------------------------------------------------------------------------------------------------------


def test_unet_with_scoremix_json(tiny_generator, tiny_generator_dir):
    gen = tiny_generator
    assert gen.kind == "unet"
    assert (gen.num_classes, gen.null_class) == (NUM_CLASSES, NUM_CLASSES)
    assert gen.class_names == ("a", "b", "c", "d")
    assert gen.sample_shape == (1, 8, 8)
    assert gen.vae is None
    assert gen.scheduler_config["beta_schedule"] == "squaredcos_cap_v2"
    assert gen.metadata["image_size"] == 8
    assert gen.source == str(tiny_generator_dir)
    assert not any(p.requires_grad for p in gen.denoiser.parameters())
    assert not gen.denoiser.training


def test_unet_without_scoremix_json(tmp_path):
    gen = load_generator(str(save_generator(tmp_path / "g", tiny_unet())))
    assert gen.num_classes == NUM_CLASSES + 1  # num_class_embeds: no way to know which row is the null class
    assert gen.null_class is None
    assert gen.class_names == tuple(str(i) for i in range(NUM_CLASSES + 1))


def test_bare_model_folder_accepted(tmp_path):
    tiny_unet().save_pretrained(tmp_path / "bare", safe_serialization=True)
    gen = load_generator(str(tmp_path / "bare"))
    assert gen.kind == "unet" and gen.scheduler_config is None
    x = _sample(gen, [[0, 1]], [[0.5, 0.5]], [0])  # DDIM defaults when the folder has no scheduler/
    assert x.shape == (1, 1, 8, 8)


def test_condition_table_unet(tiny_generator):
    table = tiny_generator.condition_table()
    weight = tiny_generator.denoiser.class_embedding.weight
    assert table.shape == (NUM_CLASSES, weight.shape[1])  # the null row is left out
    assert table.dtype == torch.float32 and not table.requires_grad
    assert torch.equal(table, weight[:NUM_CLASSES])


def test_check_classes(tiny_generator):
    tiny_generator.check_classes(torch.tensor([[0, 3], [1, 2]]))
    for bad in (4, -1, 100):
        with pytest.raises(ModelError) as info:
            tiny_generator.check_classes(torch.tensor([[0, bad]]))
        assert str(bad) in info.value.message and "0..3" in info.value.message
        assert "`classes`" in info.value.hint


# --- DiT -------------------------------------------------------------------------------------------------------


@pytest.fixture
def dit_generator(tmp_path):
    return load_generator(str(save_generator(tmp_path / "dit", tiny_dit(), folder="transformer")))


def test_dit_loads_with_null_class(dit_generator):
    gen = dit_generator
    assert gen.kind == "dit"
    assert (gen.num_classes, gen.null_class) == (3, 3)  # table of 4 rows: 3 classes + the CFG row
    assert gen.sample_shape == (4, 8, 8)
    table = gen.condition_table()
    assert table.shape == (3, 16)


def test_dit_predict_halves_learned_sigma_channels(dit_generator):
    x = torch.randn(2, 4, 8, 8)
    out = dit_generator.predict(x, torch.tensor(500), torch.tensor([0, 2]))
    assert out.shape == (2, 4, 8, 8)
    full = dit_generator.denoiser(x, timestep=torch.tensor([500, 500]), class_labels=torch.tensor([0, 2])).sample
    assert full.shape == (2, 8, 8, 8)
    torch.testing.assert_close(out, full[:, :4])


def test_dit_samples_with_guidance(dit_generator):
    plain = _sample(dit_generator, [[0, 2]], [[0.5, 0.5]], [1])
    guided = _sample(dit_generator, [[0, 2]], [[0.5, 0.5]], [1], guidance=2.0)
    assert plain.shape == guided.shape == (1, 4, 8, 8)
    assert torch.isfinite(guided).all() and float((plain - guided).abs().max()) > 0
    one_zero = _sample(dit_generator, [[0, 2]], [[1.0, 0.0]], [1], return_latents=True)
    alone = _sample(dit_generator, [[0]], [[1.0]], [1], return_latents=True)
    assert float((one_zero - alone).abs().max()) < 1e-5
    with pytest.raises(ModelError):
        _sample(dit_generator, [[0, 3]], [[0.5, 0.5]], [1])  # the null row is not a class


def test_dit_scoremix_json_overrides(tmp_path):
    gen = load_generator(str(save_generator(tmp_path / "dit", tiny_dit(), folder="transformer",
                                            meta={"num_classes": 2, "null_class": None, "class_names": ["x", "y"]})))
    assert (gen.num_classes, gen.null_class, gen.class_names) == (2, None, ("x", "y"))


# --- latent model ----------------------------------------------------------------------------------------------


@pytest.fixture
def latent_generator(tmp_path):
    meta = {"num_classes": NUM_CLASSES, "null_class": NUM_CLASSES}
    root = save_generator(tmp_path / "latent", tiny_unet(size=4, channels=4), meta=meta, vae=tiny_vae())
    return load_generator(str(root))


def test_latent_model_samples_and_decodes(latent_generator):
    gen = latent_generator
    assert gen.vae is not None and gen.sample_shape == (4, 4, 4)
    assert not any(p.requires_grad for p in gen.vae.parameters())
    latents = _sample(gen, [[0, 1], [2, 3]], [[0.5, 0.5], [0.3, 0.7]], [1, 2], return_latents=True)
    assert latents.shape == (2, 4, 4, 4)
    images = _sample(gen, [[0, 1], [2, 3]], [[0.5, 0.5], [0.3, 0.7]], [1, 2])
    assert images.shape == (2, 1, 8, 8)
    assert images.min() >= -1 and images.max() <= 1 and torch.isfinite(images).all()
    # decode = VAE decode of latents / scaling_factor, clamped
    with torch.no_grad():
        by_hand = gen.vae.decode(latents / gen.vae.config.scaling_factor).sample.clamp(-1, 1)
    torch.testing.assert_close(images, by_hand, atol=1e-5, rtol=0)


def test_latent_model_condition_table(latent_generator):
    assert latent_generator.condition_table().shape == (NUM_CLASSES, 32)


# --- refusals --------------------------------------------------------------------------------------------------


def test_missing_folder_refused(tmp_path):
    with pytest.raises(ModelError) as info:
        load_generator(str(tmp_path / "nope"))
    assert "does not exist" in info.value.message and "`generator`" in info.value.hint


def test_unreachable_hub_id_refused_with_model_error():
    with pytest.raises(ModelError):  # conftest sets HF_HUB_OFFLINE=1
        load_generator("someone/no-such-generator")


def test_folder_without_denoiser_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError) as info:
        load_generator(str(tmp_path / "empty"))
    assert "no diffusers denoiser" in info.value.message and "`generator`" in info.value.hint


def test_unconditional_unet_refused(tmp_path):
    from diffusers import UNet2DModel

    model = UNet2DModel(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 16), layers_per_block=1,
                        down_block_types=("DownBlock2D",) * 2, up_block_types=("UpBlock2D",) * 2, norm_num_groups=4)
    with pytest.raises(ModelError) as info:
        load_generator(str(save_generator(tmp_path / "uncond", model)))
    assert "not class-conditional" in info.value.message and "`generator`" in info.value.hint


def test_unet_with_class_embed_type_refused(tmp_path):
    from diffusers import UNet2DModel

    model = UNet2DModel(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 16), layers_per_block=1,
                        down_block_types=("DownBlock2D",) * 2, up_block_types=("UpBlock2D",) * 2, norm_num_groups=4,
                        class_embed_type="timestep")
    with pytest.raises(ModelError) as info:
        load_generator(str(save_generator(tmp_path / "cont", model)))
    assert "not class-conditional" in info.value.message


def test_other_model_class_refused(tmp_path):
    tiny_vae().save_pretrained(tmp_path / "vae-only" / "unet", safe_serialization=True)
    with pytest.raises(ModelError) as info:
        load_generator(str(tmp_path / "vae-only"))
    assert "AutoencoderKL" in info.value.message and "supported" in info.value.message


def test_pickle_only_weights_refused(tmp_path):
    model = tiny_unet()
    folder = tmp_path / "pickled" / "unet"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(dict(model.config, _class_name="UNet2DModel")))
    torch.save(model.state_dict(), folder / "diffusion_pytorch_model.bin")
    with pytest.raises(ModelError) as info:
        load_generator(str(tmp_path / "pickled"))
    assert "pickle" in info.value.message and "`generator`" in info.value.hint


def test_pickle_only_vae_refused(tmp_path):
    root = save_generator(tmp_path / "latent", tiny_unet(size=4, channels=4))
    vae = tiny_vae()
    (root / "vae").mkdir()
    (root / "vae" / "config.json").write_text(json.dumps(dict(vae.config, _class_name="AutoencoderKL")))
    torch.save(vae.state_dict(), root / "vae" / "diffusion_pytorch_model.bin")
    with pytest.raises(ModelError) as info:
        load_generator(str(root))
    assert "VAE" in info.value.message and "pickle" in info.value.message


def test_folder_without_weights_refused(tmp_path):
    folder = tmp_path / "noweights" / "unet"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(dict(tiny_unet().config, _class_name="UNet2DModel")))
    with pytest.raises(ModelError) as info:
        load_generator(str(tmp_path / "noweights"))
    assert "no .safetensors" in info.value.message


@pytest.mark.parametrize("meta", [{"num_classes": 9}, {"num_classes": 4, "null_class": 5}, {"num_classes": 0},
                                  {"null_class": -1}])
def test_scoremix_json_not_fitting_the_table_refused(tmp_path, meta):
    with pytest.raises(ModelError) as info:
        load_generator(str(save_generator(tmp_path / "g", tiny_unet(), meta=meta)))
    assert "scoremix.json" in info.value.hint


# --- schedulers ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ddim", "dpm++", "euler", "heun"])
def test_make_scheduler_keeps_folder_schedule(tmp_path, name):
    gen = load_generator(str(save_generator(tmp_path / "v", tiny_unet(), prediction_type="v_prediction")))
    sched = make_scheduler(name, gen.scheduler_config)
    assert sched.config.beta_schedule == "squaredcos_cap_v2"
    assert sched.config.prediction_type == "v_prediction"
    assert sched.config.num_train_timesteps == 1000
    assert make_scheduler(name, gen.scheduler_config) is not sched  # a fresh instance each time


def test_make_scheduler_table_entries():
    import diffusers

    dpm = make_scheduler("dpm++")
    assert isinstance(dpm, diffusers.DPMSolverMultistepScheduler)
    assert dpm.config.algorithm_type == "dpmsolver++" and dpm.config.solver_order == 2
    assert isinstance(make_scheduler("euler"), diffusers.EulerDiscreteScheduler)
    assert isinstance(make_scheduler("heun"), diffusers.HeunDiscreteScheduler)
    assert isinstance(make_scheduler("ddim"), diffusers.DDIMScheduler)
    assert make_scheduler("ddim", prediction_type="sample").config.prediction_type == "sample"
    # the flag overrides the folder's prediction type
    folder = {"beta_schedule": "linear", "prediction_type": "epsilon"}
    assert make_scheduler("euler", folder, prediction_type="v_prediction").config.prediction_type == "v_prediction"


def test_make_scheduler_refusals():
    with pytest.raises(ConfigError) as info:
        make_scheduler("nope")
    assert "nope" in info.value.message and "--scheduler" in as_build_prints(info.value).hint
    with pytest.raises(ConfigError) as info:
        make_scheduler("ddim", prediction_type="x0")
    assert "--prediction-type" in as_build_prints(info.value).hint
