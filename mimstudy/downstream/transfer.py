"""The downstream run: one transfer path for every task and both protocols (``finetune``: every weight
trained; ``frozen``: the head over a frozen backbone), backbone + task head trained by the pre-training engine.

For each seed of ``transfer_seeds``: the backbone of ``init_from`` (or random ``arch``), cut or re-ordered as
the config says (:mod:`mimstudy.downstream.backbone`), the task's head, AdamW with layer-wise lr decay
(:func:`~mimstudy.objectives.finetune.layer_decay_param_groups`, through
:func:`~mimstudy.training.optim.build_optimizer`) and a cosine schedule; epochs run by
:func:`~mimstudy.training.engine.train_one_epoch` (progress bar, NaN stop), a checkpoint written
atomically after every epoch to ``<runs_dir>/<preset>/downstream/<run_id>/seed<k>.pt``, from which an
interrupted run resumes (all randomness of an epoch is seeded from the seed and the epoch) unless its
pre-training checkpoint was re-made since (then it starts over). A task with a ``heldout`` hook
(detection: Figure 7's losses) has it called after every epoch on the test split, its values
recorded as ``heldout_<name>``. The
fine-tuned model is then scored on the test split, beside the task's trivial predictor.
"""

from __future__ import annotations

import time
import types
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import xarray as xr
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, TensorDataset

from mimstudy import distributed
from mimstudy.config import DownstreamConfig
from mimstudy.data.sampling import ShardedBatches, ShardedIndices
from mimstudy.distributed import resolve_device
from mimstudy.downstream.backbone import block_indices, build_backbone, flat_blocks, orderable_blocks
from mimstudy.downstream.inputs import RANDOM_INIT_DATASET, check_stats, dataset_stats, pretraining_dataset
from mimstudy.downstream.split import Split
from mimstudy.downstream.tasks import Task, get_task
from mimstudy.models.backbones import create_backbone, in_chans_of
from mimstudy.models.checkpoints.state import CheckpointError, load_checkpoint, load_pretrain_checkpoint, save_checkpoint
from mimstudy.models.checkpoints.weights import file_sha256, weights_file
from mimstudy.results import load_dataset, result_path
from mimstudy.training.engine import train_one_epoch
from mimstudy.training.optim import build_optimizer
from mimstudy.training.pretrain import epoch_seed

# config fields a fine-tuning checkpoint may differ in and still resume ("finetune_seeds": transfer_seeds'
# name in checkpoints written before the rename; stream and num_workers change how images are read, not which)
RESUME_NEUTRAL = {"resume", "results_dir", "runs_dir", "device", "transfer_seeds", "finetune_seeds", "num_examples",
                  "num_workers", "stream"}


def pretrained_weights(config: DownstreamConfig) -> Path | None:
    """The committed final weights of the pre-training run ``init_from`` (``None`` for random weights)."""
    if config.random_weights:
        return None
    return weights_file(config.results_dir, config.preset, config.init_from)


def run_folder(config: DownstreamConfig) -> Path:
    """Where a run's fine-tuning checkpoints live: ``<runs_dir>/<preset>/downstream/<run_id>``."""
    return Path(config.runs_dir) / config.preset / "downstream" / config.run_id


def seed_checkpoint(config: DownstreamConfig, seed: int, lr: float | None = None) -> Path:
    """``seed<k>.pt``; ``seed<k>-lr<lr>.pt`` for a fine-tuning that scores one rate of ``lr_grid``."""
    return run_folder(config) / (f"seed{seed}.pt" if lr is None else f"seed{seed}-lr{lr:g}.pt")


def freeze(backbone: nn.Module) -> nn.Module:
    """The ``frozen`` protocol: no gradients, and eval mode whatever the objective's mode (no drop
    path, no running statistics updated), so its features stay those of the checkpoint."""
    backbone.requires_grad_(False)
    backbone.train = types.MethodType(lambda self, mode=True: nn.Module.train(self, False), backbone)
    return backbone.train()


def scale_head_lr(optimizer: torch.optim.Optimizer, scheduler, backbone: nn.Module, scale: float) -> None:
    """Multiply the learning rate of the groups holding no backbone parameter (the task head) by
    ``scale``, through the schedule (its base rates and the current rate)."""
    if scale == 1.0:
        return
    inside = {id(p) for p in backbone.parameters()}
    for i, group in enumerate(optimizer.param_groups):
        if not any(id(p) in inside for p in group["params"]):
            group["lr"] *= scale
            group["initial_lr"] *= scale
            group["lr_scale"] = group.get("lr_scale", 1.0) * scale
            scheduler.base_lrs[i] *= scale


def source_stamp(weights: Path | None) -> str:
    """Identifies the pre-trained weights a fine-tuning started from (their SHA-256: a fresh clone's
    file, with a new modification time, is the same source)."""
    return "random" if weights is None else file_sha256(weights)


def backbone_geometry(config: DownstreamConfig, checkpoint: Path | None) -> tuple[int, int]:
    """The blocks ``block_order`` may name (every ViT block, a Swin's first stage) and the image channels
    the backbone takes (its ``in_chans``: 1 for the study's micro models, 3 for the paper's): the data
    are read with as many."""
    arch = config.arch
    if checkpoint is not None:
        arch = load_pretrain_checkpoint(checkpoint)["config"]["arch"]
    model = create_backbone(arch)
    return orderable_blocks(model), in_chans_of(model)


@dataclass
class SeedRun:
    objective: nn.Module
    history: list[dict]
    metrics: dict[str, float]
    predictions: np.ndarray


def transfer_seed(config: DownstreamConfig, task: Task, train, test, seed: int, order: list[int],
                  device: torch.device, progress: bool = True, random_dataset: str = RANDOM_INIT_DATASET,
                  lr: float | None = None) -> SeedRun:
    """Fine-tune one seed (resuming from its checkpoint) and score it on ``test``.

    Inputs are standardised with the per-channel pixel statistics of the backbone's pre-training
    dataset (from its checkpoint's config; ``random_dataset``'s for random weights:
    :mod:`mimstudy.downstream.inputs`). ``lr``: a rate of ``lr_grid`` being scored (its own
    checkpoint); ``None``: ``config.lr``. Under torchrun each process trains its share of every global
    batch (:func:`training_batches`) through ``DistributedDataParallel``; rank 0 writes the checkpoints;
    every process scores the test split (the same numbers)."""
    torch.manual_seed(seed * 7919 + 17)  # head and, for random weights, backbone initialisation
    frozen = config.protocol == "frozen"
    backbone, pretrained = build_backbone(config.arch, None if config.random_weights else str(pretrained_weights(config)),
                                          config.keep_blocks, order, 0.0 if frozen else config.drop_path)
    if frozen:
        freeze(backbone)
    source_dataset = pretraining_dataset(pretrained, random_dataset)
    stats = check_stats(dataset_stats(source_dataset), in_chans_of(backbone), source_dataset)
    objective = task.objective(backbone, train, config, stats).to(device)
    world = distributed.world_size()
    model = objective if world == 1 else DistributedDataParallel(
        objective, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=True)
    steps_per_epoch = len(train) // config.batch_size
    total = steps_per_epoch * config.epochs
    optimizer, scheduler = build_optimizer(objective, config.lr if lr is None else lr, config.weight_decay,
                                           total_steps=total, warmup_steps=round(steps_per_epoch * config.warmup_epochs),
                                           min_lr=config.min_lr, layer_decay=config.layer_decay)
    scale_head_lr(optimizer, scheduler, objective.backbone, config.head_lr_scale)
    path = seed_checkpoint(config, seed, lr)
    history, start = [], 0
    source = source_stamp(pretrained_weights(config))
    state = load_checkpoint(path) if config.resume and path.is_file() else None
    if state is not None and state.get("source") != source:
        state = None  # the pre-training was re-made since: fine-tune its new weights from the start
    if state is not None:
        changed = config.differences(state.get("config", {}), ignore=RESUME_NEUTRAL)
        if changed:
            raise CheckpointError(f"{path} was written with different parameters ({changed}); delete "
                                  f"{path.parent} (or run with --force) to start over")
        objective.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        history, start = list(state["history"]), int(state["epoch"])
    cap = config.max_steps or None  # a dry run's steps in all (the schedule stays the whole run's)
    done = 0 if cap is None else min(start * steps_per_epoch, cap)
    for epoch in range(start, config.epochs):
        if cap is not None and done >= cap:
            break
        torch.manual_seed(epoch_seed(seed, epoch))
        record = {"epoch": epoch + 1}
        batches = training_batches(config, train, epoch_seed(seed, epoch), device, None if cap is None else cap - done)
        done += len(batches)
        record.update(train_one_epoch(model, batches, optimizer, scheduler, epoch, device, config.grad_clip,
                                      config.bf16, progress and distributed.is_main_process()))
        if task.heldout is not None:  # losses on held-out images (Figure 7), seeded per epoch
            record.update({f"heldout_{name}": value for name, value in
                           task.heldout(objective, test, device, epoch_seed(seed, epoch)).items()})
        history.append(record)
        if distributed.is_main_process():
            save_checkpoint({"config": config.to_dict(), "source": source, "epoch": epoch + 1,
                             "model": objective.state_dict(), "optimizer": optimizer.state_dict(),
                             "scheduler": scheduler.state_dict(), "history": history}, path)
        distributed.barrier()  # the epoch's checkpoint is whole before any process goes on
    metrics, predictions = task.evaluate(objective, test, device)
    return SeedRun(objective, history, metrics, predictions)


def training_batches(config: DownstreamConfig, train: Split, seed: int, device: torch.device,
                     cap: int | None = None):
    """One epoch's batches of this process: the global batches of ``batch_size`` in the order seeded by
    ``seed`` (:class:`~mimstudy.data.sampling.ShardedIndices`, this process's rows of each), the first
    ``cap`` of them when capped; slices of an in-memory split, or items read from disk by
    ``num_workers`` ``DataLoader`` workers for a streamed one."""
    rank, world = distributed.rank(), distributed.world_size()
    if train.in_memory:
        return ShardedBatches(TensorDataset(train.images, train.targets), config.batch_size, seed=seed, rank=rank,
                              world_size=world, max_batches=cap)
    indices = ShardedIndices(len(train), config.batch_size, seed=seed, rank=rank, world_size=world, max_batches=cap)
    return DataLoader(train, batch_sampler=indices, num_workers=config.num_workers, pin_memory=device.type == "cuda",
                      generator=torch.Generator().manual_seed(seed * 1_000 + rank))


def run_downstream(config: DownstreamConfig, progress: bool = True, random_dataset: str = RANDOM_INIT_DATASET) -> xr.Dataset:
    """Fine-tune every seed of ``config`` and return the run's dataset (see :func:`downstream_dataset`).

    ``random_dataset``: whose pixel statistics standardise the inputs of random weights (a pre-trained
    backbone's come from its checkpoint); the dataset used is recorded as the coord ``input_dataset``."""
    config.validate()
    task = get_task(config.task)
    checkpoint = pretrained_weights(config)
    if checkpoint is not None and not checkpoint.is_file():
        raise CheckpointError(f"no weights at {checkpoint}: run the pre-training run {config.init_from!r} first "
                              f"(mimstudy run --preset {config.preset} --runs {config.run_id})")
    blocks, channels = backbone_geometry(config, checkpoint)
    order = block_indices(config.block_order_spec(), blocks)
    device = resolve_device(config.device)
    start = time.perf_counter()
    train, test = task.load(config, channels)
    data_seconds = time.perf_counter() - start
    scores = choose_lr(config, task, train, order, device, progress, random_dataset, channels)
    lr = (max if task.higher_is_better else min)(scores, key=scores.get) if scores else reused_lr(config)
    runs = {seed: transfer_seed(config, task, train, test, seed, order, device, progress, random_dataset, lr)
            for seed in config.seeds()}
    trivial = task.trivial(train, test)
    pretrained = {} if checkpoint is None else load_pretrain_checkpoint(checkpoint)["config"]
    identity = {"objective": pretrained.get("objective", "random"), "arch": pretrained.get("arch", config.arch),
                "input_dataset": pretraining_dataset(pretrained, random_dataset),
                "blocks": len(flat_blocks(runs[config.seeds()[0]].objective.backbone)),
                "total_blocks": len(flat_blocks(create_backbone(pretrained.get("arch", config.arch))))}
    ds = downstream_dataset(config, task, runs, trivial, test, order, data_seconds, identity)
    ds["chosen_lr"] = ((), config.lr if lr is None else lr)  # the rate every seed trained with
    ds["chosen_lr"].attrs["chosen_by"] = (f"lr_grid on {config.val_split}" if scores else
                                            f"run {config.lr_from}" if config.lr_from else "lr")
    if scores:
        ds[f"val_{task.primary}"] = xr.DataArray(list(scores.values()), coords={"lr_candidate": list(scores)},
                                                 dims="lr_candidate")
    return ds.assign_coords(protocol=config.protocol)


def stored_lr(result: xr.Dataset) -> float:
    """The rate a stored downstream result trained with: ``chosen_lr`` (``finetune_lr`` in results made
    before the rename)."""
    return float(result["chosen_lr" if "chosen_lr" in result else "finetune_lr"].item())


def reused_lr(config: DownstreamConfig) -> float | None:
    """The rate run ``lr_from`` trained with (its stored ``chosen_lr``); ``None`` without ``lr_from``."""
    if not config.lr_from:
        return None
    path = result_path(replace(config, run_id=config.lr_from))
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run {config.lr_from!r} first (its chosen learning rate is "
                                f"reused by {config.run_id!r}; mimstudy run --preset {config.preset} --runs "
                                f"{config.lr_from})")
    with load_dataset(path) as source:
        if str(source["pretrain_run"].item()) != config.init_from:
            raise ValueError(f"{path} was fine-tuned from {source['pretrain_run'].item()!r}, not {config.init_from!r}: "
                             "lr_from must name a run of the same pre-training")
        return stored_lr(source)


def choose_lr(config: DownstreamConfig, task: Task, train, order: list[int], device: torch.device,
              progress: bool = True, random_dataset: str = RANDOM_INIT_DATASET, channels: int = 1) -> dict[float, float]:
    """``{rate: primary metric on val_split}`` for each rate of ``lr_grid``, fine-tuned with the
    first seed on the training split (``{}`` without a grid). The test split plays no part."""
    rates = config.learning_rates()
    if not rates:
        return {}
    _, val = task.load(replace(config, test_split=config.val_split), channels)
    seed = config.seeds()[0]
    return {lr: float(transfer_seed(config, task, train, val, seed, order, device, progress, random_dataset,
                                    lr).metrics[task.primary]) for lr in rates}


def downstream_dataset(config: DownstreamConfig, task: Task, runs: dict[int, SeedRun], trivial: dict[str, float],
                       test, order: list[int], data_seconds: float, identity: dict) -> xr.Dataset:
    """Metrics ``(seed)``, the trivial predictor's metrics (every key it returns, as ``trivial_<key>``),
    curves ``(seed, epoch)`` (``train_loss``, throughput, seconds and every ``train_*`` and ``heldout_*``
    key of the history) and ``num_examples`` test inputs with targets and the first seed's predictions.

    Scalar coords name the run: ``model`` (run id), ``task``, ``init`` (pretrained / random),
    ``pretrain_run``, the pre-training ``objective`` (``random`` for random weights) and ``arch``,
    ``blocks`` kept of ``total_blocks``, ``keep_blocks``, the ``block_order`` loaded and the
    ``input_dataset`` whose pixel statistics standardised the inputs."""
    seeds = sorted(runs)
    epochs = np.arange(1, max(len(r.history) for r in runs.values()) + 1)
    data = {name: ("seed", [runs[s].metrics[name] for s in seeds]) for name in task.metrics}
    data.update({f"trivial_{name}": ((), value) for name, value in trivial.items()})
    curves = {key for s in seeds for record in runs[s].history for key in record if key.startswith(("train_", "heldout_"))}
    for key in ["train_loss", "images_per_s", "seconds", *sorted(curves - {"train_loss"})]:
        data[key] = (("seed", "epoch"), [[r.get(key, np.nan) for r in runs[s].history] +
                                          [np.nan] * (len(epochs) - len(runs[s].history)) for s in seeds])
    n = min(config.num_examples, len(test))
    example_coords = {}
    if n:
        examples, example_coords = task.examples(test, runs[seeds[0]].predictions, n)
        data.update(examples)
    data["data_seconds"] = ((), data_seconds)
    init = "random" if config.random_weights else "pretrained"
    coords = {"seed": seeds, "epoch": epochs, "model": config.run_id, "task": config.task, "init": init,
              "pretrain_run": config.init_from, "keep_blocks": config.keep_blocks,
              "block_order": ",".join(map(str, order)), **identity}
    coords.update(example_coords)
    return xr.Dataset(data, coords=coords, attrs={"primary_metric": task.primary,
                                                    "higher_is_better": int(task.higher_is_better),
                                                    "trivial_predictor": task.trivial_name})
