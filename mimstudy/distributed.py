"""Distributed data parallel straight from torchrun's environment variables.

    torchrun --standalone --nproc_per_node=4 -m mimstudy.study.train --preset quick --run-id vit_simmim

torchrun sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` (and ``MASTER_ADDR``/``MASTER_PORT``);
:func:`setup` joins that process group (NCCL on CUDA, gloo on the CPU) and returns the process's
device. Without those variables nothing is initialised and every helper answers as the only
process of a world of one, so the same code runs unchanged on one process.

A global batch is split across the processes (:class:`mimstudy.data.sampling.ShardedBatches`); per-sample
randomness such as SimMIM's masks is drawn for the whole global batch and sliced
(:func:`sample_rows`), so 1 and N processes see the same images with the same masks at every step.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Callable, Iterator, TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")

# (first row of this process, rows of the global batch) while a sharded global batch is processed
_GLOBAL_BATCH: ContextVar[tuple[int, int] | None] = ContextVar("mimstudy_global_batch", default=None)


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def resolve_device(name: str | torch.device = "auto", local_rank: int | None = None) -> torch.device:
    """``auto`` -> this process's GPU when CUDA is available, else the CPU; ``cuda`` -> ``cuda:<LOCAL_RANK>``."""
    name = str(name)
    if local_rank is None:
        local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        return torch.device("cuda", local_rank)
    return torch.device(name)


def setup(device: str | torch.device = "auto") -> torch.device:
    """Join torchrun's process group when launched by torchrun; return this process's device."""
    device = resolve_device(device)
    if launched_by_torchrun() and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
            dist.init_process_group(backend="nccl", device_id=device)
        else:
            dist.init_process_group(backend="gloo")
    return device


def cleanup() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def is_main_process() -> bool:
    """Rank 0 (or the only process): the one that writes checkpoints, results and logs."""
    return rank() == 0


def barrier() -> None:
    if world_size() > 1:
        dist.barrier()


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over all processes, in place (a no-op on one process)."""
    if world_size() > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


@contextmanager
def global_batch(start: int, total: int) -> Iterator[None]:
    """Within this block, this process holds rows ``[start, start + n)`` of a global batch of ``total``."""
    token = _GLOBAL_BATCH.set((start, total))
    try:
        yield
    finally:
        _GLOBAL_BATCH.reset(token)


def sample_rows(sample: Callable[[int], T], rows: int) -> T:
    """``sample(rows)``; inside :func:`global_batch`, this process's rows of ``sample(total)``.

    Every process draws the whole global batch from the same random stream, so the rows a sample
    gets do not depend on how many processes share the batch, and the random stream advances
    exactly as on a single process.
    """
    shard = _GLOBAL_BATCH.get()
    if shard is None:
        return sample(rows)
    start, total = shard
    if start + rows > total:
        raise ValueError(f"rows [{start}, {start + rows}) lie outside the global batch of {total}")
    return sample(total)[start:start + rows]
