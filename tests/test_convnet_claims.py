"""Appendix B's verdicts on synthetic kernel probes whose answer is known."""

import numpy as np
import pytest
import xarray as xr

from mimstudy.book.claims.convnet import (classification_claim, convnet_roles, diversity_claim, locality_claim, mean_all,
                                          role_estimate)
from mimstudy.book.claims.evidence import PresetResults
from mimstudy.book.claims.gates import GateResult
from mimstudy.book.claims.registry import claim
from mimstudy.book.claims.verdicts import blockers

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


FAILED = blockers({"SimMIM": 3}, [GateResult("replk_simmim-s0", "fail", [], ["`replk_simmim-s0` below its gate"])])


def test_roles_come_from_objective_and_arch():
    roles = convnet_roles(probes({"replk_sup": 20, "replk_sup_rep": 8, "replk_simmim": 12}))
    assert roles == {role: [f"{name}-s{k}" for k in range(SEEDS)]
                     for role, name in (("sup", "replk_sup"), ("sup_rep", "replk_sup_rep"), ("simmim", "replk_simmim"))}


def test_locality_supported_when_simmim_lies_between_and_below_its_control():
    ds = probes({"replk_sup": 20, "replk_sup_rep": 8, "replk_simmim": 12})
    verdict = locality_claim(ds, convnet_roles(ds))
    assert verdict.verdict == "supported", verdict.summary()


def test_locality_not_supported_when_reversed_and_undetermined_below_the_gate():
    ds = probes({"replk_sup": 8, "replk_sup_rep": 20, "replk_simmim": 15}, control=10.0)
    roles = convnet_roles(ds)
    assert locality_claim(ds, roles).verdict == "not supported"
    assert locality_claim(ds, roles, FAILED).verdict == "undetermined"


def test_the_family_judge_counts_seeds_and_reads_every_seeds_gate():
    ds = probes({"replk_sup": 20, "replk_sup_rep": 8, "replk_simmim": 12}, seeds=1)
    one = PresetResults("conv", stale={}, probes=ds, evaluate=None, pretrain=None, downstream=None)
    verdict = claim("replknet-locality").judge(one)
    assert verdict.verdict == "undetermined" and {b.tag for b in verdict.blockers} == {"seeds", "gate unknown"}
    three = PresetResults("conv", stale={}, probes=probes({"replk_sup": 20, "replk_sup_rep": 8, "replk_simmim": 12}),
                          evaluate=None, pretrain=None, downstream=None)
    verdict = claim("replknet-locality").judge(three)
    assert [b.tag for b in verdict.blockers] == ["gate unknown"]  # no evaluation stored: every seed's gate unknown
    assert "replk_simmim-s2" in verdict.blockers[0].reason


def test_a_nan_random_init_control_blocks_the_kernel_claims():
    ds = probes({"replk_sup": 20, "replk_sup_rep": 8, "replk_simmim": 12})
    ds["kernel_distance"].loc[{"weights": "random_init"}] = np.nan
    verdict = locality_claim(ds, convnet_roles(ds))
    assert verdict.verdict == "undetermined" and "missing" in {b.tag for b in verdict.blockers}


def test_differences_below_the_floor_do_not_count():
    ds = probes({"replk_sup": 12.5, "replk_sup_rep": 12.0, "replk_simmim": 12.0}, control=12.2)
    est = role_estimate(ds, "kernel_distance", convnet_roles(ds), mean_all, "sup", "sup_rep")
    assert est.above(0.0) and not est.above(1.0)  # real (0.5 px) but under the 1-px floor
    kl = probes({"replk_sup": 1, "replk_sup_rep": 1, "replk_simmim": 1},
                kl={"replk_sup": 0.5, "replk_sup_rep": 0.5, "replk_simmim": 0.52})
    assert diversity_claim(kl, convnet_roles(kl)).verdict == "not supported"


def test_classification_on_par_within_the_floor_with_t_intervals_over_seeds():
    acc = {"ft": [0.850, 0.852, 0.848], "sup_rep": [0.850, 0.851, 0.849], "sup": [0.80, 0.81, 0.79]}
    verdict = classification_claim(acc)
    assert verdict.verdict == "supported" and all(c.estimate.interval == "t interval over seeds" for c in verdict.checks)
    worse = {**acc, "ft": [0.80, 0.81, 0.79]}
    assert classification_claim(worse).verdict == "partly supported"
    one = {role: values[:1] for role, values in acc.items()}  # one seed: point estimates, no decision
    assert classification_claim(one).verdict == "undetermined"
