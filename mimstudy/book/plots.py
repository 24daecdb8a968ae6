"""Figures in the paper's style, drawn from stored datasets."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr


def plot_head_dots(values: xr.DataArray, ax=None, title: str = "", ylabel: str = "", color: str = "C0"):
    """One small dot per head and a large dot for the layer mean, against layer number.

    ``values``: dims ``(layer, head)`` (already averaged over images).
    """
    ax = ax or plt.gca()
    layers = values["layer"].values
    heads = values.transpose("layer", "head").values  # [L, H]
    jitter = np.linspace(-0.15, 0.15, heads.shape[1]) if heads.shape[1] > 1 else np.zeros(1)
    for h in range(heads.shape[1]):
        ax.scatter(layers + jitter[h], heads[:, h], s=12, color=color, alpha=0.6, linewidths=0)
    ax.plot(layers, np.nanmean(heads, axis=1), "o-", color="black", ms=5, lw=1, label="layer mean")  # NaN: padded heads
    stage = values.coords.get("stage")
    if stage is not None and stage.dims == ("layer",):  # Swin: dotted lines between stages
        for boundary in np.flatnonzero(np.diff(stage.values) != 0):
            ax.axvline((layers[boundary] + layers[boundary + 1]) / 2, color="grey", ls=":", lw=0.8)
    ax.set_xticks(_ticks(layers))
    ax.set_xlabel("layer")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    return ax


def _ticks(layers: np.ndarray) -> np.ndarray:
    """At most 12 integer layer ticks."""
    return layers if len(layers) <= 12 else layers[:: int(np.ceil(len(layers) / 12))]


def _title(one: xr.DataArray | xr.Dataset, i: int) -> str:
    return f"({chr(97 + i)}) {one['objective'].item()} · {one['arch'].item()}"


def plot_models(values: xr.DataArray, ylabel: str, sharey: bool = True, ylim: tuple = (0, None),
                reference: xr.DataArray | float | None = None, reference_label: str = "uniform attention"):
    """One panel per ``model`` of ``values`` ``(model, layer, head)``, titled by objective and arch.

    Works for any per-head variable (distance, entropy, head KL); NaN-padded heads are skipped and a
    1-D ``stage`` coord (one Swin model per panel) draws stage boundaries. Axes are absolute: ``ylim``
    (default: from 0) fixes the range — pass the largest possible value as its top (the largest
    distance a block allows, ``log N`` for entropy) so that a flat line near uniform attention looks
    flat. ``reference``: a dashed line per panel (a number, or per layer ``(layer)`` /
    ``(model, layer)``, drawn as steps: e.g. the uniform-attention distance of each block).
    """
    models = list(values["model"].values)
    fig, axes = plt.subplots(1, len(models), figsize=(4.2 * len(models), 3.4), sharey=sharey, squeeze=False)
    for i, (ax, model) in enumerate(zip(axes[0], models)):
        one = values.sel(model=model)
        if "stage" in one.coords and one["stage"].ndim == 1 and one["stage"].isnull().any():
            one = one.drop_vars("stage")
        plot_head_dots(one, ax, title=_title(one, i), ylabel=ylabel if i == 0 else "", color=f"C{i}")
        if reference is not None:
            line = reference.sel(model=model) if isinstance(reference, xr.DataArray) and "model" in reference.dims \
                else reference
            if isinstance(line, xr.DataArray):
                line = line.sel(layer=one["layer"].values)
                ax.plot(one["layer"].values, line.values, color="grey", ls="--", lw=0.8, drawstyle="steps-mid",
                        label=reference_label)
            else:
                ax.axhline(float(line), color="grey", ls="--", lw=0.8, label=reference_label)
        ax.set_ylim(*ylim)
    if reference is not None:
        axes[0][-1].legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


def plot_cka_grid(cka: xr.DataArray, vmin: float = 0.0, vmax: float = 1.0, cmap: str = "viridis"):
    """One CKA heatmap per ``model`` of ``cka`` ``(model, layer, layer_j)`` on a shared, absolute colour
    scale (CKA's whole range, 0 to 1, by default), plus one colour bar (``len(fig.axes) == models + 1``)."""
    models = list(cka["model"].values)
    fig, axes = plt.subplots(1, len(models), figsize=(3.6 * len(models) + 0.8, 3.4), squeeze=False)
    image = None
    for i, (ax, model) in enumerate(zip(axes[0], models)):
        one = cka.sel(model=model)
        layers, layers_j = one["layer"].values, one["layer_j"].values
        image = ax.imshow(one.transpose("layer", "layer_j").values, origin="lower", vmin=vmin, vmax=vmax, cmap=cmap,
                          extent=(layers_j[0] - 0.5, layers_j[-1] + 0.5, layers[0] - 0.5, layers[-1] + 0.5))
        ax.set_xticks(_ticks(layers_j))
        ax.set_yticks(_ticks(layers))
        ax.set_title(_title(one, i))
        ax.set_xlabel("layer")
        ax.set_ylabel("layer" if i == 0 else "")
    fig.colorbar(image, ax=list(axes[0]), label="linear CKA", shrink=0.9)
    return fig


def plot_training_curves(pretrain: xr.Dataset):
    """Training and validation loss per model (one panel each from 0, own top: objectives' losses differ),
    plus a last panel of validation accuracy (0 to 1) for the models that report one."""
    models = list(pretrain["model"].values)
    ncols = min(len(models) + 1, 4)
    nrows = int(np.ceil((len(models) + 1) / ncols))
    fig, grid = plt.subplots(nrows, ncols, figsize=(3.6 * ncols, 3.2 * nrows), squeeze=False)
    axes = grid.reshape(1, -1)
    for ax in axes[0, len(models) + 1 :]:
        ax.remove()
    for i, (ax, model) in enumerate(zip(axes[0], models)):
        one = pretrain.sel(model=model)
        for var, style in (("train_loss", "o-"), ("val_loss", "s--")):
            if var in one and one[var].notnull().any():
                ax.plot(one["epoch"].values, one[var].values, style, label=var.replace("_", " "))
        ax.set_title(_title(one, i))
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss" if i % ncols == 0 else "")
        ax.set_ylim(0, None)  # losses on an absolute axis: how far they fell, not only that they fell
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    ax = axes[0, len(models)]
    shown = False
    for i, model in enumerate(models):
        one = pretrain.sel(model=model)
        if "val_accuracy" in one and one["val_accuracy"].notnull().any():
            ax.plot(one["epoch"].values, one["val_accuracy"].values, "o-", color=f"C{i}", label=str(model))
            shown = True
    ax.set_title("validation accuracy")
    ax.set_xlabel("epoch")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    if shown:
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no model reports accuracy", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    return fig


# Trajectory panels on absolute axes: what each curve is, and the y range that shows it whole.
TRAJECTORY_PANELS = {
    "locality": ("most local head, 1 - d / d_uniform", (-1.0, 1.0)),
    "normalized_entropy": ("mean head entropy / log(keys)", (0.0, 1.0)),
    "head_kl": ("mean KL to the other heads (nats)", (0.0, None)),
    "cka": ("mean CKA to the other layers", (0.0, 1.0)),
}


def trajectory_curves(trajectory: xr.Dataset, name: str) -> xr.DataArray:
    """``(epoch, layer)`` curves of one probe: the most local head (locality), the mean over heads
    (entropy, KL; NaN-padded heads skipped), or the mean CKA to the other layers."""
    values = trajectory[name]
    if name == "locality":
        return values.max("head")
    if name == "cka":
        layers = values.sizes["layer"]
        return (values.sum("layer_j") - 1.0) / max(layers - 1, 1)  # the diagonal is 1
    return values.mean("head")


def plot_trajectory(trajectory: xr.Dataset, name: str, ax) -> None:
    """One probe against epochs (0 = random init), a line per layer coloured by depth, absolute y axis."""
    label, (low, high) = TRAJECTORY_PANELS[name]
    curves = trajectory_curves(trajectory, name)
    colours = plt.cm.viridis(np.linspace(0, 1, curves.sizes["layer"]))
    for colour, layer in zip(colours, curves["layer"].values):
        ax.plot(curves["epoch"], curves.sel(layer=layer), marker="o", ms=3, color=colour, label=f"layer {layer}")
    if name == "locality":
        ax.axhline(0.0, color="grey", ls="--", lw=1, label="uniform attention")
    top = high if high is not None else max(float(curves.max()) * 1.1, 1e-3)
    ax.set_ylim(low, top)
    ax.set_xlabel("epoch (0 = random init)")
    ax.set_ylabel(label)
    ax.set_title(name.replace("_", " "))
