"""The Appendix B page (``book/convnet.md``): Figures 12-14 and Table 3 of each preset, with the verdicts of
:mod:`mimstudy.book.claims.convnet` judged through the registry (the scorecard reads the same)."""

from __future__ import annotations


import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
from IPython.display import Markdown, display

from mimstudy.book.claims.convnet import ROLE_LABELS, final_accuracies, kernel_values, preset_roles
from mimstudy.book.claims.evidence import PresetResults
from mimstudy.book.stored import preset_heading, provenance_markdown, run_attr
from mimstudy.book.pages.paper_tables import reference_results
from mimstudy.book.plots import plot_head_dots
from mimstudy.book.rendering import judge_page, verdicts_markdown
from mimstudy.book.claims.verdicts import seed_estimate

FIGURES = [("kernel_distance", "aggregated distance (px)", "Figure 12: aggregated distance"),
           ("kernel_entropy", "entropy (nats)", "Figure 13: entropy"),
           ("kernel_kl", "KL to the other channels (nats)", "Figure 14: KL divergence to the other channels")]


def paper_table3() -> dict:
    """The paper's Table 3 ``{(pre-training, dataset): value}``, from its transcribed numbers."""
    rows = reference_results().query("table == 'table3'")
    return {(p, d): float(v) for p, d, v in zip(rows.pretrain, rows.dataset, rows.value)}


def show_figures(probes: xr.Dataset, roles: dict[str, list[str]], preset: str) -> None:
    """Figures 12-14's analogs: per channel (small dots) and layer mean, the first seed of each role."""
    order = [r for r in ("sup", "sup_rep", "simmim", "ft") if r in roles]
    for var, ylabel, caption in FIGURES:
        fig, axes = plt.subplots(1, len(order), figsize=(4.2 * len(order), 3.4), sharey=True, squeeze=False)
        top = 0.0
        for i, (ax, role) in enumerate(zip(axes[0], order)):
            model = roles[role][0]
            trained = kernel_values(probes, var, model).rename(channel="head")
            control = kernel_values(probes, var, model, weights="random_init")
            stage = probes["kernel_stage"].sel(model=model).sel(layer=trained["layer"])
            plot_head_dots(trained.assign_coords(stage=("layer", stage.values.astype(int))), ax,
                           title=f"({chr(97 + i)}) {ROLE_LABELS[role]}", ylabel=ylabel if i == 0 else "", color=f"C{i}")
            ax.plot(control["layer"], control.mean("channel"), "--", color="grey", lw=1, label="random init")
            ax.legend(fontsize=7, loc="lower right")
            top = max(top, float(np.nanmax(trained)))
        limits = {"kernel_distance": "max_kernel_distance", "kernel_entropy": "max_kernel_entropy"}
        axes[0][0].set_ylim(0, float(probes[limits[var]].max()) * 1.02 if var in limits else top * 1.1)
        fig.tight_layout()
        plt.show()
        axis = {"kernel_distance": "0 to the corner tap of the largest kernel",
                "kernel_entropy": "0 to log k² of the largest kernel"}.get(var, "from 0")
        display(Markdown(f"*Our analog of {caption} of each depth-wise channel's merged kernel (|W|/Σ|W|; small dots) "
                         f"and the layer mean (black), per layer, for the `{preset}` ConvNets (first seed); grey "
                         f"dashed: the random-init control. Dotted lines: stage boundaries. y axis: {axis}.*"))


def table3_markdown(results: PresetResults, roles: dict[str, list[str]]) -> str:
    """Table 3, the paper's numbers beside ours: mean final validation top-1 over training seeds [95% t interval]."""
    paper = paper_table3()
    rows = ["| model | paper: ImageNet-1K top-1 | paper: COCO val pose AP | ours: val top-1 over seeds [95% CI] "
            "| ours: pose AP |", "|---|---|---|---|---|"]
    for key, label in (("1K-SUP-reparam", "supervised with re-param."),
                       ("1K-MIM-no-reparam", "SimMIM without re-param. → fine-tuned")):
        rows.append(f"| RepLKNet-31B, {label} | {paper[(key, 'ImageNet-1K')]:.1f} | {paper[(key, 'COCO-val')]:.1f} | | |")
    for role in ("sup", "sup_rep", "ft"):
        if role not in roles:
            continue
        est = seed_estimate(final_accuracies(results.pretrain, roles[role])) if results.pretrain is not None else None
        cell = "–" if est is None or np.isnan(est.value) else (
            f"{100 * est.value:.1f}% [{100 * est.low:.1f}, {100 * est.high:.1f}]" if est.has_interval
            else f"{100 * est.value:.1f}% (one seed)")
        rows.append(f"| ours: {', '.join(f'`{m}`' for m in roles[role])}, {ROLE_LABELS[role]} | | | {cell} | not run |")
    return "\n".join(rows)


def kernel_tables_markdown(probes: xr.Dataset, roles: dict[str, list[str]]) -> str:
    """Per-layer kernel means, how far training moved the kernels, and the merge error (first seed of each role)."""
    models = {r: runs[0] for r, runs in roles.items()}
    lines = ["| layer | " + " | ".join(f"{ROLE_LABELS[r]}: distance px / entropy nats / KL nats" for r in roles) + " |",
             "|---|" + "---|" * len(roles)]
    values = {r: [kernel_values(probes, v, m).mean("channel") for v in ("kernel_distance", "kernel_entropy", "kernel_kl")]
              for r, m in models.items()}
    for layer in values[next(iter(values))][0]["layer"].values:
        cells = []
        for r in roles:
            d, e, k = (float(x.sel(layer=layer)) if layer in x["layer"].values else np.nan for x in values[r])
            cells.append(f"{d:.2f} / {e:.2f} / {k:.3f}")
        lines.append(f"| {layer} | " + " | ".join(cells) + " |")
    moved = []
    for r, m in models.items():
        gap = (kernel_values(probes, "kernel_distance", m).mean("channel")
               - kernel_values(probes, "kernel_distance", m, weights="random_init").mean("channel"))
        moved.append(f"{ROLE_LABELS[r]} {float(gap.mean()):+.2f} px (largest layer {float(abs(gap).max()):.2f} px)")
    errors = [f"`{m}`: {float(run_attr(probes, m, 'merge_max_abs_error', np.nan)):.1e} "
              f"({float(run_attr(probes, m, 'merge_max_rel_error', np.nan)):.1e} of the largest logit)"
              for m in models.values()]
    return "\n\n".join([
        "Per layer, the mean over channels of the merged kernels (|W|/Σ|W|):\n\n" + "\n".join(lines),
        "**How far training moved the kernels from their random initialisation** (trained minus the random-init "
        "control, mean kernel distance over layers): " + "; ".join(moved) + ". Differences between models smaller "
        "than these shifts, or present at initialisation already (the 3×3 branch adds weight at the centre from the "
        "start), say nothing about what the objective taught.",
        "**Merge error** (largest change of any logit on the probe images when the branches and batch norms are "
        "merged into one kernel, eval mode): " + "; ".join(errors) + "."])


def show_preset(preset: str) -> list:
    """Everything the page shows for one preset; returns its judged claims (for the closing paragraph)."""
    display(Markdown(preset_heading(preset)))
    results = PresetResults(preset)
    roles = preset_roles(results)
    judged = judge_page("convnet", results)
    if results.probes is None or "kernel_distance" not in results.probes or not roles:
        display(Markdown(f"**No ConvNet results in the `{preset}` preset.** Its probe results hold no `replk*` model, so "
                         "it has no figures here; the `ci` preset and `mimstudy run --preset quick --runs "
                         "replk_sup,replk_sup_rep,replk_simmim,replk_simmim_ft` make them."))
        display(Markdown(verdicts_markdown(judged)))
        return judged
    probes = results.probes.sel(model=[m for runs in roles.values() for m in runs])
    missing = [ROLE_LABELS[r] for r in ROLE_LABELS if r not in roles]
    if missing:
        display(Markdown(f"The `{preset}` results have no ConvNet trained as {', '.join(missing)}."))
    display(Markdown(verdicts_markdown(judged)))
    show_figures(probes, roles, preset)
    gates = results.gates([m for runs in roles.values() for m in runs])
    display(Markdown("Quality gates: " + ", ".join(f"`{g.model}` {g.status}" for g in gates) + " (the Models page "
                     "shows their numbers)."))
    display(Markdown(f"**Table 3, paper beside ours (`{preset}`).** Pose AP of the ConvNets is not run yet.\n\n"
                     + table3_markdown(results, roles)))
    display(Markdown(kernel_tables_markdown(probes, roles)))
    display(Markdown("**Provenance.**\n\n" + provenance_markdown(probes)))
    return judged
