"""Section 3 and Appendix A: claims about attention and representations, judged from the probes.

Each :class:`ProbeClaim` names the figure or table that shows it, the page of this book that reproduces it,
the models it compares (``roles``: objectives on one backbone family) and its checks (:class:`Effect`):
a statistic of the models' scale-free probes (:mod:`mimstudy.book.claims.statistics`), oriented so that larger
means more support, with an **effect-size floor** (:mod:`mimstudy.book.claims.floors`). :meth:`Claim.judge` applies the same rules to every claim on every preset
(:class:`mimstudy.book.claims.evidence.PresetResults`):

* **intervals over training seeds**: with ≥ 3 seeds of every role (``seeds:`` in the preset, run ids
  ``<run>-s<seed>``), each seed's effect is computed on its models' means over the test images, and
  the interval is a 95% t interval over seeds. With fewer seeds the effect is shown with a bootstrap
  interval over the test images of the first seed — for information: the verdict is *undetermined*;
* **random-init control**: the same statistic on untrained models of the same architecture (the
  ``*_random`` probe runs, objective ``random``), control seed ``k + i`` in role ``i``; a check holds
  only when the trained effect lies beyond the control (below: when that control is no control);
* **quality gates** (:mod:`mimstudy.book.claims.gates`): a verdict on a model whose gate fails or is unknown is
  *undetermined*.

Each check names its **null** (the hypothesis it rejects when it holds) and its **floor**, derived in
:mod:`mimstudy.book.claims.floors` from the paper's numbers (CKA) or from a construction on the model's own
attention grid (λ, entropy, KL), the derivation shown on the page. Its control is one of three kinds:

* the **random-init control**, for a statistic of one model (SimMIM's least-local layer, the supervised
  model's depth trend, a Swin's alternation): a random model of the same architecture can show it too, so
  the trained effect must lie beyond it;
* **zero by construction**, for a difference between two roles (``A − B``): on random-init models it is
  a difference between random models of one architecture, zero on average whatever the statistic
  (detected, not declared: the statistic with one random model in every role is exactly zero), so it is
  no control — the check rests on its interval over seeds against the floor, and the page says so;
* **none applies**, stated why: SimMIM's layers being all alike (smallest CKA ≥ 0.9) holds at random
  init too (a random ViT's residual stream makes every layer alike), so no trained value can lie beyond
  that control; the check asks only that SimMIM stays in the paper's range, and the comparisons with
  supervised carry the claim.

"SimMIM has a local head in every layer" is reported per layer (the most local head of each), with the
layers that clear the floor named: the smallest decides the check.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import xarray as xr

from mimstudy.book.claims.evidence import PresetResults
from mimstudy.book.claims.floors import KINDS, probe_floors
from mimstudy.book.stored import OBJECTIVE_LABELS
from mimstudy.book.claims.reductions import (
    alternation_amplitude,
    closer,
    head_spread,
    last_mean,
    local_head_everywhere,
    lower_mean,
    mean_cka,
    min_cka,
    upper_half,
    upper_mean,
)
from mimstudy.book.claims.verdicts import Check, Claim, ClaimVerdict, Estimate, blockers

WHAT = {  # a statistic -> the stored variable it needs, in words
    "locality": "`attention_distance`",
    "locality_gain": "`mean_row_distance`, the query-independent baseline",
    "entropy_fraction": "`attention_entropy`",
    "head_kl": "`head_kl_per_image`",
    "cka": "`cka`",
}


@dataclass(frozen=True)
class Effect:
    """One check of a claim: ``statistic`` of the role models' scale-free probes (a dict role -> Dataset)
    must lie beyond the floor of kind ``floor`` (:func:`mimstudy.book.claims.floors.probe_floors`: derived for the
    claim's architecture) in the ``expect`` direction, rejecting ``null``. ``control``: ``"random"`` (the
    random-init models' same statistic; detected as zero by construction for a difference between roles)
    or ``"none"`` (``no_control`` says why none applies). ``per_layer``: the statistic with a ``layer``
    dim, reported layer by layer."""

    description: str
    statistic: Callable[[dict[str, xr.Dataset]], xr.DataArray | float]
    floor: str
    needs: tuple[str, ...]
    null: str
    expect: str = "positive"
    control: str = "random"
    no_control: str = ""
    per_layer: Callable[[dict[str, xr.Dataset]], xr.DataArray] | None = None
    per_layer_label: str = "layer {}"


ZERO_BY_CONSTRUCTION = ("zero by construction — on random-init models this difference compares random models of one "
                        "architecture, zero on average whatever the statistic; the check rests on its interval over "
                        "seeds against the floor")


@dataclass(frozen=True)
class ProbeClaim(Claim):
    """A claim judged from the probes of models trained with ``roles`` (objectives) on one backbone
    family (``arch``, an arch prefix), by its ``effects``, against the random-init control."""

    arch: str = "vit"
    roles: tuple[str, ...] = ()
    effects: tuple[Effect, ...] = ()

    def floors(self) -> list[str]:
        return [f"{e.description}: floor: {KINDS[e.floor]}; null: {e.null}"
                + (f"; no random-init control ({e.no_control})" if e.control == "none" else "") for e in self.effects]

    def evaluate(self, results: PresetResults) -> ClaimVerdict:
        """The verdict on ``results`` by the rules of this module (see its docstring)."""
        role_runs = {role: results.runs(role, self.arch) for role in self.roles}
        absent = [OBJECTIVE_LABELS.get(r, r) for r, runs in role_runs.items() if not runs]
        if absent:
            return ClaimVerdict.not_run(self.text, f"The `{results.preset}` results have no {self.arch}* model "
                                                   f"trained with {', '.join(absent)}.")
        seeds = sorted(set.intersection(*(set(runs) for runs in role_runs.values())))
        if not seeds:
            return ClaimVerdict.not_run(self.text, "Its models share no training seed.")
        trained = {role: [role_runs[role][s] for s in seeds] for role in self.roles}
        models = [run for runs in trained.values() for run in runs]
        arch = results.arch_of(trained[self.roles[0]][0])
        controls = results.controls(arch, len(self.roles))
        control_runs = [r for runs in controls.values() for r in runs]
        found = blockers({OBJECTIVE_LABELS.get(r, r): len(seeds) for r in self.roles}, results.gates(models),
                         results.control(arch))
        floors = probe_floors(arch)
        checks, details, notes = [], {}, []
        for effect in self.effects:
            floor = floors[effect.floor]
            threshold = floor.value
            words = floor.words if effect.expect == "positive" else floor.words.replace("≥", "<")
            common = dict(expect=effect.expect, threshold=threshold, floor=words, null=effect.null,
                          derivation=floor.derivation)
            lacking = results.lacking(effect.needs, models)
            if lacking:
                why = f"the stored probes lack {WHAT.get(lacking, lacking)}; re-run the probes with this code"
                checks.append(Check(effect.description, Estimate.missing(why), controlled=True, **common))
                continue
            estimate = results.estimate(effect.statistic, trained)
            usable = bool(controls) and not results.lacking(effect.needs, control_runs)
            if effect.control == "none":
                checks.append(Check(effect.description, estimate, control_note=f"none applies: {effect.no_control}",
                                    **common))
                if usable:
                    details[f"{effect.description}, on the random-init models"] = results.estimate(effect.statistic,
                                                                                                 controls)
            elif usable and results.zero_by_construction(effect.statistic, control_runs[0], len(self.roles)):
                checks.append(Check(effect.description, estimate, control_note=ZERO_BY_CONSTRUCTION, **common))
            else:
                control = results.estimate(effect.statistic, controls) if usable else None
                checks.append(Check(effect.description, estimate, control=control, controlled=True, **common))
            if effect.per_layer is not None:
                per_layer, note = _per_layer(results, effect, trained, threshold)
                details.update(per_layer)
                notes.append(note)
        notes.append("Models: " + "; ".join(f"{OBJECTIVE_LABELS.get(r, r)} {', '.join(f'`{m}`' for m in trained[r])}"
                                            for r in self.roles) + ".")
        if controls:
            notes.append("Random-init control: " + ", ".join(f"`{m}`" for m in next(iter(controls.values()))) + ".")
        return ClaimVerdict.of(self.text, checks, details, notes, found, runs=[*models, *control_runs])


def _per_layer(results: PresetResults, effect: Effect, trained: dict[str, list[str]], threshold: float
               ) -> tuple[dict[str, Estimate], str]:
    """``effect.per_layer`` layer by layer, and a sentence naming the layers that clear ``threshold``."""
    first = results.image_means(next(iter(trained.values()))[0])
    layers = [int(x) for x in first["layer"].values]
    found = {}
    for i, layer in enumerate(layers):
        found[layer] = results.estimate(lambda r, i=i: effect.per_layer(r).isel(layer=i), trained)
    clear = [layer for layer, est in found.items() if est.value >= threshold]
    weakest = min(found, key=lambda k: found[k].value)
    note = (f"Per layer ({effect.description.split(':')[0]}): layers clearing the floor {threshold:.3g}: "
            + (", ".join(map(str, clear)) if clear else "none") + f"; the check is decided by layer {weakest} "
            f"({found[weakest].value:.3g}).")
    return {effect.per_layer_label.format(layer): est for layer, est in found.items()}, note


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
        Effect("SimMIM has a local head in every layer: the smallest over layers of the largest λ among a layer's heads",
               _sup_mim(lambda r: local_head_everywhere(r["simmim"]["locality"])), "local_head", ("locality",),
               "some SimMIM layer has no head as local as one attending within one grid step",
               per_layer=_sup_mim(lambda r: r["simmim"]["locality"].max("head")),
               per_layer_label="SimMIM's most local head in layer {}"),
        Effect("supervised attention turns global with depth: supervised λ, first half minus upper half of the layers",
               _sup_mim(lambda r: lower_mean(r["supervised"]["locality"]) - upper_mean(r["supervised"]["locality"])),
               "locality", ("locality",), "the supervised model's upper layers are as local as its first ones"),
        Effect("SimMIM's upper layers are more local: mean λ over the upper half, SimMIM minus supervised",
               _sup_mim(lambda r: upper_mean(r["simmim"]["locality"]) - upper_mean(r["supervised"]["locality"])),
               "locality", ("locality",), "SimMIM's upper layers are no more local than supervised's"),
        Effect("…and that locality follows the query: locality gain over the query-independent baseline, upper "
               "half, SimMIM minus supervised",
               _sup_mim(lambda r: upper_mean(r["simmim"]["locality_gain"]) - upper_mean(r["supervised"]["locality_gain"])),
               "locality", ("locality_gain",), "SimMIM's upper-layer locality follows the query no more than "
               "supervised's"),
    )


def focus_effects() -> tuple[Effect, ...]:
    ef = "entropy_fraction"
    return (
        Effect("supervised attention broadens with depth: entropy / log N, upper half minus first half",
               _sup_mim(lambda r: upper_mean(r["supervised"][ef]) - lower_mean(r["supervised"][ef])), "entropy", (ef,),
               "the supervised model's upper layers attend as narrowly as its first ones"),
        Effect("SimMIM heads stay diverse: std over heads of entropy / log N in the upper half, SimMIM minus supervised",
               _sup_mim(lambda r: head_spread(upper_half(r["simmim"][ef])) - head_spread(upper_half(r["supervised"][ef]))),
               "spread", (ef,), "SimMIM's upper-layer heads spread no wider in entropy than supervised's"),
    )


def diversity_effects() -> tuple[Effect, ...]:
    return (
        Effect("supervised head diversity fades: mean head KL, first half minus the last (up to 3) layers (nats)",
               _sup_mim(lambda r: lower_mean(r["supervised"]["head_kl"]) - last_mean(r["supervised"]["head_kl"])),
               "kl", ("head_kl",), "the supervised model's last layers have heads as diverse as its first ones"),
        Effect("SimMIM heads stay diverse: mean head KL over the last (up to 3) layers, SimMIM minus supervised (nats)",
               _sup_mim(lambda r: last_mean(r["simmim"]["head_kl"]) - last_mean(r["supervised"]["head_kl"])),
               "kl", ("head_kl",), "SimMIM's last layers have heads no more diverse than supervised's"),
    )


RANDOM_CKA = ("a random-init model already has every layer alike (its residual stream carries the input through every "
              "block: smallest CKA near 1), so no trained value can lie beyond it; this check asks only that SimMIM "
              "stays in the paper's range, and the comparisons with supervised carry the claim")


def cka_effects() -> tuple[Effect, ...]:
    return (
        Effect("SimMIM's layers are more alike: mean off-diagonal CKA, SimMIM minus supervised",
               _sup_mim(lambda r: mean_cka(r["simmim"]["cka"]) - mean_cka(r["supervised"]["cka"])), "cka", ("cka",),
               "SimMIM's layers are no more alike than supervised's"),
        Effect("SimMIM's layers are all alike: its smallest off-diagonal CKA",
               _sup_mim(lambda r: min_cka(r["simmim"]["cka"])), "cka_alike", ("cka",),
               "some pair of SimMIM layers is less alike than the paper's MIM range allows", control="none",
               no_control=RANDOM_CKA),
        Effect("supervised layers differ: its smallest off-diagonal CKA, below the paper's MIM range",
               _sup_mim(lambda r: min_cka(r["supervised"]["cka"])), "cka_alike", ("cka",),
               "every pair of supervised layers is as alike as the paper's MIM range (and as a random init's)",
               expect="negative"),
    )


_moco = _roles_of("moco", "supervised", "simmim")
MOCO_NULL = "MoCo v3 lies no nearer to {} than to {} (at or past the midpoint)"
MOCO_EFFECTS = (
    Effect("upper-half λ: MoCo v3 closer to supervised than to SimMIM, twice its distance past their midpoint",
           _moco(closer(upper_mean, "supervised", "simmim", "locality")), "locality", ("locality",),
           MOCO_NULL.format("supervised", "SimMIM")),
    Effect("upper-half entropy / log N: MoCo v3 closer to supervised than to SimMIM, twice its distance past their "
           "midpoint", _moco(closer(upper_mean, "supervised", "simmim", "entropy_fraction")), "entropy",
           ("entropy_fraction",), MOCO_NULL.format("supervised", "SimMIM")),
    Effect("last-layers head KL: MoCo v3 closer to supervised than to SimMIM, twice its distance past their midpoint "
           "(nats)", _moco(closer(last_mean, "supervised", "simmim", "head_kl")), "kl", ("head_kl",),
           MOCO_NULL.format("supervised", "SimMIM")),
    Effect("mean off-diagonal CKA: MoCo v3 closer to SimMIM than to supervised, twice its distance past their midpoint",
           _moco(closer(mean_cka, "simmim", "supervised", "cka")), "cka", ("cka",),
           MOCO_NULL.format("SimMIM", "supervised")),
)

_ft = _roles_of("finetune", "supervised")
FINETUNE_EFFECTS = (
    Effect("the fine-tuned model keeps diverse heads: mean head KL over the last 2 layers, fine-tuned minus supervised (nats)",
           _ft(lambda r: last_mean(r["finetune"]["head_kl"], 2) - last_mean(r["supervised"]["head_kl"], 2)), "kl",
           ("head_kl",), "the fine-tuned model's last layers have heads no more diverse than supervised's"),
    Effect("its layers differ less: mean off-diagonal CKA, fine-tuned minus supervised",
           _ft(lambda r: mean_cka(r["finetune"]["cka"]) - mean_cka(r["supervised"]["cka"])), "cka", ("cka",),
           "the fine-tuned model's layers are no more alike than supervised's"),
)

ALTERNATION_EFFECTS = (
    Effect("supervised: mean λ difference between consecutive (regular, shifted) blocks, absolute",
           _sup_mim(lambda r: alternation_amplitude(r["supervised"]["locality"])), "locality", ("locality",),
           "consecutive supervised blocks differ in λ by less than one grid step of reach would make"),
    Effect("SimMIM: mean λ difference between consecutive (regular, shifted) blocks, absolute",
           _sup_mim(lambda r: alternation_amplitude(r["simmim"]["locality"])), "locality", ("locality",),
           "consecutive SimMIM blocks differ in λ by less than one grid step of reach would make"),
)
