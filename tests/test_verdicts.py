import numpy as np
import pytest
import xarray as xr

from mimstudy.verdicts import Estimate, bootstrap_image_means, depth_slope, locality_verdict


def distances(sup_per_layer, mim_per_layer, n_images=40, noise=0.1, seed=0):
    rng = np.random.default_rng(seed)
    values = np.stack([sup_per_layer, mim_per_layer])[:, :, None, None]  # [2, L, 1, 1]
    values = values + noise * rng.standard_normal((2, len(sup_per_layer), 3, n_images))
    return xr.DataArray(values, dims=("model", "layer", "head", "image"),
                        coords={"model": ["sup", "mim"], "layer": np.arange(1, len(sup_per_layer) + 1)})


def test_depth_slope_closed_form():
    assert depth_slope(np.array([1.0, 3.0, 5.0])) == pytest.approx(2.0)


def test_paper_like_pattern_is_supported():
    v = locality_verdict(distances(np.linspace(5, 15, 8), np.linspace(6, 5.5, 8)), "sup", "mim", n_boot=200)
    assert v.verdict == "supported"
    assert v.slope_supervised.value == pytest.approx(10 / 7, rel=0.05)
    assert v.slope_supervised.low < v.slope_supervised.value < v.slope_supervised.high
    assert "supported" in v.summary()


def test_reversed_pattern_is_not_supported():
    v = locality_verdict(distances(np.linspace(15, 5, 8), np.linspace(5, 15, 8)), "sup", "mim", n_boot=200)
    assert v.verdict == "not supported"


def test_flat_identical_models_are_not_supported():
    flat = np.full(6, 10.0)
    assert locality_verdict(distances(flat, flat), "sup", "mim", n_boot=200).verdict == "not supported"


def test_bootstrap_keeps_models_paired_and_is_seeded():
    da = distances(np.arange(4.0), np.arange(4.0), noise=1.0)
    da[1] = da[0]  # identical models: every resample must give identical means
    a = bootstrap_image_means(da, n_boot=20, seed=1)
    assert a.shape == (20, 2, 4, 3)
    np.testing.assert_array_equal(a[:, 0], a[:, 1])
    np.testing.assert_array_equal(a, bootstrap_image_means(da, n_boot=20, seed=1))


def test_estimate_interval():
    est = Estimate.from_samples(1.0, np.linspace(0.5, 1.5, 1001))
    assert est.low == pytest.approx(0.525) and est.high == pytest.approx(1.475) and est.positive
