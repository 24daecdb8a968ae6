"""Scale-free locality of attention heads: lambda = 1 - d / d_uniform.

``d`` is a head's mean attention distance (:func:`mimstudy.probes.attention.attention_distance`,
pixels) and ``d_uniform`` the distance the same head would have if every query spread its attention
uniformly over the keys it may attend to (``uniform_distance`` of
:func:`mimstudy.probes.dataset.uniform_reference`, stored with every probe dataset: for a ViT the mean
distance between patch centres, for a Swin block its own windows and seams). lambda is 0 for uniform
attention, 1 for attention on the query's own patch, and negative for heads that look farther than
uniform (e.g. corner-to-corner). It does not depend on the image or patch size, so models of
different geometry compare on one axis.
"""

from __future__ import annotations

import torch
import xarray as xr


def locality(distance: xr.DataArray | torch.Tensor, d_uniform):
    """``1 - distance / d_uniform`` elementwise (``d_uniform`` a number, or per layer broadcasting
    against ``distance``)."""
    if not bool((d_uniform > 0).all() if hasattr(d_uniform, "all") else d_uniform > 0):
        raise ValueError(f"d_uniform must be positive, got {d_uniform}")
    return 1.0 - distance / d_uniform


def most_local_head(lam: xr.DataArray) -> xr.DataArray:
    """Per layer, the largest head locality (``lam`` with dims ``layer``, ``head`` [, ``image``]:
    images are averaged first, so this is the most local head on average, not per image)."""
    if "image" in lam.dims:
        lam = lam.mean("image")
    return lam.max("head")
