"""The five Section 3 / Appendix A pages through one template: per preset, the verdicts first (one coloured
line each, judged by the registry as the scorecard judges them), then the figure, our picture in words,
the tables and the provenance. A page is ``judged = show_chapter("<page>")`` and its prose."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import matplotlib.pyplot as plt
import xarray as xr
from IPython.display import Markdown, display

from mimstudy.book.claims.evidence import PresetResults
from mimstudy.book.stored import absent_note, book_presets, panels, per_layer_table, preset_heading, provenance_markdown, run_attr
from mimstudy.book.plots import plot_cka_grid, plot_models
from mimstudy.book.claims.reductions import off_diagonal
from mimstudy.book.rendering import Judged, judge_page, verdicts_markdown
from mimstudy.book.claims.statistics import references

VIT_OBJECTIVES = ("supervised", "moco", "simmim", "finetune", "random")
SWIN_OBJECTIVES = ("supervised", "simmim", "finetune", "random")


@dataclass(frozen=True)
class Chapter:
    """One page: which models it shows and its three page-specific parts."""

    arch: str
    objectives: tuple[str, ...]
    figures: Callable[[xr.Dataset, str], None]  # (panels, preset) -> shows the figures
    picture: Callable[[PresetResults, xr.Dataset], str]  # our figure in words
    tables: Callable[[xr.Dataset], str]  # per-layer tables, Markdown


# --- Figure 1: attention distance --------------------------------------------------------------------


def distance_figure(ds: xr.Dataset, preset: str) -> None:
    ref = references(ds)
    plot_models(ds["attention_distance"].mean("image"), ylabel="mean attention distance (px)",
                ylim=(0, float(ref["max_distance"].max())), reference=ref["uniform_distance"])
    plt.show()


def distance_picture(results: PresetResults, ds: xr.Dataset) -> str:
    parts = []
    for m in ds["model"].values:
        lam = results.image_means(str(m))["locality"]
        layer_mean = lam.mean("head")
        parts.append(f"`{m}` λ {float(layer_mean[0]):.2f} (layer 1) → {float(layer_mean[-1]):.2f} (layer "
                     f"{int(lam['layer'][-1])}), most local head of its least local layer λ "
                     f"{float(lam.max('head').min()):.2f}")
    return "**Ours, in λ = 1 − d / d_uniform:** " + "; ".join(parts) + "."


def distance_tables(ds: xr.Dataset) -> str:
    return ("Mean attention distance per layer (averaged over heads and images):\n\n"
            + per_layer_table(ds["attention_distance"].mean(["head", "image"]), unit="px"))


# --- Figure 3: attention entropy ---------------------------------------------------------------------


def entropy_figure(ds: xr.Dataset, preset: str) -> None:
    ref = references(ds)
    plot_models(ds["attention_entropy"].mean("image"), ylabel="attention entropy (nats)",
                ylim=(0, float(ref["uniform_entropy"].max())), reference=ref["uniform_entropy"],
                reference_label="uniform attention (log N)")
    plt.show()


def entropy_picture(results: PresetResults, ds: xr.Dataset) -> str:
    parts = []
    for m in ds["model"].values:
        ef = results.image_means(str(m))["entropy_fraction"]
        parts.append(f"`{m}` {float(ef.mean('head')[0]):.2f} (layer 1) → {float(ef.mean('head')[-1]):.2f} (last layer), "
                     f"heads of the last layer from {float(ef[-1].min()):.2f} to {float(ef[-1].max()):.2f}")
    return "**Ours, in entropy / log N:** " + "; ".join(parts) + "."


def entropy_tables(ds: xr.Dataset) -> str:
    entropy = ds["attention_entropy"]
    return ("Mean attention entropy per layer (averaged over heads and images), nats:\n\n"
            + per_layer_table(entropy.mean(["head", "image"]), digits=3)
            + "\n\nStandard deviation of the head entropies per layer, nats:\n\n"
            + per_layer_table(entropy.mean("image").std("head"), digits=3))


# --- Figure 4: head diversity ------------------------------------------------------------------------


def diversity_figure(ds: xr.Dataset, preset: str) -> None:
    plot_models(ds["head_kl_per_image"].mean("image"), ylabel="KL to the other heads (nats)")
    plt.show()


def diversity_picture(results: PresetResults, ds: xr.Dataset) -> str:
    parts = []
    for m in ds["model"].values:
        kl = results.image_means(str(m))["head_kl"].mean("head")
        half = max(kl.sizes["layer"] // 2, 1)
        parts.append(f"`{m}` {float(kl[:half].mean()):.2f} nats (first half) → {float(kl[-3:].mean()):.2f} nats "
                     "(last 3 layers)")
    return "**Ours, mean head KL:** " + "; ".join(parts) + "."


def diversity_tables(ds: xr.Dataset) -> str:
    return ("Mean head-to-head KL per layer (the large dots), nats:\n\n"
            + per_layer_table(ds["head_kl_per_image"].mean(["head", "image"]), digits=4))


# --- Figure 6: CKA -----------------------------------------------------------------------------------


def cka_figure(ds: xr.Dataset, preset: str) -> None:
    plot_cka_grid(ds["cka"])
    plt.show()


def cka_picture(results: PresetResults, ds: xr.Dataset) -> str:
    cls = {str(m): run_attr(ds, m, "cls_in_cka") for m in ds["model"].values}
    if set(cls.values()) == {1}:
        return "The CLS token is included in the features."
    if set(cls.values()) == {0}:
        return "The CLS token is not included: only the patch tokens enter CKA."
    return "Whether the CLS token is included differs between models: " + ", ".join(f"`{m}`: {v}" for m, v in cls.items()) + "."


def cka_tables(ds: xr.Dataset) -> str:
    off = off_diagonal(ds["cka"])
    rows = ["| model | objective | mean off-diagonal CKA | min off-diagonal CKA |", "|---|---|---|---|"]
    for m in ds["model"].values:
        one = off.sel(model=m)
        rows.append(f"| `{m}` | {one['objective'].item()} | {float(one.mean()):.4f} | {float(one.min()):.4f} |")
    row_means = off.mean("layer_j")
    lines = ["| layer | " + " | ".join(f"{m}" for m in ds["model"].values) + " |", "|---|" + "---|" * ds.sizes["model"]]
    for layer in ds["layer"].values:
        lines.append(f"| {layer} | " + " | ".join(f"{row_means.sel(model=m, layer=layer).item():.4f}"
                                                  for m in ds["model"].values) + " |")
    return ("Off-diagonal CKA per model (MoCo v3, when present, should look like SimMIM here; the random-init control "
            "shows how alike the layers of an untrained network already are):\n\n" + "\n".join(rows)
            + "\n\nMean CKA of each layer with the other layers:\n\n" + "\n".join(lines))


# --- Appendix A: SwinV2 ------------------------------------------------------------------------------


def swin_figures(ds: xr.Dataset, preset: str) -> None:
    ref = references(ds)
    figures = [("attention_distance", "mean attention distance (px)", "Figures 2(b) and 8: mean attention distance",
                dict(ylim=(0, float(ref["max_distance"].max())), reference=ref["uniform_distance"])),
               ("attention_entropy", "attention entropy (nats)", "Figure 9: attention entropy",
                dict(ylim=(0, float(ref["uniform_entropy"].max())), reference=ref["uniform_entropy"],
                     reference_label="uniform attention (log N allowed)")),
               ("head_kl_per_image", "KL to the other heads (nats)", "Figure 10: KL divergence to the other heads", {})]
    for var, ylabel, caption, axes in figures:
        plot_models(ds[var].mean("image"), ylabel=ylabel, **axes)
        plt.show()
        display(Markdown(f"*Our analog of {caption} of each head (small dots) and the layer mean (black), per layer, "
                         f"for the `{preset}` SwinV2 models, on absolute axes from 0"
                         + (" (dashed: uniform attention over each block's allowed keys)" if axes else "") + ".*"))
    plot_cka_grid(ds["cka"])
    plt.show()
    display(Markdown("*Our analog of Figure 11: linear CKA between the block outputs of every pair of layers, "
                     f"on CKA's whole scale from 0 to 1, for the `{preset}` SwinV2 models.*"))


def swin_picture(results: PresetResults, ds: xr.Dataset) -> str:
    parts = []
    for m in ds["model"].values:
        lam = results.image_means(str(m))["locality"].mean("head")
        stage0 = lam.where(lam["stage"] == 0, drop=True)
        parts.append(f"`{m}` λ {float(lam[0]):.2f} (block 1) → {float(lam[-1]):.2f} (last block); first stage "
                     f"regular blocks {float(stage0[::2].mean()):.2f}, shifted blocks {float(stage0[1::2].mean()):.2f}")
    return "**Ours, in λ against each block's own uniform baseline:** " + "; ".join(parts) + "."


def swin_tables(ds: xr.Dataset) -> str:
    return ("Mean attention distance per layer (averaged over heads and images), px:\n\n"
            + per_layer_table(ds["attention_distance"].mean(["head", "image"]))
            + "\n\nMean head-to-head KL per layer, nats:\n\n"
            + per_layer_table(ds["head_kl_per_image"].mean(["head", "image"]), digits=4))


CHAPTERS = {
    "attention_distance": Chapter("vit", VIT_OBJECTIVES, distance_figure, distance_picture, distance_tables),
    "attention_entropy": Chapter("vit", VIT_OBJECTIVES, entropy_figure, entropy_picture, entropy_tables),
    "head_diversity": Chapter("vit", VIT_OBJECTIVES, diversity_figure, diversity_picture, diversity_tables),
    "cka": Chapter("vit", VIT_OBJECTIVES, cka_figure, cka_picture, cka_tables),
    "swin": Chapter("swinv2", SWIN_OBJECTIVES, swin_figures, swin_picture, swin_tables),
}


def show_chapter(page: str) -> list[Judged]:
    """Every preset of the book on ``page``: heading, verdicts, figures, our picture, tables, provenance."""
    chapter, judged = CHAPTERS[page], []
    for preset in book_presets():
        display(Markdown(preset_heading(preset)))
        results = PresetResults(preset)
        on_page = judge_page(page, results)
        judged += on_page
        display(Markdown(verdicts_markdown(on_page)))
        ds = panels(results.probes, chapter.arch, chapter.objectives) if results.probes is not None else None
        if ds is None:
            display(Markdown(f"The `{preset}` results hold no `{chapter.arch}*` model, so there is no figure here."))
            continue
        display(Markdown(absent_note(results.probes, chapter.arch, chapter.objectives, preset=preset)))
        chapter.figures(ds, preset)
        display(Markdown(chapter.picture(results, ds)))
        display(Markdown(chapter.tables(ds)))
        display(Markdown(provenance_markdown(ds)))
    return judged
