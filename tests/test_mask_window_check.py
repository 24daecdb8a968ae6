"""The Swin mask/window check: locality per block, the stage-1 alternation and the decision rule."""

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from mimstudy.study import mask_window_check as check
from mimstudy.study.runner import plan

REPO = Path(__file__).resolve().parents[1]


def probes(distances, uniform, stages, blocks):
    """Probes of one model: every head and image at ``distances[layer]`` (one head NaN-padded)."""
    layers = len(distances)
    values = np.repeat(np.asarray(distances, float)[:, None, None], 3, 1).repeat(4, 2)
    values[:, 2, :] = np.nan  # a padding head, left out of the mean
    return xr.Dataset({"attention_distance": (("layer", "head", "image"), values),
                       "uniform_distance": ("layer", np.asarray(uniform, float))},
                      coords={"layer": np.arange(1, layers + 1), "stage": ("layer", stages),
                              "block": ("layer", blocks)})


BLOCKS = [f"layers.0.blocks.{i}" for i in range(4)] + ["layers.1.blocks.0", "layers.1.blocks.1"]
STAGES = [0, 0, 0, 0, 1, 1]
UNIFORM = [4.0, 3.5, 4.0, 3.5, 8.0, 6.0]


def test_locality_and_alternation_closed_form():
    ds = probes([2.0, 0.7, 3.0, 1.4, 8.0, 1.0], UNIFORM, STAGES, BLOCKS)
    np.testing.assert_allclose(check.block_locality(ds).values, [0.5, 0.8, 0.25, 0.6, 0.0, 5 / 6])
    assert check.shifted_blocks(ds).tolist() == [False, True, False, True, False, True]
    # stage 1 only: shifted (0.8 + 0.6) / 2 - regular (0.5 + 0.25) / 2
    assert check.stage1_alternation(ds) == pytest.approx(0.7 - 0.375)


def test_uniform_attention_has_no_alternation():
    assert check.stage1_alternation(probes(UNIFORM, UNIFORM, STAGES, BLOCKS)) == pytest.approx(0.0)


@pytest.mark.parametrize("p4, chosen", [(0.1, 4), (0.29, 4), (0.31, 8), (0.6, 8)])
def test_decision_rule(p4, chosen):
    # 8-px cells: alternation 0.6 (shifted 0.8, regular 0.2); 4-px: p4
    def with_alternation(a):
        return probes([4.0 * 0.8, 3.5 * (0.8 - a), 4.0 * 0.8, 3.5 * (0.8 - a), 8.0, 6.0], UNIFORM, STAGES, BLOCKS)

    result = check.outcome({8: with_alternation(0.6), 4: with_alternation(p4)})
    assert result.alternation[8] == pytest.approx(0.6) and result.alternation[4] == pytest.approx(p4)
    assert result.chosen_cell == chosen and result.alignment_causes_it == (chosen == 4)


def test_bad_inputs():
    with pytest.raises(ValueError, match="Swin block name"):
        check.shifted_blocks(probes([1.0] * 6, UNIFORM, STAGES, [f"blocks.{i}" for i in range(6)]))
    with pytest.raises(ValueError, match="regular and shifted"):
        check.stage1_alternation(probes([1.0] * 6, UNIFORM, STAGES, [f"layers.{s}.blocks.0" for s in range(6)]))
    with pytest.raises(ValueError, match=r"missing cells \[4\]"):
        check.outcome({8: probes([1.0] * 6, UNIFORM, STAGES, BLOCKS)})


def test_seed_0_of_cpu_with_4px_cells_does_not_alternate():
    """cpu's seed 0, re-made at 10 epochs with 4-px cells (the check's decision, campaign piece 3): SimMIM's
    stage-1 alternation below the decision fraction of the 8-px check run's (it was 0.50 with 8-px cells);
    the supervised Swin's and the untrained one's near 0."""
    folder = REPO / "results" / "cpu" / "probes"
    values = {name: check.stage1_alternation(xr.load_dataset(folder / f"{name}-s0.nc"))
              for name in ("swin_simmim", "swin_sup", "swin_random")}
    eight = check.stage1_alternation(xr.load_dataset(REPO / "results" / "swin_mask" / "probes" / f"{check.RUNS[8]}.nc"))
    assert eight > 0.3 and values["swin_simmim"] < check.DECISION_FRACTION * eight
    assert abs(values["swin_sup"]) < 0.1 and abs(values["swin_random"]) < 0.1


def test_preset_runs_the_two_cells():
    steps = {(s.notebook, s.config.run_id): s.config for s in plan("swin_mask")}
    for cell, run in check.RUNS.items():
        config = steps[("pretrain", run)]
        assert (config.mask_patch_size, config.objective, config.arch) == (cell, "simmim", "swinv2_micro_32")
        assert ("probes", run) in steps
    (one, other) = (steps[("pretrain", r)].to_dict() for r in check.RUNS.values())
    assert {k for k in one if one[k] != other[k]} == {"mask_patch_size", "run_id"}


def test_page_before_and_after_the_runs(tmp_path):
    from mimstudy.book.pages.swin import RUN_COMMAND, mask_window_markdown

    assert "Not run yet" in mask_window_markdown(tmp_path) and RUN_COMMAND in mask_window_markdown(tmp_path)


def test_aligned_runs_are_the_swin_simmim_runs_with_8px_cells():
    assert check.window_px("swinv2_micro_32") == 8 and check.window_px("vit_micro_32_sincos") is None
    assert check.aligned_runs("swin_mask") == [("swin_simmim_p8", 8)]
    assert check.aligned_runs("cpu") == []  # the check's decision: 4-px cells for cpu's SwinV2 SimMIM
    assert ("swin_simmim", 8) in check.aligned_runs("quick")


def test_the_check_as_committed_decides_4px():
    """The committed check (results/swin_mask): 8-px cells alternate, 4-px cells do not; the cpu preset follows."""
    result = check.outcome(check.stored_probes(REPO / "results"))
    assert result.alternation[8] > 0.3 and result.chosen_cell == 4
    swin = {s.config.run_id: s.config for s in plan("cpu") if s.notebook == "pretrain"}
    assert all(c.mask_patch_size == result.chosen_cell for r, c in swin.items()
               if c.objective == "simmim" and c.arch.startswith("swinv2"))


def test_page_shows_the_committed_decision_and_the_runs_still_aligned():
    from mimstudy.book.pages.swin import mask_window_markdown

    text = mask_window_markdown(REPO / "results")
    assert "**Decision.**" in text and "use 4-px cells" in text and "No decision" not in text
    assert "`quick`: `swin_simmim` (8 px)" in text and "| 14 |" in text
