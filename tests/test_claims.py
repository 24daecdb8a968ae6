"""The rules of the book's verdicts: random-init models never support a claim, planted local and diverse
heads do, and each rule (floor, control, quality gate, seeds, Swin's per-block baseline) decides."""

import json

import numpy as np
import pytest
import torch
import xarray as xr

from mimstudy.book.claims.probes import ProbeClaim
from mimstudy.book.claims.evidence import PresetResults
from mimstudy.book.claims.gates import check_gates, gate_table, masked_baselines
from mimstudy.book.claims.reductions import alternation_amplitude
from mimstudy.book.claims.registry import CLAIMS, claim
from mimstudy.book.rendering import judge_page, scorecard_rows, short_cell
from mimstudy.book.claims.statistics import scale_free
from mimstudy.models.backbones import create_backbone
from mimstudy.probes import probe_model
from mimstudy.provenance import provenance_attrs
from mimstudy.results import combine_runs

BUILT = [c for c in CLAIMS if isinstance(c, ProbeClaim)]
LOG64 = float(np.log(64))


def as_run(ds, run_id, objective, arch, seed):
    """One run's probes as the notebooks store them: identity coords and provenance attrs (with the seed)."""
    ds = ds.assign_coords(model=run_id, objective=objective, arch=arch)
    ds.attrs.update(provenance_attrs({"run_id": run_id}, "test", seed))
    return ds


LABELLED = ("supervised", "finetune")


def passing_evaluation(models: dict[str, str], supervised_linear: float = 0.95, ssl_linear: float = 0.9,
                       test_size: int | None = 5000) -> xr.Dataset:
    """An evaluation in which every labelled model passes its gate (``supervised_linear`` on its head
    features against raw pixels at 70 % and random init at 60 %, over ``test_size`` test images), the
    self-supervised ones at ``ssl_linear`` on patch means (shown, not gated), with the reference
    classifier ``replk_sup-s<seed>`` of every seed at 95 %."""
    seeds = sorted({m.rsplit("-s", 1)[1] for m in models if "-s" in m})
    models = {**models, **{f"replk_sup-s{s}": "supervised" for s in seeds}}
    names = list(models)
    linear, knn = np.zeros((len(names), 3, 2)), np.zeros((len(names), 3, 2))  # (model, weights, pool)
    for i, m in enumerate(names):
        mine = 0.95 if m.startswith("replk_sup") else supervised_linear if models[m] in LABELLED else 0.8
        linear[i] = [[mine, ssl_linear if models[m] not in LABELLED else 0.8], [0.6, 0.6], [0.7, 0.7]]
        knn[i] = [[0.9, 0.9], [0.5, 0.5], [0.7, 0.7]]
    params = json.dumps({"parameters": json.dumps({"test_size": test_size} if test_size else {})})
    return xr.Dataset({"knn_accuracy": (("model", "weights", "pool"), knn),
                       "linear_accuracy": (("model", "weights", "pool"), linear)},
                      coords={"model": names, "weights": ["pretrained", "random_init", "raw_pixels"],
                              "pool": ["head", "patch_mean"], "objective": ("model", [models[m] for m in names]),
                              "provenance": ("model", [params] * len(names))})


def pretrain_curves(evaluate: xr.Dataset, last_gain: float = 0.005) -> xr.Dataset:
    """Pre-training curves of the models of ``evaluate`` (same data, same steps), their last epoch gaining
    ``last_gain``; each run's losses differ a little (independent runs), MoCo's contrastive top-1 ends at 40 %."""
    runs = []
    for i, m in enumerate(evaluate["model"].values):
        wobble = 1e-3 * i  # independent runs never have identical curves
        curve = xr.Dataset({"val_accuracy": ("epoch", [0.8, 0.9, 0.9 + last_gain]),
                            "val_loss": ("epoch", [0.9, 0.7, 0.6 + wobble]),
                            "val_contrastive_top1": ("epoch", [0.1, 0.3, 0.4])}, coords={"epoch": [1, 2, 3]})
        curve = curve.assign_coords(model=str(m), objective=str(evaluate["objective"].sel(model=m).item()))
        curve.attrs = {"parameters": json.dumps({"dataset": "photos", "train_size": 100, "epochs": 3, "batch_size": 8,
                                                 "val_size": 5000}), "seed": 0}
        runs.append(curve)
    return combine_runs(runs)


def pilot_of(models, nearest: float = 0.7, moco_random: float = 0.05) -> xr.Dataset:
    """A pilot's masked-pixel baselines for ``models``: the nearest visible pixel at ``nearest`` (a SimMIM
    model's last validation l1 in :func:`pretrain_curves` is about 0.6), and MoCo's contrastive top-1 at
    random init."""
    models = [str(m) for m in models]
    return xr.Dataset({"nearest_visible_l1": ("model", [nearest] * len(models)),
                       "visible_mean_l1": ("model", [0.8] * len(models)),
                       "val_contrastive_top1_random_init": ("model", [moco_random] * len(models))},
                      coords={"model": models})


def results_of(preset: str, probes: xr.Dataset, objectives: dict[str, str], **gates) -> PresetResults:
    evaluate = passing_evaluation(objectives, **{k: v for k, v in gates.items() if k not in ("last_gain", "nearest")})
    return PresetResults(preset, stale={}, probes=probes, evaluate=evaluate,
                         pretrain=pretrain_curves(evaluate, gates.get("last_gain", 0.005)), downstream=None,
                         pilot=pilot_of(objectives, gates.get("nearest", 0.7)))


# --- random-init models in every role ---------------------------------------------------------------


@pytest.fixture(scope="module")
def random_results(one_thread):
    """ViT and Swin micro models at random init in every role their claims use (3 seeds each) plus 3
    random-init controls per architecture."""
    images = torch.rand(12, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    runs, objectives = [], {}
    for prefix, arch, roles in (("vit", "vit_micro_32", ("supervised", "moco", "simmim")),
                                ("swin", "swinv2_micro_32", ("supervised", "simmim", "finetune"))):
        for r, role in enumerate((*roles, "random")):
            for seed in range(3):
                torch.manual_seed(100 * r + seed + (50 if prefix == "swin" else 0))
                run_id = f"{prefix}_{role}-s{seed}"
                runs.append(as_run(probe_model(create_backbone(arch), images, 6), run_id, role, arch, seed))
                objectives[run_id] = role
    return results_of("random", combine_runs(runs), objectives)


def test_random_init_models_never_support_any_claim(random_results):
    judged = {c.key: c.judge(random_results) for c in BUILT}
    assert set(judged) >= {"vit-locality", "vit-moco", "vit-focus", "vit-diversity", "vit-cka", "swin-locality",
                           "swin-alternation", "swin-focus", "swin-diversity", "swin-cka", "swin-finetune"}
    for key, verdict in judged.items():
        # every rule is satisfied (3 seeds, gates passed, a control), so each verdict is decided: not supported,
        # but for the checks that say no control applies (a random init has its layers all alike)
        assert {b.tag for b in verdict.blockers} <= {"inconclusive"}, (key, verdict.headline)
        assert verdict.verdict in ("not supported", "partly supported", "undetermined"), (key, verdict.summary())
        assert all(c.control_note.startswith("none applies") for c in verdict.checks if c.holds), key
        assert all(c.estimate.interval == "t interval over 3 seeds" for c in verdict.checks)


def test_swin_per_block_baseline_removes_the_masking_alternation(random_results):
    verdict = claim("swin-alternation").judge(random_results)
    assert verdict.verdict == "not supported"
    for seed in range(3):
        stats = random_results.image_means(f"swin_supervised-s{seed}")
        # against one baseline per stage (the unshifted block's), the seams alone make blocks alternate ...
        stage_scale = stats["uniform_distance"].groupby("stage").max()
        raw = 1 - stats["distance"] / stage_scale.sel(stage=stats["stage"]).drop_vars("stage")
        assert float(alternation_amplitude(raw)) >= 0.05
        # ... which the per-block baseline of λ takes out
        assert float(alternation_amplitude(stats["locality"])) < float(alternation_amplitude(raw)) / 2


def test_uniform_reference_is_each_blocks_own(random_results):
    stats = random_results.stats("swin_supervised-s0")
    first_stage = stats["uniform_distance"].where(stats["stage"] == 0, drop=True).values
    assert np.all(first_stage[1::2] < first_stage[::2])  # shifted blocks: masked seams, nearer keys
    vit = random_results.stats("vit_supervised-s0")
    np.testing.assert_allclose(vit["uniform_entropy"], LOG64, rtol=1e-5)
    assert float(abs(vit["locality"].mean())) < 0.05  # random init: about as spread as uniform attention


# --- planted local, diverse heads --------------------------------------------------------------------

LAYERS, HEADS, IMAGES, U = 8, 4, 24, 16.55


def planted_model(locality, entropy, kl, cka_off, seed, noise=0.01):
    """Probe variables of a ViT with the given per-(layer, head) λ, entropy fraction and head KL."""
    rng = np.random.default_rng(seed)
    shape = (LAYERS, HEADS, IMAGES)

    def per_image(values):
        return np.broadcast_to(np.asarray(values, float)[..., None], shape) + noise * rng.standard_normal(shape)

    lam = per_image(locality)
    cka = np.full((LAYERS, LAYERS), cka_off) + noise * rng.standard_normal((LAYERS, LAYERS))
    np.fill_diagonal(cka, 1.0)
    layers = np.arange(1, LAYERS + 1)
    dims = ("layer", "head", "image")
    return xr.Dataset(
        {"attention_distance": (dims, (1 - lam) * U), "mean_row_distance": (dims, np.full(shape, U)),
         "attention_entropy": (dims, per_image(entropy) * LOG64), "head_kl_per_image": (dims, per_image(kl)),
         "cka": (("layer", "layer_j"), cka), "uniform_distance": ("layer", np.full(LAYERS, U)),
         "uniform_entropy": ("layer", np.full(LAYERS, LOG64)), "max_distance": ("layer", np.full(LAYERS, 39.6))},
        coords={"layer": layers, "layer_j": layers, "head": np.arange(HEADS), "image": np.arange(IMAGES)})


def by_layer(lower, upper):
    return np.array([[lower]] * (LAYERS // 2) + [[upper]] * (LAYERS // 2))


SUP = dict(locality=by_layer(0.6, 0.05), entropy=by_layer(0.4, 0.95),
           kl=np.array([[2.0]] * 4 + [[1.0], [0.05], [0.05], [0.05]]), cka_off=0.6)
MIM = dict(locality=[0.8, 0.6, 0.3, 0.1], entropy=[0.2, 0.5, 0.8, 0.95], kl=2.0, cka_off=0.95)
MOCO = {**SUP, "cka_off": 0.95}
RANDOM = dict(locality=0.0, entropy=0.97, kl=0.05, cka_off=0.85)


def planted(seeds=(0, 1, 2), roles=None, control=RANDOM, scale=1.0, noise=0.01, **gates):
    roles = roles or {"supervised": SUP, "moco": MOCO, "simmim": MIM}
    runs, objectives = [], {}
    for objective, spec in {**roles, "random": control}.items():
        spec = {**spec, "locality": scale * np.asarray(spec["locality"], float)}
        for seed in seeds:
            run_id = f"vit_{objective}-s{seed}"
            runs.append(as_run(planted_model(**spec, seed=10 * seed + len(objectives), noise=noise), run_id, objective,
                               "vit_micro_32", seed))
            objectives[run_id] = objective
    return results_of("planted", combine_runs(runs), objectives, **gates)


def test_planted_local_diverse_heads_are_supported():
    results = planted()
    for key in ("vit-locality", "vit-moco", "vit-focus", "vit-diversity", "vit-cka"):
        verdict = claim(key).judge(results)
        assert verdict.verdict == "supported", verdict.summary()
        assert all(c.status == "holds" for c in verdict.checks)
        for c in verdict.checks:  # a random-init control, or one that is zero by construction and says so
            assert (c.control is not None) != c.control_note.startswith(("zero by construction", "none applies")), key
    locality = claim("vit-locality").judge(results).checks
    assert locality[0].estimate.value == pytest.approx(0.8, abs=0.02)  # SimMIM's most local head
    assert locality[2].estimate.value == pytest.approx(0.45 - 0.05, abs=0.02)  # upper-half λ, SimMIM − supervised
    # SimMIM minus supervised on random-init models is zero by construction: reported as such, not as a control
    assert locality[2].control is None and locality[2].control_note.startswith("zero by construction")
    assert "control: zero by construction" in claim("vit-locality").judge(results).summary()
    assert locality[0].control is not None and locality[1].control is not None  # one model's statistics: controlled


def test_floor_rejects_small_effects_with_narrow_intervals():
    results = planted(scale=0.1, noise=0.001)  # every λ a tenth: differences of 0.04-0.055
    verdict = claim("vit-locality").judge(results)
    assert verdict.verdict == "not supported"
    for check in verdict.checks:
        edge = check.control_edge if check.control_edge is not None else 0.0  # zero by construction: no control
        assert check.estimate.low > 0 and check.estimate.low > edge  # "different from zero" and the control
        assert check.status == "fails — wholly short of its floor"


def test_control_that_looks_trained_blocks_support():
    results = planted(control={**MIM, "cka_off": 0.85})  # random-init heads as local as SimMIM's
    verdict = claim("vit-locality").judge(results)
    assert verdict.checks[0].status == "inconclusive — its interval overlaps the random-init control"
    assert verdict.verdict == "undetermined" and [b.tag for b in verdict.blockers] == ["inconclusive"]
    below = planted(control={**MIM, "locality": 0.95, "cka_off": 0.85})  # random-init heads more local still
    verdict = claim("vit-locality").judge(below)
    assert verdict.checks[0].status == "fails — wholly short of the random-init control"
    assert verdict.verdict == "partly supported"


def test_model_below_its_gate_gives_undetermined():
    verdict = claim("vit-locality").judge(planted(supervised_linear=0.6))  # no better than raw pixels (70 %)
    assert verdict.verdict == "undetermined" and "has not learned enough" in verdict.headline
    assert all(c.status == "holds" for c in verdict.checks)  # the effect is there; the model is not good enough
    assert "past their quality gates" in verdict.what_would_change()


def test_one_seed_gives_undetermined_with_an_image_bootstrap():
    verdict = claim("vit-locality").judge(planted(seeds=(0,)))
    assert verdict.verdict == "undetermined" and "only 1 training seed" in verdict.headline
    assert verdict.checks[0].estimate.interval == "bootstrap over the test images of one seed"
    assert verdict.what_would_change().startswith("results over ≥ 3 training seeds")
    assert short_cell(verdict).startswith("**undetermined** (seeds")


def test_missing_control_and_missing_variable_give_undetermined():
    results = planted()
    no_control = PresetResults("planted", stale={}, probes=results.probes.drop_sel(model=[f"vit_random-s{s}" for s in range(3)]),
                               evaluate=results.evaluate, pretrain=results.pretrain, downstream=None, pilot=results.pilot)
    verdict = claim("vit-focus").judge(no_control)
    assert verdict.verdict == "undetermined" and "no random-init control" in verdict.headline
    old = PresetResults("planted", stale={}, probes=results.probes.drop_vars("mean_row_distance"), evaluate=results.evaluate,
                        pretrain=results.pretrain, downstream=None, pilot=results.pilot)
    verdict = claim("vit-locality").judge(old)
    assert verdict.verdict == "undetermined" and "mean_row_distance" in verdict.headline
    assert np.isnan(verdict.checks[3].estimate.value)


def test_claims_without_models_or_experiments_are_not_run():
    results = planted()
    assert claim("swin-locality").judge(results).verdict == "not run"
    assert claim("geometric").judge(results).verdict == "not run"
    assert {c.where.split(" ")[0] for c in CLAIMS} >= {"3.1.1", "3.1.2", "3.1.3", "3.2", "4.1", "4.2", "4.3", "A.1",
                                                      "A.2", "B.1", "B.2", "D"}


# --- quality gates ---------------------------------------------------------------------------------


def test_gates_pass_fail_and_unknown():
    ev = passing_evaluation({"a-s0": "supervised", "b-s0": "simmim", "b-s1": "simmim", "m-s0": "moco"})
    pretrain = pretrain_curves(ev)
    pilot = pilot_of(ev["model"].values)
    baselines = {"nearest_visible_l1": 0.7, "visible_mean_l1": 0.8}
    assert check_gates(ev, "a-s0", "supervised", pretrain).status == "pass"
    simmim = check_gates(ev, "b-s0", "simmim", pretrain, baselines, pilot)  # two seeds: a spread over seeds
    assert simmim.status == "pass" and "margin +0.099, noise band ±0.00139" in simmim.lines[0]
    one_seed = check_gates(ev.drop_sel(model="b-s1"), "b-s0", "simmim", pretrain.drop_sel(model="b-s1"), baselines)
    assert one_seed.status == "unknown" and "noise band unmeasured" in one_seed.unknown[0]  # no band from one seed
    no_baselines = check_gates(ev, "b-s0", "simmim", pretrain)
    assert no_baselines.status == "unknown" and "hand baselines are not stored" in no_baselines.unknown[0]
    worse = pilot_of(ev["model"].values, nearest=0.55)  # l1 about 0.6: worse than copying the nearest pixel
    local = check_gates(ev, "b-s0", "simmim", pretrain, masked_baselines(worse, "b-s0"), worse)
    assert local.status == "fail" and "0.601 vs 0.550" in local.failed[0]
    assert check_gates(ev, "b-s0", "simmim", pretrain.drop_vars("val_loss"), baselines).status == "unknown"
    # a weak linear probe does not fail a self-supervised model: it is shown, not gated
    weak = ev.copy(deep=True)
    weak["linear_accuracy"].loc[{"model": "b-s0", "weights": "pretrained", "pool": "patch_mean"}] = 0.3
    assert check_gates(weak, "b-s0", "simmim", pretrain, baselines, pilot).status == "pass"
    moco = check_gates(ev, "m-s0", "moco", pretrain, None, pilot)
    assert moco.status == "pass" and "40.0 % vs 5.0 %" in moco.lines[0]
    no_random = check_gates(ev, "m-s0", "moco", pretrain, None, pilot.drop_vars("val_contrastive_top1_random_init"))
    assert no_random.status == "unknown" and "random-init contrastive top-1 is not stored" in no_random.unknown[0]
    assert check_gates(None, "a-s0", "supervised").status == "unknown"
    assert check_gates(ev, "x", "random").status == "pass"
    table = gate_table(ev, pretrain, worse)
    assert "**fail**" in table and "**pass**" in table and "noise band" in table


def test_labelled_gates_read_the_head_against_pixels_and_random_init_with_a_noise_band():
    ev = passing_evaluation({"a-s0": "supervised"})
    pretrain = pretrain_curves(ev)
    result = check_gates(ev, "a-s0", "supervised", pretrain)
    band = 1.96 * np.sqrt((0.95 * 0.05 + 0.7 * 0.3) / 5000)  # binomial over the 5,000 test images
    assert result.status == "pass" and result.margins["linear probe (head) above the raw pixels' linear probe"] == \
        pytest.approx((0.25, band))
    assert "replk_sup-s0" in " ".join(result.lines)  # the reference is shown beside, not gated
    inside = ev.copy(deep=True)
    inside["linear_accuracy"].loc[{"weights": "raw_pixels"}] = 0.945  # 0.5 points: inside the band
    assert check_gates(inside, "a-s0", "supervised", pretrain).status == "unknown"
    pixels = ev.copy(deep=True)
    pixels["linear_accuracy"].loc[{"weights": "raw_pixels"}] = 0.97  # below the pixels by more than the band
    assert check_gates(pixels, "a-s0", "supervised", pretrain).status == "fail"
    no_size = passing_evaluation({"a-s0": "supervised"}, test_size=None)  # no band can be measured: unknown
    assert check_gates(no_size, "a-s0", "supervised", pretrain).status == "unknown"
    assert check_gates(ev.drop_sel(model="replk_sup-s0"), "a-s0", "supervised", pretrain).status == "pass"
    rising = check_gates(ev, "a-s0", "supervised", pretrain_curves(ev, last_gain=0.02))
    assert rising.status == "pass" and "+2.00 points" in " ".join(rising.lines)  # the plateau is information
    patch = ev.copy(deep=True)
    patch["linear_accuracy"].loc[{"model": "a-s0", "weights": "pretrained", "pool": "head"}] = 0.5
    assert check_gates(patch, "a-s0", "supervised", pretrain).status == "fail"  # the head is what is read


def test_a_self_supervised_gate_alone_blocks_a_claim():
    verdict = claim("vit-locality").judge(planted(nearest=0.5))  # SimMIM's l1 (0.6) worse than copying a pixel
    assert verdict.verdict == "undetermined" and [b.tag for b in verdict.blockers] == ["gate"]
    assert all(c.status == "holds" for c in verdict.checks)


def test_an_unknown_gate_blocks_a_claim():
    results = planted()
    no_baselines = PresetResults("planted", stale={}, probes=results.probes, evaluate=results.evaluate,
                                 pretrain=results.pretrain, downstream=None,
                                 pilot=results.pilot.drop_vars("nearest_visible_l1"))
    verdict = claim("vit-locality").judge(no_baselines)
    assert verdict.verdict == "undetermined" and [b.tag for b in verdict.blockers] == ["gate unknown"]


def test_nan_or_missing_controls_never_leave_a_claim_supported():
    results = planted()
    randoms = [f"vit_random-s{s}" for s in range(3)]
    for var in ("attention_distance", "mean_row_distance"):
        probes = results.probes.copy(deep=True)
        probes[var].loc[{"model": randoms}] = np.nan
        nan_control = PresetResults("planted", stale={}, probes=probes, evaluate=results.evaluate, pretrain=results.pretrain,
                                    downstream=None, pilot=results.pilot)
        verdict = claim("vit-locality").judge(nan_control)
        assert verdict.verdict == "undetermined" and "no control" in {b.tag for b in verdict.blockers}, var
    for c in BUILT:
        no_control = PresetResults("planted", stale={}, probes=results.probes.drop_sel(model=randoms), evaluate=results.evaluate,
                                   pretrain=results.pretrain, downstream=None, pilot=results.pilot)
        assert c.judge(no_control).verdict in ("undetermined", "not run")


def test_two_seeds_and_fewer_control_seeds_block():
    two = claim("vit-locality").judge(planted(seeds=(0, 1)))
    assert two.verdict == "undetermined" and "only 2 training seeds" in two.headline
    results = planted()
    fewer = PresetResults("planted", stale={}, probes=results.probes.drop_sel(model=["vit_random-s2"]),
                          evaluate=results.evaluate, pretrain=results.pretrain, downstream=None, pilot=results.pilot)
    verdict = claim("vit-locality").judge(fewer)
    assert verdict.verdict == "undetermined" and [b.tag for b in verdict.blockers] == ["control seeds"]


def test_a_layer_without_a_local_head_fails_the_every_layer_check():
    mim = {**MIM, "locality": np.array([[0.8, 0.6, 0.3, 0.1]] * (LAYERS - 1) + [[0.2, 0.1, 0.1, 0.0]])}
    verdict = claim("vit-locality").judge(planted(roles={"supervised": SUP, "moco": MOCO, "simmim": mim}))
    every_layer = verdict.checks[0]
    assert every_layer.estimate.value == pytest.approx(0.2, abs=0.02)
    assert every_layer.status == "fails — wholly short of its floor"
    assert verdict.verdict == "partly supported"
    assert verdict.details["SimMIM's most local head in layer 8"].value == pytest.approx(0.2, abs=0.02)  # reported per layer
    assert "layers clearing the floor 0.753: 1, 2, 3, 4, 5, 6, 7; the check is decided by layer 8" in verdict.summary()


def test_the_scorecard_and_the_pages_give_the_same_verdict_for_every_claim():
    results = planted()
    for c, (verdict,) in scorecard_rows([results]):
        if c.page:
            on_page = {j.claim.key: j.verdict for j in judge_page(c.page, results)}
            assert on_page[c.key].headline == verdict.headline, c.key
            assert short_cell(on_page[c.key]) == short_cell(verdict)


def test_a_preset_without_results_is_not_run_everywhere():
    empty = PresetResults("nothing", stale={}, probes=None, evaluate=None, pretrain=None, downstream=None)
    assert {c.judge(empty).verdict for c in CLAIMS if c.key != "mask-sweep"} == {"not run"}


def test_scale_free_statistics_closed_form():
    one = planted_model(locality=0.25, entropy=0.5, kl=1.0, cka_off=0.9, seed=0, noise=0.0)
    one = one.assign_coords(arch="vit_micro_32")
    stats = scale_free(one)
    np.testing.assert_allclose(stats["locality"], 0.25)
    np.testing.assert_allclose(stats["locality_gain"], 0.25)
    np.testing.assert_allclose(stats["entropy_fraction"], 0.5)
    with pytest.raises(ValueError, match="one model"):
        scale_free(one.expand_dims(model=["a"]))


def test_the_stored_pilots_give_every_moco_seed_its_random_init_gate():
    """The committed cpu pilots reach the gates whole: MoCo's random-init contrastive top-1 was once
    dropped by load_pilots (only SimMIM's baselines were kept), leaving every MoCo gate unknown."""
    from mimstudy.book.claims.evidence import load_pilots
    from mimstudy.book.claims.gates import MOCO_RANDOM, check_gates
    from mimstudy.book.stored import load_results

    pilot, pretrain = load_pilots("cpu"), load_results("pretrain", "cpu")
    moco = [str(m) for m in pretrain["model"].values if str(m).startswith("vit_moco-")]
    assert MOCO_RANDOM in pilot and len(moco) >= 1
    for model in moco:
        assert check_gates(None, model, "moco", pretrain, None, pilot).status == "pass", model
