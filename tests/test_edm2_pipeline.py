"""``ScoreMixPipeline`` on an EDM2 folder (issue 22, "Done when"): the images from fixed ``latents`` equal an
independent Heun implementation written out below for a plain class, a 0.5/0.5 mix, an autoguided mix (the folder's
guide) and classifier-free guidance (a folder with a null label and no guide); the folder's sampler settings are
used unless the call gives them; an image depends on its own latents only (not on the batch size or its
neighbours), a ``generator=`` list gives each image its own noise; ``--sigma-min / --sigma-max / --rho`` reach a
build's sampler and record, and are refused on diffusers schedulers.

The reference shares no code with the sampler: it calls the EDM2 denoiser one class and one network at a time and
keeps the state in float64 (as the sampler does), so the two differ only by float32 rounding inside the network.
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from conftest import TINY_META, save_generator, tiny_unet
from fixtures.cli import build_command, run_cli
from fixtures.edm2_heun import karras_sigmas, reference_heun
from fixtures.edm2_pickles import tiny_net
from scoremix_ds.core.errors import ConfigError
from scoremix_ds.generators.edm2.folder import write_edm2_folder
from scoremix_ds.synthesis.config import BuildConfig
from scoremix_ds.synthesis.resolve import with_generator_sampler

# The folder's sampler settings: deliberately not EDM2's defaults (80, 0.002, 7, 32), so the reference only matches
# when the pipeline reads them from the folder.
STEPS, SMIN, SMAX, RHO = 3, 0.004, 60.0, 6.0
CLASSES = ["a", "b", "c"]


def main_net():
    return tiny_net(11)


def guide_net():
    return tiny_net(12, model_channels=8, channels_per_head=8)


def net_at(net, label: torch.Tensor):
    """D(x; sigma, y) of one network for ONE label vector y (the same for every image), in float64 for the sum."""
    def d(x: torch.Tensor, sigma: float) -> torch.Tensor:
        with torch.no_grad():
            s = torch.full((x.shape[0],), sigma, dtype=torch.float32)
            return net(x.float(), s, label.expand(x.shape[0], -1)).double()
    return d


def mixed(terms):
    """ScoreMix: D(x; sigma) = sum_k w_k D(x; sigma, e_k) for terms [(w_k, D_k)]."""
    return lambda x, sigma: sum(w * d(x, sigma) for w, d in terms)


def guided(d_main, d_guide, w: float):
    """Guidance: D = D_g + w (D_main - D_g) (autoguidance: D_g the weaker net; classifier-free: the null label)."""
    return lambda x, sigma: d_guide(x, sigma) + w * (d_main(x, sigma) - d_guide(x, sigma))


def as_pt(x: torch.Tensor) -> torch.Tensor:
    """The diffusers "pt" convention: (x / 2 + 0.5) clipped to [0, 1] (pixel space: the image is the sample)."""
    return (x / 2 + 0.5).clamp(0, 1)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """One torch thread (bit-exact comparisons; fast on a shared machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("edm2-pipe")
    sampler = {"steps": STEPS, "sigma_min": SMIN, "sigma_max": SMAX, "rho": RHO}
    guided_folder = write_edm2_folder(root / "guided", main_net(), CLASSES, guide=guide_net(), sampler=sampler)
    # no guide, a null label (label dropout): guidance != 1 is classifier-free against the zero label
    cfg_folder = write_edm2_folder(root / "cfg", main_net(), CLASSES, null_class=len(CLASSES), sampler=sampler)
    return guided_folder, cfg_folder


@pytest.fixture(scope="module")
def pipe(folders):
    import scoremix_ds  # noqa: F401  (registers ScoreMixPipeline with diffusers)
    from diffusers import DiffusionPipeline

    p = DiffusionPipeline.from_pretrained(str(folders[0]))
    p.set_progress_bar_config(disable=True)
    return p


@pytest.fixture(scope="module")
def cfg_pipe(folders):
    from scoremix_ds import ScoreMixPipeline

    p = ScoreMixPipeline.from_pretrained(str(folders[1]))
    p.set_progress_bar_config(disable=True)
    return p


def _latents(n: int, seed: int = 5) -> torch.Tensor:
    return torch.randn(n, 1, 16, 16, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("case", ["plain", "mix", "autoguided-mix", "classifier-free", "call-settings"])
def test_pipeline_equals_written_out_heun(pipe, cfg_pipe, case):
    from scoremix_ds import ScoreMixPipeline

    assert type(pipe) is ScoreMixPipeline and pipe.edm2_guide is not None and pipe.scheduler is None
    main, guide, e = main_net(), guide_net(), torch.eye(len(CLASSES))
    zero = torch.zeros(len(CLASSES))  # EDM2's dropped label
    latents = _latents(2)
    sigmas, call = karras_sigmas(STEPS, SMIN, SMAX, RHO), {}
    p = pipe
    if case == "plain":  # class 2 alone, no guidance
        classes, weights, w = [(2,), (2,)], None, 1.0
        denoise = net_at(main, e[2])
    elif case == "mix":  # 0.5 D(x; e_0) + 0.5 D(x; e_1)
        classes, weights, w = [(0, 1), (0, 1)], [(0.5, 0.5)] * 2, 1.0
        denoise = mixed([(0.5, net_at(main, e[0])), (0.5, net_at(main, e[1]))])
    elif case == "autoguided-mix":  # D_g + w (D_main - D_g), both the 0.3/0.7 mix of classes 0 and 2
        classes, weights, w = [(0, 2), (0, 2)], [(0.3, 0.7)] * 2, 1.8
        denoise = guided(mixed([(0.3, net_at(main, e[0])), (0.7, net_at(main, e[2]))]),
                         mixed([(0.3, net_at(guide, e[0])), (0.7, net_at(guide, e[2]))]), w)
    elif case == "classifier-free":  # no guide: D(x; 0) + w (D(x; e_1) - D(x; 0)), 0 the null (zero) label
        p, classes, weights, w = cfg_pipe, [(1,), (1,)], None, 2.5
        denoise = guided(net_at(main, e[1]), net_at(main, zero), w)
    else:  # the call's sigma_max / rho / steps replace the folder's (sigma_min stays the folder's)
        classes, weights, w = [(0, 1), (0, 1)], [(0.5, 0.5)] * 2, 1.0
        call = dict(sigma_max=20.0, rho=5.0, num_inference_steps=4)
        sigmas = karras_sigmas(4, SMIN, 20.0, 5.0)
        denoise = mixed([(0.5, net_at(main, e[0])), (0.5, net_at(main, e[1]))])
    ref = reference_heun(denoise, latents, sigmas)
    out = p(classes=classes, weights=weights, latents=latents, guidance_scale=w, output_type="pt", **call).images
    raw = p(classes=classes, weights=weights, latents=latents, guidance_scale=w, output_type="latent", **call).images
    assert out.shape == raw.shape == ref.shape == (2, 1, 16, 16) and out.dtype == torch.float32
    # float32 rounding: the network runs in float32 (on other batch compositions than the reference's, the mix in
    # float32), 2N-1 evaluations accumulate it and guidance scales it by w; the samples reach |x| ~ 8, so this is
    # ~1e-5 relative, far below what tells the cases apart (> 1e-2, below)
    tol = 1e-4 * max(1.0, w)
    assert torch.allclose(raw.double(), ref, rtol=1e-5, atol=tol), (raw.double() - ref).abs().max()
    assert torch.allclose(out.double(), as_pt(ref), rtol=0, atol=tol), (out.double() - as_pt(ref)).abs().max()
    inside = ((out > 0) & (out < 1)).float().mean()
    assert inside > 0.1, f"only {inside:.0%} of the pixels are not clipped: the comparison would say little"
    # not trivially equal: the sample is not the noise, and the case's D matters
    other = reference_heun(net_at(main, e[0]), latents, sigmas)
    assert (other - ref).abs().max() > 1e-2


def test_folder_defaults_and_the_build_sampler_agree(pipe, folders):
    """No steps / guidance given: the folder's (3 steps, guidance 1); the pipeline's images from seeds are the
    images the build's sampler makes (sample_batch over the loaded folder)."""
    from scoremix_ds.generators.loading import load_generator
    from scoremix_ds.sampling.batches import SamplingSettings, sample_batch

    assert pipe.config.sampler["steps"] == STEPS and pipe.config.sampler["sigma_max"] == SMAX
    images = pipe(classes=[(0, 1), (2, 1)], seeds=[3, 4], output_type="pt").images
    gen = load_generator(str(folders[0]))
    built = sample_batch(gen, SamplingSettings(steps=STEPS, guidance=1.0, scheduler="edm-heun"), [[0, 1], [2, 1]],
                         [[0.5, 0.5]] * 2, [3, 4])
    assert torch.equal(images, as_pt(built))
    guided_images = pipe(classes=[(0, 1)], seeds=[3], guidance_scale=1.7, output_type="pt").images
    built_guided = sample_batch(gen, SamplingSettings(steps=STEPS, guidance=1.7, scheduler="edm-heun"), [[0, 1]],
                                [[0.5, 0.5]], [3])  # the folder's guide autoguides, in the build too
    assert torch.equal(guided_images, as_pt(built_guided)) and not torch.equal(guided_images, images[:1])


def test_same_latents_same_images_whatever_the_batch(pipe):
    latents = _latents(3, seed=8)
    classes, weights = [(0, 1), (1, 2), (2, 0)], [(0.5, 0.5), (0.2, 0.8), (0.6, 0.4)]
    whole = pipe(classes=classes, weights=weights, latents=latents, guidance_scale=1.5, output_type="pt").images
    one_by_one = pipe(classes=classes, weights=weights, latents=latents, guidance_scale=1.5, output_type="pt",
                      batch_size=1).images
    assert torch.equal(whole, one_by_one)
    alone = pipe(classes=classes[1:2], weights=weights[1:2], latents=latents[1:2], guidance_scale=1.5,
                 output_type="pt").images  # image 1 without its neighbours
    assert torch.equal(alone[0], whole[1])
    assert not torch.equal(whole[0], whole[1])


def test_a_generator_list_gives_each_image_its_noise(pipe):
    shape = (1, 16, 16)
    gens = [torch.Generator().manual_seed(s) for s in (21, 22)]
    both = pipe(classes=[(0, 1), (0, 1)], generator=gens, output_type="pt").images
    second = pipe(classes=[(0, 1)], generator=[torch.Generator().manual_seed(22)], output_type="pt").images
    assert torch.equal(second[0], both[1]) and not torch.equal(both[0], both[1])
    noise = torch.randn(shape, generator=torch.Generator().manual_seed(22)).unsqueeze(0)
    assert torch.equal(pipe(classes=[(0, 1)], latents=noise, output_type="pt").images, second)  # the same noise
    one = pipe(classes=[(0, 1)], generator=torch.Generator().manual_seed(21), num_images_per_prompt=2,
               output_type="pt").images  # one generator: its draws in order
    assert torch.equal(one[0], both[0]) and one.shape == (2, 1, 16, 16)


def test_pil_and_np_outputs_and_refusals(pipe, tmp_path):
    images = pipe(classes=[("a", "b")], seeds=[0]).images
    assert len(images) == 1 and images[0].size == (16, 16) and images[0].mode == "L"
    pt = pipe(classes=[("a", "b")], seeds=[0], output_type="pt").images
    np_images = pipe(classes=[("a", "b")], seeds=[0], output_type="np").images
    assert np_images.shape == (1, 16, 16, 1) and torch.equal(torch.from_numpy(np_images), pt.permute(0, 2, 3, 1))
    with pytest.raises(ValueError, match="edm-heun"):
        pipe(classes=[(0, 1)], sampler="ddim")
    with pytest.raises(ConfigError, match="sigma_min"):
        pipe(classes=[(0, 1)], sigma_min=90.0)  # above the folder's sigma_max
    with pytest.raises(ValueError, match="latents must be"):
        pipe(classes=[(0, 1)], latents=torch.randn(1, 3, 16, 16))
    unet_folder = save_generator(tmp_path / "unet", tiny_unet(), meta=TINY_META)
    from scoremix_ds import ScoreMixPipeline
    from scoremix_ds.sampling.pipeline import write_model_index

    write_model_index(unet_folder)
    unet_pipe = ScoreMixPipeline.from_pretrained(str(unet_folder))
    with pytest.raises(ValueError, match="EDM2"):
        unet_pipe(classes=[(0, 1)], sigma_max=40.0, num_inference_steps=2)


def test_a_folder_written_before_the_pipeline_read_edm2_loads(folders, pipe, tmp_path):
    """model_index.json naming ["scoremix_ds", "EDM2Denoiser"] and no sampler (the earlier layout): the pipeline
    reads the networks and scoremix.json's sampler itself."""
    old = shutil.copytree(folders[0], tmp_path / "old")
    index = json.loads((old / "model_index.json").read_text())
    index.update(edm2=["scoremix_ds", "EDM2Denoiser"], edm2_guide=["scoremix_ds", "EDM2Denoiser"])
    del index["sampler"]
    (old / "model_index.json").write_text(json.dumps(index))
    from scoremix_ds import ScoreMixPipeline

    p = ScoreMixPipeline.from_pretrained(str(old))
    p.set_progress_bar_config(disable=True)
    assert p.config.sampler["sigma_max"] == SMAX
    kwargs = dict(classes=[(0, 1)], latents=_latents(1), guidance_scale=1.4, output_type="pt")
    assert torch.equal(p(**kwargs).images, pipe(**kwargs).images)


# ---------------------------------------------------------------------------------------------- the build's flags


@pytest.fixture
def build_folder(tmp_path):
    from conftest import NUM_CLASSES

    net = tiny_net(3, img_resolution=8, label_dim=NUM_CLASSES, attn_resolutions=[4])
    return write_edm2_folder(tmp_path / "g", net, [str(i) for i in range(NUM_CLASSES)],
                             sampler={"steps": 2, "sigma_max": SMAX})


def test_sigma_flags_reach_the_sampler_and_the_record(build_folder, tiny_discriminator_dir, tiny_real_data_dir,
                                                      tmp_path):
    base = dict(generator=str(build_folder), discriminator=str(tiny_discriminator_dir),
                real_data=str(tiny_real_data_dir), pairs=2)
    plain = with_generator_sampler(BuildConfig(**base))
    assert plain.scheduler == "edm-heun" and "sigma_max" not in plain.content_config()  # unset: not recorded
    assert plain.fingerprint() == BuildConfig(**base, scheduler="edm-heun", steps=2, guidance=1.0).fingerprint()
    folder_sampler = json.loads((build_folder / "scoremix.json").read_text())["sampler"]
    assert plain.sampling.new_scheduler(folder_sampler).sigma_max == SMAX  # the folder's
    given = with_generator_sampler(BuildConfig(**base, sigma_max=30.0, rho=5.0))
    scheduler = given.sampling.new_scheduler(folder_sampler)
    assert (scheduler.sigma_min, scheduler.sigma_max, scheduler.rho) == (0.002, 30.0, 5.0)
    assert {k: given.content_config()[k] for k in ("sigma_max", "rho")} == {"sigma_max": 30.0, "rho": 5.0}
    assert given.fingerprint() != plain.fingerprint()
    with pytest.raises(ConfigError) as err:  # over the folder's sigma_max (60)
        with_generator_sampler(BuildConfig(**base, sigma_min=70.0))
    assert set(err.value.fields) == {"sigma_min", "sigma_max"}


def test_build_cli_records_the_sigmas_and_refuses_them_elsewhere(build_folder, tiny_generator_dir,
                                                                 tiny_discriminator_dir, tiny_real_data_dir,
                                                                 tmp_path, capsys):
    out = tmp_path / "built"
    command = build_command(build_folder, tiny_discriminator_dir, tiny_real_data_dir, pairs=2, per_identity=1,
                            sigma_max=30, rho=5, out=out)
    rc, _, err = run_cli(capsys, *command[:-1], "--no-repro", "--no-progress")
    assert rc == 0, err
    manifest = json.loads((out / "manifest.json").read_text())
    assert {k: manifest["config"].get(k) for k in ("scheduler", "steps", "sigma_max", "rho", "sigma_min")} == {
        "scheduler": "edm-heun", "steps": 2, "sigma_max": 30.0, "rho": 5.0, "sigma_min": None}
    assert "`edm-heun`, 2, sigma_max 30.0, rho 5.0 |" in (out / "README.md").read_text()
    never = tmp_path / "never"
    rc, _, err = run_cli(capsys, *build_command(tiny_generator_dir, tiny_discriminator_dir, tiny_real_data_dir,
                                                pairs=2, sigma_min=0.01, out=never))
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert rc == 2 and len(lines) == 1 and "--sigma-min" in lines[0], err
    assert not never.exists()
