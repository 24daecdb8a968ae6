"""Section 3 and Appendix A: claims about attention and representations, judged from the probes.

Each :class:`ProbeClaim` names the figure or table that shows it, the page of this book that reproduces it,
the models it compares (``roles``: objectives on one backbone family) and its checks (:class:`Effect`):
a statistic of the models' scale-free probes (:mod:`mimstudy.book.statistics`), oriented so that larger
means more support, with an **effect-size floor** stated in words and justified from the paper's
figures (``why``). :meth:`Claim.judge` applies the same rules to every claim on every preset
(:class:`mimstudy.book.evidence.PresetResults`):

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
from dataclasses import dataclass

import xarray as xr

from mimstudy.book.evidence import PresetResults
from mimstudy.book.pages import OBJECTIVE_LABELS
from mimstudy.book.reductions import (
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
from mimstudy.book.verdicts import Check, Claim, ClaimVerdict, Estimate, blockers

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
    must reach ``floor`` (in words: ``floor_words``; ``why``: where the floor comes from)."""

    description: str
    statistic: Callable[[dict[str, xr.Dataset]], xr.DataArray | float]
    floor: float
    floor_words: str
    needs: tuple[str, ...]


@dataclass(frozen=True)
class ProbeClaim(Claim):
    """A claim judged from the probes of models trained with ``roles`` (objectives) on one backbone
    family (``arch``, an arch prefix), by its ``effects``, against the random-init control."""

    arch: str = "vit"
    roles: tuple[str, ...] = ()
    effects: tuple[Effect, ...] = ()

    def floors(self) -> list[str]:
        return [f"{e.description}: {e.floor_words}" for e in self.effects]

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
        found = blockers({OBJECTIVE_LABELS.get(r, r): len(seeds) for r in self.roles}, results.gates(models),
                         results.control(arch))
        checks = []
        for effect in self.effects:
            lacking = results.lacking(effect.needs, models)
            if lacking:
                why = f"the stored probes lack {WHAT.get(lacking, lacking)}; re-run the probes with this code"
                checks.append(Check(effect.description, Estimate.missing(why), threshold=effect.floor,
                                    floor=effect.floor_words, controlled=True))
                continue
            estimate = results.estimate(effect.statistic, trained)
            usable = controls and not results.lacking(effect.needs, [r for runs in controls.values() for r in runs])
            control = results.estimate(effect.statistic, controls) if usable else None
            checks.append(Check(effect.description, estimate, threshold=effect.floor, control=control,
                                floor=effect.floor_words, controlled=True))
        notes = ["Models: " + "; ".join(f"{OBJECTIVE_LABELS.get(r, r)} {', '.join(f'`{m}`' for m in trained[r])}"
                                         for r in self.roles) + "."]
        if controls:
            notes.append("Random-init control: " + ", ".join(f"`{m}`" for m in next(iter(controls.values()))) + ".")
        return ClaimVerdict.of(self.text, checks, notes=notes, blockers=found)


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
               _sup_mim(lambda r: local_head_everywhere(r["simmim"]["locality"])), 0.5,
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
