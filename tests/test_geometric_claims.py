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
    assert dropped_runs(ds, "pose", "supervised") == {0: "sup", 2: "sup_d2"}
    assert sampled_pairs(ds, "pose", "simmim") == ("mim_d2", ["mim_s0"])
    verdict = drop_last_verdict(ds, "pose", {0: "sup", 2: "sup_d2"}, {0: "mim", 2: "mim_d2"})
    assert [c.holds for c in verdict.checks] == [True, True]
    verdict = shuffle_verdict(ds, "pose", ("sup_d2", ["sup_s0"]), ("mim_d2", ["mim_s0"]))
    assert verdict.verdict == "supported" and np.isclose(verdict.checks[0].estimate.value, 0.16 - 0.02)
    assert AP_FLOOR == 0.01
    # the registry's layer-drop and layer-shuffle rows select the same runs (no longer "not run")
    for key in ("layer-drop", "layer-shuffle"):
        judged = claim(key).judge(pose_preset(ds))
        assert judged.verdict == "undetermined" and [b.tag for b in judged.blockers] == ["seeds"], key


def test_depth_verdict_reads_lower_rmse_as_better():
    ds = runs(BASE).rename({"ap": "rmse", "trivial_ap": "trivial_rmse"})
    ds["rmse"] = 1.5 - ds["rmse"]  # sup 1.0, mim 0.9, random 1.2 m
    ds["trivial_rmse"] = ds["trivial_rmse"] * 0 + 1.4
    verdict = table2_verdict(ds, "depth", ["sup"], ["mim"], "rand", metric="rmse", higher_is_better=False)
    assert verdict.verdict == "supported" and np.isclose(verdict.checks[0].estimate.value, -0.1)
    assert verdict.checks[0].threshold == -0.02
    swapped = table2_verdict(ds, "depth", ["mim"], ["sup"], "rand", metric="rmse", higher_is_better=False)
    assert swapped.checks[0].holds is False
