"""``--compile`` compiles once (issue 26.6): a build's forwards of every batch size (mix batches of 3B rows, repro
of 2B, short last batches, a batch of one row) run one compiled graph per program, and give the rows the
uncompiled build gives.

Compilations are counted with a counting torch.compile backend (``scoremix_ds.sampling.compiled.BACKEND``
replaced; dynamo's guards and recompiles are the backend's inputs, whatever backend then generates code). That
backend runs the captured ATen graph as it is, so the rows are bit-identical to the eager build here; inductor's
generated kernels may round differently (``tests/test_build_kernels.py`` checks them up to 2 grey levels).
"""

from __future__ import annotations

import datasets
import pytest
import torch
from torch.overrides import TorchFunctionMode

import scoremix_ds.sampling.compiled as compiled
from scoremix_ds.sampling.condition_mix import STATE, class_tables, mixed_class_embeddings
from scoremix_ds.synthesis.config import BuildConfig
from scoremix_ds.synthesis.runner import run_build

from conftest import tiny_unet

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def graphs(monkeypatch) -> list[int]:
    """Replace the compile backend by one that counts the graphs dynamo hands it (and runs them as captured)."""
    import torch._dynamo

    torch._dynamo.reset()
    count = [0]

    def counting(gm, example_inputs):
        count[0] += 1
        return gm.forward

    monkeypatch.setattr(compiled, "BACKEND", counting)
    yield count
    torch._dynamo.reset()


def test_a_compiled_denoiser_compiles_once_for_every_batch_size(graphs):
    eager, net = tiny_unet(), tiny_unet()
    compiled.compile_denoiser(net)
    for rows in (12, 8, 6, 3, 2, 12):  # (a one-row forward compiles once more: dynamo specialises size 1)
        x = torch.randn(rows, 1, 8, 8, generator=torch.Generator().manual_seed(rows))
        t, y = torch.full((rows,), 500), torch.arange(rows) % 5
        with torch.no_grad():
            assert torch.equal(net(x, t, class_labels=y).sample, eager(x, t, class_labels=y).sample)
    assert graphs[0] == 1
    assert set(net.state_dict()) == set(eager.state_dict())  # compiled in place: the same keys, the same digest


def _rows(folder, config: str) -> list:
    return datasets.load_dataset(str(folder), config, split="train").to_list()


@pytest.mark.parametrize("mixing, programs", [("score", 1), ("condition", 2)])
def test_a_compiled_build_compiles_once_and_gives_the_same_rows(graphs, tiny_generator_dir, tiny_discriminator_dir,
                                                                 tiny_real_data_dir, tmp_path, mixing, programs):
    """5 identities in batches of 2: mix forwards of 3x2 and 3x1 rows (two parents + null under guidance, or one
    mixed condition + null), repro forwards of 2x2, 2x1 rows. Score mixing: one graph for all; condition mixing:
    one for the mixed forwards, one for the plain (repro) ones, whatever their size."""
    base = dict(generator=str(tiny_generator_dir), discriminator=str(tiny_discriminator_dir),
                real_data=str(tiny_real_data_dir), pairs=5, per_identity=1, steps=2, batch_size=2, mixing=mixing,
                device="cpu", guidance=3.0)
    run_build(BuildConfig(**base, compile=True, out=str(tmp_path / "c")), progress=False)
    assert graphs[0] == programs
    run_build(BuildConfig(**base, out=str(tmp_path / "e")), progress=False)
    for config in ("mix", "repro"):
        assert _rows(tmp_path / "c", config) == _rows(tmp_path / "e", config)


class _CountMoves(TorchFunctionMode):
    """Counts the copies (``Tensor.to`` / ``cuda`` / ``cpu`` / ``copy_`` returning a new tensor) of the watched
    tensors: a no-op ``.to`` (already on that device, of that dtype) returns the tensor itself and is not a copy."""

    def __init__(self, watched):
        super().__init__()
        self.watched, self.count = watched, 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        moves = (torch.Tensor.to, torch.Tensor.cuda, torch.Tensor.cpu, torch.Tensor.copy_)
        result = func(*args, **(kwargs or {}))
        watched = [a for a in args if any(a is w for w in self.watched)]
        if func in moves and watched and (func is torch.Tensor.copy_ or result is not watched[0]):
            self.count += 1
        return result


def test_condition_mixing_moves_its_tensors_to_the_device_once_per_batch(tiny_generator):
    """The hook reads tensors put on the table's device when the block starts, not copied at every forward."""
    table = class_tables(tiny_generator.denoiser, "unet")[0]
    classes, weights = torch.tensor([[0, 1], [2, 3]]), torch.tensor([[0.5, 0.5], [0.25, 0.75]])
    with mixed_class_embeddings(tiny_generator.denoiser, "unet", classes, weights):
        state = getattr(table, STATE)[0]
        held = (state.classes, state.weights)
        assert held[0].device == table.weight.device and torch.equal(held[0], classes)
        with _CountMoves(held) as moves:
            for _ in range(3):
                tiny_generator.predict(torch.zeros(4, 1, 8, 8), torch.tensor(10), torch.tensor([0, 1, 4, 4]))
                assert (state.classes, state.weights) == held  # the same tensors, untouched by the forwards
        assert moves.count == 0  # a hook that copied them to the device at every forward would count here
    assert not getattr(table, STATE, None) and not table._forward_hooks  # an uncompiled model: hooks removed
