"""Scale-free statistics of the stored probes, so that verdicts and figures read on absolute scales.

Per head and image, for one model:

* **locality** ``λ = 1 − d / d_uniform``: 0 for attention spread evenly over the allowed keys, 1 for a
  head that only looks at its own query position, negative for a head that prefers far keys.
  ``d_uniform`` is the block's own uniform-attention distance (:func:`mimstudy.probes.dataset.uniform_reference`):
  for SwinV2 each block has its own, since the masked seams of shifted windows shorten the reachable
  distances of shifted blocks, and a raw distance would alternate between blocks for that reason alone.
* **locality gain** ``g = 1 − d / d_mean_row``: locality beyond the query-independent baseline, each
  attention row replaced by the image's mean row (``mean_row_distance``). A head that always looks at
  the same place of the image (the centre, a bright object) has a small ``d`` and a large ``λ`` but
  ``g ≈ 0``; only attention that follows the query has ``g > 0``.
* **entropy fraction** ``H / H_uniform``: entropy over the largest entropy the block allows (``log N``
  for a ViT of ``N`` patches), from 0 (one key) to 1 (uniform).
* **head KL** in nats (``head_kl_per_image``), and the CKA of block outputs ``(layer, layer_j)``.
"""

from __future__ import annotations

from functools import lru_cache

import xarray as xr

REFERENCE = ("uniform_distance", "uniform_entropy", "max_distance")


@lru_cache(maxsize=None)
def _arch_reference(arch: str) -> xr.Dataset:
    """:func:`~mimstudy.probes.dataset.uniform_reference` of an untrained ``arch`` (geometry only)."""
    from mimstudy.models.backbones import create_backbone
    from mimstudy.probes.dataset import uniform_reference

    return uniform_reference(create_backbone(arch)).load()


def reference(one: xr.Dataset) -> xr.Dataset:
    """``uniform_distance``, ``uniform_entropy`` and ``max_distance`` ``(layer)`` of one model's probes:
    stored with the probes when present, else recomputed from its ``arch`` (they depend on geometry only)."""
    if all(name in one and bool(one[name].notnull().any()) for name in REFERENCE):
        return one[list(REFERENCE)]
    computed = _arch_reference(str(one["arch"].item()))
    return computed.sel(layer=one["layer"].values)


def scale_free(one: xr.Dataset) -> xr.Dataset:
    """The scale-free statistics of one model's probes (no ``model`` dim), per head and image where the
    probes have them: ``locality``, ``locality_gain`` (only when ``mean_row_distance`` was stored),
    ``entropy_fraction``, ``head_kl``, the raw ``distance`` and ``entropy``, ``cka``, and the model's
    ``uniform_distance``, ``uniform_entropy``, ``max_distance`` per layer."""
    if "model" in one.dims:
        raise ValueError("scale_free takes one model's probes: select it first (ds.sel(model=...))")
    ref = reference(one)
    out = {name: ref[name] for name in REFERENCE}
    if "attention_distance" in one:
        out["distance"] = one["attention_distance"]
        out["locality"] = 1 - one["attention_distance"] / ref["uniform_distance"]
    if "mean_row_distance" in one and bool(one["mean_row_distance"].notnull().any()):
        out["locality_gain"] = 1 - one["attention_distance"] / one["mean_row_distance"]
    if "attention_entropy" in one:
        out["entropy"] = one["attention_entropy"]
        out["entropy_fraction"] = one["attention_entropy"] / ref["uniform_entropy"]
    if "head_kl_per_image" in one:
        out["head_kl"] = one["head_kl_per_image"]
    if "cka" in one:
        out["cka"] = one["cka"]
    return xr.Dataset(out)


def references(probes: xr.Dataset) -> xr.Dataset:
    """:func:`reference` of every model of a multi-model probes dataset, ``(model, layer)``: the
    uniform-attention lines and the absolute axis tops of the figures."""
    from mimstudy.book.stored import restrict

    per_model = [reference(restrict(probes, [m]).sel(model=m)).reindex(layer=probes["layer"].values)
                 for m in probes["model"].values]
    return xr.concat(per_model, dim="model", coords="minimal", compat="override").assign_coords(model=probes["model"].values)
