"""Section 4.2's verdicts on hand-made downstream results: what holds, what does not, the control's role."""

import numpy as np
import xarray as xr

from mimstudy.book.geometric_claims import AP_FLOOR, drop_last_verdict, full_model, shuffle_verdict, table2_verdict


def runs(spec: dict[str, tuple], trivial: float = 0.1) -> xr.Dataset:
    """``{model: (objective, blocks, block_order, [ap per seed])}`` as load_runs would concatenate them."""
    seeds = max(len(v[3]) for v in spec.values())
    models = list(spec)
    ap = np.full((len(models), seeds), np.nan)
    for i, m in enumerate(models):
        ap[i, :len(spec[m][3])] = spec[m][3]
    return xr.Dataset(
        {"ap": (("model", "seed"), ap), "trivial_ap": ("model", np.full(len(models), trivial))},
        coords={"model": models, "seed": np.arange(seeds), "task": ("model", ["pose"] * len(models)),
                "arch": ("model", ["vit_mini_32"] * len(models)),
                "objective": ("model", [spec[m][0] for m in models]),
                "blocks": ("model", [spec[m][1] for m in models]), "total_blocks": ("model", [8] * len(models)),
                "block_order": ("model", [spec[m][2] for m in models])})


BASE = {"sup": ("supervised", 8, "", [0.50, 0.51, 0.49]), "mim": ("simmim", 8, "", [0.60, 0.61, 0.59]),
        "rand": ("random", 8, "", [0.30, 0.31, 0.29])}


def test_table2_supported_when_mim_beats_sup_by_more_than_the_floor():
    ds = runs(BASE)
    assert full_model(ds, "pose", "simmim", "vit") == "mim"
    verdict = table2_verdict(ds, "pose", "sup", "mim", "rand", pretrain_seeds=3)
    assert verdict.verdict == "supported" and all(c.holds for c in verdict.checks)
    assert np.isclose(verdict.checks[1].estimate.value, 0.10)


def test_table2_not_supported_when_the_gap_is_below_the_floor():
    close = dict(BASE, mim=("simmim", 8, "", [0.505, 0.515, 0.495]))
    verdict = table2_verdict(runs(close), "pose", "sup", "mim", "rand", pretrain_seeds=3)
    assert verdict.checks[1].holds is False and verdict.verdict == "not supported"  # the passed gate is no support


def test_unlearnable_task_fails_its_quality_gate():
    verdict = table2_verdict(runs(BASE, trivial=0.4), "pose", "sup", "mim", "rand", pretrain_seeds=3)
    assert verdict.checks[0].holds is False  # random init below the trivial predictor
    assert verdict.verdict == "undetermined"  # even though MIM beats SUP: the gate decides first
    assert "Neither" not in " ".join(verdict.notes)


def test_one_seed_gives_no_decision():
    one = {k: (v[0], v[1], v[2], v[3][:1]) for k, v in BASE.items()}
    assert table2_verdict(runs(one), "pose", "sup", "mim", "rand", pretrain_seeds=3).verdict == "undetermined"


def test_one_pretraining_seed_gives_no_verdict():
    verdict = table2_verdict(runs(BASE), "pose", "sup", "mim", "rand", pretrain_seeds=1)
    assert verdict.verdict == "undetermined" and [b.tag for b in verdict.blockers] == ["seeds"]


def test_drop_last_and_shuffle_verdicts_read_the_right_runs():
    spec = dict(BASE, sup_d2=("supervised", 6, "", [0.56, 0.57, 0.55]), mim_d2=("simmim", 6, "", [0.50, 0.51, 0.49]))
    verdict = drop_last_verdict(runs(spec), "pose", {0: "sup", 2: "sup_d2"}, {0: "mim", 2: "mim_d2"}, "rand", pretrain_seeds=3)
    assert [c.holds for c in verdict.checks] == [True, True, True]
    spec.update(sup_s0=("supervised", 6, "3,1,0,7,2,5", [0.40, 0.41, 0.39]),
                mim_s0=("simmim", 6, "3,1,0,7,2,5", [0.48, 0.49, 0.47]))
    verdict = shuffle_verdict(runs(spec), "pose", ("sup_d2", ["sup_s0"]), ("mim_d2", ["mim_s0"]), "rand", pretrain_seeds=3)
    assert verdict.verdict == "supported" and np.isclose(verdict.checks[1].estimate.value, 0.16 - 0.02)
    assert AP_FLOOR == 0.01


def test_depth_verdict_reads_lower_rmse_as_better():
    ds = runs(BASE).rename({"ap": "rmse", "trivial_ap": "trivial_rmse"})
    ds["rmse"] = 1.5 - ds["rmse"]  # sup 1.0, mim 0.9, random 1.2 m
    ds["trivial_rmse"] = ds["trivial_rmse"] * 0 + 1.4
    verdict = table2_verdict(ds, "depth", "sup", "mim", "rand", metric="rmse", higher_is_better=False, pretrain_seeds=3)
    assert verdict.verdict == "supported" and np.isclose(verdict.checks[1].estimate.value, -0.1)
    assert verdict.checks[1].threshold == -0.02
    swapped = table2_verdict(ds, "depth", "mim", "sup", "rand", metric="rmse", higher_is_better=False, pretrain_seeds=3)
    assert swapped.checks[1].holds is False
