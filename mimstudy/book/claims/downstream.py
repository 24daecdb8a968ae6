"""Section 4's downstream claims share one base: the fine-tuning runs of ``results/<preset>/downstream`` and
how a claim reads them.

:class:`DownstreamClaim` is the base of the Section 4 families (:mod:`~mimstudy.book.claims.geometric`,
:mod:`~mimstudy.book.claims.semantic`, :mod:`~mimstudy.book.claims.combined`): one blockers call over the
pre-training runs each estimate reads (distinct ``init_from``, so seeds come from the stored runs), the
tasks' learnability gates (over the random-init runs of every training seed) and the backbones' own
quality gates. The helpers find runs by their coords
and estimate gaps: a t interval over pre-training seeds of each run's mean over fine-tuning seeds with
≥ 2 pre-training runs a side, else a t interval over the fine-tuning seeds of one run.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import xarray as xr

from mimstudy.book.claims.evidence import PresetResults
from mimstudy.book.claims.gates import GateResult
from mimstudy.book.claims.verdicts import Blocker, Claim, Estimate, blockers, seed_estimate


def scores(runs: xr.Dataset, model: str, metric: str = "ap") -> np.ndarray:
    """A run's metric over its fine-tuning seeds (NaN padding of other runs' seeds dropped)."""
    values = runs[metric].sel(model=model).values.astype(float)
    return values[np.isfinite(values)]


def seed_values(runs: xr.Dataset, models: Sequence[str], metric: str = "ap") -> np.ndarray:
    """What an interval over seeds reads for ``models`` (one run per training seed): each run's mean over its
    fine-tuning seeds when there are two or more runs, else the fine-tuning seeds of the one run."""
    if len(models) >= 2:
        return np.array([scores(runs, m, metric).mean() for m in models])
    return scores(runs, models[0], metric) if models else np.array([])


def trivial_score(runs: xr.Dataset, task: str, metric: str) -> float:
    """The trivial predictor's ``metric`` on ``task``: the mean over the runs of ``task`` (each seed's data
    has its own)."""
    models = find_runs(runs, task)
    return float(np.mean([float(runs[f"trivial_{metric}"].sel(model=m)) for m in models]))


def coord(runs: xr.Dataset, model: str, name: str):
    """A run's scalar coord ``name`` (``None`` when no run has it, e.g. ``protocol`` before it was recorded)."""
    return runs[name].sel(model=model).item() if name in runs.variables else None


def find_runs(runs: xr.Dataset, task: str, **match) -> list[str]:
    """Run ids of ``task`` whose scalar coords equal ``match`` (e.g. ``objective="simmim"``), compared as
    :func:`coord` values are (``None`` for a coord no run has)."""
    models = runs["model"].values
    if "task" not in runs.variables:
        return []
    keep = np.array([value == task for value in runs["task"].values], dtype=bool)
    for name, wanted in match.items():
        values = runs[name].values if name in runs.variables else [None] * len(models)
        keep &= np.array([str(value) == str(wanted) for value in values], dtype=bool)
    return [str(m) for m in models[keep]]


def full_models(runs: xr.Dataset, task: str, objective: str, arch_prefix: str, **match) -> list[str]:
    """The runs of ``objective`` on an ``arch_prefix*`` backbone with all blocks, in order: one per
    pre-training run (``match``: more coords to equal, e.g. ``protocol="frozen"``)."""
    return [m for m in find_runs(runs, task, objective=objective, block_order="", **match)
            if str(coord(runs, m, "arch")).startswith(arch_prefix)
            and coord(runs, m, "blocks") == coord(runs, m, "total_blocks")]


def full_model(runs: xr.Dataset, task: str, objective: str, arch_prefix: str, **match) -> str | None:
    """The first of :func:`full_models`, or ``None``."""
    found = full_models(runs, task, objective, arch_prefix, **match)
    return found[0] if found else None


def init_from(runs: xr.Dataset, model: str) -> str:
    """The pre-training run a downstream run started from ('' for random init or when not stored)."""
    if "provenance" not in runs.coords:
        return ""
    attrs = json.loads(str(runs["provenance"].sel(model=model).item()))
    params = attrs.get("parameters", "{}")
    return str((json.loads(params) if isinstance(params, str) else params).get("init_from", ""))


def gap_estimate(runs: xr.Dataset, a: Sequence[str], b: Sequence[str], metric: str = "ap") -> Estimate:
    """Mean ``metric`` of runs ``a`` minus runs ``b``: a t interval over pre-training runs when both sides
    have two or more (each run's mean over its fine-tuning seeds), else over the fine-tuning seeds of
    the first run of each side."""
    if len(a) >= 2 and len(b) >= 2:
        est = seed_estimate([scores(runs, m, metric).mean() for m in a], [scores(runs, m, metric).mean() for m in b])
        est.interval = "t interval over pre-training seeds"
        return est
    est = seed_estimate(scores(runs, a[0], metric), scores(runs, b[0], metric))
    if est.has_interval:
        est.interval = "t interval over the fine-tuning seeds of one pre-training run"
    return est


def trend_estimate(runs: xr.Dataset, far: tuple[Sequence[str], Sequence[str]], near: tuple[Sequence[str], Sequence[str]],
                   metric: str = "top1") -> Estimate:
    """How much more ``a`` leads ``b`` on a far task than on a near one: (a − b on far) − (a − b on near),
    with ``far`` and ``near`` each ``(runs a, runs b)``. Each pre-training run is read on both tasks, so with
    two or more a side the estimate is a two-sample t interval over pre-training runs of each run's far
    minus near score (the pairing removes what a backbone carries to every task); otherwise the two gaps'
    intervals are combined (:func:`difference_of`)."""
    (a_far, b_far), (a_near, b_near) = far, near
    pairs = {side: same_pretraining(runs, hi, lo) for side, hi, lo in (("a", a_far, a_near), ("b", b_far, b_near))}
    if len(pairs["a"]) >= 2 and len(pairs["b"]) >= 2:
        change = {side: [scores(runs, hi, metric).mean() - scores(runs, lo, metric).mean() for hi, lo in found]
                  for side, found in pairs.items()}
        est = seed_estimate(change["a"], change["b"])
        est.interval = "t interval over pre-training seeds, each run's far minus near task"
        return est
    return difference_of(gap_estimate(runs, a_far, b_far, metric), gap_estimate(runs, a_near, b_near, metric))


def difference_of(a: Estimate, b: Estimate) -> Estimate:
    """``a - b`` for two estimates from separate runs: the half-widths of their intervals combined in
    quadrature (no interval unless both have one)."""
    value = a.value - b.value
    if not (a.has_interval and b.has_interval):
        return Estimate(value)
    half = np.hypot(a.high - a.value, b.high - b.value)
    return Estimate(value, value - half, value + half, "t intervals over seeds, combined")


def as_runs(models: str | Sequence[str]) -> list[str]:
    """One run id or several as a list."""
    return [models] if isinstance(models, str) else list(models)


def runs_label(models: str | Sequence[str]) -> str:
    """A short name for runs of one model over training seeds: ``pose_vit_random-s{0,1,2}`` for
    ``pose_vit_random-s0`` .. ``-s2``; other lists joined with commas."""
    models = as_runs(models)
    stems = {re.sub(r"-s\d+$", "", m) for m in models}
    if len(models) > 1 and len(stems) == 1 and all(re.search(r"-s\d+$", m) for m in models):
        return f"{stems.pop()}-s{{{','.join(m.rsplit('-s', 1)[1] for m in models)}}}"
    return ", ".join(models)


def same_pretraining(runs: xr.Dataset, a: Sequence[str], b: Sequence[str]) -> list[tuple[str, str]]:
    """Pairs ``(run of a, run of b)`` that start from the same pre-training run (their ``init_from``), in
    ``a``'s order: e.g. a truncated backbone and the full one of the same pre-training seed."""
    by_origin = {init_from(runs, m): m for m in b}
    return [(m, by_origin[init_from(runs, m)]) for m in a if init_from(runs, m) in by_origin]


def paired_gap(runs: xr.Dataset, pairs: Sequence[tuple[str, str]], metric: str = "ap") -> Estimate:
    """Mean ``metric`` of ``a`` minus ``b`` over pairs from the same pre-training run: a t interval over
    pre-training runs of the paired differences of their means over fine-tuning seeds with two or more
    pairs, else over the fine-tuning seeds of the one pair."""
    if len(pairs) >= 2:
        est = seed_estimate([scores(runs, a, metric).mean() - scores(runs, b, metric).mean() for a, b in pairs])
        est.interval = "t interval over pre-training seeds, paired"
        return est
    a, b = pairs[0]
    return gap_estimate(runs, [a], [b], metric)  # one pair: over its fine-tuning seeds


def learnability(runs: xr.Dataset, random_models: str | Sequence[str], metric: str = "ap",
                 higher_is_better: bool = True) -> tuple[Estimate, GateResult]:
    """The task's quality gate: fine-tuned random weights beat the trivial predictor (else the task is
    broken). ``random_models``: the random-init runs, one per training seed; each is read against the
    trivial predictor of its own data. The interval is over those runs (each run's mean over its
    fine-tuning seeds) when there are two or more, else over the fine-tuning seeds of the one run. Pass
    when the whole interval is past the trivial predictor, fail when it is wholly on the wrong side,
    unknown when it straddles it (inside the noise, as the pre-registered gates read) or has no interval."""
    models = as_runs(random_models)
    margins = [scores(runs, m, metric) - float(runs[f"trivial_{metric}"].sel(model=m)) for m in models]
    if len(models) >= 2:
        est = seed_estimate([m.mean() for m in margins])
        est.interval = "t interval over training seeds"
    else:
        est = seed_estimate(margins[0])
    trivial = float(np.mean([float(runs[f"trivial_{metric}"].sel(model=m)) for m in models]))
    label = runs_label(models)
    words = (f"random-init `{label}` {metric.upper()} minus the trivial predictor's "
             f"({trivial:.3f}{', mean over runs' if len(models) > 1 else ''}): {est}")
    good, bad = (est.above(0), est.below(0)) if higher_is_better else (est.below(0), est.above(0))
    if good:
        return est, GateResult(label, "pass", [words])
    if bad:
        return est, GateResult(label, "fail", [words], failed=[f"the task is not learned ({words})"])
    return est, GateResult(label, "unknown", [words], unknown=[f"task learnability not decidable ({words})"])


@dataclass(frozen=True)
class DownstreamClaim(Claim):
    """A Section 4 claim of kind ``kind`` on the preset's downstream runs (``task`` on ``arch``, an arch
    prefix, where the kind reads one); each family implements :meth:`evaluate`."""

    kind: str = "table2"
    task: str = "pose"
    arch: str = "vit"
    reads: ClassVar[tuple[str, ...]] = ("downstream", "pretrain", "evaluate")

    def _blocked(self, results: PresetResults, runs: xr.Dataset, read: dict[str, list[str]],
                 task_gates: list[GateResult]) -> list[Blocker]:
        """One blockers call: the pre-training runs each role's estimate reads (``read``: role -> downstream
        runs; distinct ``init_from`` counted, so seeds come from the stored runs), the learnability gates
        and the pre-trained backbones' own quality gates."""
        backbones = {role: list(dict.fromkeys(init_from(runs, m) for m in ms)) for role, ms in read.items()}
        gates = task_gates + results.gates([b for bs in backbones.values() for b in bs if b in self._known(results)])
        return blockers({role: len(bs) for role, bs in backbones.items()}, gates)

    @staticmethod
    def _known(results: PresetResults) -> set[str]:
        """Run ids with a pre-training record: their quality gates apply to the downstream rows."""
        found = set()
        for ds in (results.pretrain, results.evaluate):
            if ds is not None:
                found |= {str(m) for m in ds["model"].values}
        return found
