"""Appendix B's verdicts on synthetic kernel probes whose answer is known."""

import numpy as np
import pytest
import xarray as xr

from mimstudy.book.convnet_claims import (accuracy_estimate, classification_claim, convnet_roles, diversity_claim,
                                          locality_claim, role_estimate, mean_all)

MODELS = {"replk_sup": ("supervised", "replk_mini_32"), "replk_sup_rep": ("supervised", "replk_mini_32_rep"),
          "replk_simmim": ("simmim", "replk_mini_32"), "vit_sup": ("supervised", "vit_mini_32")}


def probes(distance: dict[str, float], control: float = 15.0, kl: dict[str, float] | None = None, seed: int = 0):
    """Kernel probes of 4 layers x 8 channels: each model's values around its level (noise sd 0.2)."""
    rng = np.random.default_rng(seed)
    models = list(MODELS)
    shape = (len(models), 2, 4, 8, 3)
    data = {}
    for var, levels, ctrl in (("kernel_distance", distance, control), ("kernel_entropy", {m: 4.0 for m in models}, 4.0),
                              ("kernel_kl", kl or {m: 0.5 for m in models}, 0.5)):
        values = np.full(shape, np.nan)
        for i, m in enumerate(models):
            if m.startswith("vit"):
                continue
            values[i, 0] = levels[m] + 0.2 * rng.standard_normal(shape[2:])
            values[i, 1] = ctrl + 0.2 * rng.standard_normal(shape[2:])
        data[var] = (("model", "weights", "layer", "channel", "normalisation"), values)
    return xr.Dataset(data, coords={"model": models, "weights": ["trained", "random_init"], "layer": [1, 2, 3, 4],
                                    "channel": np.arange(8), "normalisation": ["abs", "square", "softmax"],
                                    "objective": ("model", [MODELS[m][0] for m in models]),
                                    "arch": ("model", [MODELS[m][1] for m in models])})


GATES = {"sup": True, "sup_rep": True, "simmim": True}


def test_roles_come_from_objective_and_arch():
    roles = convnet_roles(probes({"replk_sup": 20, "replk_sup_rep": 8, "replk_simmim": 12}))
    assert roles == {"sup": ["replk_sup"], "sup_rep": ["replk_sup_rep"], "simmim": ["replk_simmim"]}


def test_locality_supported_when_simmim_lies_between_and_below_its_control():
    ds = probes({"replk_sup": 20, "replk_sup_rep": 8, "replk_simmim": 12})
    verdict = locality_claim(ds, convnet_roles(ds), GATES)
    assert verdict.verdict == "supported", verdict.summary()


def test_locality_not_supported_when_reversed_and_undetermined_below_the_gate():
    ds = probes({"replk_sup": 8, "replk_sup_rep": 20, "replk_simmim": 15}, control=10.0)
    roles = convnet_roles(ds)
    assert locality_claim(ds, roles, GATES).verdict == "not supported"
    assert locality_claim(ds, roles, {**GATES, "simmim": False}).verdict == "undetermined"


def test_differences_below_the_floor_do_not_count():
    ds = probes({"replk_sup": 12.5, "replk_sup_rep": 12.0, "replk_simmim": 12.0}, control=12.2)
    est = role_estimate(ds, "kernel_distance", convnet_roles(ds), mean_all, "sup", "sup_rep")
    assert est.above(0.0) and not est.above(1.0)  # real (0.5 px) but under the 1-px floor
    kl = probes({"replk_sup": 1, "replk_sup_rep": 1, "replk_simmim": 1},
                kl={"replk_sup": 0.5, "replk_sup_rep": 0.5, "replk_simmim": 0.52})
    assert diversity_claim(kl, convnet_roles(kl), GATES).verdict == "not supported"


def test_classification_on_par_within_the_floor():
    acc = {"ft": accuracy_estimate(0.85, 10_000), "sup_rep": accuracy_estimate(0.85, 10_000),
           "sup": accuracy_estimate(0.80, 10_000)}
    assert classification_claim(acc, {"ft": True, "sup_rep": True, "sup": True}).verdict == "supported"
    worse = {**acc, "ft": accuracy_estimate(0.80, 10_000)}
    assert classification_claim(worse, {"ft": True, "sup_rep": True, "sup": True}).verdict == "partly supported"
    assert accuracy_estimate(0.5, 100).low == pytest.approx(0.5 - 1.96 * 0.05)
