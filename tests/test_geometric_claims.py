"""Section 4.2's verdicts on hand-made downstream results: what holds, what does not, the gate's and seeds' roles."""

import json

import numpy as np
import xarray as xr

from mimstudy.book.claims.evidence import PresetResults
from mimstudy.book.claims.downstream import full_model, learnability
from mimstudy.book.claims.geometric import (AP_FLOOR, drop_last_verdict, dropped_runs, sampled_pairs, shuffle_verdict,
                                            table2_verdict)
from mimstudy.book.claims.registry import claim


def runs(spec: dict[str, tuple], trivial: float = 0.1, init: dict[str, str] | None = None,
         arch: dict[str, str] | None = None) -> xr.Dataset:
    """``{model: (objective, blocks, block_order, [ap per seed])}`` as load_runs would concatenate them;
    ``init``: the pre-training run each model starts from (its provenance ``init_from``); ``arch``: a
    model's backbone when not ``vit_mini_32``."""
    seeds = max(len(v[3]) for v in spec.values())
    models = list(spec)
    ap = np.full((len(models), seeds), np.nan)
    for i, m in enumerate(models):
        ap[i, :len(spec[m][3])] = spec[m][3]
    init = init or {}
    provenance = [json.dumps({"parameters": json.dumps({"init_from": init.get(m, "")})}) for m in models]
    return xr.Dataset(
        {"ap": (("model", "seed"), ap), "trivial_ap": ("model", np.full(len(models), trivial))},
        coords={"model": models, "seed": np.arange(seeds), "task": ("model", ["pose"] * len(models)),
                "arch": ("model", [(arch or {}).get(m, "vit_mini_32") for m in models]),
                "objective": ("model", [spec[m][0] for m in models]),
                "blocks": ("model", [spec[m][1] for m in models]), "total_blocks": ("model", [8] * len(models)),
                "block_order": ("model", [spec[m][2] for m in models]), "provenance": ("model", provenance)})


BASE = {"sup": ("supervised", 8, "", [0.50, 0.51, 0.49]), "mim": ("simmim", 8, "", [0.60, 0.61, 0.59]),
        "rand": ("random", 8, "", [0.30, 0.31, 0.29])}


def test_table2_supported_when_mim_beats_sup_by_more_than_the_floor():
    ds = runs(BASE)
    assert full_model(ds, "pose", "simmim", "vit") == "mim"
    verdict = table2_verdict(ds, "pose", ["sup"], ["mim"], "rand")
    assert verdict.verdict == "supported" and all(c.holds for c in verdict.checks)
    assert np.isclose(verdict.checks[0].estimate.value, 0.10)


def test_table2_not_supported_when_the_gap_is_below_the_floor():
    below = dict(BASE, mim=("simmim", 8, "", [0.40, 0.41, 0.39]))  # MIM below supervised: wholly short of the floor
    verdict = table2_verdict(runs(below), "pose", ["sup"], ["mim"], "rand")
    assert verdict.checks[0].outcome == "fails" and verdict.verdict == "not supported"


def test_table2_inconclusive_when_the_gap_straddles_the_floor():
    close = dict(BASE, mim=("simmim", 8, "", [0.505, 0.515, 0.495]))  # a gap of 0.005 ± 0.035 against 0.01
    verdict = table2_verdict(runs(close), "pose", ["sup"], ["mim"], "rand")
    assert verdict.checks[0].outcome == "inconclusive" and verdict.verdict == "undetermined"
    assert [b.tag for b in verdict.blockers] == ["inconclusive"]


def test_learnability_gate_has_three_states():
    assert learnability(runs(BASE), "rand")[1].status == "pass"
    assert learnability(runs(BASE, trivial=0.4), "rand")[1].status == "fail"  # random init below the trivial predictor
    one = {k: (v[0], v[1], v[2], v[3][:1]) for k, v in BASE.items()}
    assert learnability(runs(one), "rand")[1].status == "unknown"  # one fine-tuning seed: no interval


def pose_preset(ds: xr.Dataset) -> PresetResults:
    return PresetResults("pose", stale={}, probes=None, evaluate=None, pretrain=None, downstream=ds)


def test_the_family_counts_pretraining_seeds_from_the_stored_runs():
    # one pre-training run per model, fine-tuned over three seeds: undetermined (seeds), never "supported"
    verdict = claim("geometric").judge(pose_preset(runs(BASE, init={"sup": "vit_sup", "mim": "vit_simmim"})))
    assert verdict.verdict == "undetermined" and [b.tag for b in verdict.blockers] == ["seeds"]
    # three pre-training runs per model (vit_sup-s0..s2): a t interval over pre-training seeds, a verdict
    spec, init = {"rand": BASE["rand"]}, {}
    for s in range(3):
        spec[f"sup-s{s}"] = ("supervised", 8, "", [0.50 + 0.005 * s, 0.51, 0.49])
        spec[f"mim-s{s}"] = ("simmim", 8, "", [0.60 + 0.005 * s, 0.61, 0.59])
        init[f"sup-s{s}"], init[f"mim-s{s}"] = f"vit_sup-s{s}", f"vit_simmim-s{s}"
    verdict = claim("geometric").judge(pose_preset(runs(spec, init=init)))
    assert verdict.verdict == "supported", verdict.summary()
    assert verdict.checks[0].estimate.interval == "t interval over pre-training seeds"


def test_table2_keeps_each_backbones_learnability_and_random_init_gap():
    # pose on a ViT and on a SwinV2: the details name each random-init run (one arch's must not overwrite the other's)
    swin = {"ssup": ("supervised", 8, "", [0.40, 0.41, 0.39]), "smim": ("simmim", 8, "", [0.45, 0.46, 0.44]),
            "srand": ("random", 8, "", [0.20, 0.21, 0.19])}
    ds = runs({**BASE, **swin}, arch={m: "swinv2_micro_32" for m in swin})
    details = claim("geometric").judge(pose_preset(ds)).details
    assert np.isclose(details["pose learnability (random init `rand` minus the trivial predictor)"].value, 0.30 - 0.1)
    assert np.isclose(details["pose learnability (random init `srand` minus the trivial predictor)"].value, 0.20 - 0.1)
    assert np.isclose(details["pose: supervised minus random init `rand`"].value, 0.50 - 0.30)
    assert np.isclose(details["pose: supervised minus random init `srand`"].value, 0.40 - 0.20)


def test_drop_last_and_shuffle_verdicts_read_the_right_runs():
    spec = dict(BASE, sup_d2=("supervised", 6, "", [0.56, 0.57, 0.55]), mim_d2=("simmim", 6, "", [0.50, 0.51, 0.49]),
                sup_s0=("supervised", 6, "3,1,0,7,2,5", [0.40, 0.41, 0.39]),
                mim_s0=("simmim", 6, "3,1,0,7,2,5", [0.48, 0.49, 0.47]))
    ds = runs(spec)
    assert dropped_runs(ds, "pose", "supervised") == {0: ["sup"], 2: ["sup_d2"]}
    assert sampled_pairs(ds, "pose", "simmim") == [("mim_d2", ["mim_s0"])]
    verdict = drop_last_verdict(ds, "pose", {0: "sup", 2: "sup_d2"}, {0: "mim", 2: "mim_d2"})
    assert [c.holds for c in verdict.checks] == [True, True]
    verdict = shuffle_verdict(ds, "pose", [("sup_d2", ["sup_s0"])], [("mim_d2", ["mim_s0"])])
    assert verdict.verdict == "supported" and np.isclose(verdict.checks[0].estimate.value, 0.16 - 0.02)
    assert AP_FLOOR == 0.01
    # the registry's layer-drop and layer-shuffle rows select the same runs (no longer "not run")
    for key in ("layer-drop", "layer-shuffle"):
        judged = claim(key).judge(pose_preset(ds))
        assert judged.verdict == "undetermined" and [b.tag for b in judged.blockers] == ["seeds"], key


def seeded(spec: dict[str, tuple], seeds=(0, 1, 2), step: float = 0.004) -> tuple[dict, dict]:
    """``spec`` repeated over pre-training seeds as the cpu preset stores it: ``<model>-s<seed>``, one
    fine-tuning seed each, starting from ``<pretraining run>-s<seed>`` (a pre-trained model's runs all
    share one ``init_from`` per seed: its full, truncated and sampled-block runs); seed s adds s × step."""
    out, init = {}, {}
    for s in seeds:
        for m, (objective, blocks, order, values) in spec.items():
            out[f"{m}-s{s}"] = (objective, blocks, order, [values[0] + s * step])
            if objective != "random":
                init[f"{m}-s{s}"] = f"vit_{m.split('_')[0]}-s{s}"
    return out, init


def test_learnability_reads_every_random_init_seed():
    # one fine-tuning seed per run and three training seeds (the cpu preset): decided over the three runs
    spec, init = seeded(BASE)
    ds = runs(spec, init=init)
    est, gate = learnability(ds, ["rand-s0", "rand-s1", "rand-s2"])
    assert gate.status == "pass" and est.interval == "t interval over training seeds" and est.n == 3
    assert np.isclose(est.value, 0.304 - 0.1) and gate.model == "rand-s{0,1,2}"
    assert learnability(ds, "rand-s0")[1].status == "unknown"  # one run of one fine-tuning seed: no interval
    assert learnability(runs(spec, trivial=0.33, init=init), ["rand-s0", "rand-s1", "rand-s2"])[1].status == "fail"
    # an interval that straddles the trivial predictor is inside the noise: unknown, not "not learned"
    assert learnability(runs(spec, trivial=0.304, init=init), ["rand-s0", "rand-s1", "rand-s2"])[1].status == "unknown"
    # so the registry's row is decided: the gate passes, the MIM-minus-supervised gap is judged over seeds
    verdict = claim("geometric").judge(pose_preset(ds))
    assert verdict.verdict == "supported" and not verdict.blockers, verdict.summary()
    assert np.isclose(verdict.details["pose: MIM minus random init `rand-s{0,1,2}`"].value, 0.30)


def test_drop_and_shuffle_pair_runs_of_the_same_pretraining_seed():
    # truncation helps supervised by 0.03 on every seed while seeds differ by far more: paired, the gain is clear
    spec = dict(BASE, sup_d2=("supervised", 6, "", [0.53]), mim_d2=("simmim", 6, "", [0.58]),
                sup_s0=("supervised", 6, "3,1,0,7,2,5", [0.40]), mim_s0=("simmim", 6, "3,1,0,7,2,5", [0.56]))
    spec, init = seeded(spec, step=0.05)
    ds = runs(spec, init=init)
    assert dropped_runs(ds, "pose", "supervised") == {0: ["sup-s0", "sup-s1", "sup-s2"],
                                                      2: ["sup_d2-s0", "sup_d2-s1", "sup_d2-s2"]}
    assert sampled_pairs(ds, "pose", "supervised") == [(f"sup_d2-s{s}", [f"sup_s0-s{s}"]) for s in range(3)]
    for key in ("layer-drop", "layer-shuffle"):  # three pre-training seeds counted: no seeds blocker
        judged = claim(key).judge(pose_preset(ds))
        assert judged.verdict == "supported" and not judged.blockers, (key, judged.summary())
    drop = claim("layer-drop").judge(pose_preset(ds)).checks[0].estimate
    assert np.isclose(drop.value, 0.03) and drop.interval == "t interval over pre-training seeds, paired"
    assert drop.low > 0.02  # unpaired, seeds 0.05 apart would give an interval of about ±0.12
    shuffle = claim("layer-shuffle").judge(pose_preset(ds)).checks[0].estimate
    assert np.isclose(shuffle.value, (0.53 - 0.40) - (0.58 - 0.56)) and shuffle.n == 3
    # a pre-training run's truncated model is never read against another seed's full model
    missing = runs({m: v for m, v in spec.items() if m != "sup-s1"}, init=init)
    assert dropped_runs(missing, "pose", "supervised")[0] == ["sup-s0", "sup-s2"]
    assert claim("layer-drop").judge(pose_preset(missing)).checks[0].estimate.n == 2


def test_depth_verdict_reads_lower_rmse_as_better():
    ds = runs(BASE).rename({"ap": "rmse", "trivial_ap": "trivial_rmse"})
    ds["rmse"] = 1.5 - ds["rmse"]  # sup 1.0, mim 0.9, random 1.2 m
    ds["trivial_rmse"] = ds["trivial_rmse"] * 0 + 1.4
    verdict = table2_verdict(ds, "depth", ["sup"], ["mim"], "rand", metric="rmse", higher_is_better=False)
    assert verdict.verdict == "supported" and np.isclose(verdict.checks[0].estimate.value, -0.1)
    assert verdict.checks[0].threshold == -0.02
    swapped = table2_verdict(ds, "depth", ["mim"], ["sup"], "rand", metric="rmse", higher_is_better=False)
    assert swapped.checks[0].holds is False


def test_figure5_and_the_shuffle_table_show_every_pretraining_seed(monkeypatch):
    from mimstudy.book.pages import geometric_tasks as page

    shown = []
    monkeypatch.setattr(page, "display", lambda obj: shown.append(getattr(obj, "data", obj)))
    monkeypatch.setattr(page.plt, "show", lambda: shown.append("figure"))
    spec = dict(BASE, sup_d2=("supervised", 6, "", [0.53]), mim_d2=("simmim", 6, "", [0.58]),
                sup_s0=("supervised", 6, "3,1,0,7,2,5", [0.40]), mim_s0=("simmim", 6, "3,1,0,7,2,5", [0.56]))
    spec, init = seeded(spec, step=0.05)
    page.show_figure5(pose_preset(runs(spec, init=init)))
    assert "figure" in shown and "mean over pre-training runs" in shown[-1]
    mean_lines = [line for line in page.plt.gcf().axes[0].lines if line.get_linestyle() == "-"]
    assert [list(line.get_xdata()) for line in mean_lines] == [[0, 2], [0, 2]]
    assert np.allclose(mean_lines[0].get_ydata(), [100 * 0.55, 100 * 0.58])  # supervised: seeds 0.50 .. 0.60, mean 0.55
    shown.clear()
    page.show_shuffled(pose_preset(runs(spec, init=init)))
    table = shown[-1]
    assert all(f"`{m}-s{s}`" in table for m in ("sup_d2", "sup_s0", "mim_d2", "mim_s0") for s in range(3))


def test_our_table2_reads_one_value_per_pretraining_seed_and_the_mean_trivial_predictor():
    from mimstudy.book.pages.geometric_tasks import table2_markdown

    spec, init = seeded(BASE)
    ds = runs(spec, init=init)
    ds["trivial_ap"] = ("model", np.linspace(0.0, 0.02, ds.sizes["model"]))  # each seed's data has its own
    table = table2_markdown(ds)
    assert "| SUP | 50.4 ± 1.0 (n=3) |" in table  # 0.500 / 0.504 / 0.508 over three pre-training runs
    assert table.strip().endswith("| 1.0 |")  # the trivial predictor: the mean over the runs, x 100
    assert "(n=3)" in table2_markdown(runs(BASE))  # one run of three fine-tuning seeds (quick): those seeds
