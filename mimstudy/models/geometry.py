"""Token maps of timm ViTs and Swins, and the fits that timm would silently pad.

timm pads where a Swin's sizes do not fit: a window that does not divide a stage's token map gets
the map zero-padded (the padding tokens are ordinary, unmasked keys), and patch merging zero-pads an
odd map. A window larger than a map is shrunk to the map (and its shift dropped), which is fine.
The stage geometry is read from a built model or derived from constructor arguments by the same
rules, so a configuration can be checked without building it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch.nn as nn
from timm.layers import to_2tuple
from timm.models.swin_transformer import resolve_stage_window_sizes


@dataclass(frozen=True)
class StageGeometry:
    """One Swin stage: the token map entering it, whether it merges 2x2 patches first, the map its
    blocks work on and the window they use (timm's, after shrinking to the map)."""

    index: int
    input_map: tuple[int, int]
    merges: bool
    block_map: tuple[int, int]
    window: tuple[int, int]


def swin_stages(model: nn.Module) -> list[StageGeometry]:
    """Stage geometry of a built timm Swin (v1 or v2)."""
    stages = []
    for index, stage in enumerate(model.layers):
        merges = not isinstance(stage.downsample, nn.Identity)
        output = tuple((r + 1) // 2 for r in stage.input_resolution) if merges else tuple(stage.input_resolution)
        window = tuple(stage.blocks[0].window_size) if len(stage.blocks) else output
        stages.append(StageGeometry(index, tuple(stage.input_resolution), merges, output, window))
    return stages


def swin_stages_from_args(img_size, patch_size, window_size, num_stages: int) -> list[StageGeometry]:
    """Stage geometry that timm's Swin constructor would give these arguments."""
    grid = tuple(i // p for i, p in zip(to_2tuple(img_size), to_2tuple(patch_size)))
    windows = resolve_stage_window_sizes(window_size, num_stages)
    stages, current = [], grid
    for index, target in enumerate(windows):
        merges = index > 0
        output = tuple(math.ceil(r / 2) for r in current) if merges else current
        window = tuple(r if r <= w else w for r, w in zip(output, target))
        stages.append(StageGeometry(index, current, merges, output, window))
        current = output
    return stages


def _fmt(size) -> str:
    return "x".join(str(int(s)) for s in size)


def patch_problem(img_size, patch_size) -> str | None:
    """Why ``patch_size`` does not fit ``img_size``, or None."""
    for size, patch in zip(to_2tuple(img_size), to_2tuple(patch_size)):
        if size % patch:
            return (f"patch size {patch} does not divide image size {size}: pick an image size that is a "
                    f"multiple of {patch}")
    return None


def swin_problem(img_size, patch_size, stages: list[StageGeometry]) -> str | None:
    """Why timm would pad inside a Swin of this geometry, or None."""
    stride = int(max(to_2tuple(patch_size))) * 2 ** sum(s.merges for s in stages)
    for stage in stages:
        if stage.merges and any(r % 2 for r in stage.input_map):
            fit = -(-int(max(to_2tuple(img_size))) // stride) * stride
            return (f"stage {stage.index} merges 2x2 patches of a {_fmt(stage.input_map)} token map, which timm "
                    f"would zero-pad: the image size must be a multiple of the total stride {stride} px "
                    f"(patch size x 2**(stages - 1)), e.g. {fit}")
        if any(r % w for r, w in zip(stage.block_map, stage.window)):
            return (f"window {_fmt(stage.window)} does not divide stage {stage.index}'s {_fmt(stage.block_map)} "
                    "token map; timm would pad the map with zero tokens that every window attends to. Choose "
                    "a window size dividing each stage's map (or at least as large as it), or an image size "
                    "such that each stage's map is a multiple of the window")
    return None
