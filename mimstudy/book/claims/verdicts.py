"""Verdicts that say how much: effect sizes against a floor and a random-init control, over training seeds.

A :class:`Check` is one measurable part of a claim: an :class:`Estimate` of an effect (oriented so that
larger means more support), the **effect-size floor** it must clear (``threshold``, stated in words in
``floor``, derived in ``derivation``), the **null** it is tested against (``null``, in words) and the same
statistic computed on **random-init models** (``control``). Each check has one of three outcomes
(:attr:`Check.outcome`): it *holds* when the effect's whole 95% interval lies beyond the floor and beyond
the control (its interval when it has one, else its value) — a narrow interval around a tiny effect is
not enough; it *fails* when the whole interval lies on the wrong side of the floor or of the control; it
is *inconclusive* when the interval straddles either. :func:`judge` turns outcomes into a verdict:
*supported* (every check holds), *partly supported* (some hold, some fail), *not supported* (checks fail,
none holds) — only checks that fail can make a claim (partly) unsupported — or *undetermined* when a
:class:`Blocker` applies, no check has an interval, or a check is inconclusive and none fails (the
blocker then says roughly how many seeds would decide it, from the observed spread). Every claim family gets its
blockers from one function, :func:`blockers` (training seeds, quality gates with three states, the
random-init control), and :meth:`ClaimVerdict.of` adds the two that any check can raise: a check whose
value is missing or NaN, and a controlled check whose control is missing or NaN — neither is ever
counted as cleared. :meth:`Claim.judge` adds what the evidence itself can raise (stale results, seeds that
are copies of each other, one run stored twice: :meth:`mimstudy.book.claims.evidence.PresetResults.integrity`).
Every claim is a :class:`Claim` with one ``judge(results) -> ClaimVerdict``; the
registry is :mod:`mimstudy.book.claims.registry`, the evidence :mod:`mimstudy.book.claims.evidence`, the quality gates
:mod:`mimstudy.book.claims.gates`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import ClassVar

import numpy as np
import xarray as xr


N_BOOT = 1000  # bootstrap resamples of every interval over images or channels
FLOORS = {  # effect-size floors of the Appendix B and Section 4.2 checks (Section 3's are in its Effects)
    "kernel_distance": 1.0,  # px: one tap (a grid step at stride 1)
    "kernel_entropy": 0.1,  # nats, as Section 3's 0.1 of log N for attention entropy
    "kernel_kl": 0.05,  # nats between channels
    "accuracy": 0.01,  # 1 point of top-1 (Table 3's gap is 0.2 points at ImageNet scale: "on par")
    "ap": 0.01,  # 1 OKS AP point (the paper's gaps: +2.4 COCO, +4.2 CrowdPose)
    "top1": 0.01,  # 1 point of top-1 or mean per-class accuracy (Section 4.1; the paper's CoG gaps: 0.2-0.7)
    "ao": 0.01,  # 1 point of GOT-10k's average overlap (the paper's tracking gaps: +0.7 to +1.8)
    "rmse": 0.02,  # metres (the paper's NYUv2 gap: 0.048 m of 0.35; our scenes' trivial RMSE is about 1 m)
}
FLOOR_ORIGINS = {  # where each of FLOORS comes from, for the pages: a construction, or a convention said to be one
    "kernel_distance": "1 px: one tap of the kernel at stride 1, the smallest change of where it aggregates (the "
                       "one-grid-step construction of Section 3's floors)",
    "kernel_entropy": "0.1 nats: a convention of this study (neither the paper nor a construction gives a number)",
    "kernel_kl": "0.05 nats: a convention of this study (neither the paper nor a construction gives a number)",
    "accuracy": "1 point of top-1: a convention; the paper's Table 3 gap is 0.2 points at ImageNet scale ('on par')",
    "ap": "1 AP point: a convention, below the paper's gaps (Table 2: +2.4 COCO, +4.2 CrowdPose)",
    "top1": "1 point: a convention, above the paper's CoG gaps (0.2-0.7 points, Table 5)",
    "ao": "1 AO point: a convention, within the paper's tracking gaps (+0.7 to +1.8, Table 2)",
    "rmse": "0.02 m: a convention, below the paper's NYUv2 gap (0.048 m of 0.35, Table 2)",
}


@lru_cache(maxsize=16)
def resample_counts(n: int, n_boot: int, seed: int) -> np.ndarray:
    """``[n_boot, n]`` how often each of ``n`` images is drawn in each bootstrap resample (with replacement);
    read-only, cached: every caller with the same ``(n, n_boot, seed)`` gets the same resamples."""
    draws = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))  # [n_boot, n] image indices
    counts = np.bincount((draws + n * np.arange(n_boot)[:, None]).ravel(), minlength=n_boot * n)
    counts = counts.reshape(n_boot, n).astype(np.float64)
    counts.flags.writeable = False
    return counts


def bootstrap_image_means(values: xr.DataArray, n_boot: int, seed: int) -> np.ndarray:
    """``[n_boot, ...]`` means over the ``image`` dim of ``values``, images resampled with replacement.

    The same resampled images (:func:`resample_counts`, a function of ``seed`` and the image count only)
    are used across every other dim and every call, so models probed on the same images stay paired.
    """
    data = values.transpose(..., "image").values  # [..., N]
    counts = resample_counts(data.shape[-1], n_boot, seed)  # [n_boot, N]
    means = data.reshape(-1, data.shape[-1]) @ counts.T / data.shape[-1]  # [M, n_boot]; NaN rows stay NaN
    return np.moveaxis(means, -1, 0).reshape(n_boot, *data.shape[:-1])


def bootstrap_samples(values: xr.DataArray, n_boot: int = N_BOOT, seed: int = 0) -> xr.DataArray:
    """:func:`bootstrap_image_means` as a DataArray: dims ``("boot", *other dims)``, ``values``' coords kept.

    E.g. ``bootstrap_samples(probes["attention_entropy"].mean("head"))`` gives ``(boot, layer)``
    layer means for error bars. NaN-padded heads (Swin) stay NaN; reduce over ``head`` first with
    xarray's NaN-skipping ``mean`` to get layer values.
    """
    if "image" not in values.dims:
        raise ValueError(f"values need an 'image' dim to bootstrap over, got dims {values.dims}")
    other = [d for d in values.dims if d != "image"]
    samples = bootstrap_image_means(values.transpose(*other, "image"), n_boot, seed)  # [n_boot, *other]
    coords = {name: coord for name, coord in values.coords.items() if "image" not in coord.dims}
    return xr.DataArray(samples, dims=("boot", *other), coords=coords, name=values.name, attrs=values.attrs)


def image_mean_interval(values: xr.DataArray, n_boot: int = N_BOOT, seed: int = 0, level: float = 0.95) -> xr.Dataset:
    """Mean over ``image`` with a percentile bootstrap interval: variables ``mean``, ``low``, ``high``."""
    samples = bootstrap_samples(values, n_boot, seed)
    tail = (1 - level) / 2
    bounds = samples.quantile([tail, 1 - tail], dim="boot", skipna=False)  # NaN padding stays NaN, quietly
    return xr.Dataset(
        {"mean": values.mean("image", skipna=False), "low": bounds.isel(quantile=0, drop=True),
         "high": bounds.isel(quantile=1, drop=True)},
        attrs={"level": level, "n_boot": n_boot, "seed": seed},
    )  # fmt: skip


VERDICTS = ("supported", "partly supported", "not supported")
UNDETERMINED = "undetermined"
NOT_RUN = "not run"  # the claim's experiment is not built, or the preset has none of its models
MIN_SEEDS = 3  # training seeds an interval over seeds needs before a verdict is given


@dataclass
class Estimate:
    """A number with a 95% interval, or a bare point estimate (``low``/``high`` ``None``) when there is none."""

    value: float
    low: float | None = None
    high: float | None = None
    interval: str = "bootstrap over images"  # what the interval is made from
    n: int | None = None  # seeds behind a t interval over seeds (None for any other interval)

    @classmethod
    def from_samples(cls, value: float, samples: np.ndarray, interval: str = "bootstrap over images") -> "Estimate":
        low, high = np.percentile(samples, [2.5, 97.5])
        return cls(float(value), float(low), float(high), interval)

    @classmethod
    def point(cls, value: float) -> "Estimate":
        """A point estimate with no interval (e.g. one seed of a statistic that has no per-image values)."""
        return cls(float(value), None, None, "none")

    @classmethod
    def missing(cls, why: str = "") -> "Estimate":
        """No estimate at all (a variable the stored results lack, ``why``): NaN, no interval."""
        return cls(float("nan"), None, None, why or "none")

    @property
    def has_interval(self) -> bool:
        return self.low is not None and self.high is not None

    def above(self, threshold: float = 0.0) -> bool:
        """The whole interval lies above ``threshold`` (False without an interval)."""
        return self.has_interval and self.low > threshold

    def below(self, threshold: float = 0.0) -> bool:
        """The whole interval lies below ``threshold`` (False without an interval)."""
        return self.has_interval and self.high < threshold

    @property
    def positive(self) -> bool:
        return self.above(0.0)

    def short(self) -> str:
        """``0.12 [0.08, 0.16]`` (or ``0.12`` / ``–``): for table cells."""
        if np.isnan(self.value):
            return "–"
        return f"{self.value:.3g} [{self.low:.3g}, {self.high:.3g}]" if self.has_interval else f"{self.value:.3g}"

    def __str__(self) -> str:
        if np.isnan(self.value):
            return "not available"
        if not self.has_interval:
            return f"{self.value:.3g} (point estimate, no interval)"
        return f"{self.value:.3g} [95% CI {self.low:.3g}, {self.high:.3g}; {self.interval}]"


OUTCOMES = ("holds", "fails", "inconclusive")


def t_quantile(dof: int) -> float:
    from scipy import stats

    return float(stats.t.ppf(0.975, dof))


def seeds_to_decide(estimate: Estimate, level: float, most: int = 1000) -> int | None:
    """Roughly how many seeds a t interval over seeds needs to lie wholly on one side of ``level``, if the
    mean and the spread stayed as observed (``estimate`` from :func:`seed_estimate`); ``None`` when that
    cannot be said (no spread over seeds known, or the mean sits on ``level``)."""
    if not estimate.has_interval or not estimate.n or estimate.n < 2:
        return None
    gap = abs(estimate.value - level)
    sd = (estimate.high - estimate.value) / t_quantile(estimate.n - 1) * np.sqrt(estimate.n)  # spread of one seed
    if gap == 0:
        return None
    if sd == 0:
        return estimate.n
    for n in range(estimate.n, most + 1):
        if t_quantile(n - 1) * sd / np.sqrt(n) < gap:
            return n
    return None


@dataclass
class Check:
    """One testable part of a claim: ``estimate`` should lie above (``expect="positive"``) or below
    (``"negative"``) ``threshold`` — the effect-size floor, described in words by ``floor`` and derived in
    ``derivation`` — with its whole 95% interval, and beyond ``control``, the same statistic on random-init
    models. ``null``: the hypothesis the check rejects when it holds, in words.

    ``controlled``: the check must clear ``control``; a missing or NaN control then never clears (the
    check does not hold, and :meth:`ClaimVerdict.of` names a blocker). Checks whose control is built
    into the statistic (e.g. "trained minus its own random init") leave it ``False``; so do checks whose
    random-init control is zero by construction (``control_note`` says so: a difference between two roles
    is a difference between two random models of the same architecture, zero on average whatever the
    statistic) — they rest on their interval over seeds against the floor."""

    description: str
    estimate: Estimate
    expect: str = "positive"
    threshold: float = 0.0
    control: Estimate | None = None
    floor: str = ""
    controlled: bool = False
    null: str = ""
    derivation: str = ""
    control_note: str = ""

    def __post_init__(self):
        if self.expect not in ("positive", "negative"):
            raise ValueError(f"expect must be 'positive' or 'negative', got {self.expect!r}")

    def _beyond(self, level: float) -> bool:
        return self.estimate.above(level) if self.expect == "positive" else self.estimate.below(level)

    def _short_of(self, level: float) -> bool:
        """The whole interval lies on the wrong side of ``level``."""
        return self.estimate.below(level) if self.expect == "positive" else self.estimate.above(level)

    @property
    def clears_floor(self) -> bool | None:
        return None if not self.estimate.has_interval else self._beyond(self.threshold)

    def _control_end(self, far: bool) -> float | None:
        """The control's far (or near) end in the expected direction: its interval's, else its value."""
        if self.control is None or np.isnan(self.control.value):
            return None
        if not self.control.has_interval:
            return self.control.value
        return self.control.high if far == (self.expect == "positive") else self.control.low

    @property
    def control_edge(self) -> float | None:
        """The control's far end in the expected direction: the effect must lie beyond it to hold."""
        return self._control_end(far=True)

    @property
    def control_near_edge(self) -> float | None:
        """The control's near end in the expected direction: an effect wholly short of it fails."""
        return self._control_end(far=False)

    @property
    def control_missing(self) -> bool:
        """A controlled check whose control is absent or NaN."""
        return self.controlled and self.control_edge is None

    @property
    def clears_control(self) -> bool | None:
        if not self.estimate.has_interval:
            return None
        edge = self.control_edge
        if edge is None:
            return not self.controlled  # a missing or NaN control never clears a controlled check
        return self._beyond(edge)

    @property
    def outcome(self) -> str | None:
        """``holds`` / ``fails`` / ``inconclusive`` from the interval (module docstring); ``None`` when the
        estimate has no interval (cannot be decided)."""
        if not self.estimate.has_interval or np.isnan(self.estimate.value):
            return None
        if self.clears_floor and self.clears_control:
            return "holds"
        near = self.control_near_edge
        if self._short_of(self.threshold) or (near is not None and self._short_of(near)):
            return "fails"
        return "inconclusive"

    @property
    def holds(self) -> bool | None:
        """True when the check holds, False when it fails or is inconclusive; ``None`` without an interval."""
        outcome = self.outcome
        return None if outcome is None else outcome == "holds"

    @property
    def points_the_expected_way(self) -> bool:
        v = self.estimate.value
        return v > self.threshold if self.expect == "positive" else v < self.threshold

    def unresolved_levels(self) -> list[float]:
        """The floor and control edges the interval straddles (what more seeds would have to settle)."""
        levels = [self.threshold] + [e for e in (self.control_edge,) if e is not None]
        return [x for x in levels if not self._beyond(x) and not self._short_of(x)]

    def seeds_needed(self) -> int | None:
        """Roughly how many seeds would settle every level the interval straddles (:func:`seeds_to_decide`)."""
        needs = [seeds_to_decide(self.estimate, level) for level in self.unresolved_levels()]
        return None if not needs or any(n is None for n in needs) else max(needs)

    @property
    def status(self) -> str:
        if np.isnan(self.estimate.value):
            return "not available"
        outcome = self.outcome
        if outcome is None:
            lean = "the expected" if self.points_the_expected_way else "the wrong"
            return f"undecided — no interval; the point estimate points {lean} way"
        if self.control_missing:
            return "no usable random-init control (missing or NaN)"
        if outcome == "holds":
            return "holds"
        if outcome == "fails":
            return ("fails — wholly short of its floor" if self._short_of(self.threshold)
                    else "fails — wholly short of the random-init control")
        return ("inconclusive — its interval straddles the floor" if not self.clears_floor
                else "inconclusive — its interval overlaps the random-init control")

    def markdown(self) -> str:
        side = ">" if self.expect == "positive" else "<"
        floor = self.floor or f"expected {side} {self.threshold:g}"
        if self.control_note:
            control = f"; control: {self.control_note}"
        elif self.controlled or self.control is not None:
            control = "; random-init control " + ("missing" if self.control is None else str(self.control))
        else:
            control = ""
        null = f" Null: {self.null}." if self.null else ""
        derivation = f" Floor: {self.derivation}." if self.derivation else ""
        return f"{self.description}: {self.estimate} (floor: {floor}{control}) — **{self.status}**.{null}{derivation}"


@dataclass(frozen=True)
class Blocker:
    """Why a claim cannot be judged yet (``reason``) and what would let it be (``remedy``)."""

    reason: str
    remedy: str
    tag: str = ""  # a word or two for table cells: "seeds", "gate", ...

    def __str__(self) -> str:
        return self.reason


@dataclass(frozen=True)
class Control:
    """The random-init control a claim reads: what it is (``name``) and how many models of it exist."""

    name: str  # e.g. "vit_micro_32 at random init"
    seeds: int  # control models found (0: none)
    remedy: str = "the random-init control probed"


def seeds_blocker(seeds: Mapping[str, int], what: str = "training") -> list[Blocker]:
    """A blocker when some role has fewer than :data:`MIN_SEEDS` ``what`` seeds (``seeds``: role -> count)."""
    few = {role: n for role, n in seeds.items() if n < MIN_SEEDS}
    if not few:
        return []
    counts = ", ".join(f"{role}: {n}" for role, n in few.items())
    n = min(few.values())
    return [Blocker(f"only {n} {what} seed{'s' if n != 1 else ''} ({counts}; an interval over seeds needs ≥ {MIN_SEEDS})",
                    f"results over ≥ {MIN_SEEDS} {what} seeds (a preset with `seeds: [0, 1, 2]`, as `cpu` has)", "seeds")]


def blockers(seeds: Mapping[str, int], gates: Sequence = (), control: Control | None = None) -> list[Blocker]:
    """What keeps a claim undetermined, the same for every claim family.

    * ``seeds``: training seeds per role (role label -> count): fewer than :data:`MIN_SEEDS` blocks;
    * ``gates``: the quality gates of every model the claim reads (:class:`mimstudy.book.claims.gates.GateResult`,
      status ``pass`` / ``fail`` / ``unknown``): a failed gate blocks, and so does an unknown one;
    * ``control``: the random-init control (``None`` when the claim's control is inside its checks):
      none found, or fewer control seeds than training seeds (up to :data:`MIN_SEEDS`), blocks.
    """
    found = seeds_blocker(seeds)
    failed = [g for g in gates if g.status == "fail"]
    unknown = [g for g in gates if g.status == "unknown"]
    if failed:
        found.append(Blocker("the model has not learned enough: " + "; ".join(f for g in failed for f in g.failed),
                             ", ".join(f"`{g.model}`" for g in failed) + " past "
                             + ("its quality gate" if len(failed) == 1 else "their quality gates"), "gate"))
    if unknown:
        found.append(Blocker("quality gate unknown: " + "; ".join(u for g in unknown for u in g.unknown),
                             "the gates of " + ", ".join(f"`{g.model}`" for g in unknown) + " measured", "gate unknown"))
    if control is not None:
        n = min(seeds.values(), default=0)
        if control.seeds == 0:
            found.append(Blocker(f"no random-init control ({control.name})", control.remedy, "no control"))
        elif control.seeds < min(n, MIN_SEEDS):
            found.append(Blocker(f"the random-init control ({control.name}) has {control.seeds} seed(s), fewer than "
                                 f"the {n} training seeds", "as many random-init seeds as training seeds", "control seeds"))
    return found


def check_blockers(checks: Sequence[Check]) -> list[Blocker]:
    """The blockers a check raises by itself: its value is missing or NaN (a stored variable or reference
    is absent), or it is controlled and its control is missing or NaN."""
    found = []
    for check in checks:
        if np.isnan(check.estimate.value):
            why = check.estimate.interval if check.estimate.interval != "none" else \
                "a stored variable or reference is missing or NaN"
            found.append(Blocker(f"“{check.description}” has no value ({why})",
                                 "the missing results stored (re-run the step that makes them)", "missing"))
        elif check.control_missing:
            found.append(Blocker(f"“{check.description}” has no usable random-init control (missing or NaN)",
                                 "the random-init control probed with every variable the check reads", "no control"))
    return found


def inconclusive_blocker(checks: Sequence[Check]) -> list[Blocker]:
    """When no check fails and some are inconclusive: one blocker naming them, with roughly how many
    seeds each would need to be decided if its mean and spread stayed as observed."""
    outcomes = [c.outcome for c in checks]
    if "fails" in outcomes or "inconclusive" not in outcomes:
        return []
    parts = []
    for check in checks:
        if check.outcome != "inconclusive":
            continue
        n = check.seeds_needed()
        have = f"{check.estimate.n} seeds" if check.estimate.n else "its interval"
        parts.append(f"“{check.description}” ({check.estimate.value:.3g}; "
                     + (f"about {n} seeds would decide it at the observed spread, {have} now)" if n
                        else f"{have} straddles its floor or control; the spread over seeds does not say how many "
                             "more would decide it)"))
    return [Blocker("inconclusive: " + "; ".join(parts), "more training seeds for the inconclusive checks",
                    "inconclusive")]


def judge(checks: Sequence[Check], blockers: Sequence[Blocker | str] = ()) -> str:
    """*undetermined* when any blocker applies or no check has an interval; otherwise, from the checks'
    outcomes (checks without an interval left out): *supported* if every check holds, *partly supported*
    if some hold and some fail, *not supported* if some fail and none holds, *undetermined* if none fails
    and some are inconclusive."""
    if blockers:
        return UNDETERMINED
    outcomes = [c.outcome for c in checks if c.outcome is not None]
    if not outcomes:
        return UNDETERMINED
    if "fails" in outcomes:
        return VERDICTS[1] if "holds" in outcomes else VERDICTS[2]
    return UNDETERMINED if "inconclusive" in outcomes else VERDICTS[0]


@dataclass
class ClaimVerdict:
    """A claim, the checks that test it, the verdict they give, what blocks a verdict, extra estimates."""

    claim: str
    checks: list[Check]
    verdict: str
    details: dict[str, Estimate] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    blockers: list[Blocker] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)  # the stored runs the verdict read ([]: not said)

    @classmethod
    def of(cls, claim: str, checks: Sequence[Check], details: dict | None = None, notes: Sequence[str] = (),
           blockers: Sequence[Blocker] = (), runs: Sequence[str] = ()) -> "ClaimVerdict":
        """The verdict of ``checks`` under ``blockers`` plus those any check raises (:func:`check_blockers`)
        and, when no check fails, the inconclusive ones (:func:`inconclusive_blocker`)."""
        found = list(dict.fromkeys([*blockers, *check_blockers(checks)]))
        if not found:
            found = inconclusive_blocker(checks)
        return cls(claim, list(checks), judge(checks, found), dict(details or {}), list(notes), found,
                   list(dict.fromkeys(runs)))

    def blocked_by(self, more: Sequence[Blocker], notes: Sequence[str] = ()) -> "ClaimVerdict":
        """This verdict with ``more`` blockers and ``notes`` added (re-judged)."""
        if not more and not notes:
            return self
        kept = [b for b in self.blockers if b.tag != "inconclusive"]
        return ClaimVerdict.of(self.claim, self.checks, self.details, [*self.notes, *notes], [*more, *kept], self.runs)

    @classmethod
    def not_run(cls, claim: str, reason: str) -> "ClaimVerdict":
        """A claim whose experiment is not built or has no models in a preset."""
        return cls(claim, [], NOT_RUN, notes=[reason])

    @property
    def headline(self) -> str:
        """The verdict with its reasons: ``undetermined: only 1 training seed; ...``."""
        if self.verdict == UNDETERMINED and self.blockers:
            return f"{UNDETERMINED}: " + "; ".join(b.reason for b in self.blockers)
        return self.verdict

    def summary(self) -> str:
        """Markdown: the verdict in bold, the claim, one bullet per check, then details and notes."""
        lines = [f"**{self.verdict}.** {self.claim}", ""]
        if self.blockers:
            lines += ["Undetermined because: " + "; ".join(b.reason for b in self.blockers) + ".", ""]
        lines += [f"- {check.markdown()}" for check in self.checks]
        lines += [f"- {name}: {est}" for name, est in self.details.items()]
        undecided = sum(c.holds is None for c in self.checks)
        notes = list(self.notes)
        failing = [c for c in self.checks if c.outcome == "fails"]
        open_ = [c for c in self.checks if c.outcome == "inconclusive"]
        if failing and open_:
            notes.append(f"{len(open_)} check(s) are inconclusive (their intervals straddle the floor or the "
                         "control); the verdict rests on the checks that hold or fail.")
        if undecided and self.verdict != NOT_RUN:
            notes.append(f"{undecided} check(s) have no interval and are not counted in the verdict.")
        if notes:
            lines += ["", " ".join(notes)]
        return "\n".join(lines)

    def what_would_change(self) -> str:
        """One sentence, generated from the checks and blockers: what would turn this verdict into another."""
        if self.verdict == NOT_RUN:
            return "running its experiment: " + " ".join(self.notes)
        parts = [b.remedy for b in self.blockers]
        for check in self.checks:
            if np.isnan(check.estimate.value):
                continue
            if check.control_missing:
                parts.append(f"“{check.description}” is {check.estimate.value:.3g} and cannot be read without its "
                             "random-init control")
                continue
            edge = check.control_edge
            need = check.threshold if edge is None else (max(check.threshold, edge) if check.expect == "positive"
                                                         else min(check.threshold, edge))
            name = f"“{check.description}”"
            if check.holds:
                bound = check.estimate.low if check.expect == "positive" else check.estimate.high
                parts.append(f"{name} holds ({bound:.3g} at the near end of its interval); it would fail "
                             f"if that end fell to {need:.3g} (the floor or the control, whichever is stricter)")
            elif check.outcome is None and check.points_the_expected_way:
                parts.append(f"{name} is {check.estimate.value:.3g}, past its floor {check.threshold:g}"
                             + (f" and the control {edge:.3g}" if edge is not None else "")
                             + ", but has no interval: an interval over seeds could make it hold")
            elif check.outcome == "inconclusive":
                n = check.seeds_needed()
                parts.append(f"{name} is {check.estimate.value:.3g} and its interval straddles "
                             f"{'its floor' if not check.clears_floor else 'the control'}: a tighter interval would "
                             "decide it" + (f" (about {n} seeds at the observed spread)" if n else " (more seeds)"))
            else:
                gap = abs(need - check.estimate.value)
                parts.append(f"{name} is {check.estimate.value:.3g}: it needs an effect {gap:.3g} larger "
                             f"(past {need:.3g}, the floor {check.threshold:g}"
                             + (f" or the control {edge:.3g}" if edge is not None else "") + ")")
        return "; ".join(parts) + "." if parts else "nothing: no check can change it."


@dataclass(frozen=True)
class Claim:
    """One claim of the paper: where it is shown, the book page that shows it, and one :meth:`judge`.

    Claim families (Section 3 / Appendix A probes, Fig. 2(a)'s sweep, Appendix B's kernels and Table 3,
    Section 4.2's fine-tuning) subclass it, declare the roles and variables they read as fields, and
    implement :meth:`evaluate`; the scorecard and every page call :meth:`judge`."""

    key: str
    where: str  # section · figure/table, e.g. "3.1.1 · Fig. 1"
    title: str
    text: str  # the claim in words
    page: str = ""  # the book page (file stem under book/) that shows it; "" when none
    not_built: str = ""  # why its experiment is not in this study yet
    # the stored results a family reads: their runs are checked (stale, copied) when a verdict names none
    reads: ClassVar[tuple[str, ...]] = ("probes", "evaluate", "pretrain", "downstream")

    def judge(self, results) -> ClaimVerdict:
        """The verdict on ``results`` (a :class:`mimstudy.book.claims.evidence.PresetResults`)."""
        if self.not_built:
            return ClaimVerdict.not_run(self.text, self.not_built)
        verdict = self.evaluate(results)
        if verdict.verdict == NOT_RUN or not hasattr(results, "integrity"):
            return verdict
        return verdict.blocked_by(*results.integrity(verdict.runs or results.runs_in(self.reads)))

    def evaluate(self, results) -> ClaimVerdict:  # pragma: no cover - every family overrides it
        raise NotImplementedError

    def floors(self) -> list[str]:
        """Its checks and their floors in words, for the pages' rules."""
        return []

    def floor_keys(self) -> tuple[str, ...]:
        """The :data:`FLOORS` its checks use (their origins are shown with the page's rules)."""
        return ()


# --- intervals over training seeds ---------------------------------------------------------------


def seed_estimate(a: Sequence[float], b: Sequence[float] | None = None) -> Estimate:
    """Mean of ``a`` (or mean ``a`` minus mean ``b``) with a 95% t interval over seeds; a point estimate
    (no interval) when there are fewer than two seeds on a side."""
    a = np.asarray(a, float)
    b = None if b is None else np.asarray(b, float)
    value = a.mean() - (0.0 if b is None else b.mean())
    if len(a) < 2 or (b is not None and len(b) < 2):
        return Estimate.point(value)
    from scipy import stats

    var = a.var(ddof=1) / len(a) + (0.0 if b is None else b.var(ddof=1) / len(b))
    dof = len(a) - 1 if b is None else min(len(a), len(b)) - 1  # conservative Welch degrees of freedom
    half = stats.t.ppf(0.975, dof) * np.sqrt(var)
    n = len(a) if b is None else min(len(a), len(b))
    return Estimate(float(value), float(value - half), float(value + half), "t interval over seeds", n)
