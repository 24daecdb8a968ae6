"""The paper's probes followed through pre-training: one probe pass per kept epoch snapshot.

A pre-training run with ``keep_epochs`` leaves ``runs/<preset>/<run_id>/epoch_<k>.pt`` (backbone +
config). :func:`probe_trajectory` probes each on the same images and keeps, per epoch, the image
means a reader needs to see whether an effect is emerging, stable or fading: each head's locality
(``1 - d / d_uniform``), normalised entropy (entropy / log of the number of keys), mean KL to
the other heads, and CKA between layers.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn as nn
import xarray as xr

from mimstudy.probes.dataset import probe_model
from mimstudy.probes.locality import locality


def summarize(probes: xr.Dataset) -> xr.Dataset:
    """Image means of one probe pass (:func:`~mimstudy.probes.dataset.probe_model`), scale-free where
    possible: locality against each block's own uniform-attention distance, entropy over the largest
    entropy the block allows (``uniform_distance`` / ``uniform_entropy``, stored with the probes)."""
    out = {}
    if "attention_distance" in probes:
        distance = probes["attention_distance"].mean("image")
        out["attention_distance"] = distance
        out["locality"] = locality(distance, probes["uniform_distance"]).assign_attrs(units="1 - d / d_uniform")
    if "attention_entropy" in probes:
        entropy = probes["attention_entropy"].mean("image")
        out["attention_entropy"] = entropy
        out["normalized_entropy"] = (entropy / probes["uniform_entropy"]).assign_attrs(
            units="fraction of the uniform entropy")
    if "head_kl_per_image" in probes:
        out["head_kl"] = probes["head_kl_per_image"].mean("image")
    if "cka" in probes:
        out["cka"] = probes["cka"]
    return xr.Dataset(out).drop_vars([c for c in ("image",) if c in probes.coords], errors="ignore")


def probe_trajectory(snapshots: Iterable[tuple[int, nn.Module]], images: torch.Tensor, batch_size: int = 64,
                     probes: Iterable[str] = ("distance", "entropy", "kl", "cka")) -> xr.Dataset:
    """:func:`summarize` of each ``(epoch, backbone)`` snapshot, stacked along dim ``epoch``."""
    per_epoch = []
    probes = tuple(probes)
    for epoch, model in snapshots:
        ds = summarize(probe_model(model, images, batch_size, probes=probes))
        per_epoch.append(ds.expand_dims(epoch=[int(epoch)]))
    if not per_epoch:
        raise ValueError("no snapshots to probe: pre-train with keep_epochs (e.g. 'all') to keep epoch backbones")
    return xr.concat(per_epoch, dim="epoch")
