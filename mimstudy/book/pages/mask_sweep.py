"""The Figure 2(a) page (``book/mask_sweep.md``): the sweep's figure, verdict, table and provenance per preset,
the verdict judged by the registry's :class:`mimstudy.book.claims.sweep.SweepClaim` (as on the scorecard)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import xarray as xr
from IPython.display import Markdown, display

from mimstudy.book.claims.evidence import PresetResults
from mimstudy.book.stored import preset_heading, provenance_markdown
from mimstudy.book.claims.registry import claim
from mimstudy.book.rendering import Judged, verdict_markdown
from mimstudy.book.claims.statistics import references


def plot_sweep(table: xr.Dataset, uniform: float) -> None:
    """Fine-tuning error (circles, left) and attention distance (diamonds, right) against AvgDist."""
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    ax.plot(table["avg_dist"], 100 * table["ft_error"], "o", color="C0", ms=8, mfc="none", mew=2)
    ax.set_xlabel("AvgDist (px)")
    ax.set_ylabel("fine-tuning error (%)", color="C0")
    ax.set_ylim(0, 100)
    twin = ax.twinx()
    twin.plot(table["avg_dist"], table["attention_distance"], "D", color="C3", ms=7)
    twin.set_ylabel("mean attention distance (px)", color="C3")
    twin.set_ylim(0, uniform * 1.1)
    twin.axhline(uniform, color="C3", ls="--", lw=0.8)
    ax.set_zorder(twin.get_zorder() + 1)  # circles in front of the diamonds
    ax.patch.set_visible(False)
    for run in table["run"].values:
        row = table.sel(run=run)
        ax.annotate(f"r={row['mask_ratio'].item():g}, p={int(row['mask_patch_size'].item())}",
                    (row["avg_dist"].item(), 100 * row["ft_error"].item()), fontsize=7,
                    textcoords="offset points", xytext=(4, 4))
    ax.grid(alpha=0.3)
    fig.tight_layout()
    plt.show()


def sweep_table(table: xr.Dataset) -> str:
    rows = ["| run | backbone | mask ratio | mask patch (px) | AvgDist (px) | fine-tuning error | attention distance (px) |",
            "|---|---|---|---|---|---|---|"]
    for run in table["run"].values:
        r = table.sel(run=run)
        rows.append(f"| `{run}` | {r['arch'].item()} | {r['mask_ratio'].item():g} | {int(r['mask_patch_size'].item())} | "
                    f"{r['avg_dist'].item():.2f} | {100 * r['ft_error'].item():.1f}% | {r['attention_distance'].item():.2f} |")
    return "\n".join(rows)


def show_preset(preset: str) -> list[Judged]:
    """Figure 2(a)'s analog, the verdict, the sweep table and the provenance of one preset."""
    from mimstudy.study.sweep import mask_sweep

    display(Markdown(preset_heading(preset)))
    results, sweep = PresetResults(preset), claim("mask-sweep")
    judged = Judged(sweep, preset, sweep.judge(results))
    display(Markdown(verdict_markdown(sweep, judged.verdict, preset)))
    if results.sweep is None:
        display(Markdown(f"**The `{preset}` preset has no mask sweep** (no `sweep_*` runs), so there is "
                         "nothing to show for it; the `quick`, `cpu` and `gpu` presets have one."))
        return [judged]
    pretrain, probes = results.sweep
    table = mask_sweep(pretrain, probes)
    plot_sweep(table, float(references(probes)["uniform_distance"].max()))
    display(Markdown(sweep_table(table)))
    display(Markdown(provenance_markdown(probes)))
    return [judged]
