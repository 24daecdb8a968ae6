import numpy as np
import pytest
import xarray as xr

from mimstudy.book.claims.convnet import depth_slope_of
from mimstudy.book.claims.gates import GateResult
from mimstudy.book.claims.reductions import local_head_everywhere, off_diagonal
from mimstudy.book.claims.verdicts import (
    Blocker,
    Check,
    ClaimVerdict,
    Control,
    Estimate,
    blockers,
    bootstrap_image_means,
    bootstrap_samples,
    judge,
    resample_counts,
    seed_estimate,
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
    assert depth_slope_of(np.array([[1.0, 1.0], [3.0, 3.0], [5.0, 5.0]])) == pytest.approx(2.0)  # [layer, channel]
    boot = np.array([[[1.0], [3.0], [2.0], [7.0]]] * 2)  # [boot, layer, channel]
    np.testing.assert_allclose(depth_slope_of(boot), np.polyfit(np.arange(1, 5), [1.0, 3.0, 2.0, 7.0], 1)[0])


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
    assert judge([Check("a", pos), Check("b", neg)]) == "partly supported"  # b fails: wholly below 0
    assert judge([Check("a", neg), Check("b", neg)]) == "not supported"
    assert judge([Check("a", neg), Check("b", zero)]) == "not supported"  # only the failing check speaks
    assert judge([Check("a", pos), Check("b", zero)]) == "undetermined"  # b straddles: inconclusive, none fails
    assert Check("t", Estimate(0.95, 0.92, 0.97), threshold=0.9).holds
    assert not Check("t", Estimate(0.95, 0.85, 0.97), threshold=0.9).holds
    with pytest.raises(ValueError):
        Check("bad", pos, expect="up")


def test_summary_is_markdown_with_verdict_and_checks():
    v = ClaimVerdict.of("A claim.", [Check("first", Estimate(1, 0.5, 1.5)), Check("second", Estimate.point(2))])
    text = v.summary()
    assert text.startswith("**supported.** A claim.")
    assert "- first: 1 [95% CI 0.5, 1.5" in text and "**holds**" in text
    assert "not counted in the verdict" in text


def test_bootstrap_keeps_models_paired_and_is_seeded():
    da = distances(np.arange(4.0), np.arange(4.0), noise=1.0)
    da[1] = da[0]  # identical models: every resample must give identical means
    a = bootstrap_image_means(da, n_boot=20, seed=1)
    assert a.shape == (20, 2, 4, 3)
    np.testing.assert_array_equal(a[:, 0], a[:, 1])
    np.testing.assert_array_equal(a, bootstrap_image_means(da, n_boot=20, seed=1))


def test_paired_difference_of_identical_models_has_zero_width():
    da = distances(np.arange(4.0), np.arange(4.0), noise=1.0)
    da[1] = da[0]
    samples = bootstrap_samples(da, 100, 0)
    difference = (samples.sel(model="sup") - samples.sel(model="mim")).mean(["layer", "head"])
    est = Estimate.from_samples(0.0, difference.values)
    assert est.low == 0 and est.high == 0


def test_floor_rejects_a_narrow_interval_around_a_small_effect():
    tiny = Estimate(0.05, 0.049, 0.051)  # excludes zero, far below the floor
    check = Check("λ difference", tiny, threshold=0.1, floor="≥ 0.1")
    assert tiny.positive and check.holds is False and check.status == "fails — wholly short of its floor"
    assert judge([check]) == "not supported"
    assert Check("λ difference", Estimate(0.3, 0.2, 0.4), threshold=0.1).holds


def test_control_must_be_exceeded():
    effect = Estimate(0.3, 0.2, 0.4)
    assert Check("x", effect, threshold=0.1, control=Estimate(0.05, 0.0, 0.1)).holds
    overlapping = Check("x", effect, threshold=0.1, control=Estimate(0.25, 0.15, 0.35))
    assert overlapping.holds is False and overlapping.outcome == "inconclusive"
    assert overlapping.status == "inconclusive — its interval overlaps the random-init control"
    beneath = Check("x", effect, threshold=0.1, control=Estimate(0.6, 0.5, 0.7))  # wholly short of the control
    assert beneath.outcome == "fails" and beneath.status == "fails — wholly short of the random-init control"
    # a control without an interval is compared by its value
    assert Check("x", effect, threshold=0.1, control=Estimate.point(0.15)).holds
    assert Check("x", effect, threshold=0.1, control=Estimate.point(0.25)).outcome == "inconclusive"
    negative = Check("x", Estimate(-0.3, -0.4, -0.2), expect="negative", threshold=-0.1, control=Estimate(-0.25, -0.3, 0.0))
    assert negative.holds is False


def test_blockers_make_any_verdict_undetermined_and_say_what_would_change_it():
    good = Check("effect", Estimate(0.3, 0.2, 0.4), threshold=0.1, floor="≥ 0.1")
    assert judge([good]) == "supported"
    seeds = Blocker("only 1 training seed", "results over ≥ 3 training seeds", "seeds")
    v = ClaimVerdict.of("A claim.", [good], blockers=[seeds])
    assert v.verdict == "undetermined" and v.headline == "undetermined: only 1 training seed"
    change = v.what_would_change()
    assert change.startswith("results over ≥ 3 training seeds") and "“effect” holds" in change
    small = ClaimVerdict.of("A claim.", [Check("effect", Estimate(0.02, 0.01, 0.03), threshold=0.1)])
    assert small.verdict == "not supported" and "needs an effect 0.08 larger" in small.what_would_change()


def test_resample_counts_draw_n_images_per_resample_and_are_cached():
    counts = resample_counts(50, 30, 7)
    assert counts.shape == (30, 50) and (counts.sum(axis=1) == 50).all() and counts.min() >= 0
    assert resample_counts(50, 30, 7) is counts and not counts.flags.writeable
    assert not np.array_equal(counts, resample_counts(50, 30, 8))


def off_cka(off: float, n=6):
    m = np.full((n, n), off)
    np.fill_diagonal(m, 1.0)
    layers = np.arange(1, n + 1)
    return xr.DataArray(m, dims=("layer", "layer_j"), coords={"layer": layers, "layer_j": layers})


def test_off_diagonal_drops_the_diagonal():
    off = off_diagonal(off_cka(0.5))
    assert float(off.mean()) == pytest.approx(0.5) and int(off.isnull().sum()) == 6


def test_seed_estimate_t_interval():
    est = seed_estimate([1.0, 2.0, 3.0])
    assert est.value == pytest.approx(2.0)
    assert est.high - est.value == pytest.approx(4.303 * 1 / np.sqrt(3), rel=1e-3)
    assert not seed_estimate([1.0]).has_interval


# --- the rules every claim family shares: each can fail ------------------------------------------


GOOD = Estimate(0.3, 0.2, 0.4)


def test_a_missing_or_nan_control_never_clears_and_blocks():
    for control in (None, Estimate.missing(), Estimate(float("nan"), float("nan"), float("nan"))):
        check = Check("effect", GOOD, threshold=0.1, control=control, controlled=True)
        assert check.clears_control is False and check.holds is False
        assert check.status == "no usable random-init control (missing or NaN)"
        verdict = ClaimVerdict.of("A claim.", [check])
        assert verdict.verdict == "undetermined" and [b.tag for b in verdict.blockers] == ["no control"]
    # a check whose control lives inside its statistic is not asked for one
    assert Check("trained minus its own random init", GOOD, threshold=0.1).holds


def test_a_nan_variable_blocks_instead_of_being_skipped():
    nan = Check("second effect", Estimate.missing(), threshold=0.1)
    verdict = ClaimVerdict.of("A claim.", [Check("effect", GOOD, threshold=0.1), nan])
    assert verdict.verdict == "undetermined" and [b.tag for b in verdict.blockers] == ["missing"]


def gate(status: str) -> GateResult:
    return GateResult("m-s0", status, [], ["`m-s0` below"] if status == "fail" else [],
                      ["`m-s0`: unknown"] if status == "unknown" else [])


def test_blockers_seeds_gates_and_control():
    three = {"supervised": 3, "SimMIM": 3}
    control = Control("vit at random init", 3)
    assert blockers(three, [gate("pass")], control) == []
    assert [b.tag for b in blockers({"supervised": 3, "SimMIM": 2}, [], control)] == ["seeds"]  # two seeds block
    assert [b.tag for b in blockers(three, [gate("fail")], control)] == ["gate"]
    assert [b.tag for b in blockers(three, [gate("unknown")], control)] == ["gate unknown"]  # unknown blocks
    assert [b.tag for b in blockers(three, [], Control("vit at random init", 0))] == ["no control"]
    assert [b.tag for b in blockers(three, [], Control("vit at random init", 2))] == ["control seeds"]
    assert blockers(three, [], None) == []  # the control lives in the checks (e.g. Appendix B)


def test_a_local_head_in_every_layer_is_the_minimum_over_layers():
    lam = xr.DataArray([[0.8, 0.0], [0.7, 0.1], [0.1, 0.2]], dims=("layer", "head"))  # layer 3: no local head
    assert float(local_head_everywhere(lam)) == pytest.approx(0.2)
    assert float(lam.max("head").mean("layer")) > 0.5  # the mean would have passed it


# --- three outcomes per check -------------------------------------------------------------------------


def test_three_outcomes_each_reachable():
    assert Check("x", Estimate(0.3, 0.2, 0.4), threshold=0.1).outcome == "holds"
    assert Check("x", Estimate(0.05, 0.0, 0.08), threshold=0.1).outcome == "fails"
    straddle = Check("x", Estimate(0.15, 0.05, 0.25), threshold=0.1)
    assert straddle.outcome == "inconclusive" and straddle.holds is False
    assert Check("x", Estimate.point(0.3), threshold=0.1).outcome is None
    negative = Check("x", Estimate(-0.15, -0.25, -0.05), expect="negative", threshold=-0.1)
    assert negative.outcome == "inconclusive"
    assert Check("x", Estimate(0.2, 0.1, 0.3), expect="negative", threshold=0.0).outcome == "fails"


def test_a_real_effect_with_moderate_spread_is_inconclusive_not_unsupported():
    # three seeds, t(2) = 4.30: the mean clears the floor, the interval does not
    est = seed_estimate([0.18, 0.30, 0.24])
    check = Check("effect", est, threshold=0.1)
    assert est.n == 3 and est.low < 0.1 < est.value and check.outcome == "inconclusive"
    verdict = ClaimVerdict.of("A claim.", [check, Check("other", Estimate(0.3, 0.2, 0.4), threshold=0.1)])
    assert verdict.verdict == "undetermined" and [b.tag for b in verdict.blockers] == ["inconclusive"]
    needed = check.seeds_needed()
    assert needed is not None and needed > 3 and f"about {needed} seeds" in verdict.headline
    # the number is what the t interval needs at the observed spread: one seed fewer would not do
    sd = np.std([0.18, 0.30, 0.24], ddof=1)
    from scipy import stats
    assert stats.t.ppf(0.975, needed - 1) * sd / np.sqrt(needed) < est.value - 0.1
    assert stats.t.ppf(0.975, needed - 2) * sd / np.sqrt(needed - 1) >= est.value - 0.1
    # a failing check beside it makes the claim not supported, on the failing check only
    failing = Check("against", seed_estimate([0.0, 0.01, 0.02]), threshold=0.1)
    mixed = ClaimVerdict.of("A claim.", [check, failing])
    assert failing.outcome == "fails" and mixed.verdict == "not supported" and "inconclusive" in mixed.summary()


def test_a_control_zero_by_construction_is_reported_as_such():
    check = Check("A minus B", GOOD, threshold=0.1, control_note="zero by construction — ...")
    assert check.holds and not check.controlled and "control: zero by construction" in check.markdown()


# --- layer groups and MoCo's "closer to" -------------------------------------------------------------


@pytest.mark.parametrize("layers", range(2, 25))
def test_compared_layer_groups_are_disjoint(layers):
    from mimstudy.book.claims.reductions import first_half, last_layers, upper_half

    values = xr.DataArray(np.arange(layers, dtype=float), dims="layer", coords={"layer": np.arange(1, layers + 1)})
    first = set(first_half(values)["layer"].values)
    for later in (upper_half(values), last_layers(values, 3), last_layers(values, 2)):
        assert first.isdisjoint(later["layer"].values) and later.sizes["layer"] >= 1
    assert len(first) == upper_half(values).sizes["layer"] == layers // 2
    assert last_layers(values, 3).sizes["layer"] == min(3, layers - layers // 2)


def test_four_layers_split_into_two_disjoint_pairs():
    from mimstudy.book.claims.reductions import first_half, last_layers

    values = xr.DataArray([1.0, 2.0, 3.0, 4.0], dims="layer", coords={"layer": [1, 2, 3, 4]})
    assert list(first_half(values)["layer"].values) == [1, 2]
    assert list(last_layers(values, 3)["layer"].values) == [3, 4]  # was [2, 3, 4], sharing layer 2


def test_moco_closer_statistic_depends_on_moco_beyond_either_model():
    from mimstudy.book.claims.reductions import closer

    statistic = closer(lambda v: v, "simmim", "supervised", "x")

    def value(m, a=0.95, b=0.9):
        roles = {"moco": m, "simmim": a, "supervised": b}
        return float(statistic({k: {"x": xr.DataArray(v)} for k, v in roles.items()}))

    assert value(0.94) == pytest.approx(abs(0.94 - 0.9) - abs(0.94 - 0.95))  # between them: the old statistic
    # beyond SimMIM the old statistic was SimMIM − supervised (0.05) whatever MoCo was; this one moves with MoCo
    assert value(0.97) == pytest.approx(0.09) and value(0.99) == pytest.approx(0.13)
    assert value(0.80) < 0 and value(0.925) == pytest.approx(0.0)  # beyond supervised / at the midpoint
    assert value(0.9, a=0.9, b=0.9) == 0.0  # one model in every role: zero by construction
