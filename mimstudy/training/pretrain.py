"""Pre-train one backbone with one objective: epochs, checkpoints every epoch, exact resume.

All randomness of an epoch (data order, masks, drop-path) is seeded from ``(seed, epoch)``, so a
run resumed from the checkpoint of epoch ``k`` reaches bitwise the same weights on the CPU as an
uninterrupted run.

The same function runs on one process or, launched by torchrun (see :mod:`mimstudy.study.train`), on
several: the objective is wrapped in ``DistributedDataParallel`` and each process takes its equal
share of every global batch of ``batch_size`` images (:class:`mimstudy.data.sampling.ShardedBatches`).
The global batches, their masks (:func:`mimstudy.distributed.sample_rows`) and the averaged
gradients are those of one process, so N processes reach the weights of one up to floating-point
rounding. Every process evaluates the whole validation set (identical metrics everywhere); only
rank 0 writes files.

The data come from ``config.dataset``: Fashion-MNIST tensors in memory (the study), or an
ImageNet-style folder (the ``paper`` preset) read by a ``DataLoader`` whose ``batch_sampler`` is a
:class:`mimstudy.data.sampling.ShardedIndices`: the same seeded global batches, each sample loaded and
augmented (:func:`mimstudy.data.imagenet.train_transform`) by ``num_workers`` workers seeded from
``(seed, epoch, rank)``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
import torch.nn as nn
import xarray as xr
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from mimstudy import distributed
from mimstudy.models.checkpoints.state import CheckpointError, load_checkpoint, load_pretrain_checkpoint, save_checkpoint
from mimstudy.models.checkpoints.weights import save_weights, weights_file
from mimstudy.config import ConfigError, PretrainConfig
from mimstudy.data import MEMORY_DATASETS, memory_splits
from mimstudy.data.fashion_mnist import DatasetError
from mimstudy.training.engine import evaluate, train_one_epoch
from mimstudy.models.backbones import create_backbone
from mimstudy.objectives.factory import CHECKPOINT_NAME, NUM_CLASSES, build_objective
from mimstudy.training.optim import build_optimizer
from mimstudy.data.sampling import ShardedBatches, ShardedIndices

# Parameters that may differ between a checkpoint and the run resuming it.
RESUME_NEUTRAL = {"resume", "results_dir", "runs_dir", "device", "keep_epochs"}


def run_dir(config: PretrainConfig) -> Path:
    """Folder of the run's checkpoints: ``<runs_dir>/<preset>/<run_id>``."""
    return Path(config.runs_dir) / config.preset / config.run_id


def checkpoint_path(config: PretrainConfig) -> Path:
    return run_dir(config) / CHECKPOINT_NAME


def weights_path(config) -> Path:
    """The run's committed final weights: ``<results_dir>/<preset>/weights/<run_id>.safetensors``.

    ``config``: any run config naming the run (``results_dir``, ``preset``, ``run_id``)."""
    return weights_file(config.results_dir, config.preset, config.run_id)


def epoch_checkpoint_path(config: PretrainConfig, epoch: int) -> Path:
    """The backbone kept after ``epoch`` (1-based) when ``keep_epochs`` names it."""
    return run_dir(config) / f"epoch_{epoch}.pt"


def epoch_seed(seed: int, epoch: int) -> int:
    return seed * 100_003 + epoch


@dataclass
class TrainingData:
    """A run's data: ``train(epoch, max_batches)`` gives this process's batches of an epoch."""

    train_len: int
    num_classes: int
    train: Callable[[int, int | None], Iterable]
    val: Iterable | None


def objective_crops(config: PretrainConfig) -> bool:
    """Whether the objective draws its own random crops and flips on the batch (MoCo, DeiT augmentation)."""
    return config.objective == "moco" or (config.objective in ("supervised", "finetune") and config.augment)


def training_data(config: PretrainConfig, rank: int, world: int, device: torch.device,
                  max_val_batches: int | None = None) -> TrainingData:
    """The data of ``config.dataset``, sharded for process ``rank`` of ``world``."""
    if config.dataset in MEMORY_DATASETS:
        splits = memory_splits(config.dataset, config.train_size, config.val_size, test_size=None, seed=config.seed)

        def train(epoch: int, max_batches: int | None) -> ShardedBatches:
            return ShardedBatches(splits.train, config.batch_size, seed=epoch_seed(config.seed, epoch),
                                  rank=rank, world_size=world, max_batches=max_batches)

        val = ShardedBatches(splits.val, config.batch_size, shuffle=False, drop_last=False,
                             max_batches=max_val_batches) if len(splits.val) else None
        return TrainingData(len(splits.train), NUM_CLASSES, train, val)

    from mimstudy.data.imagenet import folder_splits, train_transform

    transform = train_transform(config.img_size, random_crop=not objective_crops(config),
                                scale=(config.crop_scale_min, 1.0))
    splits = folder_splits(config.data_dir, transform, config.img_size, config.train_size, config.val_size,
                           seed=config.seed)
    if len(splits.train) < config.batch_size:
        raise DatasetError(f"{config.data_dir}/train holds {len(splits.train)} images, fewer than one global "
                           f"batch ({config.batch_size})")

    def loader(dataset, batches: ShardedIndices, seed: int) -> DataLoader:
        # the explicit generator seeds the workers (and leaves torch's global generator alone)
        return DataLoader(dataset, batch_sampler=batches, num_workers=config.num_workers,
                          pin_memory=device.type == "cuda", generator=torch.Generator().manual_seed(seed))

    def train(epoch: int, max_batches: int | None) -> DataLoader:
        seed = epoch_seed(config.seed, epoch)
        batches = ShardedIndices(len(splits.train), config.batch_size, seed=seed, rank=rank, world_size=world,
                                 max_batches=max_batches)
        return loader(splits.train, batches, seed * 1_000 + rank)

    # every process evaluates the whole validation set, in batches of its share of a global batch
    val = loader(splits.val, ShardedIndices(len(splits.val), config.batch_size // world, shuffle=False,
                                            drop_last=False, max_batches=max_val_batches), config.seed) \
        if len(splits.val) else None
    return TrainingData(len(splits.train), len(splits.classes), train, val)


@dataclass
class PretrainResult:
    objective: nn.Module
    history: list[dict[str, float]]
    checkpoint: Path
    weights: Path | None = None  # the final weights (None: the run stopped before its end)
    weights_sha256: str = ""

    def curves(self, config: PretrainConfig) -> xr.Dataset:
        """:func:`history_dataset`, naming the final weights and their SHA-256 in its attributes."""
        ds = history_dataset(self.history, config)
        if self.weights is not None:
            ds.attrs.update(weights_file=self.weights.as_posix(), weights_sha256=self.weights_sha256)
        return ds


def stale_checkpoint_fields(config: PretrainConfig, state: dict) -> list[str]:
    """Parameters in which a checkpoint's run differs from ``config`` (empty: it can resume)."""
    return config.differences(state.get("config", {}), ignore=RESUME_NEUTRAL)


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
    cap = config.max_steps or None  # a dry run also evaluates only this many validation batches
    data = training_data(config, rank, world, device, max_val_batches=cap)
    objective = build_objective(config, num_classes=data.num_classes).to(device)
    steps_per_epoch = data.train_len // config.batch_size
    optimizer, scheduler = build_optimizer(
        objective, config.lr, config.weight_decay, total_steps=steps_per_epoch * config.epochs,
        warmup_steps=round(steps_per_epoch * config.warmup_epochs), min_lr=config.min_lr,
        layer_decay=config.layer_decay if config.layer_decay < 1.0 else None,
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
    # an image-folder run's classifier has its folder's classes (Fashion-MNIST checkpoints stay as they were)
    classes = {} if config.dataset in MEMORY_DATASETS else {"num_classes": data.num_classes}

    steps_done = start_epoch * steps_per_epoch
    for epoch in range(start_epoch, config.epochs):
        if stop_after_epoch is not None and epoch >= stop_after_epoch:
            break
        if cap is not None and steps_done >= cap:
            break  # max_steps: the lr schedule stays that of the whole run
        torch.manual_seed(epoch_seed(config.seed, epoch))
        batches = data.train(epoch, None if cap is None else cap - steps_done)
        steps_done += len(batches)
        record = {"epoch": epoch + 1}
        record.update(train_one_epoch(model, batches, optimizer, scheduler, epoch, device,
                                      config.grad_clip, config.bf16, progress and rank == 0,
                                      total_steps=steps_per_epoch * config.epochs))
        if data.val is not None:
            record.update(evaluate(objective, data.val, device, seed=config.seed, bf16=config.bf16))
        history.append(record)
        if distributed.is_main_process():
            if epoch + 1 in kept:
                save_checkpoint({"config": config.to_dict(), "epoch": epoch + 1, **classes,
                                 "backbone": objective.backbone.state_dict()},
                                epoch_checkpoint_path(config, epoch + 1))
            save_checkpoint(
                {
                    "config": config.to_dict(),
                    "epoch": epoch + 1,
                    **classes,
                    "model": objective.state_dict(),
                    "backbone": objective.backbone.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "history": history,
                },
                checkpoint_path(config),
            )
        distributed.barrier()  # the checkpoint of this epoch is complete before any process goes on
    if stop_after_epoch is not None and len(history) < config.epochs and not cap:
        return PretrainResult(objective, history, checkpoint_path(config))  # not the run's end: no final weights
    digest = ""
    if distributed.is_main_process():
        info = {"arch": config.arch, "img_size": config.img_size, "run_id": config.run_id,
                "num_classes": int(data.num_classes),
                # not where it ran or was written: the same weights are the same bytes wherever made
                "parameters": {k: v for k, v in config.to_dict().items() if k not in RESUME_NEUTRAL}}
        digest = save_weights(objective.backbone.state_dict(), weights_path(config), info)
    distributed.barrier()
    return PretrainResult(objective, history, checkpoint_path(config), weights_path(config), digest)


def kept_snapshots(config) -> list[tuple[int, Path]]:
    """``(epoch, path)`` of every epoch backbone the run kept (``keep_epochs``), in epoch order.

    ``config``: any run config naming the run (``runs_dir``, ``preset``, ``run_id``).
    """
    found = [(int(p.stem.split("_", 1)[1]), p) for p in run_dir(config).glob("epoch_*.pt")
             if p.stem.split("_", 1)[1].isdigit()]
    return sorted(found)


def load_pretrained_backbone(path: str | Path) -> tuple[nn.Module, dict]:
    """The trained backbone of a pre-training checkpoint, in eval mode, and the run's config dict."""
    state = load_pretrain_checkpoint(path)
    config = state["config"]
    backbone = create_backbone(config["arch"], num_classes=state.get("num_classes", NUM_CLASSES),
                               img_size=config.get("img_size"))
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
