"""The paper-scale page (``book/paper_scale.md``): the probes of the released checkpoints (or of the ``ci``
preset's random-weight smoke run, labelled as such), as stored by the ``paper_probes`` notebook."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import matplotlib.pyplot as plt
import xarray as xr
from IPython.display import Markdown, display

from mimstudy.book.stored import book_preset, load_results, provenance_markdown
from mimstudy.book.plots import plot_models

PANELS = {
    "attention_distance": ("Figure 1", "mean attention distance (px)"),
    "attention_entropy": ("Figure 3", "attention entropy (nats)"),
    "head_kl_per_image": ("Figure 4", "KL to the other heads (nats)"),
}


@dataclass
class PaperProbes:
    """The stored paper-scale probes (``ds`` is ``None`` without results) and which models are random."""

    ds: xr.Dataset | None
    random_models: list[str] = field(default_factory=list)
    trained_models: list[str] = field(default_factory=list)


def is_random(ds: xr.Dataset, model) -> bool:
    """Random weights: objective 'random' or no checkpoint in the stored parameters."""
    one = ds.sel(model=model)
    params = json.loads(json.loads(str(one["provenance"].item())).get("parameters", "{}"))
    return str(one["objective"].item()) == "random" or not params.get("checkpoint_path")


def load_and_describe() -> PaperProbes:
    """Read the stored probes and say what they are (random weights or released checkpoints)."""
    try:
        ds = load_results("paper_probes")
    except FileNotFoundError:
        display(Markdown(f"**No paper-scale results for the `{book_preset()}` preset.** Run the `paper` preset (above) "
                         "and render the book with `MIMSTUDY_BOOK_PRESET=paper`, or `ci` for the random-weight smoke test."))
        return PaperProbes(None)
    found = PaperProbes(ds, [str(m) for m in ds["model"].values if is_random(ds, m)],
                        [str(m) for m in ds["model"].values if not is_random(ds, m)])
    if found.random_models:
        display(Markdown(
            "**Randomly initialised weights: NOT the paper's models.** "
            + ", ".join(f"`{m}`" for m in found.random_models)
            + f" in the `{book_preset()}` results {'has' if len(found.random_models) == 1 else 'have'} no "
            "checkpoint (`checkpoint_path` empty, objective `random`). The panels below only show that the "
            "probes run at paper scale; they say nothing about DeiT, MoCo v3 or SimMIM."))
    if found.trained_models:
        weights = ", ".join(f"`{m}`: {ds['objective'].sel(model=m).item()} from `{ds['weights'].sel(model=m).item()}`"
                            for m in found.trained_models)
        display(Markdown(f"**Released checkpoints probed:** {weights}."))
    return found


def caption(probes: PaperProbes, figure: str, what: str) -> None:
    label = "randomly initialised, not the paper's models" if not probes.trained_models else (
        "released checkpoints" + (" and random-weight smoke runs (objective `random`)" if probes.random_models else ""))
    display(Markdown(f"*Our analog of the paper's {figure}: {what}, for each probed model ({label}).*"))


def show_panels(probes: PaperProbes) -> None:
    """Figures 1, 3 and 4's analogs: per head and layer mean."""
    if probes.ds is None:
        return
    for name, (figure, ylabel) in PANELS.items():
        if name in probes.ds:
            fig = plot_models(probes.ds[name].mean("image"), ylabel=ylabel)
            if probes.random_models and not probes.trained_models:
                fig.suptitle("RANDOM INIT: not the paper's models", y=1.02, fontsize=10)
            plt.show()
            caption(probes, figure, ylabel.split(" (")[0] + " per head (small dots) and layer mean (black)")


def show_cka(probes: PaperProbes) -> None:
    """Figure 6's analog and the provenance."""
    if probes.ds is None or "cka" not in probes.ds:
        return
    models = list(probes.ds["model"].values)
    fig, axes = plt.subplots(1, len(models), figsize=(4.2 * len(models), 3.6), squeeze=False)
    for i, (ax, model) in enumerate(zip(axes[0], models)):
        one = probes.ds["cka"].sel(model=model)
        one.plot(ax=ax, vmin=0, vmax=1, cmap="magma", add_colorbar=i == len(models) - 1)
        ax.set_title(f"({chr(97 + i)}) {one['objective'].item()} · {one['arch'].item()}")
    plt.show()
    caption(probes, "Figure 6", "linear CKA between the outputs of every pair of blocks (patch tokens)")
    display(Markdown(provenance_markdown(probes.ds)))
