"""The Section 4.1 page (``book/semantic.md``): the concept ladder's measured order, our Tables 1 / 5
analogs beside the paper's, top-1 over the ladder, and the verdicts of
:class:`mimstudy.book.claims.semantic.SemanticClaim` (the same calls as the scorecard)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
from IPython.display import Markdown, display

from mimstudy.book.claims.evidence import PresetResults
from mimstudy.book.claims.downstream import full_models, scores, seed_values, trivial_score
from mimstudy.book.pages.geometric_tasks import cell, show_figure, show_verdicts
from mimstudy.book.stored import PAPER_LABELS, provenance_markdown, results_root
from mimstudy.book.rendering import Judged
from mimstudy.book.claims.semantic import LEVELS, METRICS

OBJECTIVES = ("supervised", "moco", "simmim", "random")
TASK_LABELS = {**{level: f"CoG L{i}" for i, level in enumerate(LEVELS, start=1)}, "k12_garments": "K12 covered",
               "k12_digits": "K12 digits", "k12_materials": "K12 materials", "k12_fine": "K12 fine (mean/class)",
               "inat_lite": "iNat-lite (long tail)"}


def ladder_markdown() -> str:
    """The ladder's measured order, as stored (:mod:`mimstudy.study.concept_ladder`)."""
    from mimstudy.downstream.concepts import CONCEPT_SETS, LADDER, measured_ladder
    from mimstudy.study.concept_ladder import stored_ladder

    ds, current = stored_ladder(results_root())
    if ds is None:
        return ("The ladder's measured order is not stored: run `python -m mimstudy.study.concept_ladder` "
                "(it writes `results/concepts/ladder.nc`).")
    measured = {str(n): {"probe": float(ds["probe"].sel(concept_set=n)), "nmi": float(ds["nmi"].sel(concept_set=n))}
                for n in ds["concept_set"].values}
    rows = ["| level | concept set | what | probe accuracy on the seen-class logits | NMI with the predicted seen class |",
            "|---|---|---|---|---|"]
    for name in measured_ladder(measured):
        level = f"L{LADDER.index(name) + 1}" if name in LADDER else "covered"
        rows.append(f"| {level} | {name} | {CONCEPT_SETS[name].what} | {measured[name]['probe']:.2f} | "
                    f"{measured[name]['nmi']:.2f} |")
    agrees = measured_ladder({k: v for k, v in measured.items() if k in LADDER}) == LADDER
    stale = "" if current else ("\n\n**Stale**: the code that measures the ladder changed since it was stored; "
                                "re-make it with `python -m mimstudy.study.concept_ladder`.")
    return "\n".join(rows) + ("\n\nThe levels L1–L5 follow this measured order." if agrees else
                              "\n\n**The levels L1–L5 do not follow this order today**: the ladder must be re-cut.") + stale


def scores_markdown(runs: xr.Dataset, arch: str, protocol: str) -> str:
    """Per task and pre-training: the primary metric (×100, mean ± t half-width over seeds, n) and the majority class."""
    tasks = [t for t in TASK_LABELS if any(full_models(runs, t, o, arch, protocol=protocol) for o in OBJECTIVES)]
    if not tasks:
        return ""
    rows = ["| pre-training | " + " | ".join(TASK_LABELS[t] for t in tasks) + " |", "|---|" + "---|" * len(tasks)]
    for objective in OBJECTIVES:
        models = {t: full_models(runs, t, objective, arch, protocol=protocol) for t in tasks}
        if any(models.values()):
            rows.append(f"| {PAPER_LABELS.get(objective, objective)} | " + " | ".join(
                cell(seed_values(runs, ms, METRICS[t])) if ms else "–"
                for t, ms in models.items()) + " |")
    rows.append("| majority class | " + " | ".join(
        f"{100 * trivial_score(runs, t, METRICS[t]):.1f}" for t in tasks) + " |")
    return "\n".join(rows)


def show_ladder_figure(runs: xr.Dataset, arch: str) -> None:
    fig, ax = plt.subplots(figsize=(4.8, 3.2))
    for objective in OBJECTIVES:
        points = [(i, scores(runs, m, "top1")) for i, level in enumerate(LEVELS, start=1)
                  for m in full_models(runs, level, objective, arch, protocol="finetune")]
        if not points:
            continue
        xs = sorted({i for i, _ in points})
        means = [100 * np.mean(np.concatenate([v for i, v in points if i == x])) for x in xs]
        line, = ax.plot(xs, means, "o-", label=PAPER_LABELS.get(objective, objective))
        for i, v in points:
            ax.plot([i] * len(v), 100 * v, ".", color=line.get_color(), alpha=0.4)
    ax.set(xlabel="concept-generalization level (L1: closest to the pre-training classes)", ylabel="top-1 (%)",
           ylim=(0, 100), xticks=range(1, 6))
    show_figure(fig, ax, "Fine-tuned top-1 over the ladder; lines: means over seeds and pre-training runs, dots: "
                "single fine-tunings; absolute axis from 0 to 100 %.")


def show_semantic(results: PresetResults) -> list[Judged]:
    judged = show_verdicts(results, ("semantic-cog", "semantic-covered", "semantic-fine"))
    runs = results.downstream
    if runs is None:
        return judged
    for arch in sorted({str(a) for a in runs["arch"].values}):
        for protocol, what in (("finetune", "full fine-tuning"), ("frozen", "linear probe of the frozen backbone")):
            table = scores_markdown(runs, arch, protocol)
            if table:
                display(Markdown(f"**`{arch}`, {what}** (×100; mean ± half-width of the 95% t interval; n = "
                                 f"fine-tunings):\n\n{table}"))
        if any(full_models(runs, level, o, arch, protocol="finetune") for level in LEVELS for o in OBJECTIVES):
            show_ladder_figure(runs, arch)
    display(Markdown("**Provenance.**\n\n" + provenance_markdown(runs)))
    return judged
