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

The **pilot** of a preset (``python -m mimstudy.study.regime --pilot cpu --seed 0``) reads one seed
of a preset's stored runs (pre-training curves, sanity evaluation, probes and the random-init
controls) and writes ``results/regime/pilot/<preset>_s<seed>.nc``: per model, the budget it had, its
validation curve (has it plateaued?), its frozen-feature accuracies against random init and raw
pixels, the lambda of its most local head per layer beside its random-init control's, and for
SimMIM its validation masked-pixel l1 against three hand-made predictors computed on the same
validation images and masks (nearest visible pixel, mean of the visible pixels, and the training
set's mean image at that position). Seed 0 of the claim-carrying preset is the pilot of its budget.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import sys
import tempfile
import time
from pathlib import Path

import torch
import xarray as xr

from mimstudy.config import RANDOM_WEIGHTS, PretrainConfig
from mimstudy.data import memory_splits, photo_composites
from mimstudy.data.sampling import ShardedBatches
from mimstudy.distributed import sample_rows
from mimstudy.models.backbones import create_backbone, patch_size_of
from mimstudy.models.checkpoints.weights import file_sha256
from mimstudy.objectives.masking import MaskGenerator
from mimstudy.objectives.simmim import SimMIM
from mimstudy.probes import probe_model
from mimstudy.probes.evaluation import sanity_accuracies
from mimstudy.probes.trajectory import summarize
from mimstudy.probes.locality import most_local_head
from mimstudy.probes.reconstruction import baseline_l1
from mimstudy.results import load_dataset, parameters_in, save_dataset, stored_attrs
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
    if config.dataset == "fashion_mnist_photos":  # the composites' drawing, which the cached arrays do not name
        ds.attrs["data_generator"] = photo_composites.GENERATOR_VERSION
    path = Path(results_dir) / "regime" / f"{name}.nc"
    return save_dataset(ds, path, config.to_dict() | {"steps": steps}, "regime", config.seed)


PILOT_SKIP = ("sweep_",)  # the mask sweep has its own page
WEIGHTS = ("pretrained", "random_init", "raw_pixels")
POOLS = ("head", "patch_mean")


def validation_masks(params: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(images, masks, training images)`` of a SimMIM run's validation pass (``params``: its stored
    parameters), replayed: the same validation split, batches and mask draws as
    :func:`mimstudy.training.engine.evaluate` made them (its random stream seeded by the run's seed,
    one mask draw per batch, nothing else drawing in eval mode), so a hand-made predictor scored on
    them is scored on exactly the pixels the model's validation l1 was."""
    splits = memory_splits(params["dataset"], int(params["train_size"]), int(params["val_size"]), test_size=None,
                           seed=int(params["seed"]))
    generator = MaskGenerator(int(params["img_size"]), int(params["mask_patch_size"]),
                              patch_size_of(create_backbone(params["arch"])), float(params["mask_ratio"]))
    images, masks = [], []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(params["seed"]))
        for batch, _ in ShardedBatches(splits.val, int(params["batch_size"]), shuffle=False, drop_last=False):
            images.append(batch)
            masks.append(sample_rows(generator, batch.shape[0]))
    return torch.cat(images), torch.cat(masks), splits.train.tensors[0]


def random_init_validation(params: dict) -> dict[str, float]:
    """A run's validation metrics at its own random initialisation (``params``: its stored parameters):
    the objective built as its run built it (seeded by the run's seed) and validated as
    :func:`mimstudy.training.engine.evaluate` validated the run: the control of a MoCo run's
    contrastive top-1 (``val_contrastive_top1``)."""
    from mimstudy.objectives.factory import build_objective
    from mimstudy.training.engine import evaluate

    config = PretrainConfig.from_dict({k: v for k, v in params.items() if k in PretrainConfig.field_names()})
    splits = memory_splits(config.dataset, config.train_size, config.val_size, test_size=None, seed=config.seed)
    objective = build_objective(config)
    val = ShardedBatches(splits.val, config.batch_size, shuffle=False, drop_last=False)
    return evaluate(objective, val, torch.device("cpu"), seed=config.seed)


def masked_pixel_baselines(params: dict) -> dict[str, float]:
    """The hand-made predictors' masked-pixel l1 on a SimMIM run's own validation images and masks
    (:func:`validation_masks`): nearest visible pixel, visible mean, and the position prior (the mean
    image of the run's training split)."""
    images, masks, train = validation_masks(params)
    patch = patch_size_of(create_backbone(params["arch"]))
    return baseline_l1(images, masks, patch, prior=train.mean(0, keepdim=True))


def pilot_row(curves: xr.Dataset, evaluate: xr.Dataset | None, probes: xr.Dataset | None,
              control: xr.Dataset | None, baselines: dict[str, float] | None = None) -> dict:
    """One model's pilot numbers from its stored results (``None``: that step has not run)."""
    params = parameters_in(curves.attrs)
    steps = int(params["epochs"]) * math.ceil(int(params["train_size"]) / int(params["batch_size"]))
    row: dict = {"objective": str(curves["objective"].item()), "arch": str(curves["arch"].item()),
                 "steps": steps, "images_seen": steps * int(params["batch_size"]),
                 "train_seconds": float(curves["seconds"].sum()),
                 "images_per_s": float(curves["images_per_s"].mean()), "epochs": int(curves.sizes["epoch"])}
    for var in ("val_accuracy", "val_loss"):
        if var in curves:
            curve = curves[var].dropna("epoch").values
            row[f"{var}_first"], row[f"{var}_last"] = float(curve[0]), float(curve[-1])
            row[f"{var}_last_change"] = float(curve[-1] - curve[-2]) if len(curve) > 1 else float("nan")
    if evaluate is not None:
        for metric in ("knn_accuracy", "linear_accuracy"):
            for weights in WEIGHTS:
                if weights not in evaluate["weights"].values:  # an evaluation from before that baseline existed
                    continue
                for pool in POOLS:
                    value = evaluate[metric].sel(weights=weights)
                    value = value.sel(pool=pool) if "pool" in value.dims else value
                    row[f"{metric.split('_')[0]}_{pool}_{weights}"] = float(value)
    for name, ds in (("lambda_max", probes), ("control_lambda_max", control)):
        if ds is not None and {"attention_distance", "uniform_distance"} <= set(ds.data_vars):  # older probes: left out
            row[name] = most_local_head(summarize(ds)["locality"]).values.astype(float)
    if baselines:
        row.update(baselines)
    return row


def stored_seeds(preset: str, results_dir: str = "results") -> list[int]:
    """The seeds of ``preset``'s stored pre-training runs (from their provenance)."""
    folder = Path(results_dir) / preset / "pretrain"
    return sorted({int((stored_attrs(p) or {}).get("seed", 0)) for p in folder.glob("*.nc")})


def pilot_inputs_digest(paths: list[Path]) -> str:
    """A digest of what a pilot is made from: the stored files it reads (their bytes) and the code that
    reads them (the syntax of this module and every package module it imports)."""
    from mimstudy.provenance import _file_facts, code_closure

    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(path.name.encode() + b"\0" + file_sha256(path).encode())
    for path in code_closure(Path(__file__).read_text()):
        digest.update(path.name.encode() + b"\0" + _file_facts(path, "mimstudy")[0].encode())
    return digest.hexdigest()


def pilot(preset: str, seed: int = 0, results_dir: str = "results", force: bool = False) -> tuple[Path, bool]:
    """The pilot table of ``preset``'s seed ``seed`` (module docstring), saved under ``results/regime``:
    ``(path, made)``. A stored pilot made from the same stored results and code is current and kept
    (``made`` false) unless ``force``."""
    root = Path(results_dir) / preset

    def of_seed(notebook: str) -> list[Path]:
        paths = sorted((root / notebook).glob("*.nc"))
        return [p for p in paths if not p.stem.startswith(PILOT_SKIP) and int((stored_attrs(p) or {}).get("seed", -1)) == seed]

    runs = [p.stem for p in of_seed("pretrain")]
    if not runs:
        raise FileNotFoundError(f"no pre-training results of seed {seed} under {root / 'pretrain'}: "
                                f"run `mimstudy run --preset {preset} --runs '*-s{seed}'` first")

    out = Path(results_dir) / "regime" / "pilot" / f"{preset}_s{seed}.nc"  # beside, not among, the trials
    inputs = [p for notebook in ("pretrain", "evaluate", "probes") for p in of_seed(notebook)]
    digest = pilot_inputs_digest(inputs)
    if not force and (stored_attrs(out) or {}).get("inputs_digest") == digest:
        return out, False

    def maybe(notebook: str, run: str) -> xr.Dataset | None:
        path = root / notebook / f"{run}.nc"
        return load_dataset(path) if path.is_file() else None

    controls = {}  # arch -> the random-init control's probes of this seed
    for path in of_seed("probes"):
        ds = load_dataset(path)
        if str(ds["objective"].item()) == RANDOM_WEIGHTS:
            controls[str(ds["arch"].item())] = ds
    rows = []
    for run in runs:
        curves = load_dataset(root / "pretrain" / f"{run}.nc")
        arch, objective = str(curves["arch"].item()), str(curves["objective"].item())
        params = parameters_in(curves.attrs)
        baselines = masked_pixel_baselines(params) if objective == "simmim" else None
        if objective == "moco":  # the contrastive top-1's control: the same network at random init
            baselines = {"val_contrastive_top1_random_init": random_init_validation(params)["val_contrastive_top1"]}
        rows.append(pilot_row(curves, maybe("evaluate", run), maybe("probes", run), controls.get(arch), baselines))
    layers = max((len(r.get("lambda_max", ())) for r in rows), default=0)
    data = {}
    for key in dict.fromkeys(k for r in rows for k in r):
        if key in ("lambda_max", "control_lambda_max"):
            padded = [list(r.get(key, [])) + [float("nan")] * (layers - len(r.get(key, []))) for r in rows]
            data[key] = (("model", "layer"), padded)
        elif key in ("objective", "arch"):
            continue
        else:
            data[key] = ("model", [r.get(key, float("nan")) for r in rows])
    ds = xr.Dataset(data, coords={"model": runs, "layer": list(range(layers)),
                                  "objective": ("model", [r["objective"] for r in rows]),
                                  "arch": ("model", [r["arch"] for r in rows])})
    ds.attrs["inputs_digest"] = digest
    return save_dataset(ds, out, {"preset": preset, "seed": seed, "runs": ",".join(runs)}, "regime", seed), True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mimstudy.study.regime", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trial", action="append", default=[], help=f"one of {sorted(TRIALS)} (repeatable)")
    parser.add_argument("--all", action="store_true", help="every trial")
    parser.add_argument("--results-dir", default="results")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--force", action="store_true", help="re-run trials whose dataset exists")
    parser.add_argument("--pilot", metavar="PRESET", help="summarise one seed of PRESET's stored runs instead")
    parser.add_argument("--seed", type=int, default=None,
                        help="with --pilot: the seed to summarise (default: every seed with stored pre-training runs)")
    parser.add_argument("--rationale", action="store_true",
                        help="measure why the composites (mimstudy.study.data_rationale) instead")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.pilot:
        for seed in [args.seed] if args.seed is not None else stored_seeds(args.pilot, args.results_dir):
            path, made = pilot(args.pilot, seed, args.results_dir, force=args.force)
            print(f"pilot: {path}" + ("" if made else " is current (made from the same stored results and code; "
                                                     "--force re-makes it)"))
        return 0
    if args.rationale:
        from mimstudy.study.data_rationale import save_rationale

        print(f"data rationale: {save_rationale(args.results_dir)}")
        return 0
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
