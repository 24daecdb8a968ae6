"""One epoch of training and one pass of evaluation, for any objective returning ``(loss, metrics)``."""

from __future__ import annotations

import contextlib
import math
import time
from collections import defaultdict

import torch
import torch.nn as nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


def autocast(enabled: bool, device: torch.device):
    """bf16 autocast on the given device type, or a no-op."""
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def train_one_epoch(
    objective: nn.Module,
    loader: DataLoader,
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
    on_step = getattr(objective, "on_step", None)
    if on_step is not None and total_steps is None:
        raise ValueError(f"{type(objective).__name__} follows the training progress: pass total_steps")
    objective.train()
    sums: dict[str, float] = defaultdict(float)
    seen = 0
    start = time.perf_counter()
    bar = tqdm(loader, desc=f"epoch {epoch}", leave=False, disable=not progress, mininterval=5)
    for i, (images, labels) in enumerate(bar):
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        if on_step is not None:
            on_step(epoch * len(loader) + i, total_steps)
        with autocast(bf16, device):
            loss, metrics = objective(images, labels)
        if not math.isfinite(loss.item()):
            raise TrainingDiverged(
                f"loss is {loss.item()} at epoch {epoch} after {seen} images; lower lr or enable "
                "grad_clip. The last good checkpoint is kept; resume continues from it."
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(objective.parameters(), grad_clip)
        optimizer.step()
        scheduler.step()
        batch = images.shape[0]
        seen += batch
        for name, value in metrics.items():
            sums[name] += float(value) * batch
        bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
    seconds = time.perf_counter() - start
    result = {f"train_{name}": total / seen for name, total in sums.items()}
    result.update(lr=optimizer.param_groups[0]["lr"], seconds=seconds, images_per_s=seen / seconds)
    return result


@torch.no_grad()
def evaluate(objective: nn.Module, loader: DataLoader, device: torch.device, seed: int, bf16: bool = False) -> dict[str, float]:
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
