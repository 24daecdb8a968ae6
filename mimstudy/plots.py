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
    ax.set_xticks(layers)
    ax.set_xlabel("layer")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    return ax


def plot_models(values: xr.DataArray, ylabel: str, sharey: bool = True):
    """One panel per ``model`` of ``values`` ``(model, layer, head)``, titled by objective and arch."""
    models = list(values["model"].values)
    fig, axes = plt.subplots(1, len(models), figsize=(4.2 * len(models), 3.4), sharey=sharey, squeeze=False)
    for i, (ax, model) in enumerate(zip(axes[0], models)):
        one = values.sel(model=model)
        title = f"({chr(97 + i)}) {one['objective'].item()} · {one['arch'].item()}"
        plot_head_dots(one, ax, title=title, ylabel=ylabel if i == 0 else "", color=f"C{i}")
    fig.tight_layout()
    return fig
