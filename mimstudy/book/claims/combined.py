"""Section 4.3's and Appendix D's claims judged from the downstream results: combined tasks.

One claim family, :class:`CombinedClaim`, with one ``kind`` per claim (full fine-tuning of every block):

* ``detection`` (Table 6, left): MIM beats supervised pre-training in box AP on GarmentScenes-Det
  (Mask R-CNN), floor 1 AP point;
* ``losses`` (Figure 7): on held-out images, MIM's localisation loss (``loss_box_reg``) ends lower
  than the supervised model's and the supervised model's classification loss (``loss_classifier``)
  ends lower than MIM's, each by at least :data:`LOSS_FLOOR` of the supervised model's final value
  (the last epoch's held-out loss, recorded per epoch by the fine-tuning loop);
* ``segmentation`` (Table 6, right): supervised pre-training beats MIM in mIoU on GarmentScenes-Seg
  (UPerNet-lite), floor 1 point.

Gates, control and seeds as Section 4.2 (:class:`mimstudy.book.claims.downstream.DownstreamClaim`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr

from mimstudy.book.claims.evidence import PresetResults
from mimstudy.book.claims.downstream import DownstreamClaim, full_models, gap_estimate, learnability
from mimstudy.book.claims.verdicts import FLOORS, Check, ClaimVerdict, seed_estimate

LOSS_FLOOR = 0.05  # a loss gap counts when it is at least 5 % of the supervised model's final held-out loss
# kind -> (task, metric, MIM expected ahead)
TASKS = {"detection": ("detection", "box_ap", True), "segmentation": ("segmentation", "miou", False)}


def final_losses(runs: xr.Dataset, model: str, name: str) -> np.ndarray:
    """A run's held-out ``name`` loss at the last epoch each fine-tuning seed reached."""
    curves = runs[f"heldout_{name}"].sel(model=model).values.astype(float)  # (seed, epoch)
    finals = [row[np.isfinite(row)][-1] for row in curves if np.isfinite(row).any()]
    return np.asarray(finals, dtype=float)


def loss_gap(runs: xr.Dataset, higher: list[str], lower: list[str], name: str):
    """Final held-out loss of runs ``higher`` minus runs ``lower``: a t interval over pre-training runs
    when both sides have two or more (each run's mean over its seeds), else over one run's seeds."""
    if len(higher) >= 2 and len(lower) >= 2:
        est = seed_estimate([final_losses(runs, m, name).mean() for m in higher],
                            [final_losses(runs, m, name).mean() for m in lower])
        est.interval = "t interval over pre-training seeds"
        return est
    return seed_estimate(final_losses(runs, higher[0], name), final_losses(runs, lower[0], name))


@dataclass(frozen=True)
class CombinedClaim(DownstreamClaim):
    """A Section 4.3 / Appendix D claim (``kind``: ``detection`` / ``losses`` / ``segmentation``) on ``arch``."""

    kind: str = "detection"
    arch: str = "vit"

    def floor_keys(self) -> tuple[str, ...]:
        return () if self.kind == "losses" else ("ap",)

    def floors(self) -> list[str]:
        if self.kind == "losses":
            return [f"held-out loss gaps: ≥ {100 * LOSS_FLOOR:g} % of the supervised model's final loss"]
        task, metric, mim_ahead = TASKS[self.kind]
        return [f"{'MIM − SUP' if mim_ahead else 'SUP − MIM'} {metric} on {task}: ≥ {FLOORS['ap']:g}"]

    def evaluate(self, results: PresetResults) -> ClaimVerdict:
        runs = results.downstream
        task = "detection" if self.kind == "losses" else TASKS[self.kind][0]
        if runs is None:
            return ClaimVerdict.not_run(self.text, f"no downstream results in `{results.preset}`")
        sup, mim, rand = (full_models(runs, task, o, self.arch, protocol="finetune")
                          for o in ("supervised", "simmim", "random"))
        if not (sup and mim and rand):
            return ClaimVerdict.not_run(self.text, f"`{results.preset}` lacks fine-tuned supervised, SimMIM and "
                                        f"random-init {self.arch} runs of {task}")
        metric = "box_ap" if self.kind == "losses" else TASKS[self.kind][1]
        learned, gate = learnability(runs, rand, metric)
        blocked = self._blocked(results, runs, {"supervised": sup, "SimMIM": mim}, [gate])
        details = {f"{task} learnability (random init minus the trivial predictor)": learned}
        if self.kind == "losses":
            return self._losses(runs, sup, mim, rand, details, blocked)
        _, _, mim_ahead = TASKS[self.kind]
        ahead, behind = (mim, sup) if mim_ahead else (sup, mim)
        floor = FLOORS["ap"]
        check = Check(f"{task}: {'MIM minus supervised' if mim_ahead else 'supervised minus MIM'} {metric} "
                      f"(floor {floor:g})", gap_estimate(runs, ahead, behind, metric), "positive", floor)
        details[f"{task}: MIM minus random init"] = gap_estimate(runs, mim, rand, metric)
        details[f"{task}: supervised minus random init"] = gap_estimate(runs, sup, rand, metric)
        return ClaimVerdict.of(self.text, [check], details, blockers=blocked)

    def _losses(self, runs, sup, mim, rand, details, blocked) -> ClaimVerdict:
        if "heldout_loss_box_reg" not in runs or "heldout_loss_classifier" not in runs:
            return ClaimVerdict.not_run(self.text, "the detection runs lack held-out loss curves")
        checks = []
        for name, higher, lower, what in (("loss_box_reg", sup, mim, "supervised minus MIM (MIM localises better)"),
                                          ("loss_classifier", mim, sup, "MIM minus supervised (SUP classifies better)")):
            floor = LOSS_FLOOR * float(np.mean([final_losses(runs, m, name).mean() for m in sup]))
            checks.append(Check(f"held-out {name}, last epoch: {what} (floor {floor:.3g})",
                                loss_gap(runs, higher, lower, name), "positive", floor))
            details[f"held-out {name}, last epoch: random init minus MIM"] = loss_gap(runs, rand, mim, name)
        return ClaimVerdict.of(self.text, checks, details, blockers=blocked)
