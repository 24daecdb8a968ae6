"""Section 4.1's claims judged from the downstream results: semantic transfer across a concept gap.

One claim family, :class:`SemanticClaim`, with one ``kind`` per claim (rows: full fine-tuning, the
``finetune`` protocol, of every block; the ``frozen`` protocol's runs are shown as details):

* ``cog`` (Tables 1, 5): MIM's advantage over supervised pre-training grows with the concept gap:
  the gap MIM − SUP (top-1) on the farthest level of the concept-generalization ladder (L5) minus
  the gap on the nearest (L1) is at least the floor; every level's gap is shown;
* ``covered`` (Table 1's note, Table 4's CIFAR): on the classes supervised pre-training covers
  (``k12_garments``: the ten pre-training classes on unseen photos) SUP − MIM is at least the floor;
* ``fine`` (Tables 1, 4: Aircraft, Birdsnap, iNat18): on fine-grained sub-classes (``k12_fine``,
  mean per-class accuracy) MIM − SUP is at least the floor; the long-tailed ``inat_lite`` (iNat18's
  role) is shown beside it.

Quality gates: each task's learnability (the random-init fine-tune beats the majority class) and the
pre-trained backbones' own gates; seeds and intervals as Section 4.2
(:func:`mimstudy.book.claims.downstream.gap_estimate`: over pre-training seeds when there are ≥ 2); the
trend reads each pre-training run on L5 and L1 (:func:`mimstudy.book.claims.downstream.trend_estimate`).
"""

from __future__ import annotations

from dataclasses import dataclass

import xarray as xr

from mimstudy.book.claims.evidence import PresetResults
from mimstudy.book.claims.downstream import DownstreamClaim, full_models, gap_estimate, learnability, trend_estimate
from mimstudy.book.claims.verdicts import FLOORS, Check, ClaimVerdict

TOP1_FLOOR = FLOORS["top1"]
LEVELS = tuple(f"cog_l{i}" for i in range(1, 6))
# kind -> (task, metric, MIM expected ahead)
SINGLE_TASK = {"covered": ("k12_garments", "top1", False), "fine": ("k12_fine", "mean_class_acc", True)}
METRICS = {**{level: "top1" for level in LEVELS}, "k12_garments": "top1", "k12_digits": "top1",
           "k12_materials": "top1", "k12_fine": "mean_class_acc", "inat_lite": "top1"}  # each task's primary metric
ALSO = {"fine": ("inat_lite", "top1")}  # a second task shown beside a claim's (iNat18 beside Aircraft)
FINETUNE = {"protocol": "finetune"}


def sides(runs: xr.Dataset, task: str, arch: str, protocol: str = "finetune") -> tuple[list[str], list[str], list[str]]:
    """(supervised runs, SimMIM runs, random-init runs) of ``task`` on ``arch`` under ``protocol``: one per training seed."""
    return tuple(full_models(runs, task, o, arch, protocol=protocol) for o in ("supervised", "simmim", "random"))


@dataclass(frozen=True)
class SemanticClaim(DownstreamClaim):
    """A Section 4.1 claim (``kind``: ``cog`` / ``covered`` / ``fine``) on ``arch``'s downstream runs."""

    kind: str = "cog"
    arch: str = "vit"

    def floor_keys(self) -> tuple[str, ...]:
        return ("top1",)

    def floors(self) -> list[str]:
        if self.kind == "cog":
            return [f"MIM − SUP top-1 on CoG L5 minus on L1: ≥ {100 * TOP1_FLOOR:g} point"]
        task, metric, mim_ahead = SINGLE_TASK[self.kind]
        return [f"{'MIM − SUP' if mim_ahead else 'SUP − MIM'} {metric} on {task}: ≥ {100 * TOP1_FLOOR:g} point"]

    def evaluate(self, results: PresetResults) -> ClaimVerdict:
        runs = results.downstream
        if runs is None:
            return ClaimVerdict.not_run(self.text, f"no downstream results in `{results.preset}`")
        return self._trend(results, runs) if self.kind == "cog" else self._single(results, runs)

    def _single(self, results: PresetResults, runs: xr.Dataset) -> ClaimVerdict:
        task, metric, mim_ahead = SINGLE_TASK[self.kind]
        sup, mim, rand = sides(runs, task, self.arch)
        if not (sup and mim and rand):
            return ClaimVerdict.not_run(self.text, f"`{results.preset}` lacks fine-tuned supervised, SimMIM and "
                                        f"random-init {self.arch} runs of {task}")
        ahead, behind = (mim, sup) if mim_ahead else (sup, mim)
        label = "MIM minus supervised" if mim_ahead else "supervised minus MIM"
        check = Check(f"{task}: {label} {metric} (floor {TOP1_FLOOR:g})", gap_estimate(runs, ahead, behind, metric),
                      "positive", TOP1_FLOOR)
        learned, gate = learnability(runs, rand, metric)
        details = {f"{task}: MIM minus random init": gap_estimate(runs, mim, rand, metric),
                   f"{task}: supervised minus random init": gap_estimate(runs, sup, rand, metric),
                   f"{task} learnability (random init minus the majority class)": learned}
        details.update(self._frozen(runs, [task], metric))
        if self.kind in ALSO:
            other, other_metric = ALSO[self.kind]
            o_sup, o_mim, _ = sides(runs, other, self.arch)
            if o_sup and o_mim:
                details[f"{other}: MIM minus supervised {other_metric}"] = gap_estimate(runs, o_mim, o_sup, other_metric)
        return ClaimVerdict.of(self.text, [check], details,
                               blockers=self._blocked(results, runs, {"supervised": sup, "SimMIM": mim}, [gate]))

    def _trend(self, results: PresetResults, runs: xr.Dataset) -> ClaimVerdict:
        found = {level: sides(runs, level, self.arch) for level in LEVELS}
        ran = [level for level, (sup, mim, rand) in found.items() if sup and mim and rand]
        if LEVELS[0] not in ran or LEVELS[-1] not in ran:
            return ClaimVerdict.not_run(self.text, f"`{results.preset}` lacks fine-tuned supervised, SimMIM and "
                                        f"random-init {self.arch} runs of CoG L1 and L5")
        gaps = {level: gap_estimate(runs, found[level][1], found[level][0], "top1") for level in ran}
        (sup_far, mim_far, _), (sup_near, mim_near, _) = found[LEVELS[-1]], found[LEVELS[0]]
        trend = trend_estimate(runs, (mim_far, sup_far), (mim_near, sup_near), "top1")
        check = Check(f"MIM minus supervised top-1 on L5 minus on L1 (floor {TOP1_FLOOR:g})", trend, "positive",
                      TOP1_FLOOR)
        details, gates, read = {}, [], {}
        for level in ran:
            sup, mim, rand = found[level]
            name = f"L{LEVELS.index(level) + 1}"
            details[f"{name}: MIM minus supervised"] = gaps[level]
            details[f"{name}: MIM minus random init"] = gap_estimate(runs, mim, rand, "top1")
            learned, gate = learnability(runs, rand, "top1")
            details[f"{name} learnability (random init minus the majority class)"] = learned
            gates.append(gate)
            read[f"{name} supervised"], read[f"{name} SimMIM"] = sup, mim
        details.update(self._frozen(runs, list(LEVELS), "top1"))
        notes = [] if len(ran) == len(LEVELS) else [f"Levels run: {', '.join(ran)}; the others are missing."]
        return ClaimVerdict.of(self.text, [check], details, notes, self._blocked(results, runs, read, gates))

    def _frozen(self, runs: xr.Dataset, tasks: list[str], metric: str) -> dict:
        """MIM − SUP under the second protocol (a linear probe of the frozen backbone), where it ran."""
        out = {}
        for task in tasks:
            sup, mim, _ = sides(runs, task, self.arch, protocol="frozen")
            if sup and mim:
                out[f"{task}, frozen backbone (linear probe): MIM minus supervised"] = gap_estimate(runs, mim, sup, metric)
        return out
