"""ScoreMixPipeline behaves like a diffusers pipeline (issue 24.6): ``import scoremix_ds`` registers it, a swapped
``pipe.scheduler`` is what samples, ``callback_on_step_end`` / ``num_images_per_prompt`` / ``latents`` /
``generator`` / ``output_type`` work as in diffusers, and the generator card's snippet runs as written."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import TINY_META, save_generator, tiny_unet

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def folder(tmp_path) -> Path:
    from scoremix_ds.sampling.pipeline import write_model_index

    root = save_generator(tmp_path / "gen", tiny_unet(), meta=TINY_META)
    write_model_index(root)
    return root


@pytest.fixture
def pipe(folder, one_thread):
    import scoremix_ds  # noqa: F401
    from diffusers import DiffusionPipeline

    p = DiffusionPipeline.from_pretrained(str(folder))
    p.set_progress_bar_config(disable=True)
    return p


def test_import_scoremix_ds_alone_registers_the_pipeline_lazily(folder):
    """In a fresh interpreter: ``import scoremix_ds`` imports neither torch nor diffusers, yet afterwards
    ``DiffusionPipeline.from_pretrained`` resolves ScoreMixPipeline (and diffusers' own names still resolve)."""
    code = f"""
import sys
import scoremix_ds
assert "torch" not in sys.modules and "diffusers" not in sys.modules, "import scoremix_ds must stay light"
from diffusers import DiffusionPipeline, UNet2DModel
pipe = DiffusionPipeline.from_pretrained({str(folder)!r})
print("@@", type(pipe).__module__, type(pipe).__name__, UNet2DModel.__name__)
"""
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "@@ scoremix_ds.sampling.pipeline ScoreMixPipeline UNet2DModel" in done.stdout


def test_registration_is_explicit_and_idempotent():
    import diffusers

    import scoremix_ds

    scoremix_ds.register_diffusers_pipelines()
    scoremix_ds.register_diffusers_pipelines()
    from scoremix_ds.sampling.pipeline import ScoreMixPipeline

    assert diffusers.ScoreMixPipeline is ScoreMixPipeline and diffusers.DiffusionPipeline is not None
    with pytest.raises(AttributeError):
        diffusers.NoSuchPipelineAnywhere  # noqa: B018


def test_default_path_is_the_library_sampler_and_a_swapped_scheduler_is_honoured(pipe, folder):
    from diffusers import EulerDiscreteScheduler

    from scoremix_ds.generators.loading import load_generator
    from scoremix_ds.sampling.schedulers import make_scheduler
    from scoremix_ds.sampling.scoremix import scoremix_sample

    gen = load_generator(str(folder))
    ids, w = torch.tensor([[0, 3]]), torch.tensor([[0.5, 0.5]])
    ddim = scoremix_sample(gen, make_scheduler("ddim", gen.scheduler_config), ids, w, [5], 3, 2.0)
    default = pipe(classes=[(0, 3)], seeds=[5], num_inference_steps=3, guidance_scale=2.0, output_type="pt").images
    assert torch.equal(default, (ddim / 2 + 0.5).clamp(0, 1))

    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config, use_karras_sigmas=True)
    euler = scoremix_sample(gen, EulerDiscreteScheduler.from_config(pipe.scheduler.config), ids, w, [5], 3, 2.0)
    swapped = pipe(classes=[(0, 3)], seeds=[5], num_inference_steps=3, guidance_scale=2.0, output_type="pt").images
    assert torch.equal(swapped, (euler / 2 + 0.5).clamp(0, 1)) and not torch.equal(swapped, default)
    # a named sampler still wins over the held scheduler
    named = pipe(classes=[(0, 3)], seeds=[5], num_inference_steps=3, guidance_scale=2.0, output_type="pt",
                 sampler="ddim").images
    assert torch.equal(named, default)


def test_euler_by_name_explains_why_it_cannot_differ_from_ddim(pipe):
    with pytest.raises(ValueError, match="deterministic DDIM is Euler's method"):
        pipe(classes=[(0, 1)], seeds=[0], num_inference_steps=2, sampler="euler")
    heun = pipe(classes=[(0, 1)], seeds=[0], num_inference_steps=2, sampler="heun", output_type="pt").images
    ddim = pipe(classes=[(0, 1)], seeds=[0], num_inference_steps=2, sampler="ddim", output_type="pt").images
    assert not torch.equal(heun, ddim)


def test_callback_on_step_end_and_num_images_per_prompt(pipe):
    seen = []

    def callback(p, step, timestep, kwargs):
        assert p is pipe and set(kwargs) == {"latents"}
        seen.append((step, int(timestep), tuple(kwargs["latents"].shape)))
        return kwargs

    out = pipe(classes=[(0, 1), ("c", "d")], seeds=[0, 1, 2, 3], num_images_per_prompt=2, num_inference_steps=3,
               callback_on_step_end=callback, callback_on_step_end_tensor_inputs=["latents"], output_type="np").images
    assert out.shape == (4, 8, 8, 1) and out.dtype == np.float32 and 0 <= out.min() and out.max() <= 1
    assert [s[0] for s in seen] == [0, 1, 2] and seen[0][2] == (4, 1, 8, 8)
    # image j of mix i is at i * n + j, and each is the image its seed gives alone
    alone = pipe(classes=[("c", "d")], seeds=[3], num_inference_steps=3, output_type="np").images
    np.testing.assert_array_equal(out[3], alone[0])

    # a callback that returns new latents changes the trajectory
    zeroed = pipe(classes=[(0, 1)], seeds=[0], num_inference_steps=3, output_type="pt",
                  callback_on_step_end=lambda p, i, t, kw: {"latents": torch.zeros_like(kw["latents"])}).images
    assert not torch.equal(zeroed, pipe(classes=[(0, 1)], seeds=[0], num_inference_steps=3, output_type="pt").images)
    with pytest.raises(ValueError, match="callback_on_step_end_tensor_inputs"):
        pipe(classes=[(0, 1)], num_inference_steps=1, callback_on_step_end=callback,
             callback_on_step_end_tensor_inputs=["prompt_embeds"])


def test_latents_generator_and_output_types(pipe):
    from scoremix_ds.sampling.scoremix import initial_noise

    seeded = pipe(classes=[(0, 2)], seeds=[9], num_inference_steps=2, output_type="pt").images
    noise, _ = initial_noise([9], (1, 8, 8))
    assert torch.equal(pipe(classes=[(0, 2)], latents=noise, num_inference_steps=2, output_type="pt").images, seeded)
    other = pipe(classes=[(0, 2)], latents=torch.randn(1, 1, 8, 8), num_inference_steps=2, output_type="pt").images
    assert not torch.equal(other, seeded)
    # a list of generators is the seeds' noise; a single generator draws the whole batch from one stream
    gens = [torch.Generator().manual_seed(9)]
    assert torch.equal(pipe(classes=[(0, 2)], generator=gens, num_inference_steps=2, output_type="pt").images, seeded)
    one = pipe(classes=[(0, 2)], generator=torch.Generator().manual_seed(9), num_images_per_prompt=2,
               num_inference_steps=2, output_type="pt").images
    assert torch.equal(one[:1], seeded) and not torch.equal(one[1:], seeded)
    with pytest.raises(ValueError, match="latents must be"):
        pipe(classes=[(0, 2)], latents=torch.randn(1, 3, 8, 8), num_inference_steps=1)
    with pytest.raises(ValueError, match="seeds or generator"):
        pipe(classes=[(0, 2)], seeds=[1], generator=gens, num_inference_steps=1)

    pt = seeded
    assert pt.shape == (1, 1, 8, 8) and pt.min() >= 0 and pt.max() <= 1
    np_ = pipe(classes=[(0, 2)], seeds=[9], num_inference_steps=2, output_type="np").images
    np.testing.assert_array_equal(np_, pt.permute(0, 2, 3, 1).numpy())
    pil = pipe(classes=[(0, 2)], seeds=[9], num_inference_steps=2).images
    assert pil[0].size == (8, 8) and pil[0].mode == "L"
    with pytest.raises(ValueError, match="output_type"):
        pipe(classes=[(0, 2)], num_inference_steps=1, output_type="tensor")


def _python_snippet(card_text: str) -> str:
    blocks = re.findall(r"```python\n(.*?)```", card_text, flags=re.S)
    assert len(blocks) == 1, card_text
    return blocks[0]


def test_generator_card_snippet_runs_as_written(folder, tmp_path):
    """The card a trained generator ships (rendered for this tiny folder) loads and samples, copied verbatim into a
    fresh interpreter."""
    from scoremix_ds.core.recipes import to_dict
    from scoremix_ds.training.generator_card import generator_card
    from scoremix_ds.training.generator_config import GeneratorTrainConfig

    meta = {**TINY_META, "real_data": "tiny", "real_data_commit": None, "licence": None,
            "trained_with": {"package": "scoremix-ds", "version": "0", "config": to_dict(GeneratorTrainConfig()),
                             "fingerprint": "f"}}
    card = str(generator_card(meta, "UNet2DModel", str(folder)))
    snippet = _python_snippet(card)
    assert "import scoremix_ds" in snippet and f'from_pretrained("{folder}")' in snippet
    script = tmp_path / "snippet.py"
    script.write_text(snippet + "\nprint('@@', type(pipe).__name__, len(images), images[0].size)\n")
    done = subprocess.run([sys.executable, str(script)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
                               "PYTHONPATH": str(REPO_ROOT)})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "@@ ScoreMixPipeline 1 (8, 8)" in done.stdout
