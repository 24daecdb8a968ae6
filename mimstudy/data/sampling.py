"""Batches of a dataset (in memory or read by a DataLoader), seeded per epoch and split across data-parallel processes.

One epoch's order is ``torch.randperm(n)`` from a generator seeded with the epoch's seed. It is cut
into global batches of ``batch_size`` images; with ``world_size`` processes, rank ``r`` takes rows
``[r * b, (r + 1) * b)`` of each global batch (``b = batch_size // world_size``). The global batch
therefore does not depend on the number of processes: one process and N processes see the same
images at every step, and their (averaged) gradients agree up to floating-point rounding.
"""

from __future__ import annotations

from typing import Iterator

import torch
from torch.utils.data import TensorDataset


class ShardedIndices:
    """This process's indices of each global batch of a dataset of ``n`` items, seeded per epoch.

    Iterating gives one list of indices per step, so it serves as a ``DataLoader``'s
    ``batch_sampler`` for any map-style dataset (e.g. an ``ImageFolder`` read by workers): like a
    ``DistributedSampler`` with ``shuffle=..., drop_last=...``, but cutting every global batch
    instead of the whole epoch, so the images of each step do not depend on the number of processes.
    Training uses ``shuffle=True, drop_last=True``; evaluation ``shuffle=False, drop_last=False`` on
    one process (the last batch may then be short). ``max_batches`` keeps only the first steps.
    """

    def __init__(self, n: int, batch_size: int, seed: int = 0, rank: int = 0, world_size: int = 1,
                 shuffle: bool = True, drop_last: bool = True, max_batches: int | None = None):
        if batch_size % world_size:
            raise ValueError(
                f"batch_size={batch_size} is the global batch and must be divisible by the number of "
                f"processes ({world_size}); choose a multiple of {world_size}"
            )
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must lie in [0, {world_size}), got {rank}")
        if world_size > 1 and not drop_last:
            raise ValueError("a short last batch cannot be split evenly; use drop_last=True with several processes")
        self.n = n
        self.batch_size, self.seed, self.rank, self.world_size = batch_size, seed, rank, world_size
        self.shuffle, self.drop_last, self.max_batches = shuffle, drop_last, max_batches
        self.per_rank = batch_size // world_size

    def __len__(self) -> int:
        steps = self.n // self.batch_size if self.drop_last else -(-self.n // self.batch_size)
        return steps if self.max_batches is None else min(steps, self.max_batches)

    def order(self) -> torch.Tensor:
        """The epoch's order of all indices (the same on every process)."""
        if not self.shuffle:
            return torch.arange(self.n)
        return torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed))

    def indices(self) -> Iterator[torch.Tensor]:
        """This process's indices of each global batch."""
        order = self.order()
        for step in range(len(self)):
            global_batch = order[step * self.batch_size:(step + 1) * self.batch_size]
            yield global_batch[self.rank * self.per_rank:(self.rank + 1) * self.per_rank] \
                if self.world_size > 1 else global_batch

    def __iter__(self) -> Iterator[list[int]]:
        for idx in self.indices():
            yield idx.tolist()


class ShardedBatches(ShardedIndices):
    """This process's part of each global batch of an in-memory ``dataset``, as ``(images, labels)`` tensors.

    The batches of :class:`ShardedIndices`, read by indexing the dataset's tensors directly (no
    per-sample collation).
    """

    def __init__(self, dataset: TensorDataset, batch_size: int, seed: int = 0, rank: int = 0,
                 world_size: int = 1, shuffle: bool = True, drop_last: bool = True, max_batches: int | None = None):
        super().__init__(len(dataset.tensors[0]), batch_size, seed, rank, world_size, shuffle, drop_last, max_batches)
        self.tensors = dataset.tensors

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        for idx in self.indices():
            yield tuple(t[idx] for t in self.tensors)
