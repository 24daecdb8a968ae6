"""Reductions of per-layer (and per-head) statistics to the numbers the claims' checks compare.

Each works on image means and, with a ``boot`` dim, on bootstrap resamples at once (dim-named xarray
reductions; other dims are kept). Layer groups that a check compares are disjoint: the first half is
the first ``L // 2`` layers, the upper half the last ``L // 2`` (the middle layer of an odd ``L`` in
neither), and "the last n layers" never reaches into the first half (at most ``L - L // 2`` layers).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import xarray as xr


def layer_means(values: xr.DataArray) -> xr.DataArray:
    """Mean over ``head`` (NaN-padded Swin heads skipped), if there is a head dim."""
    return values.mean("head") if "head" in values.dims else values


def half(layers: int) -> int:
    """Layers in each half: ``L // 2`` (a comparison of halves needs two layers or more)."""
    if layers < 2:
        raise ValueError(f"two disjoint groups of layers need at least 2 layers, got {layers}")
    return layers // 2


def upper_half(values: xr.DataArray) -> xr.DataArray:
    return values.isel(layer=slice(values.sizes["layer"] - half(values.sizes["layer"]), None))


def first_half(values: xr.DataArray) -> xr.DataArray:
    return values.isel(layer=slice(None, half(values.sizes["layer"])))


def last_layers(values: xr.DataArray, n: int = 3) -> xr.DataArray:
    """The last ``n`` layers, but never a layer of :func:`first_half` (at most ``L - L // 2``)."""
    layers = values.sizes["layer"]
    return values.isel(layer=slice(layers - min(n, layers - half(layers)), None))


def mean_of(values: xr.DataArray) -> xr.DataArray:
    """Mean over layers (and heads, NaN padding skipped)."""
    return layer_means(values).mean("layer")


def head_spread(values: xr.DataArray) -> xr.DataArray:
    """Mean over layers of the standard deviation over heads (NaN padding skipped)."""
    return values.std("head").mean("layer")


def off_diagonal(cka: xr.DataArray) -> xr.DataArray:
    """``cka`` ``(..., layer, layer_j)`` with the diagonal (a layer with itself) set to NaN."""
    same = cka["layer"] == cka["layer_j"]
    return cka.where(~same)



def upper_mean(v: xr.DataArray) -> xr.DataArray:
    return mean_of(upper_half(v))


def lower_mean(v: xr.DataArray) -> xr.DataArray:
    return mean_of(first_half(v))


def last_mean(v: xr.DataArray, n: int = 3) -> xr.DataArray:
    return mean_of(last_layers(v, n))


def local_head_everywhere(v: xr.DataArray) -> xr.DataArray:
    """The smallest over layers of the largest λ among a layer's heads: ≥ 0.5 only when *every* layer
    has a local head (a mean over layers would let layers without one pass)."""
    return v.max("head").min("layer")


def mean_cka(v: xr.DataArray) -> xr.DataArray:
    return off_diagonal(v).mean(["layer", "layer_j"])


def min_cka(v: xr.DataArray) -> xr.DataArray:
    return off_diagonal(v).min(["layer", "layer_j"])


def alternation_amplitude(v: xr.DataArray) -> xr.DataArray:
    """``|mean over (regular, shifted) block pairs of λ_shifted − λ_regular|``: how much consecutive
    blocks of a stage differ, one high and one low, with a consistent sign. Pairs are blocks (0, 1),
    (2, 3), ... of each stage (``stage`` coord on ``layer``); NaN without such a pair."""
    means = layer_means(v)
    stages = np.asarray(means["stage"].values).astype(int)
    diffs = []
    for stage in np.unique(stages):
        index = np.flatnonzero(stages == stage)
        diffs += [means.isel(layer=index[k + 1]) - means.isel(layer=index[k]) for k in range(0, len(index) - 1, 2)]
    if not diffs:
        return xr.full_like(means.isel(layer=0), np.nan)
    return abs(sum(diffs) / len(diffs))


def closer(summary: Callable, like: str, other: str, var: str) -> Callable:
    """How much closer MoCo (role ``moco``) lies to ``like`` than to ``other`` on ``summary(var)``:
    ``sign(a − b) · (2m − a − b)`` with ``m``, ``a``, ``b`` the three models' values — twice MoCo's
    distance past the midpoint of ``a`` and ``b``, towards ``a``. Between the two it equals
    ``|m − b| − |m − a|``; unlike that, it keeps measuring MoCo when MoCo lies beyond either model (where
    ``|m − b| − |m − a|`` is ``±|a − b|`` whatever ``m`` is: the two models' gap, not evidence about MoCo)."""

    def statistic(r):
        m, a, b = (summary(r[role][var]) for role in ("moco", like, other))
        return np.sign(a - b) * (2 * m - a - b)

    return statistic


