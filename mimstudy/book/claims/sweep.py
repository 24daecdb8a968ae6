"""The verdict on Figure 2(a)'s mask sweep, from the table of :func:`mimstudy.study.sweep.mask_sweep`."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import xarray as xr
from scipy.stats import spearmanr

from mimstudy.book.claims.evidence import PresetResults
from mimstudy.book.claims.gates import role_of
from mimstudy.book.claims.verdicts import Check, Claim, ClaimVerdict, Estimate, blockers


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
    return ClaimVerdict.of(SWEEP_TEXT, checks, notes=notes)


SWEEP_TEXT = "A moderate prediction distance (AvgDist) gives the best fine-tuning and the most local attention."


@dataclass(frozen=True)
class SweepClaim(Claim):
    """Figure 2(a) on the preset's mask sweep (``sweep_*`` runs): :func:`sweep_verdict` of its table, with
    training seeds per sweep point counted from the run ids. The random-init control does not apply (an
    untrained model has no masking), and the sweep's models have no sanity evaluation, so no gate."""

    reads: ClassVar[tuple[str, ...]] = ("sweep/pretrain", "sweep/probes")

    def floors(self) -> list[str]:
        return ["Spearman correlation of fine-tuning error with attention distance > 0; the best fine-tuning at "
                "an interior AvgDist"]

    def evaluate(self, results: PresetResults) -> ClaimVerdict:
        from mimstudy.study.sweep import mask_sweep

        if results.sweep is None:
            return ClaimVerdict.not_run(self.text, f"The `{results.preset}` preset has no mask sweep.")
        table = mask_sweep(*results.sweep)
        points = Counter(role_of(str(run))[0] for run in table["run"].values)
        verdict = sweep_verdict(table)
        return ClaimVerdict.of(self.text, verdict.checks, notes=verdict.notes,
                               blockers=blockers({f"sweep point {p}": n for p, n in points.items()}))
