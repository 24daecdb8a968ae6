"""Choosing a training regime in which the paper's effects can show: short pre-training trials,
each measured for locality (lambda of the most local head per layer), feature quality and, for
SimMIM, masked-pixel error against hand-made local and global predictors.

Run from the command line (one trial per call, skipped when its dataset exists; resumable):

    python -m mimstudy.study.regime --trial simmim_learn_fmnist
    python -m mimstudy.study.regime --all --threads 1

Each trial writes ``results/regime/<trial>.nc`` (provenance attached). The Models chapter of the
book reads them. A trial is a :class:`~mimstudy.config.PretrainConfig` (``BASE`` plus the trial's
overrides) trained for ``steps`` optimizer steps, then probed on ``probe_images`` test images of
the same dataset, and its frozen features scored by k-NN and a linear probe (1k train / 1k test).
Random-init rows (``*_init``) train 0 steps: the control every trial is read against.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
import xarray as xr

from mimstudy.config import PretrainConfig
from mimstudy.data import memory_splits
from mimstudy.models.backbones import create_backbone
from mimstudy.objectives.simmim import SimMIM
from mimstudy.probes import probe_model
from mimstudy.probes.evaluation import sanity_accuracies
from mimstudy.probes.trajectory import summarize
from mimstudy.probes.reconstruction import baseline_l1
from mimstudy.results import save_dataset
from mimstudy.training.pretrain import pretrain

# Shared by every trial: vit_mini_32, batch 128, AdamW with cosine decay, 8k images.
BASE = dict(arch="vit_mini_32", train_size=8000, val_size=500, batch_size=128, lr=1e-3, min_lr=1e-5,
            warmup_epochs=0.5, weight_decay=0.05, epochs=8, mask_ratio=0.6, mask_patch_size=8)
STEPS = 500  # optimizer steps per trial (8k images / 128 = 62 steps per epoch)

TRIALS: dict[str, dict] = {
    # position embedding: learned (timm default) vs fixed 2-D sin-cos (MoCo v3, MAE)
    "simmim_learn_fmnist": dict(objective="simmim"),
    "simmim_sincos_fmnist": dict(objective="simmim", arch="vit_mini_32_sincos"),
    # data: the same garments on natural-photo backgrounds
    "simmim_sincos_photos": dict(objective="simmim", arch="vit_mini_32_sincos", dataset="fashion_mnist_photos"),
    "simmim_learn_photos": dict(objective="simmim", dataset="fashion_mnist_photos"),
    # learning rate: the batch-scaled SimMIM recipe is far lower than 1e-3
    "simmim_sincos_photos_lr3e-4": dict(objective="simmim", arch="vit_mini_32_sincos",
                                        dataset="fashion_mnist_photos", lr=3e-4),
    "supervised_learn_fmnist": dict(objective="supervised"),
    "supervised_sincos_fmnist": dict(objective="supervised", arch="vit_mini_32_sincos"),
    "supervised_sincos_photos": dict(objective="supervised", arch="vit_mini_32_sincos", dataset="fashion_mnist_photos"),
    # random-init controls, probed the same way (0 steps)
    "init_learn_fmnist": dict(objective="simmim", steps=0),
    "init_sincos_fmnist": dict(objective="simmim", arch="vit_mini_32_sincos", steps=0),
    "init_sincos_photos": dict(objective="simmim", arch="vit_mini_32_sincos", dataset="fashion_mnist_photos", steps=0),
}


def trial_config(name: str, runs_dir: str) -> tuple[PretrainConfig, int]:
    """The trial's pre-training config and its number of optimizer steps."""
    if name not in TRIALS:
        raise ValueError(f"unknown trial {name!r}; trials: {sorted(TRIALS)}")
    params = dict(BASE, **TRIALS[name])
    steps = params.pop("steps", STEPS)
    config = PretrainConfig(preset="regime", run_id=name, runs_dir=runs_dir, max_steps=max(steps, 1),
                            device="cpu", **params)
    config.validate()
    return config, steps


def run_trial(name: str, results_dir: str = "results", probe_images: int = 256, eval_images: int = 1000) -> Path:
    """Train, probe and score trial ``name``; write ``<results_dir>/regime/<name>.nc``."""
    with tempfile.TemporaryDirectory() as runs_dir:
        config, steps = trial_config(name, runs_dir)
        start = time.perf_counter()
        torch.manual_seed(config.seed)
        if steps:
            objective = pretrain(config, device="cpu", progress=False).objective
            backbone = objective.backbone
        else:
            backbone, objective = create_backbone(config.arch), None
        train_seconds = time.perf_counter() - start
    splits = memory_splits(config.dataset, eval_images, 0, max(eval_images, probe_images), seed=1)
    test_x, test_y = splits.test.tensors
    backbone.eval()
    probes = probe_model(backbone, test_x[:probe_images], batch_size=64, probes=("distance", "entropy"))
    d_uniform = float(probes["uniform_distance"].mean())  # a ViT: the same for every block
    summary = summarize(probes)
    data = {"locality": summary["locality"], "normalized_entropy": summary["normalized_entropy"]}  # (layer, head)
    train_x, train_y = splits.train.tensors
    scalars = {"train_seconds": train_seconds, "steps": steps, "d_uniform": d_uniform}
    for pool in ("head", "patch_mean"):
        scores = sanity_accuracies(backbone, train_x, train_y, test_x[:eval_images], test_y[:eval_images], pool=pool)
        scalars[f"knn_{pool}"], scalars[f"linear_{pool}"] = scores["knn_accuracy"], scores["linear_accuracy"]
    if isinstance(objective, SimMIM):
        images = test_x[:probe_images]
        mask = objective.mask_generator(images.shape[0], generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            objective.eval()
            scalars["model_l1"] = float(objective(images, mask=mask)[0])
        scalars.update(baseline_l1(images, mask, objective.patch_size))
    ds = xr.Dataset(data | {k: float(v) for k, v in scalars.items()})
    ds = ds.assign_coords(trial=name)
    ds.attrs["threads"] = torch.get_num_threads()
    path = Path(results_dir) / "regime" / f"{name}.nc"
    return save_dataset(ds, path, config.to_dict() | {"steps": steps}, "regime", config.seed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mimstudy.study.regime", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trial", action="append", default=[], help=f"one of {sorted(TRIALS)} (repeatable)")
    parser.add_argument("--all", action="store_true", help="every trial")
    parser.add_argument("--results-dir", default="results")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--force", action="store_true", help="re-run trials whose dataset exists")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    names = sorted(TRIALS) if args.all else args.trial
    if not names:
        parser.error("name a --trial or pass --all")
    for name in names:
        path = Path(args.results_dir) / "regime" / f"{name}.nc"
        if path.exists() and not args.force:
            print(f"{name}: current ({path})")
            continue
        start = time.perf_counter()
        run_trial(name, args.results_dir)
        print(f"{name}: {time.perf_counter() - start:.0f} s -> {path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
