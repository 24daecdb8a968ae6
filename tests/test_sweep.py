import json

import numpy as np
import pytest
import xarray as xr

from mimstudy.book.claims.sweep import sweep_verdict
from mimstudy.study.sweep import mask_avg_dist, mask_sweep


def provenance(params):
    return json.dumps({"parameters": json.dumps(params)})


def fake_runs(points):
    """pretrain/probes datasets for SimMIM runs (ratio, patch, ft accuracy, attention distance)."""
    models, provs, acc, dist = [], [], [], []
    for i, (ratio, patch, ft_acc, distance) in enumerate(points):
        mim, ft = f"sweep_{i}", f"sweep_{i}_ft"
        models += [mim, ft]
        provs += [provenance({"objective": "simmim", "arch": "vit_micro_32", "mask_ratio": ratio, "mask_patch_size": patch}),
                  provenance({"objective": "finetune", "arch": "vit_micro_32", "init_from": mim})]
        acc += [[np.nan, np.nan], [0.5, ft_acc]]
        dist += [distance, np.nan]
    pretrain = xr.Dataset({"val_accuracy": (("model", "epoch"), np.array(acc))},
                          coords={"model": models, "epoch": [1, 2], "provenance": ("model", provs)})
    probes = xr.Dataset({"attention_distance": (("model", "layer"), np.array([[d, d] for d in dist]))},
                        coords={"model": models, "provenance": ("model", provs)})
    return pretrain, probes


def test_avg_dist_grows_with_ratio_and_patch():
    assert mask_avg_dist("vit_micro_32", 4, 0.4) < mask_avg_dist("vit_micro_32", 8, 0.6) < mask_avg_dist("vit_micro_32", 16, 0.6)


def test_sweep_table_joins_simmim_and_finetune_runs():
    pretrain, probes = fake_runs([(0.6, 16, 0.7, 9.0), (0.4, 4, 0.8, 5.0), (0.6, 8, 0.9, 3.0)])
    table = mask_sweep(pretrain, probes)
    assert list(table["run"].values) == ["sweep_1", "sweep_2", "sweep_0"]  # sorted by AvgDist
    np.testing.assert_allclose(table["ft_error"], [0.2, 0.1, 0.3])
    np.testing.assert_allclose(table["attention_distance"], [5.0, 3.0, 9.0])
    verdict = sweep_verdict(table)
    assert verdict.verdict == "undetermined"  # point estimates only
    assert "Spearman" in verdict.summary()


def test_sweep_needs_finetuned_runs():
    pretrain, probes = fake_runs([(0.6, 8, 0.9, 3.0)])
    with pytest.raises(ValueError, match="no mask sweep"):
        mask_sweep(pretrain.sel(model=["sweep_0"]), probes)
