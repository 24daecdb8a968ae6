"""Appendix B's claims on large-kernel ConvNets, one function per claim, computed from stored results.

Every claim is judged with :mod:`mimstudy.book.claims.verdicts`' ``Check`` / ``Estimate`` / ``ClaimVerdict``
under three rules stated on the book page:

* **effect-size floor**: a difference counts only when its whole 95% interval clears
  :data:`FLOORS` (distance 1 px, entropy 0.1 nats, KL 0.05 nats, accuracy 1 point);
* **random-init control**: the same kernel probe of a freshly initialised ConvNet of the same
  architecture (``weights="random_init"`` in every probe dataset); a locality claim needs the trained
  kernels to differ from their own control by more than the floor, so that what is measured is
  what training did and not what initialisation gives;
* **intervals**: over training seeds (t interval) when a role has two seeds or more, else a
  bootstrap over the channels of each layer of the one model (kernel probes read weights, not
  images), shown for information; Table 3's accuracies: a t interval over training seeds of each
  run's final validation top-1 (a point estimate with one seed).
* **blockers** (:func:`mimstudy.book.claims.verdicts.blockers`, as for every claim): fewer than three
  training seeds in a role, a model whose quality gate (:mod:`mimstudy.book.claims.gates`, every seed's run)
  fails or is unknown, a check with no value (a NaN control included).

``probes`` below is the combined probe dataset of a preset (``load_results("probes")``), with
``kernel_distance``, ``kernel_entropy`` and ``kernel_kl`` ``(model, weights, layer, channel,
normalisation)``; ``roles`` maps ``sup`` (supervised, no re-parameterisation), ``sup_rep``
(supervised with it), ``simmim`` and ``ft`` (SimMIM fine-tuned) to lists of run ids (one per seed).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import xarray as xr

from mimstudy.book.claims.evidence import PresetResults
from mimstudy.book.claims.verdicts import FLOORS, N_BOOT, Blocker, Check, Claim, ClaimVerdict, Estimate, blockers, seed_estimate

UNITS = {"kernel_distance": "px", "kernel_entropy": "nats", "kernel_kl": "nats", "accuracy": ""}
ROLE_LABELS = {"sup": "supervised, no re-param.", "sup_rep": "supervised, re-param. (merged)",
               "simmim": "SimMIM, no re-param.", "ft": "SimMIM → fine-tuned"}
CONVNET_PREFIX = "replk"


def convnet_roles(ds: xr.Dataset) -> dict[str, list[str]]:
    """Run ids per role among the ``replk*`` models of ``ds`` (a dataset with ``objective``/``arch`` coords)."""
    roles: dict[str, list[str]] = {}
    for model in ds["model"].values:
        arch, objective = str(ds["arch"].sel(model=model).item()), str(ds["objective"].sel(model=model).item())
        if not arch.startswith(CONVNET_PREFIX):
            continue
        role = {"supervised": "sup_rep" if arch.endswith("_rep") else "sup", "simmim": "simmim",
                "finetune": "ft"}.get(objective)
        if role:
            roles.setdefault(role, []).append(str(model))
    return {r: roles[r] for r in ROLE_LABELS if r in roles}


def kernel_values(probes: xr.Dataset, var: str, model: str, normalisation: str = "abs",
                  weights: str = "trained") -> xr.DataArray:
    """``(layer, channel)`` values of one model, without the NaN padding of other models' layers."""
    one = probes[var].sel(model=model, weights=weights, normalisation=normalisation)
    return one.where(one.notnull().any("channel"), drop=True)


def _channel_bootstrap(values: xr.DataArray, statistic: Callable[[np.ndarray], np.ndarray], seed: int) -> np.ndarray:
    """``statistic`` of ``[boot, layer, channel]`` resamples: each layer's (non-NaN) channels drawn with replacement."""
    rng = np.random.default_rng(seed)
    rows = [row[~np.isnan(row)] for row in values.transpose("layer", "channel").values]
    width = max(len(row) for row in rows)
    samples = np.full((N_BOOT, len(rows), width), np.nan)
    for i, row in enumerate(rows):
        samples[:, i, : len(row)] = row[rng.integers(0, len(row), (N_BOOT, len(row)))]
    return statistic(samples)


def role_estimate(probes: xr.Dataset, var: str, roles: dict[str, list[str]], summary: Callable[[np.ndarray], float],
                  a: str, b: str | None = None, normalisation: str = "abs", weights_b: str = "trained",
                  seed: int = 0) -> Estimate:
    """``summary(a) - summary(b)`` (or ``summary(a)``) of ``[layer, channel]`` kernel values, with the
    interval of the module docstring. ``b`` may be ``a`` with ``weights_b="random_init"`` (its control)."""
    def value(model: str, weights: str = "trained") -> np.ndarray:
        return kernel_values(probes, var, model, normalisation, weights).transpose("layer", "channel").values

    runs_a = roles[a]
    runs_b = roles[b] if b is not None else None
    if len(runs_a) >= 2 and (runs_b is None or len(runs_b) >= 2):
        per_seed_a = [float(summary(value(m))) for m in runs_a]
        if runs_b is None:
            return seed_estimate(per_seed_a)
        if b == a and weights_b == "random_init":
            return seed_estimate([float(summary(value(m)) - summary(value(m, "random_init"))) for m in runs_a])
        return seed_estimate(per_seed_a, [float(summary(value(m, weights_b))) for m in runs_b])
    ma = runs_a[0]
    va = kernel_values(probes, var, ma, normalisation)
    point_a = float(summary(va.transpose("layer", "channel").values))
    samples_a = _channel_bootstrap(va, summary, seed)
    if b is None:
        return Estimate.from_samples(point_a, samples_a, "bootstrap over channels (one seed)")
    mb = runs_b[0]
    vb = kernel_values(probes, var, mb, normalisation, weights_b)
    point_b = float(summary(vb.transpose("layer", "channel").values))
    samples_b = _channel_bootstrap(vb, summary, seed + 1)
    return Estimate.from_samples(point_a - point_b, samples_a - samples_b, "bootstrap over channels (one seed)")


# Summaries of ``[..., layer, channel]`` arrays (NaN = padding), returning ``[...]``.


def mean_all(values: np.ndarray) -> np.ndarray:
    """Mean over layers of the channel means."""
    return np.nanmean(np.nanmean(values, axis=-1), axis=-1)


def upper_half_mean(values: np.ndarray) -> np.ndarray:
    """:func:`mean_all` over the upper half of the layers."""
    return mean_all(values[..., values.shape[-2] // 2 :, :])


def channel_spread(values: np.ndarray) -> np.ndarray:
    """Mean over layers of the standard deviation over channels."""
    return np.nanmean(np.nanstd(values, axis=-1), axis=-1)


def depth_slope_of(values: np.ndarray) -> np.ndarray:
    """Least-squares slope of the channel means against layer number 1..L."""
    means = np.nanmean(values, axis=-1)  # [..., L]
    layers = np.arange(1, means.shape[-1] + 1) - (means.shape[-1] + 1) / 2
    return (means * layers).sum(axis=-1) / (layers**2).sum()


def robustness_note(probes: xr.Dataset, var: str, roles: dict, summary, a: str, b: str, floor: float) -> str:
    """Whether the ``a - b`` comparison keeps its sign and clears the floor under the other normalisations."""
    parts = []
    for normalisation in [str(n) for n in probes["normalisation"].values if str(n) != "abs"]:
        est = role_estimate(probes, var, roles, summary, a, b, normalisation)
        parts.append(f"{normalisation}: {est.value:+.3g} ({'clears' if est.above(floor) else 'does not clear'} the floor)")
    return f"Under the other normalisations, {ROLE_LABELS[a]} minus {ROLE_LABELS[b]}: " + "; ".join(parts) + "."


# --- Figure 12: local or global kernels ------------------------------------------------------------


def locality_claim(probes: xr.Dataset, roles: dict[str, list[str]], blocked: Sequence[Blocker] = ()) -> ClaimVerdict:
    """Re-parameterised supervised kernels are the most local; SimMIM's are more local than supervised
    without the trick, but less than with it; and SimMIM's locality is learnt (below its random init)."""
    var, floor = "kernel_distance", FLOORS["kernel_distance"]
    est = lambda a, b=None, **kw: role_estimate(probes, var, roles, mean_all, a, b, **kw)  # noqa: E731
    checks = [
        Check("supervised without minus with re-param., mean kernel distance, px", est("sup", "sup_rep"), threshold=floor),
        Check("supervised without re-param. minus SimMIM, mean kernel distance, px", est("sup", "simmim"), threshold=floor),
        Check("SimMIM minus supervised with re-param., mean kernel distance, px ('less strength')",
              est("simmim", "sup_rep"), threshold=0.0),
        Check("SimMIM minus its random-init control, mean kernel distance, px", est("simmim", "simmim", weights_b="random_init"),
              expect="negative", threshold=-floor),
    ]  # fmt: skip
    details = {f"{ROLE_LABELS[r]} minus its random-init control, px": est(r, r, weights_b="random_init")
               for r in ("sup", "sup_rep")}
    notes = [robustness_note(probes, var, roles, mean_all, "sup", "simmim", floor)]
    claim = ("With the re-parameterisation trick the supervised ConvNet's kernels are the most local; SimMIM "
             "without it brings locality back part of the way: its kernels aggregate less far than the supervised "
             "model's without the trick, but further than with it (Figure 12).")
    return ClaimVerdict.of(claim, checks, details, notes, blocked)


# --- Figure 13: focused or broad kernels -------------------------------------------------------------


def focus_claim(probes: xr.Dataset, roles: dict[str, list[str]], blocked: Sequence[Blocker] = ()) -> ClaimVerdict:
    """Re-parameterised supervised kernels are focused low and broad high; SimMIM kernels have diverse
    entropies in every layer (a larger spread over channels)."""
    var, floor = "kernel_entropy", FLOORS["kernel_entropy"]
    checks = [
        Check("depth slope of the mean kernel entropy, supervised with re-param., nats/layer",
              role_estimate(probes, var, roles, depth_slope_of, "sup_rep")),
        Check("SimMIM minus supervised with re-param., spread (std) of kernel entropies over channels, nats",
              role_estimate(probes, var, roles, channel_spread, "simmim", "sup_rep"), threshold=floor),
        Check("SimMIM minus its random-init control, spread of kernel entropies over channels, nats",
              role_estimate(probes, var, roles, channel_spread, "simmim", "simmim", weights_b="random_init"),
              threshold=floor),
    ]  # fmt: skip
    notes = [robustness_note(probes, var, roles, channel_spread, "simmim", "sup_rep", floor)]
    claim = ("The supervised model with re-parameterisation has focused kernels in its lower layers and broader ones "
             "higher up, while SimMIM's kernels are diverse in every layer, some focused and some broad (Figure 13).")
    return ClaimVerdict.of(claim, checks, {}, notes, blocked)


# --- Figure 14: diversity across kernels ---------------------------------------------------------------


def diversity_claim(probes: xr.Dataset, roles: dict[str, list[str]], blocked: Sequence[Blocker] = ()) -> ClaimVerdict:
    """SimMIM's kernels differ from each other more than the re-parameterised supervised model's,
    especially in the deeper layers (KL between channels)."""
    var, floor = "kernel_kl", FLOORS["kernel_kl"]
    checks = [
        Check("SimMIM minus supervised with re-param., mean channel KL over the upper half of the layers, nats",
              role_estimate(probes, var, roles, upper_half_mean, "simmim", "sup_rep"), threshold=floor),
        Check("SimMIM minus its random-init control, upper-half mean channel KL, nats",
              role_estimate(probes, var, roles, upper_half_mean, "simmim", "simmim", weights_b="random_init"),
              threshold=floor),
    ]  # fmt: skip
    details = {"SimMIM minus supervised with re-param., mean channel KL over all layers, nats":
               role_estimate(probes, var, roles, mean_all, "simmim", "sup_rep")}
    notes = [robustness_note(probes, var, roles, upper_half_mean, "simmim", "sup_rep", floor)]
    claim = ("The kernels of the SimMIM model differ from each other remarkably more than those of the supervised "
             "model with re-parameterisation, especially in deeper layers (Figure 14).")
    return ClaimVerdict.of(claim, checks, details, notes, blocked)


# --- Table 3: classification after fine-tuning --------------------------------------------------------


def final_accuracies(pretrain: xr.Dataset | None, runs: list[str]) -> list[float]:
    """Final validation top-1 of each of ``runs`` (one per training seed) with a stored curve."""
    if pretrain is None or "val_accuracy" not in pretrain:
        return []
    found = []
    for model in runs:
        if model in pretrain["model"].values:
            curve = pretrain["val_accuracy"].sel(model=model).dropna("epoch")
            if curve.size:
                found.append(float(curve[-1]))
    return found


def classification_claim(accuracy: dict[str, list[float]], blocked: Sequence[Blocker] = ()) -> ClaimVerdict:
    """SimMIM (no re-param.) fine-tuned classifies on par with supervised training with re-param.
    (Table 3: 83.3 vs 83.5), which itself beats supervised training without the trick. ``accuracy``:
    role -> final validation top-1 per training seed; differences get t intervals over seeds."""
    floor = FLOORS["accuracy"]
    checks = []
    if accuracy.get("ft") and accuracy.get("sup_rep"):
        checks.append(Check("SimMIM → fine-tuned minus supervised with re-param., top-1 (on par: above -1 point)",
                            seed_estimate(accuracy["ft"], accuracy["sup_rep"]), threshold=-floor))
    if accuracy.get("sup_rep") and accuracy.get("sup"):
        checks.append(Check("supervised with minus without re-param., top-1 (the trick helps optimisation)",
                            seed_estimate(accuracy["sup_rep"], accuracy["sup"]), threshold=0.0))
    claim = ("Masked image modeling lets the large-kernel ConvNet without re-parameterisation classify on par with "
             "the supervised model that needs the trick (Table 3: 83.3% vs 83.5%).")
    return ClaimVerdict.of(claim, checks, {}, [], blocked)


# --- the claim family: one judge for the page and the scorecard ------------------------------------------

ROLE_OBJECTIVES = {"sup": "supervised", "sup_rep": "supervised", "simmim": "simmim", "ft": "finetune"}
KERNEL_CLAIMS = {"kernel_distance": locality_claim, "kernel_entropy": focus_claim, "kernel_kl": diversity_claim}


def preset_roles(results: PresetResults) -> dict[str, list[str]]:
    """The ConvNet roles of a preset, from its probes (else its pre-training runs)."""
    for ds in (results.probes, results.pretrain):
        if ds is not None and "arch" in ds.coords:
            roles = convnet_roles(ds)
            if roles:
                return roles
    return {}


@dataclass(frozen=True)
class ConvNetClaim(Claim):
    """An Appendix B claim: ``variable`` (a kernel probe, or ``val_accuracy`` for Table 3) of the ConvNets
    in ``roles`` (``sup`` / ``sup_rep`` / ``simmim`` / ``ft``)."""

    variable: str = "kernel_distance"
    roles: tuple[str, ...] = ("sup", "sup_rep", "simmim")
    reads: ClassVar[tuple[str, ...]] = ("probes", "pretrain", "evaluate")

    def floor_keys(self) -> tuple[str, ...]:
        return ("accuracy" if self.variable == "val_accuracy" else self.variable,)

    def floors(self) -> list[str]:
        unit = UNITS["accuracy" if self.variable == "val_accuracy" else self.variable]
        floor = FLOORS["accuracy" if self.variable == "val_accuracy" else self.variable]
        return [f"differences of {self.variable} clear {floor:g} {unit}".rstrip()]

    def evaluate(self, results: PresetResults) -> ClaimVerdict:
        roles = preset_roles(results)
        missing = [ROLE_LABELS[r] for r in self.roles if r not in roles]
        source = results.pretrain if self.variable == "val_accuracy" else results.probes
        if missing or source is None or self.variable not in source:
            return ClaimVerdict.not_run(self.text, f"`{results.preset}` has no RepLKNet "
                                        + (", ".join(missing) if missing else f"`{self.variable}`") + " results.")
        used = {r: roles[r] for r in self.roles}
        blocked = blockers({ROLE_LABELS[r]: len(runs) for r, runs in used.items()},
                           results.gates([m for runs in used.values() for m in runs]))
        if self.variable == "val_accuracy":
            return classification_claim({r: final_accuracies(results.pretrain, runs) for r, runs in used.items()},
                                        blocked)
        return KERNEL_CLAIMS[self.variable](results.probes, roles, blocked)
