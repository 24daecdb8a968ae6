"""The mask sweep of Figure 2(a): AvgDist, fine-tuning error and attention distance per SimMIM model."""

from __future__ import annotations

import json

import numpy as np
import xarray as xr

from mimstudy.data.fashion_mnist import IMAGE_SIZE
from mimstudy.objectives.masking import MaskGenerator
from mimstudy.models.backbones import create_backbone, patch_size_of
from mimstudy.probes import expected_avg_dist


def run_parameters(ds: xr.Dataset, model: str) -> dict:
    """The parameters of run ``model`` stored in its provenance."""
    return json.loads(json.loads(str(ds["provenance"].sel(model=model).item()))["parameters"])


def mask_avg_dist(arch: str, mask_patch_size: int, mask_ratio: float, num_samples: int = 256) -> float:
    """Expected AvgDist (px) of SimMIM's masks for a backbone: mean distance of masked to visible pixels."""
    patch = patch_size_of(create_backbone(arch))
    return expected_avg_dist(MaskGenerator(IMAGE_SIZE, mask_patch_size, patch, mask_ratio), num_samples=num_samples)


def mask_sweep(pretrain: xr.Dataset, probes: xr.Dataset) -> xr.Dataset:
    """One row (dim ``run``) per SimMIM run that a fine-tuning run starts from.

    Variables: ``mask_ratio``, ``mask_patch_size``, ``avg_dist`` (px), ``ft_error`` (1 - the
    fine-tuned model's final validation accuracy) and ``attention_distance`` (px, the SimMIM model's
    mean over layers, heads and test images).
    """
    rows = []
    for model in pretrain["model"].values:
        params = run_parameters(pretrain, model)
        if params.get("objective") != "finetune" or not params.get("init_from"):
            continue
        source = params["init_from"]
        mim = run_parameters(pretrain, source)
        final_accuracy = pretrain["val_accuracy"].sel(model=model).dropna("epoch")[-1].item()
        rows.append({
            "run": source,
            "arch": mim["arch"],
            "mask_ratio": mim["mask_ratio"],
            "mask_patch_size": mim["mask_patch_size"],
            "avg_dist": mask_avg_dist(mim["arch"], mim["mask_patch_size"], mim["mask_ratio"]),
            "ft_error": 1.0 - final_accuracy,
            "attention_distance": probes["attention_distance"].sel(model=source).mean().item(),
        })
    if not rows:
        raise ValueError("no fine-tuning run starts from a SimMIM run: the preset has no mask sweep")
    rows.sort(key=lambda r: r["avg_dist"])
    return xr.Dataset({k: ("run", np.array([r[k] for r in rows])) for k in rows[0] if k not in ("run", "arch")},
                      coords={"run": [r["run"] for r in rows], "arch": ("run", [r["arch"] for r in rows])})
