"""The campaign's check of mask cells aligned with Swin windows, and the rule that decides it.

Swin micro's stage-1 window is 4 x 4 tokens of 2 px (8 px), and the ``cpu`` preset's SimMIM mask cell
is 8 px too: with both grids starting at pixel 0, every regular window is wholly masked or wholly
visible while every shifted window (offset by half a window) straddles four cells. The paper's
SwinV2-B has no such coincidence (48-px windows, 32-px cells at 192 px). ``presets/swin_mask.yaml``
pre-trains the ``cpu`` preset's SimMIM Swin at a short budget with 8-px cells and with 4-px cells
(2 x 2 cells in every window, regular or shifted) and probes both.

The quantity compared is the stage-1 **alternation**: the mean locality of the shifted blocks minus
that of the regular blocks, locality being ``λ = 1 − d / d_uniform`` per block (``d``: the mean
attention distance over heads and images; ``d_uniform``: that of uniform attention over the keys the
block allows, which the seam of a shifted window lowers — so an untrained or supervised Swin's
alternation is near 0). The rule, fixed before the runs: if the 4-px cells' alternation is below
``DECISION_FRACTION`` of the 8-px cells', the alignment causes the alternation and every SwinV2
SimMIM seed of ``cpu`` uses 4-px cells; otherwise 8-px cells stay, as for the ViT.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from mimstudy.probes.locality import locality
from mimstudy.results import load_dataset

PRESET = "swin_mask"
RUNS = {8: "swin_simmim_p8", 4: "swin_simmim_p4"}  # mask cell (px) -> run id
DECISION_FRACTION = 0.5


def block_locality(probes: xr.Dataset) -> xr.DataArray:
    """``λ = 1 − d / d_uniform`` per layer (and model, for concatenated runs), ``d`` averaged over heads
    (padding heads left out) and images."""
    distance = probes["attention_distance"]
    return locality(distance.mean([d for d in ("head", "image") if d in distance.dims], skipna=True),
                    probes["uniform_distance"])


def shifted_blocks(probes: xr.Dataset) -> np.ndarray:
    """Per layer: does the block attend in shifted windows (odd blocks of a stage, timm's Swin)?"""
    indices = []
    for name in probes["block"].values:
        match = re.fullmatch(r"layers\.\d+\.blocks\.(\d+)", str(name))
        if match is None:
            raise ValueError(f"block {name!r} is not a Swin block name (layers.<stage>.blocks.<i>): the check "
                             "reads Swin probes only")
        indices.append(int(match.group(1)))
    return np.asarray(indices) % 2 == 1


def stage1_alternation(probes: xr.Dataset) -> float:
    """Mean ``λ`` of the first stage's shifted blocks minus that of its regular blocks."""
    lam = block_locality(probes).values
    first = probes["stage"].values == probes["stage"].values.min()
    shifted = shifted_blocks(probes)
    if not (first & shifted).any() or not (first & ~shifted).any():
        raise ValueError("the first stage needs regular and shifted blocks (depth >= 2) for an alternation")
    return float(lam[first & shifted].mean() - lam[first & ~shifted].mean())


@dataclass(frozen=True)
class CheckOutcome:
    alternation: dict[int, float]  # mask cell (px) -> stage-1 alternation
    locality: dict[int, list[float]]  # mask cell (px) -> λ per layer

    @property
    def alignment_causes_it(self) -> bool:
        return self.alternation[4] < DECISION_FRACTION * self.alternation[8]

    @property
    def chosen_cell(self) -> int:
        """The mask cell (px) the ``cpu`` preset's SwinV2 SimMIM runs use by the rule."""
        return 4 if self.alignment_causes_it else 8


def outcome(probes: dict[int, xr.Dataset]) -> CheckOutcome:
    """The check's numbers and decision from the probes of both runs (``{cell px: dataset}``)."""
    missing = sorted(set(RUNS) - set(probes))
    if missing:
        raise ValueError(f"the check needs the probes of both runs; missing cells {missing} px")
    return CheckOutcome({cell: stage1_alternation(ds) for cell, ds in probes.items()},
                        {cell: [float(v) for v in block_locality(ds).values] for cell, ds in probes.items()})


def stored_probes(results_dir: str | Path = "results") -> dict[int, xr.Dataset]:
    """The stored probes of the check's runs that exist (``{cell px: dataset}``)."""
    folder = Path(results_dir) / PRESET / "probes"
    return {cell: load_dataset(folder / f"{run}.nc") for cell, run in RUNS.items() if (folder / f"{run}.nc").is_file()}


def window_px(arch: str) -> int | None:
    """A study SwinV2's stage-1 window in pixels (window tokens x patch pixels; ``None``: not a study Swin)."""
    from mimstudy.models.backbones import STUDY_BACKBONES

    spec = STUDY_BACKBONES.get(arch)
    if spec is None or "window_size" not in spec.kwargs:
        return None
    return int(spec.kwargs["window_size"]) * int(spec.kwargs["patch_size"])


def aligned_runs(preset: str) -> list[tuple[str, int]]:
    """``(run id, cell px)`` of ``preset``'s SimMIM SwinV2 pre-trainings whose mask cell equals their
    stage-1 window: the confound this check measured."""
    from mimstudy.study.runner import plan

    return [(s.config.run_id, s.config.mask_patch_size) for s in plan(preset) if s.notebook == "pretrain"
            and s.config.objective == "simmim" and window_px(s.config.arch) == s.config.mask_patch_size]
