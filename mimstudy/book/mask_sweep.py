"""The verdict on Figure 2(a)'s mask sweep, from the table of :func:`mimstudy.study.sweep.mask_sweep`."""

from __future__ import annotations

import numpy as np
import xarray as xr
from scipy.stats import spearmanr

from mimstudy.book.verdicts import Check, ClaimVerdict, Estimate


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
