"""The mask sweep of Figure 2(a): AvgDist, fine-tuning error and attention distance per SimMIM model."""

from __future__ import annotations

import json

import numpy as np
import xarray as xr
from scipy.stats import spearmanr

from .data import IMAGE_SIZE
from .masking import MaskGenerator
from .models import create_backbone, patch_size_of
from .probes import expected_avg_dist
from .verdicts import Check, ClaimVerdict, Estimate


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


def sweep_verdict(table: xr.Dataset) -> ClaimVerdict:
    """Does a moderate AvgDist give both the best fine-tuning and the most local attention?

    Point estimates (each sweep point is one model): the Spearman correlation between fine-tuning
    error and attention distance (the paper: more local attention goes with better fine-tuning), and
    whether the best fine-tuning lies strictly inside the AvgDist range rather than at an end.
    """
    n = table.sizes["run"]
    best = int(np.argmin(table["ft_error"].values))
    checks = [
        Check("best fine-tuning at an interior AvgDist (position of the best model minus the nearest end, in ranks)",
              Estimate.point(float(min(best, n - 1 - best))), "positive"),
    ]
    notes = [f"{n} sweep points, one model each: point estimates without intervals."]
    if n >= 3:
        rho = float(spearmanr(table["ft_error"], table["attention_distance"]).statistic)
        checks.insert(0, Check(f"Spearman correlation of fine-tuning error with attention distance over {n} models",
                               Estimate.point(rho), "positive"))
    else:
        notes.append("Fewer than 3 points: no correlation is computed.")
    return ClaimVerdict.of(
        "A moderate prediction distance (AvgDist) gives the best fine-tuning and the most local attention.",
        checks, notes=notes)
