"""The Section 4.2 page (``book/geometric_tasks.md``): Table 2, Figure 5 and §3.2's sampled blocks of each
preset, their verdicts judged through the registry (:class:`mimstudy.book.claims.geometric.GeometricClaim`,
the same calls as the scorecard)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
from IPython.display import Markdown, display

from mimstudy.book.claims.evidence import PresetResults
from mimstudy.book.examples import show_examples
from mimstudy.book.claims.downstream import (coord, find_runs, full_model, full_models, scores, seed_values,
                                             trivial_score)
from mimstudy.book.claims.geometric import TASKS, dropped_runs, sampled_pairs
from mimstudy.book.stored import PAPER_LABELS, preset_heading, provenance_markdown
from mimstudy.book.claims.registry import claim
from mimstudy.book.rendering import Judged, verdict_markdown
from mimstudy.book.claims.verdicts import seed_estimate
from mimstudy.book.pages.paper_tables import reference_results

ORDER = ["supervised", "moco", "simmim", "finetune", "random"]


def paper_table2_markdown() -> str:
    """The paper's Table 2, from its transcribed numbers (:func:`~mimstudy.book.pages.paper_tables.reference_results`)."""
    paper = reference_results().query("table == 'table2'")
    paper = paper.assign(column=paper.dataset + " " + paper.metric + np.where(paper.higher_is_better, " ↑", " ↓"),
                         value=paper.value.astype(float))
    columns = list(dict.fromkeys(paper.column))
    rows = ["| backbone | pre-training | " + " | ".join(columns) + " |", "|---|---|" + "---|" * len(columns)]
    for (backbone, pretrain), group in paper.groupby(["backbone", "pretrain"], sort=False):
        values = dict(zip(group.column, group.value))
        rows.append(f"| {backbone} | {pretrain} | " + " | ".join(f"{values[c]:g}" if c in values else "–"
                                                                 for c in columns) + " |")
    return "\n".join(rows)


def cell(values, scale: float = 100) -> str:
    """Mean ± half-width of the 95% t interval over seeds (n = seeds)."""
    if len(values) == 0:
        return "–"
    est = seed_estimate(values)
    digits = 1 if scale == 100 else 3
    if not est.has_interval:
        return f"{scale * est.value:.{digits}f} (n={len(values)})"
    return f"{scale * est.value:.{digits}f} ± {scale * (est.high - est.value):.{digits}f} (n={len(values)})"


def table2_markdown(runs: xr.Dataset) -> str:
    """Our Table 2: full models per backbone and pre-training, every task the preset ran, and the trivial predictor."""
    tasks = [t for t in TASKS if find_runs(runs, t)]
    rows = ["| backbone | pre-training | " + " | ".join(TASKS[t][0] for t in tasks) + " |",
            "|---|---|" + "---|" * len(tasks)]
    for arch in sorted({str(a) for a in runs["arch"].values}):
        for objective in ORDER:
            models = {t: full_models(runs, t, objective, arch) for t in tasks}
            if not any(models.values()):
                continue
            rows.append(f"| {arch} | {PAPER_LABELS.get(objective, objective)} | " + " | ".join(
                cell(seed_values(runs, ms, TASKS[t][1]), TASKS[t][3]) if ms else "–"
                for t, ms in models.items()) + " |")
    trivial = []
    for t in tasks:
        _, metric, _, scale = TASKS[t]
        value = trivial_score(runs, t, metric)
        trivial.append(f"{scale * value:.{1 if scale == 100 else 3}f}")
    rows.append("| – | trivial predictor (mean keypoints / mean depth map / first box kept) | " + " | ".join(trivial) + " |")
    return "\n".join(rows)


def show_verdicts(results: PresetResults, keys: tuple[str, ...]) -> list[Judged]:
    """A preset's heading, then the verdict of each claim ``keys`` on its results."""
    display(Markdown(preset_heading(results.preset)))
    return [show_verdict(key, results) for key in keys]


def show_figure(fig, axes, caption: str) -> None:
    """Legend on the first axes, a light grid on all, then the figure and its italic caption."""
    axes = list(np.atleast_1d(axes))
    axes[0].legend(fontsize=8)
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    plt.show()
    display(Markdown(f"*{caption}*"))


def show_verdict(key: str, results: PresetResults) -> Judged:
    """Judge claim ``key`` on ``results`` and show its verdict (the scorecard judges it the same way)."""
    c = claim(key)
    judged = Judged(c, results.preset, c.judge(results))
    display(Markdown(verdict_markdown(c, judged.verdict, results.preset)))
    return judged


def show_table2(results: PresetResults) -> list[Judged]:
    judged = show_verdicts(results, ("geometric",))
    runs = results.downstream
    if runs is None:
        return judged
    display(Markdown(f"**Our Table 2 on the `{results.preset}` results** (pose: OKS AP × 100; depth: RMSE in metres; "
                     "mean over seeds ± half-width of the 95% t interval; n = seeds):\n\n" + table2_markdown(runs)))
    for task in ("pose", "crowdpose", "depth", "tracking"):
        for prefix in ("vit", "swinv2"):
            show_examples(runs, [full_model(runs, task, o, prefix) for o in ("supervised", "simmim", "random")])
    display(Markdown("**Provenance.**\n\n" + provenance_markdown(runs)))
    return judged


def show_figure5(results: PresetResults) -> list[Judged]:
    judged = show_verdicts(results, ("layer-drop",))
    runs = results.downstream
    series = {o: dropped_runs(runs, "pose", o) for o in ("supervised", "simmim")} if runs is not None else {}
    if not series or not all(len(s) >= 2 and 0 in s for s in series.values()):
        return judged
    fig, ax = plt.subplots(figsize=(4.6, 3.2))
    for objective, by_d in series.items():
        means = {d: [scores(runs, m).mean() for m in ms] for d, ms in by_d.items()}  # one per pre-training run
        ax.plot(list(means), [100 * np.mean(v) for v in means.values()], "o-", label=PAPER_LABELS[objective])
        for d, v in means.items():
            ax.plot([d] * len(v), 100 * np.asarray(v), ".", color=ax.lines[-1].get_color(), alpha=0.4)
    ax.set(xlabel="last blocks dropped (d)", ylabel="Puppet-Pose OKS AP (×100)", ylim=(0, 100))
    show_figure(fig, ax, "Pose AP against the number of last blocks dropped; lines: mean over pre-training runs, "
                "dots: single pre-training runs (each the mean over its fine-tuning seeds); absolute axis from 0.")
    return judged


def show_shuffled(results: PresetResults) -> list[Judged]:
    judged = show_verdicts(results, ("layer-shuffle",))
    runs = results.downstream
    if runs is None:
        return judged
    rows = ["| model | blocks loaded | AP × 100 (seeds) |", "|---|---|---|"]
    for pairs in (sampled_pairs(runs, "pose", o) for o in ("supervised", "simmim")):
        for m in [m for base, sampled in pairs for m in (base, *sampled)]:
            rows.append(f"| `{m}` | {coord(runs, m, 'block_order') or 'in order'} | {cell(scores(runs, m))} |")
    if len(rows) > 2:
        display(Markdown("\n".join(rows)))
    return judged
