"""Downstream fine-tuning throughput of our path against a bare model step, per task (pose, detection, segmentation).

    OMP_NUM_THREADS=1 python benchmarks/downstream_throughput.py          # a few minutes on a CPU core
    python benchmarks/downstream_throughput.py --tasks detection --archs vit_micro_32_sincos --steps 5 --repeats 1

For each task and backbone it times

* ours: the task's objective (:mod:`mimstudy.downstream.tasks`) trained by
  :func:`mimstudy.training.engine.train_one_epoch` with layer-decay AdamW and its cosine schedule, over
  :class:`mimstudy.data.sampling.ShardedBatches` of the generated set's tensors (pose: augmentation warp,
  heatmap targets; detection: packed targets unpacked per step; segmentation: paired flips);
* bare: the same network in a plain ``forward -> loss -> backward -> AdamW.step`` loop over one
  ready-made batch. Pose: the backbone (``forward_intermediates``) and a
  :class:`mimstudy.downstream.heads.DeconvHead`, MSE to ready heatmaps. Detection: torchvision's Mask
  R-CNN called on ready lists of images and target dicts (the bare torchvision model step). Segmentation:
  the backbone, pyramid and UPerNet-lite head, cross-entropy.

``ratio = ours / bare`` in images/s (target >= 0.9; ours also augments and prepares its targets).
It also times the data side: drawing and writing one item of the generated set, and reading one back
(each happens once per run), next to one training image. Best of ``--repeats`` alternating runs
counts (other processes only slow a run down). Results go to an xarray dataset
(``results/benchmarks/downstream_throughput.nc``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import xarray as xr
from torch.utils.data import TensorDataset

from mimstudy.config import DownstreamConfig
from mimstudy.data.sampling import ShardedBatches
from mimstudy.downstream import coco_instances
from mimstudy.downstream.backbone import build_backbone, feature_shape, features
from mimstudy.downstream.heads import DeconvHead, gaussian_heatmaps
from mimstudy.downstream.inputs import Standardise, dataset_stats
from mimstudy.downstream.ade20k import IGNORE_INDEX
from mimstudy.downstream.tasks import get_task
from mimstudy.results import save_dataset
from mimstudy.training.engine import train_one_epoch
from mimstudy.training.optim import build_optimizer

STATS = dataset_stats("fashion_mnist")  # the throughput does not depend on the input statistics
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "results" / "benchmarks" / "downstream_throughput.nc"


def task_data(task_name: str, n: int, cache: str):
    """The task, a config for it and ``n`` training items of its generated set; seconds per item drawn / read."""
    task = get_task(task_name)
    config = DownstreamConfig(task=task_name, init_from="random", arch="vit_micro_32", runs_dir=cache,
                              train_size=n, test_size=8, batch_size=1)
    start = time.perf_counter()
    task.load(config)  # draws and writes the set (cached)
    draw_s = (time.perf_counter() - start) / (n + 8)
    start = time.perf_counter()
    train, _ = task.load(config)
    return task, config, train, draw_s, (time.perf_counter() - start) / (n + 8)


def time_ours(task, config, train, arch: str, batch_size: int, steps: int) -> float:
    torch.manual_seed(0)
    backbone, _ = build_backbone(arch, None, drop_path=0.1)
    objective = task.objective(backbone, train, config, STATS)
    optimizer, scheduler = build_optimizer(objective, 5e-4, 0.05, total_steps=10 * steps, warmup_steps=steps,
                                           min_lr=1e-6, layer_decay=0.75)
    dataset = TensorDataset(train.images, train.targets)
    batches = ShardedBatches(dataset, batch_size, seed=0, max_batches=steps)
    warm = ShardedBatches(dataset, batch_size, seed=1, max_batches=1)
    train_one_epoch(objective, warm, optimizer, scheduler, 0, torch.device("cpu"), 1.0, progress=False)
    start = time.perf_counter()
    train_one_epoch(objective, batches, optimizer, scheduler, 1, torch.device("cpu"), 1.0, progress=False)
    return steps * batch_size / (time.perf_counter() - start)


def bare_loss(task, config, train, arch: str, batch_size: int):
    """``(parameters, loss())``: the task's network on one ready batch, without our loop or target preparation."""
    backbone, _ = build_backbone(arch, None, drop_path=0.1)
    images = train.images[:batch_size]
    if task.name == "detection":
        detector = task.objective(backbone, train, config, STATS).detector.train()
        targets = coco_instances.unpack(train.targets[:batch_size])
        return list(detector.parameters()), lambda: sum(detector(list(images), targets).values())
    if task.name == "segmentation":  # its logits standardise the images, as every objective does
        model = task.objective(backbone, train, config, STATS).train()
        masks = train.targets[:batch_size]
        return list(model.parameters()), lambda: F.cross_entropy(model.logits(images), masks, ignore_index=IGNORE_INDEX)
    x = Standardise(*STATS)(images)
    keypoints = train.keypoints[:batch_size]
    channels, stride = feature_shape(backbone, images.shape[-1])
    head = DeconvHead(channels, keypoints.shape[1], stride)
    target = gaussian_heatmaps(keypoints, images.shape[-1])
    weight = (keypoints[:, :, 2] > 0).float()
    return list(backbone.parameters()) + list(head.parameters()), lambda: (
        F.mse_loss(head(features(backbone, x)), target, reduction="none").mean(dim=(-1, -2)) * weight).mean()


def time_bare(task, config, train, arch: str, batch_size: int, steps: int) -> float:
    torch.manual_seed(0)
    params, loss_of = bare_loss(task, config, train, arch, batch_size)
    optimizer = torch.optim.AdamW(params, lr=5e-4, weight_decay=0.05)

    def step():
        loss = loss_of()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()

    step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch_size / (time.perf_counter() - start)


def main(argv: list[str] | None = None, log=print) -> xr.Dataset:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="pose,detection,segmentation")
    parser.add_argument("--archs", default="vit_micro_32_sincos,swinv2_micro_32")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    args = parser.parse_args(argv)
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    archs = [a.strip() for a in args.archs.split(",") if a.strip()]
    n = args.batch_size * (args.steps + 1)
    ours, bare = np.zeros((len(tasks), len(archs), args.repeats)), np.zeros((len(tasks), len(archs), args.repeats))
    draw, read = np.zeros(len(tasks)), np.zeros(len(tasks))
    with tempfile.TemporaryDirectory() as cache:
        for t, name in enumerate(tasks):
            task, config, train, draw[t], read[t] = task_data(name, n, cache)
            log(f"{name}: draw+write {1e3 * draw[t]:.1f} ms/item (once, cached), read {1e3 * read[t]:.2f} ms/item")
            for i, arch in enumerate(archs):
                for r in range(args.repeats):
                    bare[t, i, r] = time_bare(task, config, train, arch, args.batch_size, args.steps)
                    ours[t, i, r] = time_ours(task, config, train, arch, args.batch_size, args.steps)
                best_ours, best_bare = ours[t, i].max(), bare[t, i].max()
                log(f"{name:12s} {arch:20s} ours {best_ours:6.1f} img/s  bare {best_bare:6.1f} img/s  "
                    f"ratio {best_ours / best_bare:.2f}  (train {1e3 / best_ours:.1f} ms/image)")
    dims = ("task", "arch")
    ds = xr.Dataset({"ours_images_per_s": (dims, ours.max(2)), "bare_images_per_s": (dims, bare.max(2)),
                     "ratio": (dims, ours.max(2) / bare.max(2)),
                     "ours_median_images_per_s": (dims, np.median(ours, 2)),
                     "bare_median_images_per_s": (dims, np.median(bare, 2)),
                     "draw_ms_per_item": ("task", 1e3 * draw), "read_ms_per_item": ("task", 1e3 * read)},
                    coords={"task": tasks, "arch": archs},
                    attrs={"threads": torch.get_num_threads(), "batch_size": args.batch_size})
    save_dataset(ds, args.out, vars(args), "benchmarks", 0)
    return ds


if __name__ == "__main__":
    sys.exit(main() is None)
