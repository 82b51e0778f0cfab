"""Condition mixing (AugGen baseline): mix the class-condition vectors and run the model once per step.

Checked against a reference model whose class table row IS the mixed vector, against plain sampling at weights
(1, 0), and shown to differ from score mixing on the same seed."""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import save_generator

from scoremix_ds.generators.loading import load_generator
from scoremix_ds.sampling.condition_mix import class_tables, mix_rows
from scoremix_ds.sampling.batches import SamplingSettings, sample_batch

A, B = 0, 1


def _sample(gen, classes, weights, seeds, mixing, steps=3, guidance=1.0, scheduler="ddim"):
    settings = SamplingSettings(steps=steps, guidance=guidance, scheduler=scheduler, mixing=mixing)
    return sample_batch(gen, settings, classes, weights, seeds, return_latents=True)


def test_mix_rows_by_hand():
    table = torch.tensor([[1.0, 0.0], [0.0, 2.0], [4.0, 4.0]])
    got = mix_rows(table, torch.tensor([[0, 1], [2, 0]]), torch.tensor([[0.25, 0.75], [0.5, 0.5]]))
    assert torch.equal(got, torch.tensor([[0.25, 1.5], [2.5, 2.0]]))


@pytest.mark.parametrize("guidance", [1.0, 3.0])
def test_one_zero_weights_equal_plain_sampling(tiny_generator, guidance):
    seeds = [3, 4]
    mixed = _sample(tiny_generator, [[A, B], [2, 3]], [[1.0, 0.0], [1.0, 0.0]], seeds, "condition", guidance=guidance)
    plain = _sample(tiny_generator, [[A], [2]], [[1.0], [1.0]], seeds, "score", guidance=guidance)
    assert torch.equal(mixed, plain)  # the mixed row IS the first class's row: bit for bit


@pytest.mark.parametrize("guidance", [1.0, 3.0])
def test_equals_a_model_whose_table_holds_the_mixed_vector(tiny_generator, guidance):
    w = (0.3, 0.7)
    reference = copy.deepcopy(tiny_generator)
    table = reference.denoiser.class_embedding.weight
    with torch.no_grad():
        table[A] = w[0] * table[A] + w[1] * table[B]
    got = _sample(tiny_generator, [[A, B]], [list(w)], [11], "condition", guidance=guidance)
    want = _sample(reference, [[A]], [[1.0]], [11], "score", guidance=guidance)
    assert (got - want).abs().max() < 1e-5
    assert tiny_generator.denoiser.class_embedding.weight[A].ne(table[A]).any()  # the original is untouched


def test_differs_from_score_mixing_on_the_same_seed(tiny_generator):
    by_condition = _sample(tiny_generator, [[A, B]], [[0.5, 0.5]], [7], "condition")
    by_score = _sample(tiny_generator, [[A, B]], [[0.5, 0.5]], [7], "score")
    assert (by_condition - by_score).abs().max() > 1e-3
    assert not class_tables(tiny_generator.denoiser, "unet")[0]._forward_hooks  # hooks removed after sampling


def test_dit_every_block_table_is_mixed(tmp_path):
    from diffusers import DiTTransformer2DModel

    torch.manual_seed(0)
    dit = DiTTransformer2DModel(num_attention_heads=2, attention_head_dim=8, in_channels=4, out_channels=8, num_layers=2,
                                sample_size=8, patch_size=2, num_embeds_ada_norm=3, norm_num_groups=1).eval()
    root = save_generator(tmp_path / "dit", dit, folder="transformer",
                          meta={"num_classes": 2, "null_class": 2, "class_names": ["a", "b"]})
    gen = load_generator(str(root))
    assert len(class_tables(gen.denoiser, "dit")) == 2  # one per block
    mixed = _sample(gen, [[A, B]], [[1.0, 0.0]], [5], "condition")
    assert torch.equal(mixed, _sample(gen, [[A]], [[1.0]], [5], "score"))
    assert (_sample(gen, [[A, B]], [[0.5, 0.5]], [5], "condition") - mixed).abs().max() > 1e-4


def test_build_rows_record_the_mixing_mode(tiny_generator_dir, tiny_discriminator_dir, tiny_real_data_dir, tmp_path):
    import datasets

    from scoremix_ds.synthesis.config import BuildConfig
    from scoremix_ds.synthesis.runner import run_build

    config = BuildConfig(generator=str(tiny_generator_dir), discriminator=str(tiny_discriminator_dir),
                         real_data=str(tiny_real_data_dir), pairs=2, per_identity=1, steps=2, mixing="condition",
                         out=str(tmp_path / "o"))
    run_build(config, progress=False)
    mix = datasets.load_dataset(str(tmp_path / "o"), "mix", split="train")
    assert set(mix["mixing"]) == {"condition"}
    assert BuildConfig(mixing="condition").fingerprint() != BuildConfig().fingerprint()
