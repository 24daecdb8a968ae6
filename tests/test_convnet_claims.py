"""Appendix B's verdicts on synthetic kernel probes whose answer is known."""

import numpy as np
import pytest
import xarray as xr

from mimstudy.book.convnet_claims import (accuracy_estimate, classification_claim, convnet_roles, diversity_claim,
                                          locality_claim, role_estimate, mean_all)

ROLES = {"replk_sup": ("supervised", "replk_mini_32"), "replk_sup_rep": ("supervised", "replk_mini_32_rep"),
         "replk_simmim": ("simmim", "replk_mini_32")}
SEEDS = 3  # training seeds per role: the book's rules give no verdict on fewer
MODELS = {f"{name}-s{k}": spec for name, spec in ROLES.items() for k in range(SEEDS)} | {"vit_sup": ("supervised", "vit_mini_32")}


def probes(distance: dict[str, float], control: float = 15.0, kl: dict[str, float] | None = None, seed: int = 0,
           seeds: int = SEEDS):
    """Kernel probes of 4 layers x 8 channels: each model's values around its role's level (noise sd 0.2),
    ``seeds`` training seeds per role (levels keyed by role name, e.g. ``replk_sup``)."""
    rng = np.random.default_rng(seed)
    models = [m for m in MODELS if m.startswith("vit") or int(m.rsplit("-s", 1)[1]) < seeds]
    shape = (len(models), 2, 4, 8, 3)
    data = {}
    for var, levels, ctrl in (("kernel_distance", distance, control), ("kernel_entropy", {r: 4.0 for r in ROLES}, 4.0),
                              ("kernel_kl", kl or {r: 0.5 for r in ROLES}, 0.5)):
        values = np.full(shape, np.nan)
        for i, m in enumerate(models):
            if m.startswith("vit"):
                continue
            values[i, 0] = levels[m.rsplit("-s", 1)[0]] + 0.2 * rng.standard_normal(shape[2:])
            values[i, 1] = ctrl + 0.2 * rng.standard_normal(shape[2:])
        data[var] = (("model", "weights", "layer", "channel", "normalisation"), values)
    return xr.Dataset(data, coords={"model": models, "weights": ["trained", "random_init"], "layer": [1, 2, 3, 4],
                                    "channel": np.arange(8), "normalisation": ["abs", "square", "softmax"],
                                    "objective": ("model", [MODELS[m][0] for m in models]),
                                    "arch": ("model", [MODELS[m][1] for m in models])})


GATES = {"sup": True, "sup_rep": True, "simmim": True}


def test_roles_come_from_objective_and_arch():
    roles = convnet_roles(probes({"replk_sup": 20, "replk_sup_rep": 8, "replk_simmim": 12}))
    assert roles == {role: [f"{name}-s{k}" for k in range(SEEDS)]
                     for role, name in (("sup", "replk_sup"), ("sup_rep", "replk_sup_rep"), ("simmim", "replk_simmim"))}


def test_locality_supported_when_simmim_lies_between_and_below_its_control():
    ds = probes({"replk_sup": 20, "replk_sup_rep": 8, "replk_simmim": 12})
    verdict = locality_claim(ds, convnet_roles(ds), GATES)
    assert verdict.verdict == "supported", verdict.summary()


def test_locality_not_supported_when_reversed_and_undetermined_below_the_gate():
    ds = probes({"replk_sup": 8, "replk_sup_rep": 20, "replk_simmim": 15}, control=10.0)
    roles = convnet_roles(ds)
    assert locality_claim(ds, roles, GATES).verdict == "not supported"
    assert locality_claim(ds, roles, {**GATES, "simmim": False}).verdict == "undetermined"


def test_one_training_seed_gives_no_verdict():
    ds = probes({"replk_sup": 20, "replk_sup_rep": 8, "replk_simmim": 12}, seeds=1)
    verdict = locality_claim(ds, convnet_roles(ds), GATES)
    assert verdict.verdict == "undetermined" and any(b.tag == "seeds" for b in verdict.blockers)


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
    gates, seeds = {"ft": True, "sup_rep": True, "sup": True}, {"ft": 3, "sup_rep": 3, "sup": 3}
    assert classification_claim(acc, gates, seeds).verdict == "supported"
    worse = {**acc, "ft": accuracy_estimate(0.80, 10_000)}
    assert classification_claim(worse, gates, seeds).verdict == "partly supported"
    assert classification_claim(acc, gates, {**seeds, "ft": 1}).verdict == "undetermined"
    assert accuracy_estimate(0.5, 100).low == pytest.approx(0.5 - 1.96 * 0.05)
