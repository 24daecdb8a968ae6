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
seeds blocker applies (:func:`mimstudy.book.claims.verdicts.blockers`). ``drop`` pairs each truncated run
with the full run of the same pre-training run (a paired t interval over pre-training seeds); ``shuffle``
takes each pre-training run's loss from sampled blocks against its own in-order baseline. The quality
gate of each task is its learnability: the fine-tuned random-init models (one per training seed, each
read against the trivial predictor of its own data) beat the trivial predictor (pass / fail / unknown),
together with the quality gates of the pre-trained backbones. ``runs`` is the concatenation of a
preset's downstream datasets along ``model`` (:func:`mimstudy.results.load_runs`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import xarray as xr

from mimstudy.book.claims.downstream import (DownstreamClaim, as_runs, coord, difference_of, find_runs, full_models,
                                            gap_estimate, init_from, learnability, paired_gap, runs_label,
                                            same_pretraining, scores)
from mimstudy.book.claims.evidence import PresetResults
from mimstudy.book.claims.verdicts import FLOORS, Blocker, Check, ClaimVerdict, Estimate, seed_estimate

AP_FLOOR, RMSE_FLOOR = FLOORS["ap"], FLOORS["rmse"]
TASKS = {"pose": ("Puppet-Pose AP ↑", "ap", True, 100), "crowdpose": ("Puppet-Crowd AP ↑", "ap", True, 100),
         "depth": ("GarmentWorld-Depth RMSE (m) ↓", "rmse", False, 1),
         "tracking": ("GarmentTrack AO ↑", "ao", True, 100)}  # label, metric, higher is better, scale
ARCHS = ("vit", "swinv2")


def dropped_runs(runs: xr.Dataset, task: str, objective: str, prefix: str = "vit") -> dict[int, list[str]]:
    """``{d: [runs]}``: runs of ``objective`` keeping the first blocks in order, by the number ``d`` of last
    blocks dropped; one run per pre-training run (seed) under each ``d``."""
    found: dict[int, list[str]] = {}
    for model in find_runs(runs, task, objective=objective, block_order=""):
        if str(coord(runs, model, "arch")).startswith(prefix):
            d = int(coord(runs, model, "total_blocks")) - int(coord(runs, model, "blocks"))
            found.setdefault(d, []).append(model)
    return dict(sorted(found.items()))


def sampled_pairs(runs: xr.Dataset, task: str, objective: str, prefix: str = "vit") -> list[tuple[str, list[str]]]:
    """``[(baseline, [sampled runs])]``, one per pre-training run: the runs that load randomly sampled blocks
    of it and its in-order run with as many blocks (the same ``init_from``)."""
    pairs: dict[str, list[str]] = {}
    for model in find_runs(runs, task, objective=objective):
        if not str(coord(runs, model, "arch")).startswith(prefix) or coord(runs, model, "block_order") == "":
            continue
        k, origin = int(coord(runs, model, "blocks")), init_from(runs, model)
        base = [m for m in find_runs(runs, task, objective=objective, block_order="")
                if int(coord(runs, m, "blocks")) == k and str(coord(runs, m, "arch")).startswith(prefix)
                and init_from(runs, m) == origin]
        if base:
            pairs.setdefault(base[0], []).append(model)
    return list(pairs.items())


def table2_verdict(runs: xr.Dataset, task: str, supervised: Sequence[str], mim: Sequence[str],
                   random_models: str | Sequence[str], metric: str = "ap", higher_is_better: bool = True,
                   floor: float | None = None, blocked: Sequence[Blocker] = ()) -> ClaimVerdict:
    """Table 2 on one task and backbone: MIM beats SUP by more than ``floor`` in ``metric`` (its direction
    given); RAND is the control. ``supervised`` / ``mim`` / ``random_models``: one run per training seed."""
    return ClaimVerdict.of(f"On {task}, MIM pre-training fine-tunes better than supervised pre-training.",
                           *_table2_parts(runs, task, supervised, mim, random_models, metric, higher_is_better, floor),
                           blockers=blocked)


def _table2_parts(runs, task, supervised, mim, random_models, metric="ap", higher_is_better=True, floor=None):
    floor = FLOORS[metric] if floor is None else floor
    better = "higher" if higher_is_better else "lower"
    gap = Check(f"{task}, `{runs_label(mim)}`: MIM minus supervised `{runs_label(supervised)}` {metric.upper()} "
                f"(floor {floor:g}, {better} is better)", gap_estimate(runs, mim, supervised, metric),
                "positive" if higher_is_better else "negative", floor if higher_is_better else -floor)
    rand, label = as_runs(random_models), runs_label(random_models)
    details = {f"{task}: MIM minus random init `{label}`": gap_estimate(runs, mim, rand, metric),
               f"{task}: supervised minus random init `{label}`": gap_estimate(runs, supervised, rand, metric)}
    sign = 1 if higher_is_better else -1
    notes = []
    if not any(sign * d.value > floor for d in details.values()):
        notes.append(f"On {task}, neither pre-training beats random initialisation by the floor: the comparison is "
                     "between models whose pre-training does not transfer at this scale.")
    return [gap], details, notes


def drop_last_verdict(runs: xr.Dataset, task: str, supervised: dict[int, str | Sequence[str]],
                      mim: dict[int, str | Sequence[str]], floor: float = AP_FLOOR,
                      blocked: Sequence[Blocker] = ()) -> ClaimVerdict:
    """Figure 5: for SUP the best AP(d) − AP(0) over d >= 1 dropped blocks exceeds ``floor``; for MIM it does not.

    ``supervised`` / ``mim`` map the number of dropped blocks ``d`` (0 = the full model) to run ids, one
    per pre-training run; each truncated run is paired with the full run of the same pre-training run.
    """
    def best_gain(by_d: dict[int, str | Sequence[str]]) -> tuple[int, Estimate]:
        gains = {d: paired_gap(runs, pairs) for d, ms in by_d.items()
                 if d > 0 and (pairs := same_pretraining(runs, as_runs(ms), as_runs(by_d[0])))}
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


def shuffle_verdict(runs: xr.Dataset, task: str, supervised: Sequence[tuple[str, list[str]]],
                    mim: Sequence[tuple[str, list[str]]], floor: float = AP_FLOOR,
                    blocked: Sequence[Blocker] = ()) -> ClaimVerdict:
    """§3.2: the loss from loading randomly sampled blocks (baseline − sampled) is larger for SUP than MIM.

    ``supervised`` / ``mim``: ``[(baseline run, [sampled runs])]``, one per pre-training run; the baseline
    keeps as many blocks, in order. With two or more pre-training runs a side, each run's loss is its
    baseline's mean minus the mean over its samplings and their fine-tuning seeds, and the interval is over
    pre-training runs; with one, the fine-tuning seeds of each arm are pooled (a difference of two
    differences).
    """
    def loss(pair: tuple[str, list[str]]) -> tuple[np.ndarray, np.ndarray]:
        base, sampled = pair
        return scores(runs, base), np.concatenate([scores(runs, m) for m in sampled])

    if len(supervised) >= 2 and len(mim) >= 2:
        lost_sup, lost_mim = ([b.mean() - s.mean() for b, s in map(loss, pairs)] for pairs in (supervised, mim))
        drop_sup, drop_mim = seed_estimate(lost_sup), seed_estimate(lost_mim)
        difference = seed_estimate(lost_sup, lost_mim)
        for est in (drop_sup, drop_mim, difference):
            est.interval = "t interval over pre-training seeds"
    else:
        (sup_base, sup_sampled), (mim_base, mim_sampled) = loss(supervised[0]), loss(mim[0])
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
        rand = full_models(runs, self.task, "random", self.arch)
        if self.kind == "table2":
            return self._table2(results, runs)
        if self.kind == "drop":
            series = {o: dropped_runs(runs, self.task, o, self.arch) for o in ("supervised", "simmim")}
            if not rand or not all(len(s) >= 2 and 0 in s for s in series.values()):
                return ClaimVerdict.not_run(self.text, f"`{results.preset}` lacks {self.task} runs of the supervised and "
                                            f"SimMIM {self.arch} with blocks dropped, or the random-init run")
            _, gate = learnability(runs, rand)
            pretrained = {o: [m for ms in s.values() for m in ms] for o, s in series.items()}
            return drop_last_verdict(runs, self.task, series["supervised"], series["simmim"],
                                     blocked=self._blocked(results, runs, pretrained, [gate]))
        pairs = {o: sampled_pairs(runs, self.task, o, self.arch) for o in ("supervised", "simmim")}
        if not rand or not all(pairs.values()):
            return ClaimVerdict.not_run(self.text, f"`{results.preset}` lacks a truncated baseline and runs with "
                                        f"sampled blocks for the supervised and SimMIM {self.arch}, or a random-init run")
        _, gate = learnability(runs, rand)
        pretrained = {o: [m for base, sampled in p for m in (base, *sampled)] for o, p in pairs.items()}
        return shuffle_verdict(runs, self.task, pairs["supervised"], pairs["simmim"],
                               blocked=self._blocked(results, runs, pretrained, [gate]))

    def _table2(self, results: PresetResults, runs: xr.Dataset) -> ClaimVerdict:
        checks, details, notes, gates, pretrained = [], {}, [], [], {}
        for task, (_, metric, higher, _) in TASKS.items():
            for prefix in ARCHS:
                sup, mim = (full_models(runs, task, o, prefix) for o in ("supervised", "simmim"))
                rand = full_models(runs, task, "random", prefix)
                if not (sup and mim and rand):
                    continue
                more_checks, more_details, more_notes = _table2_parts(runs, task, sup, mim, rand, metric, higher)
                checks += more_checks
                details.update(more_details)
                notes += more_notes
                est, gate = learnability(runs, rand, metric, higher)
                gates.append(gate)
                details[f"{task} learnability (random init `{runs_label(rand)}` minus the trivial predictor)"] = est
                pretrained[f"{task} {prefix} supervised"], pretrained[f"{task} {prefix} SimMIM"] = sup, mim
        if not checks:
            return ClaimVerdict.not_run(self.text, f"`{results.preset}` lacks a full supervised, SimMIM and random-init "
                                        "run of any task")
        return ClaimVerdict.of(self.text, checks, details, notes, self._blocked(results, runs, pretrained, gates))
