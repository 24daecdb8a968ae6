"""Kernel probes of a large-kernel ConvNet (Appendix B, Figures 12-14): depth-wise kernels read as attention maps.

The paper "normalize[s] each channel of the depth-wise convolutional kernels (on the dimension of
H x W) to make them as a similar role of attention map, and regard[s] different channels ... as the
attention heads". Here each channel ``c`` of a layer's merged ``k x k`` kernel ``W_c`` (small-kernel
branch and batch norms folded in, :meth:`~mimstudy.models.replknet.RepLKNet.reparameterize`) becomes
a distribution over its ``k^2`` taps,

* ``abs`` (primary): ``p = |W_c| / sum |W_c|``; it ignores the per-channel scale that folding the
  batch norm multiplies into ``W_c`` (``gamma / sigma``), which a softmax would not;
* ``square``: ``p = W_c^2 / sum W_c^2`` and ``softmax``: ``p = softmax(W_c)``, to check that
  conclusions do not hinge on the choice.

The rows ``p: [1, C, 1, k^2]`` (one "query", the output pixel, per channel-head) then go through the
same functions as attention maps (:func:`.distributions.mean_distance`, :func:`.distributions.mean_entropy`,
:func:`.distributions.mean_head_kl`): the distance of tap ``u`` is ``|u - centre|`` grid steps times
the layer's stride in input pixels (:func:`.attention.patch_distances`), entropy is in nats
(``0 .. log k^2``), and KL is between the channels of a layer.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
import torch.nn as nn
import xarray as xr

from mimstudy.models.replknet import RepLKNet
from mimstudy.probes.attention import patch_distances
from mimstudy.probes.distributions import head_kl_per_head, mean_distance, mean_entropy, mean_head_kl

NORMALISATIONS = ("abs", "square", "softmax")
KERNEL_VARIABLES = {  # variable: (long name, units)
    "kernel_distance": ("aggregated distance of the channel's normalised kernel", "pixels"),
    "kernel_entropy": ("entropy of the channel's normalised kernel", "nats"),
    "kernel_kl": ("mean KL divergence from the channel's kernel to the other channels of its layer", "nats"),
}


def kernel_distributions(kernel: torch.Tensor, normalisation: str = "abs") -> torch.Tensor:
    """Depth-wise kernel ``[C, 1, k, k]`` (or ``[C, k, k]``) -> per-channel distributions ``[1, C, 1, k^2]`` (float64)."""
    if normalisation not in NORMALISATIONS:
        raise ValueError(f"normalisation must be one of {NORMALISATIONS}, got {normalisation!r}")
    if kernel.dim() == 4 and kernel.shape[1] != 1 or kernel.dim() not in (3, 4) or kernel.shape[-1] != kernel.shape[-2]:
        raise ValueError(f"a depth-wise kernel is [C, 1, k, k] or [C, k, k], got shape {tuple(kernel.shape)}")
    w = kernel.detach().reshape(kernel.shape[0], -1).double()  # [C, k^2]
    if normalisation == "softmax":
        p = torch.softmax(w, dim=-1)
    else:
        mass = w.abs() if normalisation == "abs" else w.square()
        total = mass.sum(dim=-1, keepdim=True)
        if bool((total == 0).any()):
            raise ValueError(f"channels {torch.nonzero(total[:, 0] == 0).flatten().tolist()} have an all-zero kernel: "
                             f"no {normalisation!r} distribution (use normalisation='softmax')")
        p = mass / total
    return p[None, :, None, :]  # [1, C, 1, k^2]: one image, C heads, one query


def tap_distances(kernel_size: int, stride: float = 1.0) -> torch.Tensor:
    """``[1, k^2]`` distance of each tap from the kernel's centre, in input pixels (grid steps x ``stride``)."""
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd and positive, got {kernel_size}")
    centre = (kernel_size // 2) * kernel_size + kernel_size // 2
    return patch_distances((kernel_size, kernel_size), stride)[centre : centre + 1]  # [1, k^2]


def kernel_statistics(kernel: torch.Tensor, stride: float = 1.0, normalisation: str = "abs",
                      kl_eps: float = 1e-8) -> dict[str, torch.Tensor]:
    """Per-channel ``kernel_distance`` (px), ``kernel_entropy`` (nats) and ``kernel_kl`` (nats, mean KL to the
    other channels; NaN for a single channel) of one depth-wise kernel ``[C, 1, k, k]``, each ``[C]``."""
    p = kernel_distributions(kernel, normalisation)
    stats = {"kernel_distance": mean_distance(p, tap_distances(kernel.shape[-1], stride)),
             "kernel_entropy": mean_entropy(p)}  # fmt: skip
    channels = p.shape[1]
    stats["kernel_kl"] = (head_kl_per_head(mean_head_kl(p, eps=kl_eps)) if channels > 1
                          else torch.full((1,), float("nan"), dtype=torch.float64))
    return stats


@torch.no_grad()
def merged_kernels(model: RepLKNet) -> list[tuple[str, torch.Tensor, int]]:
    """``(name, merged kernel [C, 1, k, k], stride in input px)`` of every large kernel, from an eval-mode
    merged copy (``model`` itself is left as it is)."""
    merged = copy.deepcopy(model).eval().reparameterize()
    return [(name, module.lkb_reparam.weight.detach().cpu(), stride) for name, module, stride in merged.large_kernels()]


def random_init_like(model: RepLKNet, seed: int = 0) -> RepLKNet:
    """A freshly initialised RepLKNet of ``model``'s architecture (the control of every kernel probe)."""
    torch.manual_seed(seed)
    return RepLKNet(**model.config)


def probe_kernels(model: RepLKNet, normalisations=NORMALISATIONS, kl_eps: float = 1e-8, control_seed: int = 0) -> xr.Dataset:
    """Figures 12-14's statistics of every merged large kernel of ``model`` and of a random-init control.

    Returns ``kernel_distance``, ``kernel_entropy``, ``kernel_kl`` with dims ``(weights, layer, channel,
    normalisation)``: ``weights`` = ``trained`` (``model``) or ``random_init`` (:func:`random_init_like`,
    seeded by ``control_seed``), ``layer`` 1..number of large kernels, ``channel`` NaN-padded past a
    layer's width. Coords on ``layer``: ``block`` (module name), ``stage``, ``kernel_size``,
    ``kernel_stride`` (px), ``num_channels``, and the axes' limits ``max_kernel_distance`` (the corner
    tap, ``(k // 2) * sqrt(2) * stride``) and ``max_kernel_entropy`` (``log k^2``).
    """
    if not isinstance(model, RepLKNet):
        raise TypeError(f"kernel probes need a RepLKNet, got {type(model).__name__}")
    normalisations = tuple(normalisations)
    by_weights = {"trained": merged_kernels(model), "random_init": merged_kernels(random_init_like(model, control_seed))}
    layers = by_weights["trained"]
    widths = [kernel.shape[0] for _, kernel, _ in layers]
    data = {var: np.full((2, len(layers), max(widths), len(normalisations)), np.nan) for var in KERNEL_VARIABLES}
    for w, kernels in enumerate(by_weights.values()):
        for i, (_, kernel, stride) in enumerate(kernels):
            for n, normalisation in enumerate(normalisations):
                for var, values in kernel_statistics(kernel, stride, normalisation, kl_eps).items():
                    data[var][w, i, : kernel.shape[0], n] = values.numpy()
    sizes = np.array([kernel.shape[-1] for _, kernel, _ in layers])
    strides = np.array([stride for *_, stride in layers])
    dims = ("weights", "layer", "channel", "normalisation")
    ds = xr.Dataset(
        {var: (dims, values, dict(zip(("long_name", "units"), KERNEL_VARIABLES[var]))) for var, values in data.items()},
        coords={
            "weights": list(by_weights), "layer": np.arange(1, len(layers) + 1), "channel": np.arange(max(widths)),
            "normalisation": list(normalisations),
            "block": ("layer", [name.removesuffix(".large_kernel") for name, *_ in layers]),
            "kernel_stage": ("layer", [int(name.split(".")[1]) for name, *_ in layers]),
            "kernel_size": ("layer", sizes), "kernel_stride": ("layer", strides), "num_channels": ("layer", widths),
            "max_kernel_distance": ("layer", (sizes // 2) * math.sqrt(2) * strides),
            "max_kernel_entropy": ("layer", 2 * np.log(sizes)),
        },
    )  # fmt: skip
    ds.attrs.update(kernel_normalisations=",".join(normalisations), kernel_kl_eps=kl_eps, kernel_control_seed=control_seed,
                    kernel_definition="merged kernel (BN and small-kernel branch folded in, eval mode); per channel "
                    "p = |W|/sum|W| (abs), W^2/sum W^2 (square) or softmax(W); distance = sum_u p(u) |u - centre| x "
                    "stride px; entropy = -sum p log p; KL = mean over the other channels of KL(p_c || p_j) with "
                    f"eps {kl_eps} smoothing")
    return ds


@torch.no_grad()
def merge_error(model: RepLKNet, images: torch.Tensor, merged: RepLKNet | None = None) -> tuple[float, float]:
    """``(max |f(x) - f_merged(x)|, max |f(x)|)`` of the eval-mode outputs on a batch ``images``.

    ``merged``: ``model`` already re-parameterised (made here when not given). ``model`` must be in eval mode.
    """
    if model.training:
        raise ValueError("compare outputs in eval mode (model.eval()): a training-mode BN uses batch statistics")
    merged = merged if merged is not None else copy.deepcopy(model).eval().reparameterize()
    reference, folded = model(images), merged(images)
    return float((reference - folded).abs().max()), float(reference.abs().max())


def block_outputs(model: nn.Module) -> list[nn.Module]:
    """The module ending each large-kernel block pair (its ConvFFN), whose outputs CKA compares layer by layer."""
    return [stage.blocks[j + 1] for stage in model.stages for j in range(0, len(stage.blocks), 2)]
