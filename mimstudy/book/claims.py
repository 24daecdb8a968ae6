"""The paper's claims as data: one registry that the chapters and the scorecard both judge.

Each :class:`Claim` names the figure or table that shows it, the page of this book that reproduces it,
the models it compares (``roles``: objectives on one backbone family) and its checks (:class:`Effect`):
a statistic of the models' scale-free probes (:mod:`mimstudy.book.statistics`), oriented so that larger
means more support, with an **effect-size floor** stated in words and justified from the paper's
figures (``why``). :meth:`Claim.judge` applies the same rules to every claim on every preset
(:class:`PresetResults`):

* **intervals over training seeds**: with ≥ 3 seeds of every role (``seeds:`` in the preset, run ids
  ``<run>-s<seed>``), each seed's effect is computed on its models' means over the test images, and
  the interval is a 95% t interval over seeds. With fewer seeds the effect is shown with a bootstrap
  interval over the test images of the first seed — for information: the verdict is *undetermined*;
* **random-init control**: the same statistic on untrained models of the same architecture (the
  ``*_random`` probe runs, objective ``random``), control seed ``k + i`` in role ``i`` so that a
  comparison of two roles compares two different random models; a check holds only when the trained
  effect lies beyond the control;
* **quality gates** (:mod:`mimstudy.book.gates`): a verdict on a model below its gate is
  *undetermined: the model has not learned enough*.

Floors (the paper's figures are for ViT-B/16 at 224 px, 14 x 14 patches, uniform distance ≈ 116 px):

* a **local head** has λ ≥ 0.5: in Figure 1(c) and 2(b2), SimMIM has in every layer heads at a few
  tens of pixels, λ ≈ 0.7–0.8, and the paper's DeiT lower-layer heads reach the same;
* a **locality difference** between models or between halves of a model is ≥ 0.1 in λ (or in the
  locality gain): DeiT's upper layers sit near the global end (λ ≈ 0–0.2) while SimMIM's layer means
  stay near DeiT's lower layers — a gap several times larger;
* an **entropy difference** is ≥ 0.1 of log N (mean) or ≥ 0.05 of log N (spread over heads): Figure 3's
  supervised heads rise to near log N in the last layers, SimMIM's spread over much of [0, log N];
* a **head-diversity difference** is ≥ 0.5 nats of KL, below log 2 ≈ 0.69 nats — the KL between
  attention spread over all keys and over half of them; Figure 4 shows DeiT's last-layer KL near zero
  and SimMIM's as large as in its first layers;
* a **CKA difference** is ≥ 0.05; "all layers alike" means a minimum off-diagonal CKA ≥ 0.9, the
  paper's own number ([0.9, 1.0] for MIM against [0.5, 1.0] supervised);
* **MoCo v3 "closer to" one model than to another** by ≥ 0.05 (λ, entropy fraction, CKA) or 0.5 nats (KL);
* **Swin alternation**: consecutive blocks (regular, shifted) differ in λ by ≥ 0.05 on average, with a
  consistent sign — measured against each block's own uniform baseline, since the masked seams of
  shifted windows lower the raw distance of shifted blocks in any network, trained or not.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import xarray as xr

from mimstudy.book.gates import GateResult, check_gates
from mimstudy.book.pages import OBJECTIVE_LABELS, load_results, restrict, run_attr
from mimstudy.book.statistics import scale_free
from mimstudy.book.verdicts import (
    MIN_SEEDS,
    NOT_RUN,
    Blocker,
    Check,
    ClaimVerdict,
    Estimate,
    first_half,
    head_spread,
    layer_means,
    last_layers,
    mean_of,
    off_diagonal,
    seed_estimate,
    upper_half,
)

RANDOM = "random"  # the objective of the random-init control runs
N_BOOT = 1000
WHAT = {  # a statistic -> the stored variable it needs, in words
    "locality": "`attention_distance`",
    "locality_gain": "`mean_row_distance`, the query-independent baseline",
    "entropy_fraction": "`attention_entropy`",
    "head_kl": "`head_kl_per_image`",
    "cka": "`cka`",
}


# --- the statistics of the checks (each works on image means and, with a `boot` dim, on resamples) ----


def upper_mean(v: xr.DataArray) -> xr.DataArray:
    return mean_of(upper_half(v))


def lower_mean(v: xr.DataArray) -> xr.DataArray:
    return mean_of(first_half(v))


def last_mean(v: xr.DataArray, n: int = 3) -> xr.DataArray:
    return mean_of(last_layers(v, n))


def most_local_head(v: xr.DataArray) -> xr.DataArray:
    """The largest λ among a layer's heads, averaged over layers."""
    return v.max("head").mean("layer")


def mean_cka(v: xr.DataArray) -> xr.DataArray:
    return off_diagonal(v).mean(["layer", "layer_j"])


def min_cka(v: xr.DataArray) -> xr.DataArray:
    return off_diagonal(v).min(["layer", "layer_j"])


def alternation_amplitude(v: xr.DataArray) -> xr.DataArray:
    """``|mean over (regular, shifted) block pairs of λ_shifted − λ_regular|``: how much consecutive
    blocks of a stage differ, one high and one low, with a consistent sign. Pairs are blocks (0, 1),
    (2, 3), ... of each stage (``stage`` coord on ``layer``); NaN without such a pair."""
    means = layer_means(v)
    stages = np.asarray(means["stage"].values).astype(int)
    diffs = []
    for stage in np.unique(stages):
        index = np.flatnonzero(stages == stage)
        diffs += [means.isel(layer=index[k + 1]) - means.isel(layer=index[k]) for k in range(0, len(index) - 1, 2)]
    if not diffs:
        return xr.full_like(means.isel(layer=0), np.nan)
    return abs(sum(diffs) / len(diffs))


def closer(summary: Callable, like: str, other: str, var: str) -> Callable:
    """``|m − other| − |m − like|`` of ``summary(var)`` with ``m`` the ``moco`` role: > 0 when MoCo is closer to ``like``."""

    def statistic(r):
        m, a, b = (summary(r[role][var]) for role in ("moco", like, other))
        return abs(m - b) - abs(m - a)

    return statistic


@dataclass(frozen=True)
class Effect:
    """One check of a claim: ``statistic`` of the role models' scale-free probes (a dict role -> Dataset)
    must reach ``floor`` (in words: ``floor_words``; ``why``: where the floor comes from)."""

    description: str
    statistic: Callable[[dict[str, xr.Dataset]], xr.DataArray | float]
    floor: float
    floor_words: str
    needs: tuple[str, ...]


@dataclass(frozen=True)
class Claim:
    """One claim of the paper: where it is shown, which models it compares, its checks and floors."""

    key: str
    where: str  # section · figure/table, e.g. "3.1.1 · Fig. 1"
    title: str
    text: str  # the claim in words
    page: str = ""  # the book page (file stem under book/) that shows it; "" when none
    arch: str = "vit"  # the backbone family of its models (arch prefix)
    roles: tuple[str, ...] = ()
    effects: tuple[Effect, ...] = ()
    custom: Callable[["PresetResults"], ClaimVerdict] | None = None  # claims judged by their own function
    not_built: str = ""  # why its experiment is not in this study yet

    def judge(self, results: "PresetResults") -> ClaimVerdict:
        """The verdict on ``results`` by the rules of this module (see its docstring)."""
        if self.not_built:
            return ClaimVerdict.not_run(self.text, self.not_built)
        if self.custom is not None:
            return self.custom(results)
        role_runs = {role: results.runs(role, self.arch) for role in self.roles}
        absent = [OBJECTIVE_LABELS.get(r, r) for r, runs in role_runs.items() if not runs]
        if absent:
            return ClaimVerdict.not_run(self.text, f"The `{results.preset}` results have no {self.arch}* model "
                                                   f"trained with {', '.join(absent)}.")
        seeds = sorted(set.intersection(*(set(runs) for runs in role_runs.values())))
        if not seeds:
            return ClaimVerdict.not_run(self.text, "Its models share no training seed.")
        trained = {role: [role_runs[role][s] for s in seeds] for role in self.roles}
        arch = results.arch_of(trained[self.roles[0]][0])
        controls = results.controls(arch, len(self.roles))
        blockers = results.blockers(trained, arch, controls)
        checks = []
        for effect in self.effects:
            lacking = results.lacking(effect.needs, [run for runs in trained.values() for run in runs])
            if lacking:
                blockers.append(Blocker(f"the stored probes lack {WHAT.get(lacking, lacking)}",
                                        "re-running the probes with this version of the code (they store it)",
                                        "probe variable missing"))
                checks.append(Check(effect.description, Estimate.missing(), threshold=effect.floor,
                                    floor=effect.floor_words))
                continue
            estimate = results.estimate(effect.statistic, trained)
            usable = controls and not results.lacking(effect.needs, [r for runs in controls.values() for r in runs])
            control = results.estimate(effect.statistic, controls) if usable else None
            checks.append(Check(effect.description, estimate, threshold=effect.floor, control=control,
                                floor=effect.floor_words))
        notes = [f"Models: " + "; ".join(f"{OBJECTIVE_LABELS.get(r, r)} {', '.join(f'`{m}`' for m in trained[r])}"
                                          for r in self.roles) + "."]
        if controls:
            notes.append("Random-init control: " + ", ".join(f"`{m}`" for m in next(iter(controls.values()))) + ".")
        return ClaimVerdict.of(self.text, checks, notes=notes, blockers=list(dict.fromkeys(blockers)))


class PresetResults:
    """The stored probes and sanity evaluation of one preset, with per-model statistics computed once."""

    def __init__(self, preset: str, probes: xr.Dataset | None = None, evaluate: xr.Dataset | None = None):
        self.preset = preset
        self.probes = load_results("probes", preset) if probes is None else probes
        if evaluate is None:
            try:
                evaluate = load_results("evaluate", preset)
            except FileNotFoundError:
                evaluate = None
        self.evaluate = evaluate
        self._stats: dict[str, xr.Dataset] = {}
        self._means: dict[str, xr.Dataset] = {}
        self._boots: dict[str, xr.Dataset] = {}

    @cached_property
    def table(self) -> list[tuple[str, str, str, int]]:
        """``(run id, objective, arch, seed)`` of every model, read once."""
        models, objectives, archs = (self.probes[name].values for name in ("model", "objective", "arch"))
        return [(str(m), str(o), str(a), int(run_attr(self.probes, m, "seed", 0)))
                for m, o, a in zip(models, objectives, archs)]

    def runs(self, objective: str, arch_prefix: str, arch: str | None = None) -> dict[int, str]:
        """``{seed: run id}`` of the models trained with ``objective`` on an ``arch_prefix*`` (or exactly ``arch``) backbone."""
        found: dict[int, str] = {}
        for model, obj, name, seed in self.table:
            if obj == objective and name.startswith(arch_prefix) and arch in (None, name):
                found.setdefault(seed, model)
        return dict(sorted(found.items()))

    def arch_of(self, model: str) -> str:
        return str(self.probes["arch"].sel(model=model).item())

    def controls(self, arch: str, n_roles: int) -> dict[str, list[str]]:
        """Random-init runs of ``arch`` for each of ``n_roles`` roles: role ``i`` of control ``k`` gets seed
        ``k + i`` (cyclically), so two roles never share a random model when there are several."""
        runs = list(self.runs(RANDOM, "", arch).values())
        if not runs:
            return {}
        return {f"role{i}": [runs[(k + i) % len(runs)] for k in range(len(runs))] for i in range(n_roles)}

    def gate(self, model: str) -> GateResult:
        return check_gates(self.evaluate, model, str(self.probes["objective"].sel(model=model).item()))

    def blockers(self, trained: dict[str, list[str]], arch: str, controls: dict[str, list[str]]) -> list[Blocker]:
        """What keeps a verdict on ``trained`` undetermined: seeds, quality gates, the control."""
        found = []
        n = len(next(iter(trained.values())))
        if n < MIN_SEEDS:
            found.append(Blocker(f"only {n} training seed{'s' if n != 1 else ''} (an interval over seeds needs "
                                 f"≥ {MIN_SEEDS})", f"results over ≥ {MIN_SEEDS} training seeds (a preset with "
                                 "`seeds: [0, 1, 2]`, as `cpu` has)", "seeds"))
        gates = [self.gate(m) for m in dict.fromkeys(m for runs in trained.values() for m in runs)]
        failed, unknown = [g for g in gates if g.failed], [g for g in gates if g.unknown and not g.failed]
        if failed:
            found.append(Blocker("the model has not learned enough: " + "; ".join(f for g in failed for f in g.failed),
                                 ", ".join(f"`{g.model}`" for g in failed) + " past "
                                 + ("its quality gate" if len(failed) == 1 else "their quality gates"), "gate"))
        if unknown:
            found.append(Blocker("quality gate unknown: " + "; ".join(u for g in unknown for u in g.unknown),
                                 "the gates of " + ", ".join(f"`{g.model}`" for g in unknown)
                                 + " measured (re-run their `evaluate` step)", "gate unknown"))
        if not controls:
            found.append(Blocker(f"no random-init control ({arch} at random init) in the `{self.preset}` probes",
                                 f"the random-init control probed (a probes run with `arch: {arch}`)", "no control"))
        elif len(next(iter(controls.values()))) < min(n, MIN_SEEDS):
            found.append(Blocker(f"the random-init control has fewer seeds than the trained models",
                                 f"as many random-init seeds as training seeds", "control seeds"))
        return found

    def stats(self, model: str) -> xr.Dataset:
        if model not in self._stats:
            self._stats[model] = scale_free(restrict(self.probes, [model]).sel(model=model))
        return self._stats[model]

    def lacking(self, needs: tuple[str, ...], models: list[str]) -> str | None:
        """The first statistic of ``needs`` that some model of ``models`` has no values for (else ``None``)."""
        for need in needs:
            if any(need not in self.stats(m) for m in models):
                return need
        return None

    def image_means(self, model: str) -> xr.Dataset:
        if model not in self._means:
            self._means[model] = self.stats(model).mean("image") if "image" in self.stats(model).dims else self.stats(model)
        return self._means[model]

    def resamples(self, model: str) -> xr.Dataset:
        """Bootstrap means over the test images (``boot`` dim) of every per-image statistic; the same
        resampled images for every model with the same image count, so models stay paired."""
        from mimstudy.book.verdicts import bootstrap_samples

        if model not in self._boots:
            stats = self.stats(model)
            self._boots[model] = xr.Dataset({name: bootstrap_samples(var, N_BOOT, 0) if "image" in var.dims else var
                                             for name, var in stats.data_vars.items()})
        return self._boots[model]

    def estimate(self, statistic: Callable, runs: dict[str, list[str]]) -> Estimate:
        """``statistic`` over ``runs`` (role -> one run per seed): a t interval over seeds when there are
        two or more, else a bootstrap over the test images of the single seed (a point when the
        statistic has no per-image values, e.g. CKA)."""
        roles = list(runs)
        n = len(runs[roles[0]])
        values = [float(statistic({r: self.image_means(runs[r][s]) for r in roles})) for s in range(n)]
        if n >= 2:
            est = seed_estimate(values)
            est.interval = f"t interval over {n} seeds"
            return est
        samples = statistic({r: self.resamples(runs[r][0]) for r in roles})
        if isinstance(samples, xr.DataArray) and samples.dims == ("boot",):
            return Estimate.from_samples(values[0], samples.values, "bootstrap over the test images of one seed")
        return Estimate.point(values[0])


def _roles_of(*names: str) -> Callable:
    """Index a statistic's role dict by the names in the order of ``Claim.roles`` (controls use role0, role1, ...)."""

    def wrap(fn):
        def statistic(r):
            keys = list(r)
            return fn({name: r[keys[i]] for i, name in enumerate(names)})

        return statistic

    return wrap


def _sup_mim(fn) -> Callable:
    return _roles_of("supervised", "simmim")(fn)


def locality_effects() -> tuple[Effect, ...]:
    return (
        Effect("SimMIM has a local head in every layer: the largest λ among a layer's heads, mean over layers",
               _sup_mim(lambda r: most_local_head(r["simmim"]["locality"])), 0.5,
               "λ ≥ 0.5 (a local head; the paper's SimMIM heads reach λ ≈ 0.7–0.8)", ("locality",)),
        Effect("supervised attention turns global with depth: supervised λ, lower half minus upper half of the layers",
               _sup_mim(lambda r: lower_mean(r["supervised"]["locality"]) - upper_mean(r["supervised"]["locality"])),
               0.1, "a drop of ≥ 0.1 in λ", ("locality",)),
        Effect("SimMIM's upper layers are more local: mean λ over the upper half, SimMIM minus supervised",
               _sup_mim(lambda r: upper_mean(r["simmim"]["locality"]) - upper_mean(r["supervised"]["locality"])),
               0.1, "SimMIM's λ exceeds supervised's by ≥ 0.1", ("locality",)),
        Effect("…and that locality follows the query: locality gain over the query-independent baseline, upper "
               "half, SimMIM minus supervised",
               _sup_mim(lambda r: upper_mean(r["simmim"]["locality_gain"]) - upper_mean(r["supervised"]["locality_gain"])),
               0.1, "a gain difference ≥ 0.1", ("locality_gain",)),
    )


def focus_effects() -> tuple[Effect, ...]:
    ef = "entropy_fraction"
    return (
        Effect("supervised attention broadens with depth: entropy / log N, upper half minus lower half",
               _sup_mim(lambda r: upper_mean(r["supervised"][ef]) - lower_mean(r["supervised"][ef])), 0.1,
               "a rise of ≥ 0.1 of log N", (ef,)),
        Effect("SimMIM heads stay diverse: std over heads of entropy / log N in the upper half, SimMIM minus supervised",
               _sup_mim(lambda r: head_spread(upper_half(r["simmim"][ef])) - head_spread(upper_half(r["supervised"][ef]))),
               0.05, "a spread ≥ 0.05 of log N wider", (ef,)),
    )


def diversity_effects() -> tuple[Effect, ...]:
    return (
        Effect("supervised head diversity fades: mean head KL, first half minus last 3 layers (nats)",
               _sup_mim(lambda r: lower_mean(r["supervised"]["head_kl"]) - last_mean(r["supervised"]["head_kl"])),
               0.5, "≥ 0.5 nats", ("head_kl",)),
        Effect("SimMIM heads stay diverse: mean head KL over the last 3 layers, SimMIM minus supervised (nats)",
               _sup_mim(lambda r: last_mean(r["simmim"]["head_kl"]) - last_mean(r["supervised"]["head_kl"])),
               0.5, "≥ 0.5 nats", ("head_kl",)),
    )


def cka_effects() -> tuple[Effect, ...]:
    return (
        Effect("SimMIM's layers are more alike: mean off-diagonal CKA, SimMIM minus supervised",
               _sup_mim(lambda r: mean_cka(r["simmim"]["cka"]) - mean_cka(r["supervised"]["cka"])), 0.05,
               "≥ 0.05", ("cka",)),
        Effect("SimMIM's layers are all alike: its smallest off-diagonal CKA",
               _sup_mim(lambda r: min_cka(r["simmim"]["cka"])), 0.9, "≥ 0.9 (the paper: [0.9, 1.0])", ("cka",)),
    )


_moco = _roles_of("moco", "supervised", "simmim")
MOCO_EFFECTS = (
    Effect("upper-half λ: MoCo v3 closer to supervised than to SimMIM by",
           _moco(closer(upper_mean, "supervised", "simmim", "locality")), 0.05, "≥ 0.05 in λ", ("locality",)),
    Effect("upper-half entropy / log N: MoCo v3 closer to supervised than to SimMIM by",
           _moco(closer(upper_mean, "supervised", "simmim", "entropy_fraction")), 0.05, "≥ 0.05 of log N",
           ("entropy_fraction",)),
    Effect("last-3-layer head KL: MoCo v3 closer to supervised than to SimMIM by (nats)",
           _moco(closer(last_mean, "supervised", "simmim", "head_kl")), 0.5, "≥ 0.5 nats", ("head_kl",)),
    Effect("mean off-diagonal CKA: MoCo v3 closer to SimMIM than to supervised by",
           _moco(closer(mean_cka, "simmim", "supervised", "cka")), 0.05, "≥ 0.05", ("cka",)),
)

_ft = _roles_of("finetune", "supervised")
FINETUNE_EFFECTS = (
    Effect("the fine-tuned model keeps diverse heads: mean head KL over the last 2 layers, fine-tuned minus supervised (nats)",
           _ft(lambda r: last_mean(r["finetune"]["head_kl"], 2) - last_mean(r["supervised"]["head_kl"], 2)), 0.5,
           "≥ 0.5 nats", ("head_kl",)),
    Effect("its layers differ less: mean off-diagonal CKA, fine-tuned minus supervised",
           _ft(lambda r: mean_cka(r["finetune"]["cka"]) - mean_cka(r["supervised"]["cka"])), 0.05, "≥ 0.05", ("cka",)),
)

ALTERNATION_EFFECTS = (
    Effect("supervised: mean λ difference between consecutive (regular, shifted) blocks, absolute",
           _sup_mim(lambda r: alternation_amplitude(r["supervised"]["locality"])), 0.05, "≥ 0.05 in λ", ("locality",)),
    Effect("SimMIM: mean λ difference between consecutive (regular, shifted) blocks, absolute",
           _sup_mim(lambda r: alternation_amplitude(r["simmim"]["locality"])), 0.05, "≥ 0.05 in λ", ("locality",)),
)


def _convnet_roles(results: PresetResults, needed: tuple[str, ...]) -> dict[str, list[str]] | None:
    from mimstudy.book.convnet_claims import convnet_roles

    roles = convnet_roles(results.probes) if "arch" in results.probes.coords else {}
    return roles if set(needed) <= set(roles) else None


def replknet_kernel_claim(results: PresetResults) -> ClaimVerdict:
    """Figure 12's locality claim on the preset's RepLKNets (the Appendix B page's first verdict)."""
    from mimstudy.book.convnet_claims import convnet_gates, locality_claim

    roles = _convnet_roles(results, ("sup", "sup_rep", "simmim"))
    if roles is None or "kernel_distance" not in results.probes:
        return ClaimVerdict.not_run("RepLKNet kernels", f"no RepLKNet supervised / re-param. / SimMIM probes in `{results.preset}`")
    return locality_claim(results.probes, roles, convnet_gates(roles, results.evaluate))


def replknet_table_claim(results: PresetResults) -> ClaimVerdict:
    """Table 3's classification claim on the preset's RepLKNets (pose AP is not judged yet)."""
    from mimstudy.book.convnet_claims import (classification_claim, convnet_accuracies, convnet_gates,
                                              seed_counts)

    roles = _convnet_roles(results, ("sup", "sup_rep"))
    if roles is None or "ft" not in roles:
        return ClaimVerdict.not_run("RepLKNet Table 3", f"no RepLKNet supervised / fine-tuned runs in `{results.preset}`")
    try:
        pretrain = load_results("pretrain", results.preset)
    except FileNotFoundError:
        pretrain = None
    return classification_claim(convnet_accuracies(roles, pretrain), convnet_gates(roles, results.evaluate),
                                seed_counts(roles))


def geometric_claim(results: PresetResults) -> ClaimVerdict:
    """Table 2 on the pose analog with ViTs (the 4.2 page's first verdict); tracking is not built."""
    from mimstudy.book.geometric_claims import full_model, table2_verdict

    try:
        runs = load_results("downstream", results.preset)
    except FileNotFoundError:
        return ClaimVerdict.not_run("Geometric tasks", f"no Section 4.2 (downstream) results in `{results.preset}`")
    sup, mim, rand = (full_model(runs, "pose", objective, "vit") for objective in ("supervised", "simmim", "random"))
    if not (sup and mim and rand):
        return ClaimVerdict.not_run("Geometric tasks", f"`{results.preset}` lacks a full supervised, SimMIM or "
                                                       "random-init ViT pose run")
    return table2_verdict(runs, "pose", sup, mim, rand, pretrain_seeds=1)  # each row reads one pre-training run


def sweep_claim(results: PresetResults) -> ClaimVerdict:
    """Figure 2(a) by :func:`mimstudy.book.mask_sweep.sweep_verdict`: one model per masking, so no
    interval over seeds; the random-init control does not apply (an untrained model has no masking)."""
    from mimstudy.book.mask_sweep import sweep_verdict
    from mimstudy.study.sweep import mask_sweep

    try:
        pretrain = load_results("pretrain", results.preset, sweep=True)
        probes = load_results("probes", results.preset, sweep=True)
    except FileNotFoundError:
        return ClaimVerdict.not_run(SWEEP_TEXT, f"The `{results.preset}` preset has no mask sweep.")
    verdict = sweep_verdict(mask_sweep(pretrain, probes))
    verdict.blockers.append(Blocker("one model per masking, one seed each (an interval needs ≥ 3 seeds per point)",
                                    "the sweep repeated over ≥ 3 seeds", "seeds"))
    verdict.verdict = "undetermined"
    return verdict


SWEEP_TEXT = "A moderate prediction distance (AvgDist) gives the best fine-tuning and the most local attention."
FIGURE_1 = "a supervised model attends locally in its lower layers and globally in its higher layers; SimMIM keeps local heads in every layer"

CLAIMS: tuple[Claim, ...] = (
    Claim("vit-locality", "3.1.1 · Fig. 1", "Local or global attention (ViT)",
          f"ViT: {FIGURE_1}.", "attention_distance", "vit", ("supervised", "simmim"), locality_effects()),
    Claim("vit-moco", "3.1.1–3.2 · Figs. 1, 3, 4, 6", "MoCo v3: like supervised in attention, like SimMIM in CKA",
          "MoCo v3 attends like the supervised model (Figs. 1, 3, 4) but its layers are as alike as SimMIM's (Fig. 6).",
          "attention_distance", "vit", ("moco", "supervised", "simmim"), MOCO_EFFECTS),
    Claim("mask-sweep", "3.1.1 · Fig. 2(a)", "Masking, AvgDist and locality", SWEEP_TEXT, "mask_sweep",
          custom=sweep_claim),
    Claim("vit-focus", "3.1.2 · Fig. 3", "Focused or broad attention (ViT)",
          "ViT: supervised heads attend more broadly with depth; SimMIM heads stay diverse (some focused, some broad) "
          "in every layer.", "attention_entropy", "vit", ("supervised", "simmim"), focus_effects()),
    Claim("vit-diversity", "3.1.3 · Fig. 4", "Diversity on attention heads (ViT)",
          "ViT: the heads of a supervised model lose their diversity in the last layers; SimMIM's heads keep "
          "attending to different tokens.", "head_diversity", "vit", ("supervised", "simmim"), diversity_effects()),
    Claim("layer-drop", "3.1.3 · Fig. 5", "Dropping the last layers helps the supervised model",
          "Dropping the last layers of a supervised SwinV2-B improves pose estimation and keeps depth estimation.",
          page="geometric_tasks",
          not_built="Judged on the 4.2 page (pose fine-tuning with truncated backbones), not in this table yet."),
    Claim("vit-cka", "3.2 · Fig. 6", "Representation structure (ViT)",
          "ViT: SimMIM's layers have almost the same representations (CKA [0.9, 1.0]); supervised layers differ.",
          "cka", "vit", ("supervised", "simmim"), cka_effects()),
    Claim("layer-shuffle", "3.2 · text", "Randomly sampled layers hurt supervised more",
          "Loading randomly sampled pre-trained layers costs a supervised model more than a MIM model downstream.",
          page="geometric_tasks",
          not_built="Judged on the 4.2 page (pose fine-tuning with sampled blocks), not in this table yet."),
    Claim("semantic", "4.1 · Tables 1, 4, 5", "Semantic understanding",
          "MIM beats supervised pre-training on classification tasks whose categories ImageNet does not cover "
          "(CoG, fine-grained K12, iNat18) and loses on those it covers.",
          not_built="Not built: the semantic transfer tasks of Section 4.1 have no analog in this study yet."),
    Claim("geometric", "4.2 · Table 2", "Geometric and motion tasks",
          "MIM beats supervised pre-training by large margins on pose estimation, depth estimation and tracking.",
          page="geometric_tasks", custom=geometric_claim),
    Claim("detection", "4.3 · Fig. 7, Table 6", "Combined task: object detection",
          "On COCO detection MIM beats supervised; its localisation loss converges faster, classification slower.",
          not_built="Not built: the detection task of Section 4.3 has no analog in this study yet."),
    Claim("swin-locality", "A.1 · Figs. 2(b), 8", "Local or global attention (SwinV2)",
          f"SwinV2: {FIGURE_1}.", "swin", "swinv2", ("supervised", "simmim"), locality_effects()),
    Claim("swin-alternation", "A.1 · Fig. 8", "Consecutive Swin blocks alternate",
          "SwinV2: the mean attention distances of two consecutive layers are one high and one low (shifted windows).",
          "swin", "swinv2", ("supervised", "simmim"), ALTERNATION_EFFECTS),
    Claim("swin-focus", "A.1 · Fig. 9", "Focused or broad attention (SwinV2)",
          "SwinV2: supervised heads broaden with depth; SimMIM heads stay diverse.", "swin", "swinv2",
          ("supervised", "simmim"), focus_effects()),
    Claim("swin-diversity", "A.1 · Fig. 10", "Diversity on attention heads (SwinV2)",
          "SwinV2: supervised head diversity shrinks with depth; SimMIM's does not.", "swin", "swinv2",
          ("supervised", "simmim"), diversity_effects()),
    Claim("swin-cka", "A.2 · Fig. 11", "Representation structure (SwinV2)",
          "SwinV2: SimMIM's layers share one representation structure; supervised layers differ.", "swin", "swinv2",
          ("supervised", "simmim"), cka_effects()),
    Claim("swin-finetune", "A.1–A.2 · Figs. 8–11 (c)", "SimMIM → fine-tune keeps some of SimMIM",
          "SwinV2: the SimMIM model fine-tuned with labels behaves like the supervised one but keeps more diverse "
          "heads in its last layers and layers that differ less.", "swin", "swinv2", ("finetune", "supervised"),
          FINETUNE_EFFECTS),
    Claim("replknet-table", "B.1 · Table 3", "MIM helps large-kernel ConvNets",
          "MIM lets RepLKNet train without re-parametrisation to on-par ImageNet accuracy and better pose estimation.",
          page="convnet", custom=replknet_table_claim),
    Claim("replknet-kernels", "B.2 · Figs. 12–14", "Large kernels: local, diverse under MIM",
          "RepLKNet under MIM has local, diverse kernels in every layer, like re-parametrisation but weaker.",
          page="convnet", custom=replknet_kernel_claim),
    Claim("segmentation", "D · Table 6", "Combined task: semantic segmentation",
          "On ADE-20K supervised slightly beats MIM; the gap is smaller with Mask2Former than with UperNet.",
          not_built="Not built: the segmentation task of Appendix D has no analog in this study yet."),
)  # fmt: skip


def claims_on_page(page: str) -> list[Claim]:
    return [claim for claim in CLAIMS if claim.page == page]


def claim(key: str) -> Claim:
    for c in CLAIMS:
        if c.key == key:
            return c
    raise KeyError(f"no claim {key!r}; claims: {[c.key for c in CLAIMS]}")


# --- rendering -------------------------------------------------------------------------------------------


def floors_markdown(claim: Claim) -> str:
    """The claim's checks and their floors, in words."""
    return "\n".join(f"- {e.description}: floor {e.floor_words}" for e in claim.effects)


def verdict_markdown(claim: Claim, verdict: ClaimVerdict, preset: str, first: bool = False) -> str:
    """The verdict of ``claim`` on ``preset``: headed ``Verdict on the `preset` results`` for a page's first claim."""
    label = (f"**Verdict on the `{preset}` results — {claim.title} ({claim.where}).**" if first
             else f"**{claim.title} ({claim.where}) — `{preset}` results.**")
    return label + " " + verdict.summary()


@dataclass
class Judged:
    """A claim judged on a preset, for closing paragraphs and the scorecard."""

    claim: Claim
    preset: str
    verdict: ClaimVerdict = field(repr=False)


def closing_markdown(judged: list[Judged]) -> str:
    """The chapter's closing paragraph: per verdict, what would change it (generated, never typed)."""
    lines = ["**What would change these verdicts.**", ""]
    for item in judged:
        lines.append(f"- {item.claim.title}, `{item.preset}` ({item.verdict.verdict}): "
                     + item.verdict.what_would_change())
    return "\n".join(lines)


def short_cell(verdict: ClaimVerdict) -> str:
    """The verdict, its blockers' tags and the first check's effect [interval] (floor), for one table cell."""
    tags = list(dict.fromkeys(b.tag or "blocked" for b in verdict.blockers))
    head = f"**{verdict.verdict}**" + (f" ({', '.join(tags)})" if tags else "")
    checks = [c for c in verdict.checks if not np.isnan(c.estimate.value)]
    if not checks:
        return head
    first = checks[0]
    more = f" +{len(verdict.checks) - 1} more" if len(verdict.checks) > 1 else ""
    return f"{head}<br>{first.estimate.short()} (floor {first.threshold:g}){more}"


def judge_page(page: str, results: PresetResults) -> list[Judged]:
    """Every claim shown on ``page``, judged on ``results``."""
    return [Judged(c, results.preset, c.judge(results)) for c in claims_on_page(page)]


def verdicts_markdown(judged: list[Judged]) -> str:
    """The verdicts of one preset on a page, the first headed ``Verdict on the `preset` results``."""
    return "\n\n".join(verdict_markdown(j.claim, j.verdict, j.preset, first=i == 0) for i, j in enumerate(judged))


def rules_markdown(page: str) -> str:
    """How the page's verdicts are made, with every check's floor, generated from the registry."""
    lines = ["**How the verdicts are made.** Each check is an effect size on an absolute scale with a floor it "
             "must clear: its whole 95% interval must lie past the floor *and* past the same statistic computed on "
             "random-init models of the same architecture (the control). Intervals are t intervals over ≥ 3 "
             f"training seeds (the seed is the outer level); with fewer seeds, or a model below its quality gate "
             "(see the Models page), the verdict is *undetermined* and the effect is shown with a bootstrap "
             "interval over the test images of one seed, for information. The floors:", ""]
    for c in claims_on_page(page):
        lines.append(f"- *{c.title}* ({c.where}):")
        lines += [f"    - {e.description}: {e.floor_words}" for e in c.effects]
    return "\n".join(lines)


PAGE_TITLES = {"attention_distance": "3.1.1", "mask_sweep": "Fig. 2(a)", "attention_entropy": "3.1.2",
               "head_diversity": "3.1.3", "cka": "3.2", "swin": "Appendix A"}


def scorecard_markdown(presets: list[str]) -> str:
    """The scorecard table: one row per claim, one verdict cell per preset, a link to the page that shows it."""
    results = {}
    for preset in presets:
        try:
            results[preset] = PresetResults(preset)
        except FileNotFoundError:
            continue
    head = ["claim", "where"] + [f"`{p}`" for p in results] + ["shown in"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in CLAIMS:
        cells = [c.title, c.where]
        for preset, res in results.items():
            cells.append(short_cell(c.judge(res)))
        cells.append(f"[{PAGE_TITLES.get(c.page, c.page)}]({c.page}.md)" if c.page else "–")
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)
