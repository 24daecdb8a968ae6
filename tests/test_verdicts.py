import numpy as np
import pytest
import xarray as xr

from mimstudy.book.verdicts import (
    Check,
    ClaimVerdict,
    Estimate,
    alternation,
    alternation_verdict,
    bootstrap_estimate,
    bootstrap_image_means,
    cka_verdict,
    depth_slope,
    diversity_verdict,
    focus_verdict,
    judge,
    locality_verdict,
    moco_verdict,
    off_diagonal,
    seed_estimate,
    slope,
)


def per_image(per_model: dict, n_images=40, n_heads=3, noise=0.1, seed=0, head_offsets=None):
    """``(model, layer, head, image)``: each model's per-layer values plus per-head offsets and noise."""
    rng = np.random.default_rng(seed)
    layers = len(next(iter(per_model.values())))
    values = []
    for name, per_layer in per_model.items():
        offsets = np.zeros((layers, n_heads)) if head_offsets is None else np.asarray(head_offsets.get(name, 0.0))
        base = np.asarray(per_layer, float)[:, None] + offsets * np.ones((layers, n_heads))
        values.append(base[:, :, None] + noise * rng.standard_normal((layers, n_heads, n_images)))
    return xr.DataArray(np.stack(values), dims=("model", "layer", "head", "image"),
                        coords={"model": list(per_model), "layer": np.arange(1, layers + 1)})


def distances(sup_per_layer, mim_per_layer, **kwargs):
    return per_image({"sup": sup_per_layer, "mim": mim_per_layer}, **kwargs)


# --- framework -------------------------------------------------------------------------------------


def test_depth_slope_closed_form():
    assert depth_slope(np.array([1.0, 3.0, 5.0])) == pytest.approx(2.0)
    values = xr.DataArray([[1.0, 3.0, 2.0, 7.0]] * 2, dims=("boot", "layer"))
    np.testing.assert_allclose(slope(values).values, depth_slope(np.array([1.0, 3.0, 2.0, 7.0])))


def test_estimate_interval():
    est = Estimate.from_samples(1.0, np.linspace(0.5, 1.5, 1001))
    assert est.low == pytest.approx(0.525) and est.high == pytest.approx(1.475) and est.positive
    assert "95% CI" in str(est)


def test_point_estimate_has_no_interval_and_decides_nothing():
    est = Estimate.point(0.5)
    assert not est.has_interval and not est.positive and "no interval" in str(est)
    check = Check("x", est)
    assert check.holds is None and check.points_the_expected_way
    assert judge([check]) == "undetermined"
    # a point-only check is left out of the count, not counted as failing
    assert judge([check, Check("y", Estimate(1.0, 0.5, 1.5))]) == "supported"


def test_judge_counts_checks_and_directions():
    pos, neg, zero = Estimate(1, 0.5, 1.5), Estimate(-1, -1.5, -0.5), Estimate(0, -1, 1)
    assert judge([Check("a", pos), Check("b", neg, expect="negative")]) == "supported"
    assert judge([Check("a", pos), Check("b", zero)]) == "partly supported"
    assert judge([Check("a", neg), Check("b", zero)]) == "not supported"
    assert Check("t", Estimate(0.95, 0.92, 0.97), threshold=0.9).holds
    assert not Check("t", Estimate(0.95, 0.85, 0.97), threshold=0.9).holds
    with pytest.raises(ValueError):
        Check("bad", pos, expect="up")


def test_summary_is_markdown_with_verdict_and_checks():
    v = ClaimVerdict.of("A claim.", [Check("first", Estimate(1, 0.5, 1.5)), Check("second", Estimate.point(2))])
    text = v.summary()
    assert text.startswith("**supported.** A claim.")
    assert "- first: 1 [95% CI 0.5, 1.5]" in text and "**holds**" in text
    assert "not counted in the verdict" in text


def test_bootstrap_keeps_models_paired_and_is_seeded():
    da = distances(np.arange(4.0), np.arange(4.0), noise=1.0)
    da[1] = da[0]  # identical models: every resample must give identical means
    a = bootstrap_image_means(da, n_boot=20, seed=1)
    assert a.shape == (20, 2, 4, 3)
    np.testing.assert_array_equal(a[:, 0], a[:, 1])
    np.testing.assert_array_equal(a, bootstrap_image_means(da, n_boot=20, seed=1))


def test_bootstrap_estimate_vectorised_and_looped_agree():
    da = distances(np.linspace(0, 3, 4), np.zeros(4), noise=1.0)
    batched = bootstrap_estimate(da, lambda d: (d.sel(model="sup") - d.sel(model="mim")).mean(["layer", "head"]), 200, 3)
    looped = bootstrap_estimate(da, lambda d: float((d.sel(model="sup") - d.sel(model="mim")).values.mean()), 200, 3)
    assert batched.value == pytest.approx(looped.value)
    assert batched.low == pytest.approx(looped.low) and batched.high == pytest.approx(looped.high)
    assert batched.value == pytest.approx(float(da.sel(model="sup").mean() - da.sel(model="mim").mean()))


def test_paired_difference_of_identical_models_has_zero_width():
    da = distances(np.arange(4.0), np.arange(4.0), noise=1.0)
    da[1] = da[0]
    est = bootstrap_estimate(da, lambda d: d.sel(model="sup").mean() - d.sel(model="mim").mean(), 100, 0)
    assert est.value == 0 and est.low == 0 and est.high == 0


# --- 3.1.1 -------------------------------------------------------------------------------------------


def test_paper_like_pattern_is_supported():
    v = locality_verdict(distances(np.linspace(5, 15, 8), np.linspace(6, 5.5, 8)), "sup", "mim", n_boot=200)
    assert v.verdict == "supported"
    slope_sup = v.checks[0].estimate
    assert slope_sup.value == pytest.approx(10 / 7, rel=0.05)
    assert slope_sup.low < slope_sup.value < slope_sup.high
    assert len(v.checks) == 3 and all(c.holds for c in v.checks)
    assert "supported" in v.summary()


def test_reversed_pattern_is_not_supported():
    v = locality_verdict(distances(np.linspace(15, 5, 8), np.linspace(5, 15, 8)), "sup", "mim", n_boot=200)
    assert v.verdict == "not supported"


def test_flat_identical_models_are_not_supported():
    flat = np.full(6, 10.0)
    assert locality_verdict(distances(flat, flat), "sup", "mim", n_boot=200).verdict == "not supported"


def test_growing_but_equal_models_are_partly_supported():
    grow = np.linspace(5, 15, 8)
    v = locality_verdict(distances(grow, grow, seed=1), "sup", "mim", n_boot=200)
    assert [c.holds for c in v.checks] == [True, False, False] and v.verdict == "partly supported"


# --- 3.1.2 -------------------------------------------------------------------------------------------


def test_focus_paper_pattern_is_supported():
    spread = np.array([-1.0, 0.0, 1.0])  # MIM heads: some focused, some broad
    entropy = per_image({"sup": np.linspace(2, 4, 8), "mim": np.full(8, 3.0)}, head_offsets={"mim": spread})
    v = focus_verdict(entropy, "sup", "mim", n_boot=200)
    assert v.verdict == "supported"
    assert v.checks[0].estimate.value == pytest.approx(2 / 7, rel=0.05)
    assert v.checks[1].estimate.value == pytest.approx(np.std(spread), abs=0.05)


def test_focus_reversed_pattern_is_not_supported():
    spread = np.array([-1.0, 0.0, 1.0])
    entropy = per_image({"sup": np.linspace(4, 2, 8), "mim": np.full(8, 3.0)}, head_offsets={"sup": spread})
    assert focus_verdict(entropy, "sup", "mim", n_boot=200).verdict == "not supported"


# --- 3.1.3 -------------------------------------------------------------------------------------------


def test_diversity_paper_pattern_is_supported():
    kl = per_image({"sup": [2, 2, 2, 2, 1.5, 0.2, 0.1, 0.1], "mim": np.full(8, 2.0)}, noise=0.05)
    v = diversity_verdict(kl, "sup", "mim", n_boot=200)
    assert v.verdict == "supported"
    assert v.checks[0].estimate.value == pytest.approx(2 - 0.4 / 3, abs=0.05)
    assert v.checks[1].estimate.value == pytest.approx(2 - 0.4 / 3, abs=0.05)


def test_diversity_flat_identical_is_not_supported():
    kl = per_image({"sup": np.full(8, 1.0), "mim": np.full(8, 1.0)})
    assert diversity_verdict(kl, "sup", "mim", n_boot=200).verdict == "not supported"


# --- 3.2 ---------------------------------------------------------------------------------------------


def cka_matrix(off: float, n=6):
    m = np.full((n, n), off)
    np.fill_diagonal(m, 1.0)
    return m


def ckas(per_model: dict):
    layers = np.arange(1, len(next(iter(per_model.values()))) + 1)
    return xr.DataArray(np.stack(list(per_model.values())), dims=("model", "layer", "layer_j"),
                        coords={"model": list(per_model), "layer": layers, "layer_j": layers})


def test_off_diagonal_drops_the_diagonal():
    off = off_diagonal(ckas({"a": cka_matrix(0.5)}))
    assert float(off.mean()) == pytest.approx(0.5) and int(off.isnull().sum()) == 6


def test_cka_with_one_seed_is_undetermined_point_estimates():
    v = cka_verdict(ckas({"sup": cka_matrix(0.6), "mim": cka_matrix(0.95)}), "sup", "mim")
    assert v.verdict == "undetermined"
    assert all(not c.estimate.has_interval for c in v.checks)
    assert v.checks[0].estimate.value == pytest.approx(0.35) and v.checks[1].estimate.value == pytest.approx(0.95)
    assert all(c.points_the_expected_way for c in v.checks)
    assert "no interval" in v.summary()


def test_cka_over_seeds_supported_and_not():
    models = {"sup-s0": cka_matrix(0.60), "sup-s1": cka_matrix(0.62), "sup-s2": cka_matrix(0.58),
              "mim-s0": cka_matrix(0.95), "mim-s1": cka_matrix(0.96), "mim-s2": cka_matrix(0.94)}
    da = ckas(models)
    sup, mim = ["sup-s0", "sup-s1", "sup-s2"], ["mim-s0", "mim-s1", "mim-s2"]
    v = cka_verdict(da, sup, mim)
    assert v.verdict == "supported" and all(c.estimate.has_interval for c in v.checks)
    assert v.checks[0].estimate.value == pytest.approx(0.35)
    assert cka_verdict(da, mim, sup).verdict == "not supported"


def test_seed_estimate_t_interval():
    est = seed_estimate([1.0, 2.0, 3.0])
    assert est.value == pytest.approx(2.0)
    assert est.high - est.value == pytest.approx(4.303 * 1 / np.sqrt(3), rel=1e-3)


# --- MoCo --------------------------------------------------------------------------------------------


def probes_ds(moco_like: str):
    sup, mim = np.linspace(5, 15, 8), np.full(8, 6.0)
    moco = sup if moco_like == "sup" else mim
    per = {"sup": sup, "moco": moco, "mim": mim}
    ds = xr.Dataset({var: per_image(per, seed=i) for i, var in
                     enumerate(["attention_distance", "attention_entropy", "head_kl_per_image"])})
    ds["cka"] = ckas({"sup": cka_matrix(0.6, 8), "moco": cka_matrix(0.95 if moco_like == "sup" else 0.6, 8),
                      "mim": cka_matrix(0.95, 8)})
    return ds


def test_moco_like_supervised_in_attention_is_supported():
    v = moco_verdict(probes_ds("sup"), "moco", "sup", "mim", n_boot=200)
    assert v.verdict == "supported" and len(v.checks) == 4
    assert v.checks[-1].holds is None and v.checks[-1].points_the_expected_way


def test_moco_like_simmim_in_attention_is_not_supported():
    v = moco_verdict(probes_ds("mim"), "moco", "sup", "mim", n_boot=200)
    assert v.verdict == "not supported" and not v.checks[-1].points_the_expected_way


# --- Swin alternation --------------------------------------------------------------------------------


def swin_distance(per_layer, stages):
    da = per_image({"swin": per_layer}, noise=0.05)
    return da.assign_coords(stage=("layer", stages))


def test_alternation_fraction():
    zigzag = xr.DataArray([1.0, 3.0, 1.0, 3.0, 5.0, 6.0, 7.0], dims="layer").assign_coords(stage=("layer", [0, 0, 0, 0, 1, 1, 1]))
    assert float(alternation(zigzag)) == pytest.approx(2 / 3)  # stage 0: 2 flips of 2 pairs, stage 1: 0 of 1


def test_alternating_swin_is_supported_and_monotone_is_not():
    stages = [0, 0, 1, 1, 1, 1, 1, 1]
    v = alternation_verdict(swin_distance([2, 4, 3, 6, 3, 6, 3, 6], stages), "swin", n_boot=200)
    assert v.verdict == "supported" and v.checks[0].estimate.value == pytest.approx(1.0)
    v = alternation_verdict(swin_distance(np.linspace(2, 16, 8), stages), "swin", n_boot=200)
    assert v.verdict == "not supported"


def test_alternation_without_long_stages_is_undetermined():
    v = alternation_verdict(swin_distance([2, 4, 3, 6], [0, 0, 1, 1]), "swin", n_boot=50)
    assert v.verdict == "undetermined" and not v.checks and "cannot be measured" in v.summary()
