"""Section 4.2's claims judged from the downstream results (``results/<preset>/downstream``).

One claim family, :class:`GeometricClaim` (on :class:`~mimstudy.book.claims.downstream.DownstreamClaim`), with one ``kind`` per claim and its effect-size floor:

* ``table2`` (Table 2): MIM fine-tunes better than supervised pre-training on every geometric task and
  backbone the preset ran (pose / crowd pose: AP, floor 1 point; depth: RMSE, floor 0.02 m; tracking:
  AO, floor 1 point);
* ``drop`` (Figure 5): dropping the last blocks helps the supervised model, not the MIM one;
* ``shuffle`` (§3.2): loading randomly sampled blocks hurts the supervised model more.

Each row of a table reads one pre-training run (its ``init_from``), fine-tuned over several seeds.
With ≥ 3 pre-training runs per model (the preset's training seeds, counted from the stored runs)
the interval is a t interval over pre-training seeds of each run's mean over fine-tuning seeds;
otherwise it is a t interval over the fine-tuning seeds of one run, shown for information, and the
seeds blocker applies (:func:`mimstudy.book.claims.verdicts.blockers`). The quality gate of each task is its
learnability: the fine-tuned random-init model beats the trivial predictor (pass / fail / unknown),
together with the quality gates of the pre-trained backbones. ``runs`` is the concatenation of a
preset's downstream datasets along ``model`` (:func:`mimstudy.results.load_runs`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import xarray as xr

from mimstudy.book.claims.downstream import (DownstreamClaim, coord, difference_of, find_runs, full_model, full_models,
                                            gap_estimate, learnability, scores)
from mimstudy.book.claims.evidence import PresetResults
from mimstudy.book.claims.verdicts import FLOORS, Blocker, Check, ClaimVerdict, Estimate, seed_estimate

AP_FLOOR, RMSE_FLOOR = FLOORS["ap"], FLOORS["rmse"]
TASKS = {"pose": ("Puppet-Pose AP ↑", "ap", True, 100), "crowdpose": ("Puppet-Crowd AP ↑", "ap", True, 100),
         "depth": ("GarmentWorld-Depth RMSE (m) ↓", "rmse", False, 1),
         "tracking": ("GarmentTrack AO ↑", "ao", True, 100)}  # label, metric, higher is better, scale
ARCHS = ("vit", "swinv2")


def dropped_runs(runs: xr.Dataset, task: str, objective: str, prefix: str = "vit") -> dict[int, str]:
    """``{d: run}``: runs of ``objective`` keeping the first blocks in order, by the number ``d`` of last blocks dropped."""
    found = {}
    for model in find_runs(runs, task, objective=objective, block_order=""):
        if str(coord(runs, model, "arch")).startswith(prefix):
            found.setdefault(int(coord(runs, model, "total_blocks")) - int(coord(runs, model, "blocks")), model)
    return dict(sorted(found.items()))


def sampled_pairs(runs: xr.Dataset, task: str, objective: str, prefix: str = "vit") -> tuple[str, list[str]] | None:
    """``(baseline, [sampled runs])``: runs with randomly sampled blocks and the in-order run with as many blocks."""
    pairs: dict[str, list[str]] = {}
    for model in find_runs(runs, task, objective=objective):
        if not str(coord(runs, model, "arch")).startswith(prefix) or coord(runs, model, "block_order") == "":
            continue
        k = int(coord(runs, model, "blocks"))
        base = [m for m in find_runs(runs, task, objective=objective, block_order="")
                if int(coord(runs, m, "blocks")) == k and str(coord(runs, m, "arch")).startswith(prefix)]
        if base:
            pairs.setdefault(base[0], []).append(model)
    return next(iter(pairs.items()), None)


def table2_verdict(runs: xr.Dataset, task: str, supervised: Sequence[str], mim: Sequence[str], random_model: str,
                   metric: str = "ap", higher_is_better: bool = True, floor: float | None = None,
                   blocked: Sequence[Blocker] = ()) -> ClaimVerdict:
    """Table 2 on one task and backbone: MIM beats SUP by more than ``floor`` in ``metric`` (its direction
    given); RAND is the control. ``supervised`` / ``mim``: one run per pre-training seed."""
    return ClaimVerdict.of(f"On {task}, MIM pre-training fine-tunes better than supervised pre-training.",
                           *_table2_parts(runs, task, supervised, mim, random_model, metric, higher_is_better, floor),
                           blockers=blocked)


def _table2_parts(runs, task, supervised, mim, random_model, metric="ap", higher_is_better=True, floor=None):
    floor = FLOORS[metric] if floor is None else floor
    better = "higher" if higher_is_better else "lower"
    gap = Check(f"{task}, `{mim[0]}`: MIM minus supervised `{supervised[0]}` {metric.upper()} (floor {floor:g}, "
                f"{better} is better)", gap_estimate(runs, mim, supervised, metric),
                "positive" if higher_is_better else "negative", floor if higher_is_better else -floor)
    details = {f"{task}: MIM minus random init `{random_model}`": gap_estimate(runs, mim, [random_model], metric),
               f"{task}: supervised minus random init `{random_model}`": gap_estimate(runs, supervised, [random_model],
                                                                                     metric)}
    sign = 1 if higher_is_better else -1
    notes = []
    if not any(sign * d.value > floor for d in details.values()):
        notes.append(f"On {task}, neither pre-training beats random initialisation by the floor: the comparison is "
                     "between models whose pre-training does not transfer at this scale.")
    return [gap], details, notes


def drop_last_verdict(runs: xr.Dataset, task: str, supervised: dict[int, str], mim: dict[int, str],
                      floor: float = AP_FLOOR, blocked: Sequence[Blocker] = ()) -> ClaimVerdict:
    """Figure 5: for SUP the best AP(d) − AP(0) over d >= 1 dropped blocks exceeds ``floor``; for MIM it does not.

    ``supervised`` / ``mim`` map the number of dropped blocks ``d`` (0 = the full model) to run ids.
    """
    def best_gain(by_d: dict[int, str]) -> tuple[int, Estimate]:
        base = scores(runs, by_d[0])
        gains = {d: seed_estimate(scores(runs, m), base) for d, m in by_d.items() if d > 0}
        d = max(gains, key=lambda k: gains[k].value)
        return d, gains[d]

    d_sup, gain_sup = best_gain(supervised)
    d_mim, gain_mim = best_gain(mim)
    checks = [Check(f"supervised: best gain from dropping the last blocks (d = {d_sup}) over the full model (floor {floor:g})",
                    gain_sup, "positive", floor),
              Check(f"MIM: best gain from dropping the last blocks (d = {d_mim}) stays below the floor {floor:g}",
                    gain_mim, "negative", floor)]
    return ClaimVerdict.of(f"On {task}, dropping the last blocks helps the supervised model and not the MIM model.",
                           checks, notes=["The best d is chosen after the fact, which favours finding a gain; "
                                          "the floor guards against that only in part."], blockers=blocked)


def shuffle_verdict(runs: xr.Dataset, task: str, supervised: tuple[str, list[str]], mim: tuple[str, list[str]],
                    floor: float = AP_FLOOR, blocked: Sequence[Blocker] = ()) -> ClaimVerdict:
    """§3.2: the loss from loading randomly sampled blocks (baseline − sampled) is larger for SUP than MIM.

    ``supervised`` / ``mim``: ``(baseline run, [sampled runs])``; the baseline keeps as many blocks,
    in order. Each sampled run's seeds pool with the other samplings'.
    """
    def loss(pair: tuple[str, list[str]]) -> tuple[np.ndarray, np.ndarray]:
        base, sampled = pair
        return scores(runs, base), np.concatenate([scores(runs, m) for m in sampled])

    sup_base, sup_sampled = loss(supervised)
    mim_base, mim_sampled = loss(mim)
    # (base_sup - sampled_sup) - (base_mim - sampled_mim), seeds pooled per arm: a difference of two differences
    drop_sup, drop_mim = seed_estimate(sup_base, sup_sampled), seed_estimate(mim_base, mim_sampled)
    difference = difference_of(drop_sup, drop_mim)
    checks = [Check(f"AP lost by sampled blocks: supervised minus MIM (floor {floor:g})", difference, "positive", floor)]
    return ClaimVerdict.of(f"On {task}, loading randomly sampled pre-trained blocks hurts the supervised model more "
                           "than the MIM model.", checks,
                           {"AP lost by the supervised model": drop_sup, "AP lost by the MIM model": drop_mim},
                           blockers=blocked)


# --- the claim family: one judge for the page and the scorecard ------------------------------------------


@dataclass(frozen=True)
class GeometricClaim(DownstreamClaim):
    """A Section 4.2 claim (``kind``: ``table2`` / ``drop`` / ``shuffle``) on the preset's downstream runs;
    ``drop`` and ``shuffle`` read ``task`` on ``arch`` (an arch prefix)."""

    def floor_keys(self) -> tuple[str, ...]:
        return ("ap", "rmse", "ao") if self.kind == "table2" else ("ap",)

    def floors(self) -> list[str]:
        if self.kind == "table2":
            return [f"MIM minus supervised: ≥ {AP_FLOOR:g} AP (pose, crowd pose), ≤ −{RMSE_FLOOR:g} m RMSE (depth), "
                    f"≥ {FLOORS['ao']:g} AO (tracking)"]
        return [f"{'best gain from dropping blocks' if self.kind == 'drop' else 'AP lost, supervised minus MIM'}: "
                f"≥ {AP_FLOOR:g} AP"]

    def evaluate(self, results: PresetResults) -> ClaimVerdict:
        runs = results.downstream
        if runs is None:
            return ClaimVerdict.not_run(self.text, f"no Section 4.2 (downstream) results in `{results.preset}`")
        rand = full_model(runs, self.task, "random", self.arch)
        if self.kind == "table2":
            return self._table2(results, runs)
        if self.kind == "drop":
            series = {o: dropped_runs(runs, self.task, o, self.arch) for o in ("supervised", "simmim")}
            if not rand or not all(len(s) >= 2 and 0 in s for s in series.values()):
                return ClaimVerdict.not_run(self.text, f"`{results.preset}` lacks {self.task} runs of the supervised and "
                                            f"SimMIM {self.arch} with blocks dropped, or the random-init run")
            _, gate = learnability(runs, rand)
            pretrained = {o: list(s.values()) for o, s in series.items()}
            return drop_last_verdict(runs, self.task, series["supervised"], series["simmim"],
                                     blocked=self._blocked(results, runs, pretrained, [gate]))
        pairs = {o: sampled_pairs(runs, self.task, o, self.arch) for o in ("supervised", "simmim")}
        if not rand or not all(pairs.values()):
            return ClaimVerdict.not_run(self.text, f"`{results.preset}` lacks a truncated baseline and runs with "
                                        f"sampled blocks for the supervised and SimMIM {self.arch}, or a random-init run")
        _, gate = learnability(runs, rand)
        pretrained = {o: [p[0], *p[1]] for o, p in pairs.items()}
        return shuffle_verdict(runs, self.task, pairs["supervised"], pairs["simmim"],
                               blocked=self._blocked(results, runs, pretrained, [gate]))

    def _table2(self, results: PresetResults, runs: xr.Dataset) -> ClaimVerdict:
        checks, details, notes, gates, pretrained = [], {}, [], [], {}
        for task, (_, metric, higher, _) in TASKS.items():
            for prefix in ARCHS:
                sup, mim = (full_models(runs, task, o, prefix) for o in ("supervised", "simmim"))
                rand = full_model(runs, task, "random", prefix)
                if not (sup and mim and rand):
                    continue
                more_checks, more_details, more_notes = _table2_parts(runs, task, sup, mim, rand, metric, higher)
                checks += more_checks
                details.update(more_details)
                notes += more_notes
                est, gate = learnability(runs, rand, metric, higher)
                gates.append(gate)
                details[f"{task} learnability (random init `{rand}` minus the trivial predictor)"] = est  # per arch
                pretrained[f"{task} {prefix} supervised"], pretrained[f"{task} {prefix} SimMIM"] = sup, mim
        if not checks:
            return ClaimVerdict.not_run(self.text, f"`{results.preset}` lacks a full supervised, SimMIM and random-init "
                                        "run of any task")
        return ClaimVerdict.of(self.text, checks, details, notes, self._blocked(results, runs, pretrained, gates))
