"""Partial FC: a margin-softmax loss over a SAMPLED subset of class centres (An et al., "Killing Two Birds with
One Stone: Efficient and Robust Training of Face Recognition CNNs by Partial FC", CVPR 2022; insightface
``recognition/arcface_torch/partial_fc_v2.py``).

The full class-centre matrix ``W`` (``num_classes x dim``) is kept and trained, but every step computes logits
only for ``S = int(sample_rate * num_classes)`` of its rows: every class that has a sample in the batch (the
positives) plus uniformly drawn negatives. Labels are remapped into that subset, any margin of
:data:`~scoremix_ds.maths.margins.HEADS` is applied, and the loss is the cross-entropy over the sampled columns.
With ``sample_rate = 1`` nothing is sampled and the loss is the full head's loss.

Memory, fp32, ``dim = 512``, 2M classes (WebFace42M scale), per device:

* class centres ``W``: 2e6 x 512 x 4 B = 4.10e9 B (3.8 GiB); its gradient is dense (indexing a parameter
  back-propagates into a zero tensor of its shape), so with the gradient and SGD momentum 12.3e9 B (11.4 GiB).
  Sampling does not shrink this; sharding does (below): over 8 ranks 1.54e9 B (1.4 GiB) per device.
* logits (and the softmax / gradient tensors of the same shape): ``B x S x 4`` B. For a batch of 512, the full
  softmax is 512 x 2e6 x 4 B = 4.10e9 B per copy; at ``sample_rate = 0.1`` it is 0.41e9 B, and sharded over
  8 ranks (global batch 8 x 512 gathered, 250K local classes x 0.1) 4096 x 25,000 x 4 B = 0.41e9 B.

Sharding by class over ranks (``world_size > 1``; one process group, e.g. under accelerate / torchrun, with an
equal batch size on every rank) follows ``partial_fc_v2``:

1. rank ``r`` holds only the rows ``[start_r, start_r + n_r)`` of ``W`` (:func:`shard_range`: the first
   ``num_classes % world_size`` ranks get one class more) — this module is model-parallel, so it must NOT be
   wrapped in DDP; only the backbone is;
2. the embeddings and labels of all ranks are all-gathered, so every rank scores the whole global batch against
   its shard; a label outside the shard becomes ``-1`` (no target column on this rank, no margin);
3. each rank samples its own ``int(sample_rate * n_r)`` centres among its shard (positives first);
4. the softmax denominator spans all shards: the row maxima are all-reduced (MAX), then the sums of
   ``exp(logit - max)`` and the target logits (SUM), giving every rank the same global-batch mean loss;
5. backward needs no communication for ``W``: ``dL/dlogits = (softmax - onehot) / N_global`` on the local columns.
   The gathered embeddings' gradients are summed over ranks and each rank keeps its own rows, multiplied by
   ``world_size`` because DDP then AVERAGES the backbone's gradients over ranks.

With ``world_size = 1`` in a data-parallel run the module is an ordinary replicated head (DDP averages its
dense gradient); pass the real ``rank`` / ``world_size`` to shard it instead.

A state dict holds the local shard, the head's buffers (AdaFace statistics) and ``sample_step``; the draw of step
``t`` on rank ``r`` is seeded by ``(seed, t, r)``, so a resumed run draws exactly the classes the uninterrupted one
would have.

>>> pfc = PartialFC("arcface", num_classes=1000, dim=8, sample_rate=0.1)
>>> loss = pfc(torch.randn(4, 8), torch.tensor([1, 5, 5, 999]))
>>> pfc.last_logits_width
100
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from ..core.errors import ConfigError, DataError
from ..maths.margins import IGNORE, MarginHead, build_head

_SEED_STRIDE = 1_000_003  # mixes (seed, step, rank) into one 63-bit seed


def shard_range(num_classes: int, rank: int, world_size: int) -> tuple[int, int]:
    """``(first class, number of classes)`` held by ``rank``: ``C // W`` each, one more on the first ``C % W`` ranks."""
    count = num_classes // world_size + int(rank < num_classes % world_size)
    start = num_classes // world_size * rank + min(rank, num_classes % world_size)
    return start, count


def sample_classes(
    positive: torch.Tensor, num_local: int, num_sample: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Sorted indices of ``max(num_sample, len(positive))`` classes: all ``positive`` ones, the rest uniform.

    As ``partial_fc_v2.sample``: draw a uniform score per class, give the positives a score of 2 (above any draw)
    and keep the ``num_sample`` highest; when the positives alone exceed ``num_sample``, keep just them.
    """
    positive = torch.unique(positive, sorted=True)
    if num_sample <= positive.numel():
        return positive
    draw_on = generator.device if generator is not None else positive.device
    scores = torch.rand(num_local, generator=generator, device=draw_on).to(positive.device)
    scores[positive] = 2.0
    return torch.topk(scores, k=num_sample).indices.sort().values


def remap_labels(labels: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Each label's position in the sorted ``index`` (which must contain it); ``-1`` stays ``-1``."""
    return torch.where(labels >= 0, torch.searchsorted(index, labels.clamp_min(0)), IGNORE)  # no host sync


class PartialFC(nn.Module):
    """Margin-softmax loss over sampled class centres (see the module docstring for the maths and memory).

    Args:
        head: a name in :data:`~scoremix_ds.maths.margins.HEADS` (``"arcface"``, ``"cosface"``, ``"adaface"``).
        num_classes: total number of classes over all ranks.
        dim: embedding width.
        sample_rate: fraction of each shard's centres scored per step, in (0, 1].
        rank, world_size: this process's place in the process group (defaults: one process).
        seed: seeds the class draws (with the step and the rank).
        **head_kwargs: ``scale``, ``margin`` and the head's own extras (AdaFace ``h``, ``t_alpha``).

    ``forward(embeddings, labels)`` takes this rank's RAW embeddings ``(B, dim)`` and global labels ``(B,)`` and
    returns the scalar loss (mean over the global batch). ``last_logits_width`` is the number of columns the last
    call scored and ``last_index`` the (global, sorted) classes it sampled (``None`` when ``sample_rate = 1``).
    """

    def __init__(
        self,
        head: str,
        num_classes: int,
        dim: int,
        sample_rate: float = 1.0,
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
        **head_kwargs,
    ) -> None:
        super().__init__()
        if not 0.0 < sample_rate <= 1.0:
            raise ConfigError(f"sample_rate must be in (0, 1], got {sample_rate}", hint="check `sample_rate`",
                              field="sample_rate")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ConfigError(f"rank {rank} is not in a world of {world_size}", hint="check the launcher")
        if num_classes < world_size:
            raise ConfigError(
                f"{num_classes} classes cannot be sharded over {world_size} ranks", hint="use fewer processes"
            )
        self.num_classes = num_classes
        self.dim = dim
        self.sample_rate = sample_rate
        self.rank = rank
        self.world_size = world_size
        self.seed = seed
        self.class_start, self.num_local = shard_range(num_classes, rank, world_size)
        self.num_sample = int(sample_rate * self.num_local)
        self.head: MarginHead = build_head(head, self.num_local, dim, **head_kwargs)
        self.register_buffer("sample_step", torch.zeros((), dtype=torch.long))
        self.last_logits_width = 0
        self.last_index: torch.Tensor | None = None

    @property
    def weight(self) -> nn.Parameter:
        """This rank's class centres ``(num_local, dim)``."""
        return self.head.weight

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        logits, local_labels = self.logits(embeddings, labels)
        if self.world_size == 1:
            return F.cross_entropy(logits, local_labels)
        return _ShardedCrossEntropy.apply(logits, local_labels)

    def logits(self, embeddings: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(logits over this rank's sampled centres, labels into those columns or -1)`` for the global batch."""
        labels = labels.view(-1).long()
        if embeddings.dim() != 2 or embeddings.shape[1] != self.dim or embeddings.shape[0] != labels.shape[0]:
            raise DataError(
                f"PartialFC takes (B, {self.dim}) embeddings and (B,) labels, got {tuple(embeddings.shape)} and "
                f"{tuple(labels.shape)}",
                hint="check `embedding_dim`", field="embedding_dim",
            )
        # checked where it is free (CPU); on an accelerator the loader's labels are in range by construction, and
        # reading a device flag here would stall every step on a host sync
        if labels.device.type == "cpu" and labels.numel() and not bool(((labels >= 0) & (labels < self.num_classes)).all()):
            raise DataError(
                f"labels must be in [0, {self.num_classes}), got [{int(labels.min())}, {int(labels.max())}]",
                hint="check the label column / the number of classes",
            )
        if self.world_size > 1:
            embeddings, labels = _all_gather(embeddings, labels, self.world_size)
        local = labels - self.class_start
        local = torch.where((local < 0) | (local >= self.num_local), IGNORE, local)  # masked assignment would sync

        weight = self.weight
        self.last_index = None
        if self.sample_rate < 1.0:
            index = sample_classes(local[local >= 0], self.num_local, self.num_sample, self._generator())
            self.last_index = index + self.class_start
            weight = weight[index]
            local = remap_labels(local, index)
            if self.training:
                self.sample_step += 1
        cos = self.head.cosine(embeddings, weight)
        self.last_logits_width = cos.shape[1]
        return self.head.margin_logits(cos, local, embeddings.detach().norm(dim=1)), local

    def _generator(self) -> torch.Generator:
        device = self.weight.device
        generator = torch.Generator(device=device)
        mixed = ((self.seed * _SEED_STRIDE + int(self.sample_step)) * _SEED_STRIDE + self.rank) % (2**63 - 1)
        return generator.manual_seed(mixed)


def _all_gather(
    embeddings: torch.Tensor, labels: torch.Tensor, world_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    gathered = [torch.empty_like(labels) for _ in range(world_size)]
    dist.all_gather(gathered, labels.contiguous())
    return _GatherRows.apply(embeddings), torch.cat(gathered)


class _GatherRows(torch.autograd.Function):
    """All-gather of equal-sized row blocks; backward sums the gradients of all ranks and keeps this rank's block,
    times ``world_size`` (DDP averages the backbone's gradients over ranks; see step 5 of the module docstring)."""

    @staticmethod
    def forward(ctx, local: torch.Tensor) -> torch.Tensor:
        world_size = dist.get_world_size()
        blocks = [torch.empty_like(local) for _ in range(world_size)]
        dist.all_gather(blocks, local.contiguous())
        ctx.rows = local.shape[0]
        return torch.cat(blocks)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        rank, world_size = dist.get_rank(), dist.get_world_size()
        return grad[rank * ctx.rows : (rank + 1) * ctx.rows] * world_size


class _ShardedCrossEntropy(torch.autograd.Function):
    """Mean cross-entropy whose classes are split over ranks (labels -1 where the target is on another rank)::

        loss = mean_i [ log sum_ranks sum_j exp(z_ij - M_i) + M_i - z_{i, y_i} ],   M_i = max over all ranks
    """

    @staticmethod
    def forward(ctx, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        dtype = logits.dtype
        logits = logits.float()
        row_max = logits.max(dim=1, keepdim=True).values
        dist.all_reduce(row_max, op=dist.ReduceOp.MAX)
        probs = (logits - row_max).exp()
        denom = probs.sum(dim=1, keepdim=True)
        dist.all_reduce(denom, op=dist.ReduceOp.SUM)
        probs /= denom
        valid = (labels >= 0).view(-1, 1)
        target = torch.where(valid, logits.gather(1, labels.clamp_min(0).view(-1, 1)), 0.0)  # no host sync
        dist.all_reduce(target, op=dist.ReduceOp.SUM)
        ctx.save_for_backward(probs, labels)
        ctx.dtype = dtype
        return (denom.log() + row_max - target).mean()

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        probs, labels = ctx.saved_tensors
        minus_one = -(labels >= 0).to(probs.dtype).view(-1, 1)  # -1 at each row's target column here, else -0
        out = probs.clone().scatter_add_(1, labels.clamp_min(0).view(-1, 1), minus_one)
        return (out * (grad / probs.shape[0])).to(ctx.dtype), None
