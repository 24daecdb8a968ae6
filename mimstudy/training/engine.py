"""One epoch of training and one pass of evaluation, for any objective returning ``(loss, metrics)``.

Under data parallelism (``objective`` wrapped in ``DistributedDataParallel``, ``loader`` giving
this process's equal share of every global batch), each step's metrics are summed over the
processes, so every process returns the metrics of the global batches, as one process would.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Iterable

import torch
import torch.nn as nn
from tqdm import tqdm  # plain bars: notebooks run with progress off, terminals get text

from mimstudy import distributed


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


def autocast(enabled: bool, device: torch.device):
    """bf16 autocast on the given device type, or a no-op."""
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def train_one_epoch(
    objective: nn.Module,
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    epoch: int,
    device: torch.device,
    grad_clip: float = 0.0,
    bf16: bool = False,
    progress: bool = True,
    total_steps: int | None = None,
) -> dict[str, float]:
    """Train for one pass over ``loader``; returns image-weighted means of the objective's metrics.

    An objective with an ``on_step(step, total_steps)`` method (e.g. MoCo v3, whose momentum follows
    the training progress) is called before each forward with the run's optimizer step counted from
    0, ``epoch * len(loader) + i`` (every epoch has ``len(loader)`` steps: the training loader drops
    its last partial batch), and ``total_steps``, the run's number of steps, which it then requires.
    """
    on_step = getattr(getattr(objective, "module", objective), "on_step", None)  # DDP wraps it
    if on_step is not None and total_steps is None:
        raise ValueError(f"{type(objective).__name__} follows the training progress: pass total_steps")
    objective.train()
    rank, world = distributed.rank(), distributed.world_size()
    sums: dict[str, float] = defaultdict(float)
    seen = 0
    start = time.perf_counter()
    bar = tqdm(loader, desc=f"epoch {epoch}", leave=False, disable=not progress, mininterval=5)
    pending = None  # the previous step's metrics, still on the device

    def read(step_metrics: StepMetrics) -> None:  # the host waits here, one step late
        nonlocal seen
        mean_loss, step_sums, step_seen = step_metrics.read()
        if not math.isfinite(mean_loss):
            raise TrainingDiverged(
                f"loss is {mean_loss} at epoch {epoch} after {seen} images; lower lr or enable "
                "grad_clip. The last good checkpoint is kept; resume continues from it."
            )
        seen += step_seen
        for name, value in step_sums.items():
            sums[name] += value
        bar.set_postfix(loss=f"{mean_loss:.4f}", refresh=False)

    for i, (images, labels) in enumerate(bar):
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        if on_step is not None:
            on_step(epoch * len(loader) + i, total_steps)
        n = images.shape[0]
        with autocast(bf16, device), distributed.global_batch(rank * n, world * n):
            loss, metrics = objective(images, labels)
        step_metrics = StepMetrics.gather(loss, metrics, n, world)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(objective.parameters(), grad_clip)
        optimizer.step()
        scheduler.step()
        # Reading a step's loss makes the host wait for the device: read the previous step's, so on a
        # GPU this step's kernels are queued before the wait. A non-finite loss then stops the run one
        # step later; the checkpoint on disk (written only after a finished epoch) stays the last good one.
        if pending is not None:
            read(pending)
        pending = step_metrics
    if pending is not None:
        read(pending)
    seconds = time.perf_counter() - start
    result = {f"train_{name}": total / seen for name, total in sums.items()}
    result.update(lr=optimizer.param_groups[0]["lr"], seconds=seconds, images_per_s=seen / seconds)
    return result


@dataclass
class StepMetrics:
    """One step's loss and metrics, packed on the device (and summed over processes): read later."""

    packed: torch.Tensor  # [1 + metrics]: loss, metrics (one process); or sums x images, images (several)
    names: list[str]
    n: int
    world: int

    @classmethod
    def gather(cls, loss: torch.Tensor, metrics: dict, n: int, world: int) -> "StepMetrics":
        """Pack without a host sync; on several processes start the one small all-reduce of the step
        (every process then sees the same values, so a diverging loss stops all at the same step)."""
        names = list(metrics)
        values = torch.stack([loss.detach().float()] + [torch.as_tensor(metrics[k], device=loss.device).float()
                                                        for k in names])
        if world > 1:
            values = torch.cat([values.double() * n, torch.tensor([float(n)], dtype=torch.float64, device=loss.device)])
            values = distributed.all_reduce_sum(values)
        return cls(values, names, n, world)

    def read(self) -> tuple[float, dict[str, float], int]:
        """``(mean loss, {metric: value * images}, images)`` of the step's global batch: one device sync.

        On one process the sums are ``float(value) * n`` exactly; on several, the float64 products of
        each process summed over the processes.
        """
        if self.world == 1:
            mean_loss, *rest = self.packed.tolist()
            return mean_loss, {k: v * self.n for k, v in zip(self.names, rest)}, self.n
        total_loss, *rest, seen = self.packed.tolist()
        return total_loss / seen, dict(zip(self.names, rest)), int(seen)


@torch.no_grad()
def evaluate(objective: nn.Module, loader: Iterable[tuple[torch.Tensor, torch.Tensor]], device: torch.device, seed: int, bf16: bool = False) -> dict[str, float]:
    """Mean metrics of the objective over ``loader`` in eval mode, with its randomness fixed by ``seed``."""
    objective.eval()
    sums: dict[str, float] = defaultdict(float)
    seen = 0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for images, labels in loader:
            images, labels = images.to(device), labels.to(device)
            with autocast(bf16, device):
                _, metrics = objective(images, labels)
            for name, value in metrics.items():
                sums[name] += float(value) * images.shape[0]
            seen += images.shape[0]
    return {f"val_{name}": total / seen for name, total in sums.items()}
