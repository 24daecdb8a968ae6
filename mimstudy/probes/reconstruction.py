"""Masked-pixel predictors that a masked-image model must beat: the local and the global guess.

SimMIM predicts masked pixels from visible ones. Two hand-made predictors bound what it has learned:

* *nearest visible pixel*: each masked pixel copies the value of the closest visible pixel (Euclidean
  distance, ties broken by scipy's distance transform). It uses only locality.
* *visible mean*: each masked pixel is the mean of the image's visible pixels. It uses no position.

A model whose masked-pixel l1 is not below the nearest-visible copy has not learned to use the
neighbourhood that the paper's locality claims rest on.
"""

from __future__ import annotations

import torch
from scipy.ndimage import distance_transform_edt


def pixel_mask(mask: torch.Tensor, patch_size: int) -> torch.Tensor:
    """``[B, h, w]`` patch mask (1 = masked) -> ``[B, h * patch, w * patch]`` bool pixel mask."""
    return mask.repeat_interleave(patch_size, 1).repeat_interleave(patch_size, 2).bool()


def nearest_visible(images: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
    """Each masked pixel of ``images`` ``[B, C, H, W]`` replaced by its nearest visible pixel.

    ``masked``: bool ``[B, H, W]``. Every image needs at least one visible pixel.
    """
    if masked.shape != (images.shape[0], *images.shape[-2:]):
        raise ValueError(f"mask {tuple(masked.shape)} does not match images {tuple(images.shape)}")
    out = images.clone()
    for b in range(images.shape[0]):
        m = masked[b].cpu().numpy()
        if m.all():
            raise ValueError(f"image {b} has no visible pixel to copy from")
        _, (rows, cols) = distance_transform_edt(m, return_indices=True)  # nearest zero (= visible)
        out[b] = images[b][:, torch.from_numpy(rows), torch.from_numpy(cols)]
    return out


def visible_mean(images: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
    """Each masked pixel replaced by the mean of its image's visible pixels (per channel)."""
    visible = (~masked).unsqueeze(1).type_as(images)  # [B, 1, H, W]
    mean = (images * visible).sum((-2, -1), keepdim=True) / visible.sum((-2, -1), keepdim=True).clamp_min(1)
    return torch.where(masked.unsqueeze(1), mean.expand_as(images), images)


def masked_l1(prediction: torch.Tensor, images: torch.Tensor, masked: torch.Tensor) -> float:
    """Mean absolute error over the masked pixels (and channels), as SimMIM's loss."""
    weight = masked.unsqueeze(1).expand_as(images)
    return float((prediction - images).abs()[weight].mean())


def baseline_l1(images: torch.Tensor, mask: torch.Tensor, patch_size: int,
                prior: torch.Tensor | None = None) -> dict[str, float]:
    """``{"nearest_visible_l1", "visible_mean_l1"}`` of the two hand-made predictors for a patch mask;
    with ``prior`` (``[1, C, H, W]``, e.g. the mean training image) also ``position_mean_l1``: the
    prior read at each masked pixel's position."""
    masked = pixel_mask(mask, patch_size)
    out = {
        "nearest_visible_l1": masked_l1(nearest_visible(images, masked), images, masked),
        "visible_mean_l1": masked_l1(visible_mean(images, masked), images, masked),
    }
    if prior is not None:
        out["position_mean_l1"] = masked_l1(prior.expand_as(images), images, masked)
    return out


__all__ = ["baseline_l1", "masked_l1", "nearest_visible", "pixel_mask", "visible_mean"]
