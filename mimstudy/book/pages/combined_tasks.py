"""The Section 4.3 / Appendix D page (``book/combined_tasks.md``): our Table 6 analog beside the paper's,
Figure 7's held-out loss curves, and the verdicts of :class:`mimstudy.book.claims.combined.CombinedClaim`
(the same calls as the scorecard)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
from IPython.display import HTML, Markdown, display

from mimstudy.book.claims.evidence import PresetResults
from mimstudy.book.examples import show_examples
from mimstudy.book.claims.downstream import full_models
from mimstudy.book.pages.geometric_tasks import show_figure, show_verdicts
from mimstudy.book.stored import PAPER_LABELS, provenance_markdown, results_root
from mimstudy.book.pages.paper_tables import our_table_html
from mimstudy.book.rendering import Judged

FIGURE7 = (("loss_classifier", "L_cls: classification"), ("loss_box_reg", "L_bbox: box regression"))


def show_figure7(runs: xr.Dataset, arch: str) -> None:
    """Held-out (and training, dashed) losses per epoch of the supervised, SimMIM and random-init detectors."""
    found = {o: full_models(runs, "detection", o, arch, protocol="finetune") for o in ("supervised", "simmim", "random")}
    if not any(found.values()) or "heldout_loss_box_reg" not in runs:
        return
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    for ax, (name, title) in zip(axes, FIGURE7):
        top = 0.0
        for objective, models in found.items():
            for i, model in enumerate(models):
                held = runs[f"heldout_{name}"].sel(model=model).mean("seed").dropna("epoch")
                train = runs[f"train_{name}"].sel(model=model).mean("seed").dropna("epoch")
                label = PAPER_LABELS.get(objective, objective) if i == 0 else None
                line, = ax.plot(held["epoch"], held, "o-", ms=3, label=label, alpha=0.8)
                ax.plot(train["epoch"], train, "--", color=line.get_color(), alpha=0.5)
                top = max(top, float(np.nanmax(held)), float(np.nanmax(train)))
        ax.set(title=title, xlabel="fine-tuning epoch", ylabel="loss", ylim=(0, 1.05 * top))
    show_figure(fig, axes, "Figure 7's analog: torchvision's `loss_classifier` and `loss_box_reg` per epoch on held-out "
                "test scenes (solid; heads in training mode, no gradients, seeded) and on the training batches "
                "(dashed), mean over fine-tuning seeds, one line per pre-training run; axes from 0.")


def show_combined(results: PresetResults) -> list[Judged]:
    judged = show_verdicts(results, ("detection", "detection-losses", "segmentation"))
    runs = results.downstream
    if runs is None:
        return judged
    display(Markdown(f"**Our Table 6 on the `{results.preset}` results** (×100, mean over all fine-tunings, n):"))
    display(HTML(our_table_html("table6", results.preset, results_root())))
    for arch in sorted({str(a) for a in runs["arch"].values}):
        show_figure7(runs, arch)
        for task in ("detection", "segmentation"):
            show_examples(runs, [next(iter(full_models(runs, task, o, arch, protocol="finetune")), None)
                                       for o in ("supervised", "simmim", "random")])
    display(Markdown("**Provenance.**\n\n" + provenance_markdown(runs)))
    return judged
