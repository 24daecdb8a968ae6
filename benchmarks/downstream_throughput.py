"""Downstream fine-tuning throughput (pose) of our path against a bare timm loop with the same head.

    OMP_NUM_THREADS=1 python benchmarks/downstream_throughput.py          # a few minutes on a CPU core
    python benchmarks/downstream_throughput.py --archs vit_mini_32 --steps 5 --repeats 1

For each backbone it times

* ours: :func:`mimstudy.training.engine.train_one_epoch` with :class:`mimstudy.downstream.pose.PoseObjective`
  (augmentation warp, heatmap targets, weighted MSE), layer-decay AdamW and its cosine schedule, over
  :class:`mimstudy.data.sampling.ShardedBatches` of generated Puppet-Pose crops;
* bare: the same backbone (``forward_intermediates``) and :class:`mimstudy.downstream.heads.DeconvHead`
  in a plain ``forward -> MSE -> backward -> AdamW.step`` loop over ready-made batches and targets.

``ratio = ours / bare`` in images/s (target >= 0.9; ours also augments and renders its targets).
It also times the data side: drawing one item (:func:`mimstudy.downstream.puppets.draw_puppet`) and
reading one crop back from the COCO files, next to one training image, to show that neither is the
bottleneck (items are drawn once and cached; reading happens once per run). Best of ``--repeats``
alternating runs counts (other processes only slow a run down). Results go to an xarray dataset
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

from mimstudy.downstream import puppets
from mimstudy.downstream.backbone import build_backbone, feature_shape, features
from mimstudy.downstream.heads import DeconvHead, gaussian_heatmaps
from mimstudy.downstream.inputs import Standardise, dataset_stats
from mimstudy.downstream.pose import PoseObjective, generated_dataset, load_splits
from mimstudy.results import save_dataset
from mimstudy.training.engine import train_one_epoch
from mimstudy.training.optim import build_optimizer

STATS = dataset_stats("fashion_mnist")  # the throughput does not depend on the input statistics
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "results" / "benchmarks" / "downstream_throughput.nc"


def time_ours(arch: str, images: torch.Tensor, keypoints: torch.Tensor, batch_size: int, steps: int) -> float:
    from mimstudy.data.sampling import ShardedBatches

    torch.manual_seed(0)
    backbone, _ = build_backbone(arch, None, drop_path=0.1)
    objective = PoseObjective(backbone, keypoints.shape[1], list(puppets.FLIP_PAIRS), images.shape[-1], STATS)
    optimizer, scheduler = build_optimizer(objective, 5e-4, 0.05, total_steps=10 * steps, warmup_steps=steps,
                                           min_lr=1e-6, layer_decay=0.75)
    batches = ShardedBatches(TensorDataset(images, keypoints), batch_size, seed=0, max_batches=steps)
    warm = ShardedBatches(TensorDataset(images, keypoints), batch_size, seed=1, max_batches=1)
    train_one_epoch(objective, warm, optimizer, scheduler, 0, torch.device("cpu"), 1.0, progress=False)
    start = time.perf_counter()
    train_one_epoch(objective, batches, optimizer, scheduler, 1, torch.device("cpu"), 1.0, progress=False)
    return steps * batch_size / (time.perf_counter() - start)


def time_bare(arch: str, images: torch.Tensor, keypoints: torch.Tensor, batch_size: int, steps: int) -> float:
    torch.manual_seed(0)
    backbone, _ = build_backbone(arch, None, drop_path=0.1)
    channels, stride = feature_shape(backbone, images.shape[-1])
    head = DeconvHead(channels, keypoints.shape[1], stride)
    params = list(backbone.parameters()) + list(head.parameters())
    optimizer = torch.optim.AdamW(params, lr=5e-4, weight_decay=0.05)
    x = Standardise(*STATS)(images[:batch_size])
    target = gaussian_heatmaps(keypoints[:batch_size], images.shape[-1])
    weight = (keypoints[:batch_size, :, 2] > 0).float()

    def step():
        out = head(features(backbone, x))
        loss = (F.mse_loss(out, target, reduction="none").mean(dim=(-1, -2)) * weight).mean()
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
    parser.add_argument("--archs", default="vit_mini_32,swinv2_mini_32")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    args = parser.parse_args(argv)
    archs = [a.strip() for a in args.archs.split(",") if a.strip()]
    n = args.batch_size * (args.steps + 1)
    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        root = generated_dataset("pose", cache, n, 8, 32, seed=0)
        draw_s = (time.perf_counter() - start) / (n + 8)
        start = time.perf_counter()
        train, _ = load_splits(root, 32)
        read_s = (time.perf_counter() - start) / (n + 8)
    log(f"data: draw+write {1e3 * draw_s:.1f} ms/item (once, cached), read {1e3 * read_s:.2f} ms/item (once per run)")
    ours, bare = np.zeros((len(archs), args.repeats)), np.zeros((len(archs), args.repeats))
    for i, arch in enumerate(archs):
        for r in range(args.repeats):
            bare[i, r] = time_bare(arch, train.images, train.keypoints, args.batch_size, args.steps)
            ours[i, r] = time_ours(arch, train.images, train.keypoints, args.batch_size, args.steps)
        log(f"{arch:16s} ours {ours[i].max():6.1f} img/s  bare {bare[i].max():6.1f} img/s  "
            f"ratio {ours[i].max() / bare[i].max():.2f}  (train {1e3 / ours[i].max():.1f} ms/image)")
    ds = xr.Dataset({"ours_images_per_s": ("arch", ours.max(1)), "bare_images_per_s": ("arch", bare.max(1)),
                     "ratio": ("arch", ours.max(1) / bare.max(1)),
                     "ours_median_images_per_s": ("arch", np.median(ours, 1)),
                     "bare_median_images_per_s": ("arch", np.median(bare, 1)),
                     "draw_ms_per_item": ((), 1e3 * draw_s), "read_ms_per_item": ((), 1e3 * read_s)},
                    coords={"arch": archs},
                    attrs={"threads": torch.get_num_threads(), "batch_size": args.batch_size})
    save_dataset(ds, args.out, vars(args), "benchmarks", 0)
    return ds


if __name__ == "__main__":
    sys.exit(main() is None)
