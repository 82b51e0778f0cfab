"""Partial FC: sample_rate = 1 is the full head exactly; sampled steps keep every positive, score the sampled
width, and equal the full logits restricted to the sampled columns; the draws resume exactly; and the class
matrix sharded over a REAL 2-process gloo group gives the single-process loss and gradients."""

from __future__ import annotations

import os

import pytest
import torch
import torch.nn.functional as F

from scoremix_ds.core.errors import ConfigError, DataError
from scoremix_ds.maths.margins import build_head
from scoremix_ds.training.partial_fc import PartialFC, remap_labels, sample_classes, shard_range

HEAD_KWARGS = {"arcface": {"scale": 16.0, "margin": 0.5}, "cosface": {"scale": 16.0, "margin": 0.35},
               "adaface": {"scale": 16.0, "margin": 0.4, "h": 0.333, "t_alpha": 0.5}}


def pair(name: str, num_classes: int, dim: int, sample_rate: float, seed: int = 0):
    """A PartialFC and a full head of the same kind holding the same class centres."""
    torch.manual_seed(seed)
    pfc = PartialFC(name, num_classes, dim, sample_rate=sample_rate, seed=seed, **HEAD_KWARGS[name])
    full = build_head(name, num_classes, dim, **HEAD_KWARGS[name])
    with torch.no_grad():
        full.weight.copy_(pfc.weight)
    return pfc, full


@pytest.mark.parametrize("name", ["arcface", "cosface", "adaface"])
def test_sample_rate_one_equals_the_full_head_exactly(name):
    pfc, full = pair(name, num_classes=12, dim=6, sample_rate=1.0)
    emb, labels = torch.randn(5, 6) * 4, torch.tensor([3, 0, 11, 3, 7])
    emb_a, emb_b = emb.clone().requires_grad_(), emb.clone().requires_grad_()
    loss = pfc(emb_a, labels)
    reference = F.cross_entropy(full(emb_b, labels), labels)
    assert torch.equal(loss, reference)
    loss.backward()
    reference.backward()
    assert torch.equal(pfc.weight.grad, full.weight.grad) and torch.equal(emb_a.grad, emb_b.grad)
    assert pfc.last_logits_width == 12


@pytest.mark.parametrize("name", ["arcface", "cosface", "adaface"])
def test_sampled_loss_is_the_full_logits_restricted_to_the_sample(name):
    pfc, full = pair(name, num_classes=40, dim=8, sample_rate=0.25, seed=3)
    emb, labels = torch.randn(6, 8) * 3, torch.tensor([5, 17, 5, 39, 0, 22])
    logits, local = pfc.logits(emb, labels)
    index = pfc.last_index
    assert logits.shape == (6, 10) and pfc.last_logits_width == 10 == int(0.25 * 40)
    assert set(labels.tolist()) <= set(index.tolist())  # every positive is sampled
    assert torch.equal(index, index.sort().values) and index.unique().numel() == 10
    assert torch.equal(index[local], labels)  # labels remapped into the sampled columns
    full_logits = full(emb, labels)  # margins touch only the target column, so restriction commutes with them
    assert torch.allclose(logits, full_logits[:, index], atol=1e-5)


def test_more_positives_than_samples_keeps_exactly_the_positives():
    pfc = PartialFC("cosface", num_classes=100, dim=4, sample_rate=0.02)  # 2 columns, 3 distinct positives
    logits, local = pfc.logits(torch.randn(4, 4), torch.tensor([50, 7, 50, 93]))
    assert pfc.last_index.tolist() == [7, 50, 93] and logits.shape == (4, 3)
    assert local.tolist() == [1, 0, 1, 2]


def test_gradient_reaches_only_sampled_centres():
    pfc = PartialFC("arcface", num_classes=50, dim=4, sample_rate=0.1)
    pfc(torch.randn(3, 4), torch.tensor([1, 2, 3])).backward()
    touched = (pfc.weight.grad.abs().sum(dim=1) > 0).nonzero().view(-1)
    assert set(touched.tolist()) <= set(pfc.last_index.tolist()) and {1, 2, 3} <= set(touched.tolist())


def test_draws_are_seeded_by_step_and_resume_exactly():
    a = PartialFC("arcface", num_classes=200, dim=4, sample_rate=0.05, seed=7)
    emb, labels = torch.randn(2, 4), torch.tensor([0, 1])
    draws, states = [], []
    for _ in range(3):
        states.append({k: v.clone() for k, v in a.state_dict().items()})
        a.logits(emb, labels)
        draws.append(a.last_index.clone())
    assert not torch.equal(draws[0], draws[1])  # a new draw every training step
    b = PartialFC("arcface", num_classes=200, dim=4, sample_rate=0.05, seed=7)
    b.load_state_dict(states[1])
    b.logits(emb, labels)
    assert torch.equal(b.last_index, draws[1])
    a.eval()
    a.logits(emb, labels)
    first = a.last_index.clone()
    a.logits(emb, labels)
    assert torch.equal(a.last_index, first)  # eval calls do not advance the draw


def test_pure_helpers_by_hand():
    assert [shard_range(10, r, 3) for r in range(3)] == [(0, 4), (4, 3), (7, 3)]
    assert [shard_range(4, r, 4) for r in range(4)] == [(0, 1), (1, 1), (2, 1), (3, 1)]
    index = torch.tensor([2, 5, 9])
    assert remap_labels(torch.tensor([9, -1, 2, 5]), index).tolist() == [2, -1, 0, 1]
    got = sample_classes(torch.tensor([4, 4, 1]), 10, 5, torch.Generator().manual_seed(0))
    assert got.numel() == 5 and {1, 4} <= set(got.tolist()) and torch.equal(got, got.sort().values)


def test_bad_arguments():
    with pytest.raises(ConfigError, match="sample_rate"):
        PartialFC("arcface", 10, 4, sample_rate=0.0)
    with pytest.raises(ConfigError, match="rank"):
        PartialFC("arcface", 10, 4, rank=2, world_size=2)
    with pytest.raises(ConfigError, match="unknown head"):
        PartialFC("softmax", 10, 4)
    pfc = PartialFC("arcface", 10, 4)
    with pytest.raises(DataError, match="labels must be in"):
        pfc(torch.randn(2, 4), torch.tensor([0, 10]))
    with pytest.raises(DataError, match="embeddings"):
        pfc(torch.randn(2, 5), torch.tensor([0, 1]))


# --- sharded over a real 2-process gloo group ------------------------------------------------------------------------

NUM_CLASSES, DIM, LOCAL_BATCH, WORLD = 20, 5, 3, 2


def _inputs():
    g = torch.Generator().manual_seed(11)
    embeddings = torch.randn(WORLD * LOCAL_BATCH, DIM, generator=g) * 3
    labels = torch.tensor([0, 18, 4, 4, 15, 1])  # classes on both shards: rank 0 holds 0-9, rank 1 holds 10-19
    weight = torch.randn(NUM_CLASSES, DIM, generator=g)
    return embeddings, labels, weight


def _sharded_worker(rank: int, folder: str, head: str, sample_rate: float) -> None:
    import torch.distributed as dist
    from safetensors.torch import save_file

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{folder}/store", rank=rank, world_size=WORLD)
    try:
        embeddings, labels, weight = _inputs()
        pfc = PartialFC(head, NUM_CLASSES, DIM, sample_rate=sample_rate, rank=rank, world_size=WORLD, seed=5,
                        **HEAD_KWARGS[head])
        with torch.no_grad():
            pfc.weight.copy_(weight[pfc.class_start : pfc.class_start + pfc.num_local])
        rows = slice(rank * LOCAL_BATCH, (rank + 1) * LOCAL_BATCH)
        local = embeddings[rows].clone().requires_grad_()
        loss = pfc(local, labels[rows])
        loss.backward()
        index = pfc.last_index if pfc.last_index is not None else torch.arange(pfc.num_local) + pfc.class_start
        save_file({"loss": loss.detach().reshape(1), "weight_grad": pfc.weight.grad, "emb_grad": local.grad,
                   "index": index}, os.path.join(folder, f"rank{rank}.safetensors"))
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("head,sample_rate", [("arcface", 1.0), ("adaface", 0.4)])
def test_class_sharded_over_two_processes_matches_one_process(tmp_path, head, sample_rate):
    import torch.multiprocessing as mp
    from safetensors.torch import load_file

    mp.spawn(_sharded_worker, args=(str(tmp_path), head, sample_rate), nprocs=WORLD, join=True)
    results = [load_file(str(tmp_path / f"rank{rank}.safetensors")) for rank in range(WORLD)]
    union = torch.cat([r["index"] for r in results])  # the columns all ranks scored, sorted by construction
    assert union.numel() == (NUM_CLASSES if sample_rate == 1.0 else WORLD * int(sample_rate * NUM_CLASSES / WORLD))
    assert set(_inputs()[1].tolist()) <= set(union.tolist())

    embeddings, labels, weight = _inputs()
    full = build_head(head, NUM_CLASSES, DIM, **HEAD_KWARGS[head])
    with torch.no_grad():
        full.weight.copy_(weight)
    emb = embeddings.clone().requires_grad_()
    reference = F.cross_entropy(full(emb, labels)[:, union], torch.searchsorted(union, labels))
    reference.backward()
    for rank, got in enumerate(results):
        start, count = shard_range(NUM_CLASSES, rank, WORLD)
        assert got["loss"].item() == pytest.approx(reference.item(), rel=1e-5)
        assert torch.allclose(got["weight_grad"], full.weight.grad[start : start + count], atol=1e-5)
        # DDP averages the backbone's gradients over ranks, so each rank's embedding gradient is world_size times
        # its share of d(loss)/d(embeddings)
        own = emb.grad[rank * LOCAL_BATCH : (rank + 1) * LOCAL_BATCH]
        assert torch.allclose(got["emb_grad"], WORLD * own, atol=1e-5)
