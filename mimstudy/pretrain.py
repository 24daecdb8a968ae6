"""Pre-train one backbone with one objective: epochs, checkpoints every epoch, exact resume.

All randomness of an epoch (data order, masks, drop-path) is seeded from ``(seed, epoch)``, so a
run resumed from the checkpoint of epoch ``k`` reaches bitwise the same weights on the CPU as an
uninterrupted run.

The same function runs on one process or, launched by torchrun (see :mod:`mimstudy.train`), on
several: the objective is wrapped in ``DistributedDataParallel`` and each process takes its equal
share of every global batch of ``batch_size`` images (:class:`mimstudy.sampling.ShardedBatches`).
The global batches, their masks (:func:`mimstudy.distributed.sample_rows`) and the averaged
gradients are those of one process, so N processes reach the weights of one up to floating-point
rounding. Every process evaluates the whole validation set (identical metrics everywhere); only
rank 0 writes files.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import xarray as xr
from torch.nn.parallel import DistributedDataParallel

from . import distributed
from .checkpointing import CheckpointError, load_checkpoint, save_checkpoint
from .config import ConfigError, PretrainConfig
from .data import IMAGE_SIZE, fashion_mnist
from .engine import evaluate, train_one_epoch
from .masking import MaskGenerator
from .models import create_backbone, patch_size_of
from .objectives import SimMIM, Supervised
from .optim import build_optimizer
from .sampling import ShardedBatches

NUM_CLASSES = 10
CHECKPOINT_NAME = "checkpoint.pt"
# Parameters that may differ between a checkpoint and the run resuming it.
RESUME_NEUTRAL = {"resume", "results_dir", "runs_dir", "device", "keep_epochs"}


def run_dir(config: PretrainConfig) -> Path:
    """Folder of the run's checkpoints: ``<runs_dir>/<preset>/<run_id>``."""
    return Path(config.runs_dir) / config.preset / config.run_id


def checkpoint_path(config: PretrainConfig) -> Path:
    return run_dir(config) / CHECKPOINT_NAME


def epoch_checkpoint_path(config: PretrainConfig, epoch: int) -> Path:
    """The backbone kept after ``epoch`` (1-based) when ``keep_epochs`` names it."""
    return run_dir(config) / f"epoch_{epoch}.pt"


def epoch_seed(seed: int, epoch: int) -> int:
    return seed * 100_003 + epoch


def build_objective(config: PretrainConfig) -> nn.Module:
    """The objective module (holding ``.backbone``) that ``config`` describes, freshly initialised."""
    torch.manual_seed(config.seed)
    if config.objective == "supervised":
        backbone = create_backbone(config.arch, num_classes=NUM_CLASSES)
        return Supervised(backbone, label_smoothing=config.label_smoothing)
    if config.objective == "simmim":
        backbone = create_backbone(config.arch, num_classes=NUM_CLASSES)
        generator = MaskGenerator(IMAGE_SIZE, config.mask_patch_size, patch_size_of(backbone), config.mask_ratio)
        return SimMIM(backbone, generator, in_chans=1)
    raise ConfigError(f"unknown objective {config.objective!r}")


@dataclass
class PretrainResult:
    objective: nn.Module
    history: list[dict[str, float]]
    checkpoint: Path


def _comparable(params: dict) -> dict:
    return {k: v for k, v in params.items() if k not in RESUME_NEUTRAL}


def stale_checkpoint_fields(config: PretrainConfig, state: dict) -> list[str]:
    """Parameters in which a checkpoint's run differs from ``config`` (empty: it can resume)."""
    saved, wanted = _comparable(state.get("config", {})), _comparable(config.to_dict())
    return sorted(k for k in set(saved) | set(wanted) if saved.get(k) != wanted.get(k))


def _resume_state(config: PretrainConfig) -> dict | None:
    path = checkpoint_path(config)
    if not (config.resume and path.exists()):
        return None
    state = load_checkpoint(path)
    changed = stale_checkpoint_fields(config, state)
    if changed:
        raise CheckpointError(
            f"{path} was written with different parameters ({changed}); delete {run_dir(config)} "
            "(or run with --force) to start over, or use another run_id"
        )
    return state


def pretrain(config: PretrainConfig, device: str | torch.device | None = None, progress: bool = True,
             stop_after_epoch: int | None = None) -> PretrainResult:
    """Train ``config.epochs`` epochs (resuming from the run's checkpoint when there is one).

    ``device`` overrides ``config.device``. Under torchrun (process group initialised by
    :func:`mimstudy.distributed.setup`) every process calls this with the same config.
    ``stop_after_epoch`` ends the call early after that many completed epochs (used to test
    resuming); the checkpoint then holds exactly the state an interrupted run would leave.
    """
    config.validate()
    rank, world = distributed.rank(), distributed.world_size()
    if config.batch_size % world:
        raise ConfigError(f"batch_size={config.batch_size} is the global batch; it must be divisible by the "
                          f"{world} processes (per-process batch = batch_size / processes)")
    device = distributed.resolve_device(config.device if device is None else device)
    splits = fashion_mnist(config.train_size, config.val_size, test_size=None, seed=config.seed)
    objective = build_objective(config).to(device)
    steps_per_epoch = len(splits.train) // config.batch_size
    optimizer, scheduler = build_optimizer(
        objective, config.lr, config.weight_decay, total_steps=steps_per_epoch * config.epochs,
        warmup_steps=round(steps_per_epoch * config.warmup_epochs), min_lr=config.min_lr,
    )
    history: list[dict[str, float]] = []
    start_epoch = 0
    state = _resume_state(config)
    if state is not None:
        objective.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        history, start_epoch = list(state["history"]), int(state["epoch"])
    model = objective
    if world > 1:
        # a 1x1 convolution's weight gradient may come with other strides along its size-1 dims:
        # the same memory layout, which DDP copies into its buckets; its warning says nothing more
        warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
        # static_graph: the objective uses the same parameters every step (SimMIM never the classifier head)
        model = DistributedDataParallel(objective, device_ids=[device.index] if device.type == "cuda" else None,
                                        static_graph=True)
    kept = set(config.kept_epochs())

    val_batches = ShardedBatches(splits.val, config.batch_size, shuffle=False, drop_last=False) if len(splits.val) else None
    for epoch in range(start_epoch, config.epochs):
        if stop_after_epoch is not None and epoch >= stop_after_epoch:
            break
        torch.manual_seed(epoch_seed(config.seed, epoch))
        batches = ShardedBatches(splits.train, config.batch_size, seed=epoch_seed(config.seed, epoch),
                                 rank=rank, world_size=world)
        record = {"epoch": epoch + 1}
        record.update(train_one_epoch(model, batches, optimizer, scheduler, epoch, device,
                                      config.grad_clip, config.bf16, progress and rank == 0))
        if val_batches is not None:
            record.update(evaluate(objective, val_batches, device, seed=config.seed, bf16=config.bf16))
        history.append(record)
        if distributed.is_main_process():
            if epoch + 1 in kept:
                save_checkpoint({"config": config.to_dict(), "epoch": epoch + 1,
                                 "backbone": objective.backbone.state_dict()},
                                epoch_checkpoint_path(config, epoch + 1))
            save_checkpoint(
                {
                    "config": config.to_dict(),
                    "epoch": epoch + 1,
                    "model": objective.state_dict(),
                    "backbone": objective.backbone.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "history": history,
                },
                checkpoint_path(config),
            )
        distributed.barrier()  # the checkpoint of this epoch is complete before any process goes on
    return PretrainResult(objective, history, checkpoint_path(config))


def load_pretrained_backbone(path: str | Path) -> tuple[nn.Module, dict]:
    """The trained backbone of a pre-training checkpoint, in eval mode, and the run's config dict."""
    state = load_checkpoint(path)
    if "backbone" not in state or "config" not in state:
        raise CheckpointError(f"{path} is not a mimstudy pre-training checkpoint (no 'backbone'/'config' entries)")
    config = state["config"]
    backbone = create_backbone(config["arch"], num_classes=NUM_CLASSES)
    backbone.load_state_dict(state["backbone"])
    return backbone.eval(), config


def history_dataset(history: list[dict[str, float]], config: PretrainConfig) -> xr.Dataset:
    """Training curves ``(epoch)`` with the run's identity (``model``, ``objective``, ``arch``) as coords."""
    names = sorted({k for record in history for k in record} - {"epoch"})
    epochs = np.array([record["epoch"] for record in history])
    data = {name: ("epoch", np.array([record.get(name, np.nan) for record in history], dtype=np.float64))
            for name in names}
    return xr.Dataset(data, coords={"epoch": epochs, **model_coords(config.to_dict())})


def model_coords(pretrain_params: dict) -> dict[str, str]:
    """Scalar coords naming a pre-trained model: its run id, objective and architecture."""
    return {"model": pretrain_params["run_id"], "objective": pretrain_params["objective"],
            "arch": pretrain_params["arch"]}
