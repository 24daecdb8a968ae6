"""Run the attention probes of a ViT over a set of images and gather them in an xarray Dataset."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import xarray as xr

from ..models import grid_size_of, patch_size_of
from .attention import attention_distance
from .extract import AttentionMaps


@torch.no_grad()
def probe_attention(model: nn.Module, images: torch.Tensor, batch_size: int = 64) -> xr.Dataset:
    """Per-image mean attention distance of every head of every block of a timm ViT.

    Streams ``images`` ``[N, C, H, W]`` in batches (memory bounded by one batch of maps) and returns
    a Dataset with ``attention_distance`` of dims ``(layer, head, image)`` in pixels; ``layer`` runs
    from 1 (first block) to depth. Keeping images lets figures bootstrap over them.
    """
    model = model.eval()
    maps = AttentionMaps(model)
    grid, patch = grid_size_of(model), patch_size_of(model)
    prefix = getattr(model, "num_prefix_tokens", 1)
    per_batch = []
    for start in range(0, images.shape[0], batch_size):
        batch = maps(images[start: start + batch_size])  # {block: [B, H, N, N]}
        layers = [
            torch.stack([attention_distance(a[i: i + 1], grid, patch, prefix) for i in range(a.shape[0])], dim=-1)
            for a in batch.values()
        ]  # each [H, B]
        per_batch.append(torch.stack(layers))  # [layers, H, B]
    distance = torch.cat(per_batch, dim=-1).numpy()  # [layers, H, N]
    n_layers, n_heads, n_images = distance.shape
    return xr.Dataset(
        {"attention_distance": (("layer", "head", "image"), distance.astype(np.float32),
                                {"units": "pixels", "long_name": "mean attention distance"})},
        coords={"layer": np.arange(1, n_layers + 1), "head": np.arange(n_heads), "image": np.arange(n_images)},
    )
