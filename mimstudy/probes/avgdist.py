"""SimMIM's AvgDist: how far masked pixels are from visible ones (the paper's Fig. 2a).

AvgDist (Xie et al. 2022, SimMIM, in its ablation of masking strategies) is the mean, over
masked pixels, of the Euclidean distance to the nearest visible pixel, in input pixels. It grows
with the masking ratio and the masked patch size and measures how far a masked pixel has to
"reach" to find visible context.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.ndimage import distance_transform_edt

from mimstudy.objectives.masking import MaskGenerator


def avg_dist(mask: torch.Tensor | np.ndarray, pixel_scale: int = 1) -> float:
    """AvgDist of a mask: ``mean_{masked p} min_{visible v} ||p - v||_2`` in input pixels.

    ``mask``: ``[H, W]`` or ``[B, H, W]`` (torch or numpy), nonzero = masked. Each cell stands for a
    ``pixel_scale x pixel_scale`` block of input pixels (e.g. ``pixel_scale=4`` for a mask at the
    resolution of 4-pixel model patches): the mask is upsampled by repetition before the distance
    transform (``scipy.ndimage.distance_transform_edt``, distances between pixel centres), which is
    the same as passing the pixel-level mask. A batch gives the mean of the per-image AvgDists
    (distances never cross images). Raises ``ValueError`` for a mask with no masked or no visible
    pixel, where AvgDist is undefined.
    """
    masks = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    if masks.ndim == 2:
        masks = masks[None]
    if masks.ndim != 3 or 0 in masks.shape:
        raise ValueError(f"mask must be a non-empty [H, W] or [B, H, W] array, got shape {np.shape(mask)}")
    if int(pixel_scale) != pixel_scale or pixel_scale < 1:
        raise ValueError(f"pixel_scale must be a positive integer (pixels per mask cell), got {pixel_scale}")
    masks = masks != 0  # [B, H, W] bool
    masks = masks.repeat(pixel_scale, axis=1).repeat(pixel_scale, axis=2)  # [B, H * s, W * s]
    per_image = []
    for index, image_mask in enumerate(masks):
        if image_mask.all() or not image_mask.any():
            state = "masked" if image_mask.all() else "visible"
            raise ValueError(f"mask {index} is all {state}: AvgDist needs both masked and visible pixels")
        distance = distance_transform_edt(image_mask)  # [H * s, W * s], 0 on visible pixels
        per_image.append(distance[image_mask].mean())
    return float(np.mean(per_image))


def expected_avg_dist(mask_generator: MaskGenerator, num_samples: int = 64, seed: int = 0) -> float:
    """Mean AvgDist, in input pixels, of ``num_samples`` masks drawn from ``mask_generator``.

    The generator returns masks at model-patch resolution; each is upsampled to input pixels with
    ``repeat_interleave(model_patch_size)`` before :func:`avg_dist`. Deterministic given ``seed``.
    """
    if num_samples < 1:
        raise ValueError(f"num_samples must be positive, got {num_samples}")
    generator = torch.Generator().manual_seed(seed)
    masks = mask_generator(num_samples, generator=generator)  # [S, P, P] model patches
    scale = mask_generator.model_patch_size
    pixels = masks.repeat_interleave(scale, dim=1).repeat_interleave(scale, dim=2)  # [S, P * s, P * s]
    return avg_dist(pixels)
