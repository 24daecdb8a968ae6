"""Appendix A's page beyond the Section 3 template: the campaign's check of mask cells aligned with Swin
windows (:mod:`mimstudy.study.mask_window_check`), its numbers, rule and decision, from stored probes."""

from __future__ import annotations

from pathlib import Path

from mimstudy.book.records import provenance_block, stale_reasons
from mimstudy.book.stored import book_presets, load_unique_runs, per_layer_table, results_root
from mimstudy.study import mask_window_check as check

RUN_COMMAND = f"mimstudy run --preset {check.PRESET} --jobs 2"


def mask_window_markdown(results_dir: str | Path | None = None) -> str:
    """The check as Markdown: the rule, each cell's stage-1 alternation and per-block locality, the
    decision (withheld while a result is stale or missing) and the provenance."""
    root = Path(results_dir) if results_dir is not None else results_root()
    rule = (f"**Rule (fixed before the runs).** The stage-1 alternation is the mean locality λ = 1 − d / d_uniform "
            f"of the shifted blocks minus that of the regular blocks. If the 4-px cells' alternation is below "
            f"{check.DECISION_FRACTION:g} × the 8-px cells', the alignment causes it and the `cpu` preset's SwinV2 "
            "SimMIM seeds use 4-px cells; otherwise 8 px stays.")
    folder = root / check.PRESET / "probes"
    if not all((folder / f"{run}.nc").is_file() for run in check.RUNS.values()):
        return f"{rule}\n\n*Not run yet* (`{RUN_COMMAND}`, about 15 min on 2 cores): no decision."
    ds = load_unique_runs(folder)  # read once: the check's numbers, the table and the provenance
    stale = stale_reasons(ds, "probes", root)
    result = check.outcome({cell: ds.sel(model=run) for cell, run in check.RUNS.items()})
    lines = [rule, "", "| mask cell | run | stage-1 alternation |", "|---|---|---|"]
    lines += [f"| {cell} px | `{run}` | {result.alternation[cell]:+.3f} |" for cell, run in check.RUNS.items()]
    if stale:
        decision = "**No decision**: stale results (" + "; ".join(f"`{m}`: {why}" for m, why in stale.items()) + ")."
    else:
        ratio = result.alternation[4] / result.alternation[8] if result.alternation[8] else float("nan")
        decision = (f"**Decision.** 4-px / 8-px alternation = {ratio:.2f} "
                    f"({'below' if result.alignment_causes_it else 'not below'} {check.DECISION_FRACTION:g}): "
                    + ("the alignment of cells and windows causes the alternation; the `cpu` preset's SwinV2 SimMIM "
                       "runs use 4-px cells." if result.alignment_causes_it else
                       "the alignment is not its cause; the `cpu` preset's SwinV2 SimMIM runs keep 8-px cells."))
    per_block = check.block_locality(ds)
    carrying = [f"`{preset}`: " + ", ".join(f"`{run}` ({cell} px)" for run, cell in runs)
                for preset in book_presets() if (runs := check.aligned_runs(preset))]
    if carrying:
        decision += (" SimMIM SwinV2 runs whose mask cell still equals their window, so their alternation carries "
                     "the confound: " + "; ".join(carrying) + ".")
    lines += ["", decision, "", "Locality λ per block (one seed, 2 epochs):", "",
              per_layer_table(per_block, digits=3), "", provenance_block(ds, "probes", root, "the check")]
    return "\n".join(lines)
