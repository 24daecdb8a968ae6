"""A task's split as a map-style ``Dataset``: items read from disk on demand (streamed) or all held in memory.

Every benchmark layout reads its files through a subclass of :class:`Split`: ``item(i)`` reads the
``i``-th ``(image [C, S, S], target)`` pair from disk, ``target(i)`` its target alone (from the
annotations, without decoding the image where the format allows). A split is then either

* **streamed** (``DownstreamConfig.stream``: the real benchmarks, COCO or iNat18 do not fit in
  memory): each item is read when asked for, by the ``DataLoader`` workers of the fine-tuning loop
  (``num_workers``) and of evaluation (:func:`batches`); or
* **in memory** (:meth:`Split.hold`: our small generated analogs): every item read once, stacked into
  ``images`` and ``targets`` tensors, and batches are slices of them.

Both give the same items: an in-memory split is the stack of the streamed one's.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset


class Split(Dataset):
    """Subclasses implement ``__len__``, ``item(i) -> (image, target)`` and may override ``target(i)``."""

    _memory: tuple[torch.Tensor, torch.Tensor] | None = None
    workers: int = 0  # DataLoader workers that read a streamed split (DownstreamConfig.num_workers)

    def item(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def target(self, i: int) -> torch.Tensor:
        return self.item(i)[1]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self._memory is not None:
            return self._memory[0][i], self._memory[1][i]
        return self.item(i)

    def hold(self) -> "Split":
        """Read every item once and keep them stacked in memory; returns ``self``."""
        if not len(self):
            raise ValueError(f"{type(self).__name__} has no items to hold")
        items = [self.item(i) for i in range(len(self))]
        self._memory = (torch.stack([image for image, _ in items]), torch.stack([target for _, target in items]))
        return self

    @property
    def in_memory(self) -> bool:
        return self._memory is not None

    @property
    def images(self) -> torch.Tensor:
        """``[N, C, S, S]`` of an in-memory split (a streamed split is read by :func:`batches`)."""
        if self._memory is None:
            raise RuntimeError(f"{type(self).__name__} is streamed from disk: iterate batches(split, ...)")
        return self._memory[0]

    @property
    def targets(self) -> torch.Tensor:
        """Every target stacked: an in-memory split's, or a streamed split's read one by one (annotations only)."""
        if self._memory is not None:
            return self._memory[1]
        return torch.stack([self.target(i) for i in range(len(self))])

    def each_target(self) -> Iterator[torch.Tensor]:
        """The targets one at a time (a streamed split's read from its annotations as they are asked for)."""
        if self._memory is not None:
            yield from self._memory[1]
        else:
            yield from (self.target(i) for i in range(len(self)))

    @property
    def channels(self) -> int:
        return int(self[0][0].shape[0])

    @property
    def size(self) -> int:
        return int(self[0][0].shape[-1])


def stream_or_hold(split: Split, config) -> Split:
    """``split`` streamed with ``config.num_workers`` workers when ``config.stream``, else held in memory."""
    split.workers = config.num_workers
    return split if config.stream else split.hold()


def batches(split: Split, batch_size: int, limit: int | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """``(images, targets)`` of the first ``limit`` items (all by default) in order, ``batch_size`` at a
    time: slices of an in-memory split, or read by the split's ``workers`` ``DataLoader`` workers."""
    n = len(split) if limit is None else min(limit, len(split))
    if split.in_memory:
        for i in range(0, n, batch_size):
            yield split.images[i:min(i + batch_size, n)], split.targets[i:min(i + batch_size, n)]
        return
    subset = split if n == len(split) else torch.utils.data.Subset(split, range(n))
    # its own generator: iterating a DataLoader draws a seed, which must not move the global random state
    yield from DataLoader(subset, batch_size=batch_size, shuffle=False, num_workers=split.workers,
                          generator=torch.Generator().manual_seed(0))


def example_images(split: Split, n: int) -> tuple[tuple[str, ...], np.ndarray]:
    """The first ``n`` images of ``split`` as a data variable for the book's examples (:func:`image_variable`)."""
    return image_variable(torch.cat([images for images, _ in batches(split, n, limit=n)]).numpy())


def image_variable(images: np.ndarray) -> tuple[tuple[str, ...], np.ndarray]:
    """``[N, C, H, W]`` images as ``(example, y, x)`` when grey, ``(example, y, x, channel)`` when in colour."""
    if images.shape[1] == 1:
        return ("example", "y", "x"), images[:, 0]
    return ("example", "y", "x", "channel"), images.transpose(0, 2, 3, 1)
