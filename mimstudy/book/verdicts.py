"""Verdicts on the paper's claims, computed from stored results with bootstrap uncertainty."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import xarray as xr


def depth_slope(per_layer: np.ndarray) -> float:
    """Least-squares slope of ``per_layer`` values ``[L]`` against layer number 1..L."""
    layers = np.arange(1, per_layer.shape[-1] + 1)
    return float(np.polyfit(layers, per_layer, 1)[0])


def bootstrap_image_means(values: xr.DataArray, n_boot: int, seed: int) -> np.ndarray:
    """``[n_boot, ...]`` means over the ``image`` dim of ``values``, images resampled with replacement.

    The same resampled image indices are used across every other dim, so models probed on the same
    images stay paired.
    """
    rng = np.random.default_rng(seed)
    data = values.transpose(..., "image").values  # [..., N]
    n = data.shape[-1]
    idx = rng.integers(0, n, size=(n_boot, n))
    return np.stack([data[..., i].mean(axis=-1) for i in idx])  # [n_boot, ...]



def bootstrap_samples(values: xr.DataArray, n_boot: int = 1000, seed: int = 0) -> xr.DataArray:
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


def image_mean_interval(values: xr.DataArray, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> xr.Dataset:
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


@dataclass
class Estimate:
    """A number with a 95% interval, or a bare point estimate (``low``/``high`` ``None``) when there is none."""

    value: float
    low: float | None = None
    high: float | None = None
    interval: str = "bootstrap over images"  # what the interval is made from

    @classmethod
    def from_samples(cls, value: float, samples: np.ndarray, interval: str = "bootstrap over images") -> "Estimate":
        low, high = np.percentile(samples, [2.5, 97.5])
        return cls(float(value), float(low), float(high), interval)

    @classmethod
    def point(cls, value: float) -> "Estimate":
        """A point estimate with no interval (e.g. one seed of a statistic that has no per-image values)."""
        return cls(float(value), None, None, "none")

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

    def __str__(self) -> str:
        if not self.has_interval:
            return f"{self.value:.3g} (point estimate, no interval)"
        return f"{self.value:.3g} [95% CI {self.low:.3g}, {self.high:.3g}]"


@dataclass
class Check:
    """One testable part of a claim: ``estimate`` should be above (``expect="positive"``) or below
    (``"negative"``) ``threshold``, with its 95% interval excluding the threshold."""

    description: str
    estimate: Estimate
    expect: str = "positive"
    threshold: float = 0.0

    def __post_init__(self):
        if self.expect not in ("positive", "negative"):
            raise ValueError(f"expect must be 'positive' or 'negative', got {self.expect!r}")

    @property
    def holds(self) -> bool | None:
        """True/False from the interval; ``None`` when the estimate has no interval (cannot be decided)."""
        if not self.estimate.has_interval:
            return None
        return self.estimate.above(self.threshold) if self.expect == "positive" else self.estimate.below(self.threshold)

    @property
    def points_the_expected_way(self) -> bool:
        v = self.estimate.value
        return v > self.threshold if self.expect == "positive" else v < self.threshold

    def markdown(self) -> str:
        side = ">" if self.expect == "positive" else "<"
        expected = f"expected {side} {self.threshold:g}"
        if self.holds is None:
            lean = "the expected" if self.points_the_expected_way else "the wrong"
            status = f"undecided — no interval; the point estimate points {lean} way"
        else:
            status = "holds" if self.holds else "does not hold"
        return f"{self.description}: {self.estimate} ({expected}) — **{status}**"


def judge(checks: Sequence[Check]) -> str:
    """*supported* if every decidable check holds, *partly supported* if some do, *not supported* if none;
    *undetermined* when no check has an interval. Checks without an interval are left out of the count."""
    decided = [c.holds for c in checks if c.holds is not None]
    if not decided:
        return UNDETERMINED
    return VERDICTS[0] if all(decided) else VERDICTS[1] if any(decided) else VERDICTS[2]


@dataclass
class ClaimVerdict:
    """A claim, the checks that test it, the verdict they give and extra estimates worth reporting."""

    claim: str
    checks: list[Check]
    verdict: str
    details: dict[str, Estimate] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, claim: str, checks: Sequence[Check], details: dict | None = None, notes: Sequence[str] = ()) -> "ClaimVerdict":
        return cls(claim, list(checks), judge(checks), dict(details or {}), list(notes))

    def summary(self) -> str:
        """Markdown: the verdict in bold, the claim, one bullet per check, then details and notes."""
        lines = [f"**{self.verdict}.** {self.claim}", ""]
        lines += [f"- {check.markdown()}" for check in self.checks]
        lines += [f"- {name}: {est}" for name, est in self.details.items()]
        undecided = sum(c.holds is None for c in self.checks)
        notes = list(self.notes)
        if undecided:
            notes.append(f"{undecided} check(s) have no interval and are not counted in the verdict.")
        if notes:
            lines += ["", " ".join(notes)]
        return "\n".join(lines)


def bootstrap_estimate(
    per_image: xr.DataArray,
    statistic: Callable[[xr.DataArray], float],
    n_boot: int = 1000,
    seed: int = 0,
) -> Estimate:
    """``statistic`` of the image-mean of ``per_image`` with a 95% percentile bootstrap interval over images.

    ``statistic`` maps a DataArray with ``per_image``'s dims except ``image`` to a float (or a 0-d
    DataArray). Every resample draws the same images for all other dims (models stay paired), so
    estimates made with the same ``seed`` on arrays with the same images share their resamples.
    Statistics written with dim-named xarray reductions (like the helpers below) are evaluated on
    all resamples at once: when ``statistic`` of the ``(boot, ...)`` samples returns a DataArray
    with dims ``("boot",)`` that is used; otherwise it is called once per resample.
    """
    samples = bootstrap_samples(per_image, n_boot, seed)  # (boot, ...)
    point = float(statistic(per_image.mean("image")))
    try:
        batched = statistic(samples)
    except Exception:  # a statistic that only understands one resample
        batched = None
    if isinstance(batched, xr.DataArray) and batched.dims == ("boot",):
        values = batched.values
    else:
        values = np.array([float(statistic(samples.isel(boot=b))) for b in range(n_boot)])
    return Estimate.from_samples(point, values)


# --- statistics on image-mean DataArrays -----------------------------------------------------------


def layer_means(values: xr.DataArray) -> xr.DataArray:
    """Mean over ``head`` (NaN-padded Swin heads skipped), if there is a head dim."""
    return values.mean("head") if "head" in values.dims else values


def slope(values: xr.DataArray) -> xr.DataArray:
    """Least-squares depth slope (per layer, layers numbered 1..L) of the head-mean of ``values``
    ``(..., layer[, head])``; other dims (e.g. ``boot``) are kept."""
    y = layer_means(values)
    x = xr.DataArray(np.arange(1.0, y.sizes["layer"] + 1), dims="layer")
    x = x - x.mean()
    return (x * (y - y.mean("layer"))).sum("layer") / (x**2).sum()


def upper_half(values: xr.DataArray) -> xr.DataArray:
    return values.isel(layer=slice(values.sizes["layer"] // 2, None))


def first_half(values: xr.DataArray) -> xr.DataArray:
    return values.isel(layer=slice(None, max(values.sizes["layer"] // 2, 1)))


def last_layers(values: xr.DataArray, n: int = 3) -> xr.DataArray:
    return values.isel(layer=slice(-min(n, values.sizes["layer"]), None))


def mean_of(values: xr.DataArray) -> xr.DataArray:
    """Mean over layers (and heads, NaN padding skipped)."""
    return layer_means(values).mean("layer")


def head_spread(values: xr.DataArray) -> xr.DataArray:
    """Mean over layers of the standard deviation over heads (NaN padding skipped)."""
    return values.std("head").mean("layer")


def off_diagonal(cka: xr.DataArray) -> xr.DataArray:
    """``cka`` ``(..., layer, layer_j)`` with the diagonal (a layer with itself) set to NaN."""
    same = cka["layer"] == cka["layer_j"]
    return cka.where(~same)


# --- Section 3.1.1 ----------------------------------------------------------------------------------


def locality_verdict(distance: xr.DataArray, supervised: str, mim: str, n_boot: int = 1000, seed: int = 0) -> ClaimVerdict:
    """Does attention distance grow with depth under supervision but stay local under MIM?

    ``distance``: dims ``(model, layer, head, image)``. Checks, each with a 95% bootstrap interval over
    images: (1) the supervised model's depth slope is positive, (2) it exceeds the MIM model's slope,
    (3) the supervised model's upper layers attend further than the MIM model's. The MIM model's own
    slope is reported as a detail.
    """
    pair = distance.sel(model=[supervised, mim])

    def est(statistic):
        return bootstrap_estimate(pair, statistic, n_boot, seed)

    checks = [
        Check(f"depth slope of the supervised model ({supervised}), px/layer", est(lambda d: slope(d.sel(model=supervised)))),
        Check("supervised minus MIM depth slope, px/layer",
              est(lambda d: slope(d.sel(model=supervised)) - slope(d.sel(model=mim)))),
        Check("supervised minus MIM mean distance over the upper half of the layers, px",
              est(lambda d: mean_of(upper_half(d.sel(model=supervised))) - mean_of(upper_half(d.sel(model=mim))))),
    ]  # fmt: skip
    details = {f"depth slope of the MIM model ({mim}), px/layer": est(lambda d: slope(d.sel(model=mim)))}
    claim = (f"Attention distance grows with depth in the supervised model ({supervised}) and stays local "
             f"in the MIM model ({mim}).")
    return ClaimVerdict.of(claim, checks, details)


# --- Section 3.1.2 ----------------------------------------------------------------------------------


def focus_verdict(entropy: xr.DataArray, supervised: str, mim: str, n_boot: int = 1000, seed: int = 0) -> ClaimVerdict:
    """Supervised heads broaden with depth; MIM heads keep diverse entropies in the upper layers.

    ``entropy``: ``(model, layer, head, image)`` in nats. Checks: (1) the supervised model's depth slope
    of mean entropy is positive; (2) the spread over heads (std of head entropies, averaged over the
    upper half of the layers) is larger in the MIM model than in the supervised one.
    """
    pair = entropy.sel(model=[supervised, mim])

    def est(statistic):
        return bootstrap_estimate(pair, statistic, n_boot, seed)

    checks = [
        Check(f"depth slope of mean entropy in the supervised model ({supervised}), nats/layer",
              est(lambda d: slope(d.sel(model=supervised)))),
        Check("MIM minus supervised std of head entropies over the upper half of the layers, nats",
              est(lambda d: head_spread(upper_half(d.sel(model=mim))) - head_spread(upper_half(d.sel(model=supervised))))),
    ]  # fmt: skip
    claim = (f"Supervised heads ({supervised}) attend more broadly with depth, while MIM heads ({mim}) "
             "stay diverse — some focused, some broad — in the upper layers.")
    return ClaimVerdict.of(claim, checks)


# --- Section 3.1.3 ----------------------------------------------------------------------------------


def diversity_verdict(head_kl: xr.DataArray, supervised: str, mim: str, n_boot: int = 1000, seed: int = 0) -> ClaimVerdict:
    """Head diversity (KL between heads) fades in the supervised model's last layers but not under MIM.

    ``head_kl``: ``head_kl_per_image`` ``(model, layer, head, image)``, each head's mean KL to the other
    heads. Checks: (1) supervised first-half mean KL minus its last-3-layer mean KL > 0; (2) MIM minus
    supervised mean KL over the last 3 layers > 0.
    """
    pair = head_kl.sel(model=[supervised, mim])
    n_layers = head_kl.sizes["layer"]

    def est(statistic):
        return bootstrap_estimate(pair, statistic, n_boot, seed)

    checks = [
        Check(f"supervised ({supervised}) mean head KL, first half minus last 3 layers, nats",
              est(lambda d: mean_of(first_half(d.sel(model=supervised))) - mean_of(last_layers(d.sel(model=supervised))))),
        Check("MIM minus supervised mean head KL over the last 3 layers, nats",
              est(lambda d: mean_of(last_layers(d.sel(model=mim))) - mean_of(last_layers(d.sel(model=supervised))))),
    ]  # fmt: skip
    notes = [f"With only {n_layers} layers, the first half and the last 3 layers overlap."] if n_layers < 6 else []
    claim = (f"Heads of the supervised model ({supervised}) lose their diversity in the last layers, while "
             f"the MIM model's ({mim}) heads keep attending to different tokens.")
    return ClaimVerdict.of(claim, checks, notes=notes)


# --- Section 3.2 ------------------------------------------------------------------------------------


def _as_list(models: str | Sequence[str]) -> list[str]:
    return [models] if isinstance(models, str) else list(models)


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
    return Estimate(float(value), float(value - half), float(value + half), "t interval over seeds")


def cka_verdict(cka: xr.DataArray, supervised: str | Sequence[str], mim: str | Sequence[str], high: float = 0.9) -> ClaimVerdict:
    """MIM layers share one representation structure (high CKA everywhere); supervised layers differ.

    ``cka``: ``(model, layer, layer_j)``. ``supervised`` / ``mim``: one run id or the run ids of several
    seeds. CKA has no per-image values, so intervals come from the spread over seeds (t interval);
    with one seed per side the estimates are points without an interval, and the verdict is
    *undetermined*. Checks: (1) MIM minus supervised mean off-diagonal CKA > 0; (2) the MIM model's
    minimum off-diagonal CKA > ``high``.
    """
    sup, mim_ = _as_list(supervised), _as_list(mim)
    off = off_diagonal(cka)
    mean_sup = [float(off.sel(model=m).mean()) for m in sup]
    mean_mim = [float(off.sel(model=m).mean()) for m in mim_]
    min_mim = [float(off.sel(model=m).min()) for m in mim_]
    checks = [
        Check("MIM minus supervised mean off-diagonal CKA", seed_estimate(mean_mim, mean_sup)),
        Check("MIM minimum off-diagonal CKA", seed_estimate(min_mim), threshold=high),
    ]
    details = {"supervised mean off-diagonal CKA": seed_estimate(mean_sup),
               "MIM mean off-diagonal CKA": seed_estimate(mean_mim)}
    claim = (f"The MIM model's layers ({', '.join(mim_)}) all have similar representations (off-diagonal "
             f"CKA above {high:g}), more similar than the supervised model's ({', '.join(sup)}).")
    notes = [f"Seeds: {len(sup)} supervised, {len(mim_)} MIM."]
    return ClaimVerdict.of(claim, checks, details, notes)


# --- MoCo: like supervised in attention, like SimMIM in CKA -------------------------------------------


def moco_verdict(probes: xr.Dataset, moco: str, supervised: str, mim: str, n_boot: int = 1000, seed: int = 0) -> ClaimVerdict:
    """Does the MoCo v3 model behave like the supervised model in its attention but like SimMIM in CKA?

    Each check is ``|moco - other| - |moco - like|`` of one summary number (> 0: MoCo is closer to
    ``like``): upper-half mean attention distance and entropy and last-3-layer head KL (``like`` the
    supervised model, 95% bootstrap over images) and mean off-diagonal CKA (``like`` SimMIM; a point
    estimate, since CKA has no per-image values).
    """
    trio = [moco, supervised, mim]

    def closer(summary: Callable[[xr.DataArray], xr.DataArray], like: str, other: str) -> Callable:
        def statistic(d):
            m, a, b = (summary(d.sel(model=x)) for x in (moco, like, other))
            return abs(m - b) - abs(m - a)

        return statistic

    upper_mean = lambda d: mean_of(upper_half(d))  # noqa: E731
    last_mean = lambda d: mean_of(last_layers(d))  # noqa: E731
    checks = []
    for var, label, summary in (("attention_distance", "upper-half attention distance", upper_mean),
                                ("attention_entropy", "upper-half attention entropy", upper_mean),
                                ("head_kl_per_image", "last-3-layer head KL", last_mean)):  # fmt: skip
        if var in probes:
            values = probes[var].sel(model=list(dict.fromkeys(trio)))
            est = bootstrap_estimate(values, closer(summary, supervised, mim), n_boot, seed)
            checks.append(Check(f"{label}: MoCo closer to supervised than to SimMIM by", est))
    if "cka" in probes:
        off = off_diagonal(probes["cka"])
        m, s, i = (float(off.sel(model=x).mean()) for x in trio)
        checks.append(Check("mean off-diagonal CKA: MoCo closer to SimMIM than to supervised by",
                            Estimate.point(abs(m - s) - abs(m - i))))  # fmt: skip
    claim = (f"MoCo v3 ({moco}) attends like the supervised model ({supervised}) but its layer "
             f"representations are as uniform as SimMIM's ({mim}).")
    return ClaimVerdict.of(claim, checks)


# --- Appendix A: Swin's alternating layers ------------------------------------------------------------

NOISE_ALTERNATION = 2 / 3  # chance that consecutive differences of i.i.d. values change sign


def alternation(per_layer: xr.DataArray) -> xr.DataArray:
    """Fraction of consecutive within-stage layer differences that change sign (1: high, low, high, ...).

    ``per_layer``: ``(..., layer[, head])`` with a ``stage`` coord on ``layer``; other dims are kept.
    NaN when no stage has three layers.
    """
    values = layer_means(per_layer)
    other = [d for d in values.dims if d != "layer"]
    data = values.transpose(*other, "layer").values  # [..., L]
    stages = np.asarray(values["stage"].values)
    flips = []
    for stage in np.unique(stages):
        diffs = np.diff(data[..., stages == stage], axis=-1)
        if diffs.shape[-1] >= 2:
            flips.append(diffs[..., :-1] * diffs[..., 1:] < 0)
    if not flips:
        return xr.DataArray(np.full(data.shape[:-1], np.nan), dims=other)
    return xr.DataArray(np.concatenate(flips, axis=-1).mean(axis=-1), dims=other)


def alternation_verdict(distance: xr.DataArray, model: str, n_boot: int = 1000, seed: int = 0) -> ClaimVerdict:
    """Consecutive Swin layers alternate between high and low mean attention distance (shifted windows).

    ``distance``: ``(model, layer, head, image)`` with a ``stage`` coord. One check: the alternation
    fraction (:func:`alternation`) exceeds the 2/3 expected of i.i.d. noise, 95% bootstrap over images.
    """
    one = distance.sel(model=model)
    checks = []
    notes = []
    if np.isnan(float(alternation(one.mean("image")))):
        notes.append("No stage has three or more layers, so alternation cannot be measured.")
    else:
        est = bootstrap_estimate(one, alternation, n_boot, seed)
        checks.append(Check("fraction of consecutive within-stage differences that change sign", est,
                            threshold=NOISE_ALTERNATION))  # fmt: skip
    claim = f"In {model}, consecutive layers within a stage alternate between high and low attention distance."
    return ClaimVerdict.of(claim, checks, notes=notes)
