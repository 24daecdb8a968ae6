"""Section 4.1's verdicts on hand-made downstream results: the concept-gap trend, the covered and the
fine-grained tasks, with the learnability gate, the frozen protocol kept apart and seeds counted."""

import json

import numpy as np
import pytest
import xarray as xr

from mimstudy.book.claims.evidence import PresetResults
from mimstudy.book.claims.registry import claim
from mimstudy.book.claims.semantic import LEVELS, METRICS
from mimstudy.book.pages.semantic import scores_markdown


def runs(rows: list[tuple], trivial: float = 0.1) -> xr.Dataset:
    """``rows``: ``(task, objective, init_from, [score per seed], protocol)`` as load_runs concatenates them."""
    models = [f"{task}-{objective}-{init or 'rand'}-{protocol}" for task, objective, init, _, protocol in rows]
    models = [m if models.count(m) == 1 else f"{m}-s{models[:i].count(m)}" for i, m in enumerate(models)]  # random: one per seed
    seeds = max(len(r[3]) for r in rows)
    data = {name: np.full((len(rows), seeds), np.nan) for name in ("top1", "mean_class_acc")}
    for i, (task, _, _, values, _) in enumerate(rows):
        data[METRICS.get(task, "top1")][i, :len(values)] = values
    provenance = [json.dumps({"parameters": json.dumps({"init_from": r[2]})}) for r in rows]
    n = len(rows)
    return xr.Dataset(
        {**{k: (("model", "seed"), v) for k, v in data.items()},
         "trivial_top1": ("model", np.full(n, trivial)), "trivial_mean_class_acc": ("model", np.full(n, trivial))},
        coords={"model": models, "seed": np.arange(seeds), "task": ("model", [r[0] for r in rows]),
                "arch": ("model", ["vit_micro_32_sincos"] * n), "objective": ("model", [r[1] for r in rows]),
                "blocks": ("model", [4] * n), "total_blocks": ("model", [4] * n), "block_order": ("model", [""] * n),
                "protocol": ("model", [r[4] for r in rows]), "provenance": ("model", provenance)})


def ladder(gaps: list[float], pretraining_seeds: int = 3, protocol: str = "finetune") -> list[tuple]:
    """Every level with supervised at 0.60, SimMIM at 0.60 + gap, random init at 0.30; one run per pre-training seed."""
    rows = []
    for level, gap in zip(LEVELS, gaps):
        for s in range(pretraining_seeds):
            jitter = 0.004 * s
            rows.append((level, "supervised", f"vit_sup-s{s}", [0.60 + jitter, 0.61, 0.59], protocol))
            rows.append((level, "simmim", f"vit_simmim-s{s}", [0.60 + gap + jitter, 0.61 + gap, 0.59 + gap], protocol))
        rows.append((level, "random", "", [0.30, 0.31, 0.29], protocol))
    return rows


def preset(ds: xr.Dataset) -> PresetResults:
    return PresetResults("semantic", stale={}, probes=None, evaluate=None, pretrain=None, downstream=ds)


def test_a_growing_gap_supports_the_trend_and_a_flat_one_does_not():
    verdict = claim("semantic-cog").judge(preset(runs(ladder([0.0, 0.01, 0.02, 0.03, 0.04]))))
    assert verdict.verdict == "supported", verdict.summary()
    assert np.isclose(verdict.checks[0].estimate.value, 0.04)
    assert {"L1: MIM minus supervised", "L5: MIM minus supervised"} <= set(verdict.details)
    flat = claim("semantic-cog").judge(preset(runs(ladder([0.03] * 5))))
    assert flat.verdict == "not supported", flat.summary()


def test_the_trend_reads_each_pretraining_run_on_both_levels():
    # backbones differ by 0.05 from seed to seed on every level alike; MIM's lead grows by 0.02 from L1 to L5
    # on each: read per pre-training run the growth is exact, while the two levels' gaps alone straddle 0.02
    rows = []
    for level, gap, wobble in zip(LEVELS, [0.0, 0.005, 0.01, 0.015, 0.02], [0.0, 0.0, 0.0, 0.0, 0.002]):
        for s in range(3):
            rows.append((level, "supervised", f"vit_sup-s{s}", [0.60 + 0.05 * s], "finetune"))
            rows.append((level, "simmim", f"vit_simmim-s{s}", [0.60 + gap + 0.05 * (2 - s) + wobble * s], "finetune"))
        rows += [(level, "random", "", [0.30 + 0.001 * s], "finetune") for s in range(3)]
    verdict = claim("semantic-cog").judge(preset(runs(rows)))
    trend = verdict.checks[0].estimate
    assert trend.interval == "t interval over pre-training seeds, each run's far minus near task" and trend.n == 3
    assert np.isclose(trend.value, 0.02 + 0.002) and trend.low > 0.01  # combining the two gaps: about ±0.35
    assert verdict.details["L5: MIM minus supervised"].low < 0  # the gap of L5 alone is not even clear of zero


def test_one_pretraining_seed_or_an_unlearned_task_leaves_it_undetermined():
    verdict = claim("semantic-cog").judge(preset(runs(ladder([0.0, 0.01, 0.02, 0.03, 0.04], pretraining_seeds=1))))
    assert verdict.verdict == "undetermined" and "seeds" in [b.tag for b in verdict.blockers]
    unlearned = claim("semantic-cog").judge(preset(runs(ladder([0.0, 0.01, 0.02, 0.03, 0.04]), trivial=0.5)))
    assert unlearned.verdict == "undetermined" and "gate" in [b.tag for b in unlearned.blockers]


def test_frozen_runs_are_a_second_protocol_not_the_rows():
    only_frozen = claim("semantic-cog").judge(preset(runs(ladder([0.0, 0.0, 0.0, 0.0, 0.1], protocol="frozen"))))
    assert only_frozen.verdict == "not run"
    both = runs(ladder([0.0, 0.01, 0.02, 0.03, 0.04]) + ladder([0.0] * 5, protocol="frozen"))
    verdict = claim("semantic-cog").judge(preset(both))
    assert verdict.verdict == "supported" and np.isclose(verdict.checks[0].estimate.value, 0.04)
    assert np.isclose(verdict.details["cog_l1, frozen backbone (linear probe): MIM minus supervised"].value, 0.0)
    assert "CoG L1" in scores_markdown(both, "vit", "frozen") and "MIM (SimMIM)" in scores_markdown(both, "vit", "finetune")


@pytest.mark.parametrize("key, task, sup, mim, expected", [
    ("semantic-covered", "k12_garments", 0.80, 0.70, "supported"),
    ("semantic-covered", "k12_garments", 0.70, 0.80, "not supported"),
    ("semantic-fine", "k12_fine", 0.50, 0.60, "supported"),
    ("semantic-fine", "k12_fine", 0.60, 0.605, "not supported"),  # MIM ahead, but by less than the floor
])
def test_covered_and_fine_grained_tasks_point_opposite_ways(key, task, sup, mim, expected):
    rows = []
    for s in range(3):
        rows.append((task, "supervised", f"vit_sup-s{s}", [sup + 0.002 * s, sup + 0.01, sup - 0.01], "finetune"))
        rows.append((task, "simmim", f"vit_simmim-s{s}", [mim + 0.002 * s, mim + 0.01, mim - 0.01], "finetune"))
    rows.append((task, "random", "", [0.30, 0.31, 0.29], "finetune"))
    verdict = claim(key).judge(preset(runs(rows)))
    assert verdict.verdict == expected, verdict.summary()


def test_without_runs_the_claims_are_not_run():
    for key in ("semantic-cog", "semantic-covered", "semantic-fine"):
        assert claim(key).judge(preset(None)).verdict == "not run"
        assert claim(key).judge(preset(runs([("pose", "supervised", "vit_sup", [0.5], "finetune")]))).verdict == "not run"
