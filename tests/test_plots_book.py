"""Plot helpers return figures with one panel per model (plus colour bars / summary panels)."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import xarray as xr  # noqa: E402

from mimstudy.book.plots import plot_cka_grid, plot_head_dots, plot_models, plot_training_curves  # noqa: E402


def model_coords(n):
    return {"model": [f"m{i}" for i in range(n)], "objective": ("model", ["supervised", "simmim", "moco"][:n]),
            "arch": ("model", ["vit_x"] * n)}


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.mark.parametrize("n_models", [1, 3])
def test_plot_models_one_panel_per_model(n_models):
    values = xr.DataArray(np.random.default_rng(0).random((n_models, 4, 3)), dims=("model", "layer", "head"),
                          coords={**model_coords(n_models), "layer": [1, 2, 3, 4]})
    fig = plot_models(values, ylabel="KL")
    assert len(fig.axes) == n_models
    assert fig.axes[0].get_title().startswith("(a) supervised")


def test_head_dots_skip_nan_heads_and_mark_stages():
    values = xr.DataArray([[1.0, 2.0], [3.0, np.nan], [4.0, np.nan]], dims=("layer", "head"),
                          coords={"layer": [1, 2, 3], "stage": ("layer", [0, 0, 1])})
    ax = plot_head_dots(values)
    (mean_line,) = [line for line in ax.get_lines() if line.get_label() == "layer mean"]
    np.testing.assert_allclose(mean_line.get_ydata(), [1.5, 3.0, 4.0])
    assert [line.get_xdata()[0] for line in ax.get_lines() if line is not mean_line] == [2.5]  # stage boundary


def test_cka_grid_has_a_panel_per_model_and_a_shared_colour_bar():
    layers = [1, 2, 3]
    cka = xr.DataArray(np.stack([np.eye(3) * 0.5 + 0.5, np.ones((3, 3))]), dims=("model", "layer", "layer_j"),
                       coords={**model_coords(2), "layer": layers, "layer_j": layers})
    fig = plot_cka_grid(cka)
    assert len(fig.axes) == 3
    images = [ax.get_images()[0] for ax in fig.axes[:2]]
    assert all(im.get_clim() == (0.0, 1.0) for im in images)  # CKA's whole range: an absolute scale
    assert all(im.get_clim() == (0.5, 1.0) for im in (ax.get_images()[0] for ax in plot_cka_grid(cka, vmin=0.5).axes[:2]))


def test_training_curves_panel_per_model_plus_accuracy():
    epochs = [1, 2, 3]
    ds = xr.Dataset(
        {"train_loss": (("model", "epoch"), [[3, 2, 1], [1, 0.8, 0.7]]),
         "val_loss": (("model", "epoch"), [[3, 2.5, 2], [1, 0.9, 0.8]]),
         "val_accuracy": (("model", "epoch"), [[0.2, 0.4, 0.6], [np.nan] * 3])},
        coords={**model_coords(2), "epoch": epochs},
    )
    fig = plot_training_curves(ds)
    assert len(fig.axes) == 3
    assert len(fig.axes[-1].get_lines()) == 1  # only the supervised model reports accuracy


def test_training_curves_wrap_many_models_without_empty_panels():
    n = 6
    ds = xr.Dataset({"train_loss": (("model", "epoch"), np.ones((n, 2)))},
                    coords={"model": [f"m{i}" for i in range(n)], "objective": ("model", ["simmim"] * n),
                            "arch": ("model", ["vit_x"] * n), "epoch": [1, 2]})
    fig = plot_training_curves(ds)
    assert len(fig.axes) == n + 1
    assert fig.axes[-1].texts[0].get_text() == "no model reports accuracy"


def test_plot_models_draws_absolute_axes_and_the_uniform_line():
    values = xr.DataArray(np.full((2, 4, 3), 16.0), dims=("model", "layer", "head"),
                          coords={**model_coords(2), "layer": [1, 2, 3, 4]})
    uniform = xr.DataArray([4.0, 3.5, 4.0, 3.5], dims="layer", coords={"layer": [1, 2, 3, 4]})
    fig = plot_models(values, ylabel="px", ylim=(0, 40.0), reference=uniform)
    for ax in fig.axes:
        assert ax.get_ylim() == (0.0, 40.0)
        dashed = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
        assert len(dashed) == 1 and list(dashed[0].get_ydata()) == [4.0, 3.5, 4.0, 3.5]
    assert plot_models(values, ylabel="KL").axes[0].get_ylim()[0] == 0.0  # from 0 by default
