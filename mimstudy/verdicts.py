"""Verdicts on the paper's claims, computed from stored results with bootstrap uncertainty."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr


def depth_slope(per_layer: np.ndarray) -> float:
    """Least-squares slope of ``per_layer`` values ``[L]`` against layer number 1..L."""
    layers = np.arange(1, per_layer.shape[-1] + 1)
    return float(np.polyfit(layers, per_layer, 1)[0])


def bootstrap_image_means(values: xr.DataArray, n_boot: int, seed: int) -> np.ndarray:
    """``[n_boot, ...]`` means over the ``image`` dim of ``values``, images resampled with replacement.

    The same resampled image indices are used across every other dim, so models probed on the same
    images stay paired.
    """
    rng = np.random.default_rng(seed)
    data = values.transpose(..., "image").values  # [..., N]
    n = data.shape[-1]
    idx = rng.integers(0, n, size=(n_boot, n))
    return np.stack([data[..., i].mean(axis=-1) for i in idx])  # [n_boot, ...]



def bootstrap_samples(values: xr.DataArray, n_boot: int = 1000, seed: int = 0) -> xr.DataArray:
    """:func:`bootstrap_image_means` as a DataArray: dims ``("boot", *other dims)``, ``values``' coords kept.

    E.g. ``bootstrap_samples(probes["attention_entropy"].mean("head"))`` gives ``(boot, layer)``
    layer means for error bars. NaN-padded heads (Swin) stay NaN; reduce over ``head`` first with
    xarray's NaN-skipping ``mean`` to get layer values.
    """
    if "image" not in values.dims:
        raise ValueError(f"values need an 'image' dim to bootstrap over, got dims {values.dims}")
    other = [d for d in values.dims if d != "image"]
    samples = bootstrap_image_means(values.transpose(*other, "image"), n_boot, seed)  # [n_boot, *other]
    coords = {name: coord for name, coord in values.coords.items() if "image" not in coord.dims}
    return xr.DataArray(samples, dims=("boot", *other), coords=coords, name=values.name, attrs=values.attrs)


def image_mean_interval(values: xr.DataArray, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> xr.Dataset:
    """Mean over ``image`` with a percentile bootstrap interval: variables ``mean``, ``low``, ``high``."""
    samples = bootstrap_samples(values, n_boot, seed)
    tail = (1 - level) / 2
    bounds = samples.quantile([tail, 1 - tail], dim="boot", skipna=False)  # NaN padding stays NaN, quietly
    return xr.Dataset(
        {"mean": values.mean("image", skipna=False), "low": bounds.isel(quantile=0, drop=True),
         "high": bounds.isel(quantile=1, drop=True)},
        attrs={"level": level, "n_boot": n_boot, "seed": seed},
    )  # fmt: skip

@dataclass
class Estimate:
    value: float
    low: float
    high: float

    @classmethod
    def from_samples(cls, value: float, samples: np.ndarray) -> "Estimate":
        low, high = np.percentile(samples, [2.5, 97.5])
        return cls(float(value), float(low), float(high))

    @property
    def positive(self) -> bool:
        return self.low > 0

    def __str__(self) -> str:
        return f"{self.value:.3g} [95% CI {self.low:.3g}, {self.high:.3g}]"


@dataclass
class LocalityVerdict:
    """The paper's Section 3.1.1 claim checked on one supervised and one MIM model."""

    supervised: str
    mim: str
    slope_supervised: Estimate  # pixels per layer
    slope_mim: Estimate
    slope_gap: Estimate  # supervised minus MIM
    upper_gap: Estimate  # supervised minus MIM mean distance over the upper half of layers
    verdict: str

    def summary(self) -> str:
        return (
            f"**{self.verdict}.** Mean attention distance changes by {self.slope_supervised} px per layer "
            f"in the supervised model ({self.supervised}) and by {self.slope_mim} px per layer in the MIM "
            f"model ({self.mim}); the supervised slope exceeds the MIM slope by {self.slope_gap} px/layer, "
            f"and in the upper half of the layers supervised heads look {self.upper_gap} px further than MIM heads."
        )


def locality_verdict(distance: xr.DataArray, supervised: str, mim: str, n_boot: int = 1000, seed: int = 0) -> LocalityVerdict:
    """Does attention distance grow with depth under supervision but stay local under MIM?

    ``distance``: dims ``(model, layer, head, image)``. The claim counts as *supported* when (1) the
    supervised model's depth slope is positive, (2) it exceeds the MIM model's slope and (3) the
    supervised model's upper layers attend further than the MIM model's — each with a 95% bootstrap
    interval (over images) excluding zero; *partly supported* when some of the three hold, *not
    supported* when none does.
    """
    pair = distance.sel(model=[supervised, mim]).mean("head")  # [2, L, N]
    n_layers = pair.sizes["layer"]
    upper = slice(n_layers // 2, None)

    def stats(per_layer: np.ndarray) -> np.ndarray:  # [..., 2, L] -> [..., 4]
        sup, mim_ = per_layer[..., 0, :], per_layer[..., 1, :]
        s_sup = np.apply_along_axis(depth_slope, -1, sup)
        s_mim = np.apply_along_axis(depth_slope, -1, mim_)
        gap_upper = sup[..., upper].mean(-1) - mim_[..., upper].mean(-1)
        return np.stack([s_sup, s_mim, s_sup - s_mim, gap_upper], axis=-1)

    point = stats(pair.mean("image").transpose("model", "layer").values)
    samples = stats(bootstrap_image_means(pair.transpose("model", "layer", "image"), n_boot, seed))
    est = [Estimate.from_samples(point[k], samples[:, k]) for k in range(4)]
    checks = [est[0].positive, est[2].positive, est[3].positive]
    verdict = "supported" if all(checks) else "partly supported" if any(checks) else "not supported"
    return LocalityVerdict(supervised, mim, est[0], est[1], est[2], est[3], verdict)
