"""Run the paper's probes on a model over a set of images, in one streaming pass, into an xarray Dataset.

:func:`probe_model` measures, for every attention block of a timm ViT / DeiT / BEiT or Swin(V2):
mean attention distance, attention entropy and head-to-head KL per image (Sec. 3.1, App. A.1) and
the layer-by-layer CKA of block outputs (Sec. 3.2, App. A.2). Each batch runs through the
unmodified model once: attention maps are reduced to per-image numbers as each block's softmax
is produced (:func:`.extract.attention_hooks`), block outputs feed a :class:`.cka.MinibatchCKA`,
and only per-image scalars and fixed-size accumulators outlive the batch.

A RepLKNet (Appendix B) has no attention: :func:`probe_model` gives it the kernel probes of
:mod:`.kernels` (its merged depth-wise kernels read as attention maps, through the same distance,
entropy and KL functions) and the same CKA, of the outputs of its large-kernel blocks.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import xarray as xr

from mimstudy.models.backbones import grid_size_of, is_replknet, patch_size_of
from mimstudy.probes.attention import patch_attention, patch_distances
from mimstudy.probes.cka import MinibatchCKA
from mimstudy.probes.distributions import (example_distance, example_entropy, example_head_kl, head_kl_per_head,
                                           query_independent)
from mimstudy.probes.extract import allowed_pairs, attention_hooks, check_image_size, window_attention_map
from mimstudy.probes.kernels import block_outputs, merge_error, probe_kernels
from mimstudy.probes.windowed import image_distributions

PROBES = ("distance", "entropy", "kl", "cka")
PER_IMAGE = {  # per-image variable: (probe, long name, units)
    "attention_distance": ("distance", "mean attention distance", "pixels"),
    "attention_entropy": ("entropy", "attention entropy", "nats"),
    "head_kl_per_image": ("kl", "mean KL divergence from the head to the other heads of its layer", "nats"),
    "mean_row_distance": ("distance", "mean attention distance with each attention row replaced by the image's "
                                      "mean row (the query-independent baseline)", "pixels"),
}


@dataclass(frozen=True)
class ProbedBlock:
    """One attention block: its module name, module, head count and Swin stage (``None`` for ViTs)."""

    name: str
    module: nn.Module
    num_heads: int
    stage: int | None


def probed_blocks(model: nn.Module) -> list[ProbedBlock]:
    """Attention blocks in forward order: ``blocks.i`` of a ViT/DeiT/BEiT, ``layers.s.blocks.j`` of a Swin."""
    stages = getattr(model, "layers", None) or ()
    windowed = [(s, j, b) for s, stage in enumerate(stages) for j, b in enumerate(getattr(stage, "blocks", ()))]
    if windowed and all(hasattr(block, "shift_size") for *_, block in windowed):
        return [ProbedBlock(f"layers.{s}.blocks.{j}", block, block.attn.num_heads, s) for s, j, block in windowed]
    if hasattr(model, "blocks") and hasattr(model, "forward_intermediates"):
        return [ProbedBlock(f"blocks.{i}", block, block.attn.num_heads, None) for i, block in enumerate(model.blocks)]
    raise ValueError(f"{type(model).__name__}: not a timm ViT-like (blocks.i) or Swin (layers.s.blocks.j) model")


class ModelProbe:
    """Streaming accumulator behind :func:`probe_model`: :meth:`update` once per batch, then :meth:`to_dataset`.

    Between batches it holds only per-image scalars (numpy ``[layer, head, B]`` per batch), the
    image-summed head KL ``[layer, head, head_j]`` and the minibatch HSIC ``[layer, layer_j]``
    (:attr:`accumulators`); each batch's attention maps and block outputs are reduced and dropped
    during its forward pass.
    """

    def __init__(
        self,
        model: nn.Module,
        probes: Iterable[str] = PROBES,
        cka_unbiased: bool = True,
        kl_eps: float = 1e-8,
        cka_prefix_tokens: bool = False,
    ):
        probes = tuple(probes)
        if not probes or set(probes) - set(PROBES):
            raise ValueError(f"probes must be a non-empty subset of {PROBES}, got {probes}")
        self.model, self.probes, self.kl_eps = model, tuple(p for p in PROBES if p in probes), kl_eps
        self.blocks = probed_blocks(model)
        self.windowed = self.blocks[0].stage is not None
        self.max_heads = max(block.num_heads for block in self.blocks)
        self.prefix = 0 if self.windowed else getattr(model, "num_prefix_tokens", None)
        self.cka_prefix_tokens = bool(cka_prefix_tokens and self.prefix)
        self.cka = MinibatchCKA(unbiased=cka_unbiased) if "cka" in self.probes else None
        self.kl_sum = torch.zeros(len(self.blocks), self.max_heads, self.max_heads, dtype=torch.float64)
        self.per_image: dict[str, list[np.ndarray]] = {v: [] for v, (p, *_) in PER_IMAGE.items() if p in self.probes}
        self.num_images = 0
        if not self.windowed:
            self.grid, self.patch = grid_size_of(model), patch_size_of(model)
            self.distances = patch_distances(self.grid, self.patch)  # [L, L] pixels

    @property
    def min_cka_batch(self) -> int:
        """Fewest images in a batch that can enter CKA: 4 for the unbiased HSIC, else 2."""
        return 4 if self.cka is None or self.cka.unbiased else 2

    @property
    def accumulators(self) -> dict[str, torch.Tensor]:
        """The fixed-size tensors kept between batches (their shapes never depend on the image count)."""
        state = {"kl_sum": self.kl_sum}
        if self.cka is not None and self.cka.hsic_sum is not None:
            state["hsic_sum"] = self.cka.hsic_sum
        return state

    @torch.no_grad()
    def update(self, images: torch.Tensor) -> None:
        """Probe one batch ``[B, C, H, W]``: one forward pass of the model."""
        if self.windowed:
            check_image_size(self.model, images)
        device = next(self.model.parameters()).device
        x, n = images.to(device), images.shape[0]
        batch = {var: np.full((len(self.blocks), self.max_heads, n), np.nan, np.float32) for var in self.per_image}
        index = {block.name: i for i, block in enumerate(self.blocks)}
        seen: list[str] = []

        def on_attention(name: str, attn: torch.Tensor) -> None:  # attn: [B, H, N, N] or [B * nW, H, N, N]
            seen.append(name)
            self._reduce(index[name], attn, x.shape, batch)

        needs_maps = any(p in self.probes for p in ("distance", "entropy", "kl"))
        hooks = (
            attention_hooks(self.model, {b.name: b.module for b in self.blocks}, on_attention)
            if needs_maps
            else contextlib.nullcontext()
        )
        was_training = self.model.training
        self.model.eval()
        try:
            with hooks:
                features = self._forward(x)  # one [B, ...] output per block
        finally:
            self.model.train(was_training)
        if needs_maps and seen != list(index):
            raise RuntimeError(f"attention maps came from blocks {seen}, expected {list(index)}")
        if self.cka is not None and n >= self.min_cka_batch:  # a smaller remainder is left out of CKA
            self.cka.update(features)
        for var, values in batch.items():
            self.per_image[var].append(values)
        self.num_images += n

    def _forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Run the model once; return each block's output when CKA is probed (else an empty list)."""
        if self.windowed:
            outputs: list[torch.Tensor] = []
            handles = [
                b.module.register_forward_hook(lambda _m, _i, out: outputs.append(out))  # [B, H, W, C]
                for b in self.blocks
                if self.cka is not None
            ]
            try:
                self.model.forward_features(x)
            finally:
                for handle in handles:
                    handle.remove()
            return outputs
        kwargs = {"return_prefix_tokens": True} if self.cka_prefix_tokens else {}
        outputs = self.model.forward_intermediates(x, intermediates_only=True, output_fmt="NLC", **kwargs)
        if self.cka_prefix_tokens:
            outputs = [torch.cat([prefix, patches], dim=1) for patches, prefix in outputs]
        return outputs if self.cka is not None else []  # [B, tokens, C] each

    def _reduce(self, layer: int, attn: torch.Tensor, image_shape: torch.Size, batch: dict[str, np.ndarray]) -> None:
        """Per-image distance, entropy and head KL of one block's maps, written into ``batch``."""
        n, heads = image_shape[0], attn.shape[1]
        support = None
        if self.windowed:
            block = self.blocks[layer]
            entry = window_attention_map(block.module, attn, image_shape, block.name)
            p, support, dist = image_distributions(
                entry.attn, entry.window_size, entry.pixel_stride, n, entry.pair_mask
            )  # [B, H, nW * N, N], [B, nW * N, N], [nW * N, N]
        else:
            prefix = attn.shape[-1] - self.distances.shape[0] if self.prefix is None else self.prefix
            p, dist = patch_attention(attn, prefix), self.distances  # [B, H, L, L], [L, L]
            if p.shape[-1] != dist.shape[0]:
                raise ValueError(f"attention over {p.shape[-1]} patch tokens does not match grid {self.grid}")
        if "attention_distance" in batch:
            batch["attention_distance"][layer, :heads] = example_distance(p, dist).T.cpu().numpy()
            baseline = query_independent(p, support)
            batch["mean_row_distance"][layer, :heads] = example_distance(baseline, dist).T.cpu().numpy()
        if "attention_entropy" in batch:
            batch["attention_entropy"][layer, :heads] = example_entropy(p).T.cpu().numpy()
        if "head_kl_per_image" in batch and heads > 1:
            kl = example_head_kl(p, self.kl_eps, support)  # [B, H, H]
            self.kl_sum[layer, :heads, :heads] += kl.sum(dim=0).cpu()
            batch["head_kl_per_image"][layer, :heads] = head_kl_per_head(kl).T.cpu().numpy()

    def to_dataset(self) -> xr.Dataset:
        """The probes of all images seen so far (layout in :func:`probe_model`)."""
        if not self.num_images:
            raise ValueError("no images probed yet: call update(images) first")
        num_heads = np.array([b.num_heads for b in self.blocks])
        valid = np.arange(self.max_heads)[None, :] < num_heads[:, None]  # [layer, head]
        data = {}
        for var, chunks in self.per_image.items():
            _, long_name, units = PER_IMAGE[var]
            values = np.concatenate(chunks, axis=-1)  # [layer, head, image]
            data[var] = (("layer", "head", "image"), values, {"long_name": long_name, "units": units})
        if "kl" in self.probes:
            kl = (self.kl_sum / self.num_images).numpy()  # [layer, head, head_j]
            kl[~(valid[:, :, None] & valid[:, None, :]) | (num_heads < 2)[:, None, None]] = np.nan
            attrs = {"long_name": "KL(head || head_j), mean over images", "units": "nats"}
            data["head_kl"] = (("layer", "head", "head_j"), kl, attrs)
        if self.cka is not None:
            if not self.cka.num_batches:
                raise ValueError(f"CKA needs batches of at least {self.min_cka_batch} images")
            attrs = {"long_name": "linear CKA of block outputs"}
            data["cka"] = (("layer", "layer_j"), self.cka.compute().cpu().numpy(), attrs)
        if "distance" in self.probes or "entropy" in self.probes:
            reference = uniform_reference(self.model)
            data.update({name: (("layer",), reference[name].values, reference[name].attrs) for name in reference})
        layers = np.arange(1, len(self.blocks) + 1)
        coords = {
            "layer": layers,
            "head": np.arange(self.max_heads),
            "image": np.arange(self.num_images),
            "layer_j": layers,
            "head_j": np.arange(self.max_heads),
            "block": ("layer", [b.name for b in self.blocks]),
            "num_heads": ("layer", num_heads),
        }
        if self.windowed:
            stages = np.array([b.stage for b in self.blocks])
            coords.update(stage=("layer", stages), stage_j=("layer_j", stages))
        return xr.Dataset(data, coords=coords, attrs=self._attrs())

    def _attrs(self) -> dict:
        """netCDF-safe attrs (str / number, booleans as 0/1) recording how the probes were taken."""
        attrs = {
            "probes": ",".join(self.probes),
            "architecture": "swin" if self.windowed else "vit",
            "model_class": type(self.model).__name__,
            "distance_units": "pixels",
            "entropy_units": "nats",
            "kl_eps": self.kl_eps,
            "head_padding": "heads >= num_heads[layer] are NaN (Swin stages have different head counts)",
            "cls_in_cka": int(self.cka_prefix_tokens),
        }
        if self.windowed:
            attrs["distance_definition"] = (
                "per image: mean over its windows and query tokens of the attention-weighted window-local "
                "query-key distance times the stage's pixel stride; shifted-window seam pairs removed"
            )
        else:
            attrs["distance_definition"] = (
                "per image: mean over query patches of the attention-weighted patch-centre distance (grid "
                "steps x patch size); prefix tokens dropped and rows renormalised"
            )
            attrs.update(num_prefix_tokens=-1 if self.prefix is None else int(self.prefix), patch_size=self.patch)
        if self.cka is not None:
            attrs.update(
                cka_features=(
                    "Swin block outputs (layers.s.blocks.j) [H, W, C] flattened per image"
                    if self.windowed
                    else "forward_intermediates block outputs before the final norm, NLC "
                    + ("with prefix (CLS) tokens" if self.cka_prefix_tokens else "patch tokens only (no CLS)")
                    + ", tokens x channels flattened per image"
                ),
                cka_estimator="minibatch unbiased HSIC (Nguyen et al. 2021)"
                if self.cka.unbiased
                else "minibatch biased HSIC (depends on batch size)",
                cka_unbiased=int(self.cka.unbiased),
                cka_batches=self.cka.num_batches,
                cka_images=self.cka.num_examples,
            )
        return attrs


def uniform_reference(model: nn.Module) -> xr.Dataset:
    """Distance and entropy of *uniform* attention over each block's allowed keys: the scale of locality.

    For every probed block, attention spread evenly over the keys each query may attend to, reduced by
    the same functions as the real maps (:func:`.distributions.example_distance`,
    :func:`.distributions.example_entropy`): for a ViT, uniform over all patches (the same for every
    block); for a Swin block, uniform over each query's window minus the pairs its shifted-window mask
    removes, so a shifted block whose seam windows allow fewer, nearer keys gets its own, smaller
    baseline. Returns ``uniform_distance (layer)`` in pixels, ``uniform_entropy (layer)`` in nats
    (the largest entropy a block's attention can have, ``log N`` for a ViT of ``N`` patches) and
    ``max_distance (layer)``, the largest query-key distance the block allows, in pixels.
    """
    distance, entropy, farthest = [], [], []
    for block in probed_blocks(model):
        if block.stage is None:
            grid, patch = grid_size_of(model), patch_size_of(model)
            count = grid[0] * grid[1]
            p, dist = torch.full((1, 1, count, count), 1.0 / count), patch_distances(grid, patch)
        else:
            mask = allowed_pairs(block.module, 1)  # [nW, N, N]
            uniform = (mask / mask.sum(dim=-1, keepdim=True)).unsqueeze(1)  # [nW, 1, N, N]
            image = (1, 1, *getattr(model.patch_embed, "img_size"))
            entry = window_attention_map(block.module, uniform, image, block.name)
            p, _, dist = image_distributions(entry.attn, entry.window_size, entry.pixel_stride, 1, entry.pair_mask)
        distance.append(example_distance(p, dist).item())
        entropy.append(example_entropy(p).item())
        farthest.append(dist.to(p)[p[0, 0] > 0].max().item())
    layers = np.arange(1, len(distance) + 1)
    return xr.Dataset(
        {"uniform_distance": ("layer", np.array(distance), {"long_name": "mean distance of uniform attention over "
                                                            "the allowed keys", "units": "pixels"}),
         "uniform_entropy": ("layer", np.array(entropy), {"long_name": "entropy of uniform attention over the "
                                                          "allowed keys (the largest possible)", "units": "nats"}),
         "max_distance": ("layer", np.array(farthest), {"long_name": "largest query-key distance among the "
                                                        "allowed pairs", "units": "pixels"})},
        coords={"layer": layers},
    )


def _batches(images: torch.Tensor | Iterable, batch_size: int) -> Iterable[torch.Tensor]:
    if isinstance(images, torch.Tensor):
        for start in range(0, images.shape[0], batch_size):
            yield images[start : start + batch_size]
    else:
        for batch in images:  # e.g. a DataLoader of images or of (images, labels)
            yield batch[0] if isinstance(batch, (tuple, list)) else batch


def probe_model(
    model: nn.Module,
    images: torch.Tensor | Iterable,
    batch_size: int = 64,
    probes: Iterable[str] = PROBES,
    cka_unbiased: bool = True,
    kl_eps: float = 1e-8,
    cka_prefix_tokens: bool = False,
) -> xr.Dataset:
    """The paper's attention and CKA probes of every block of a timm ViT / DeiT / BEiT / Swin(V2).

    A RepLKNet gets its kernel probes and CKA instead (:func:`probe_convnet`, Appendix B).

    ``images``: ``[N, C, H, W]`` streamed in batches of ``batch_size``, or an iterable of batches
    (e.g. a DataLoader; ``(images, labels)`` tuples are fine). One forward pass per batch; peak memory
    is one batch's activations plus per-image scalars and ``[layer, layer]`` / ``[layer, head, head]``
    accumulators, whatever ``N``. ``probes`` picks among ``"distance"``, ``"entropy"``, ``"kl"``,
    ``"cka"``. The model is probed in eval mode with fused attention off; both are restored after.

    Returns a Dataset with dims ``layer`` (1..number of blocks; Swin blocks numbered consecutively
    over all stages), ``head`` (0..max heads - 1), ``image`` (0..N-1), ``layer_j``, ``head_j``:

    * ``attention_distance (layer, head, image)``, pixels. ViT-like: per image, the mean over query
      patches of the attention-weighted distance between patch centres (grid steps x patch size),
      prefix tokens (``model.num_prefix_tokens``: CLS, distillation, registers) dropped and rows
      renormalised. Swin: window-local distance x the stage's pixel stride, pairs across the
      shifted-window seam removed; per image the mean over its windows and their queries.
    * ``attention_entropy (layer, head, image)``, nats, in ``[0, log(keys)]``, same rows as above.
    * ``head_kl (layer, head, head_j)``: ``KL(head || head_j)`` in nats, mean over images and queries
      (rows smoothed with ``kl_eps``); ``head_kl_per_image (layer, head, image)``: per image, the
      mean over ``j != head`` of that image's ``KL(head || j)`` (the small dots of Fig. 4), for
      bootstrapping. Their image mean equals ``head_kl``'s off-diagonal row mean. NaN for a layer
      with a single head.
    * ``cka (layer, layer_j)``: linear CKA between block outputs, accumulated by
      :class:`.cka.MinibatchCKA` (unbiased HSIC averaged over batches; ``cka_unbiased=False``: biased
      HSIC, batch-size dependent). Batches of fewer than 4 (biased: 2) images are left out of CKA
      (attrs ``cka_images``, ``cka_batches``). Features: ViT-like, ``forward_intermediates`` block
      outputs (before the final norm) in NLC, by default patch tokens only — the paper compares
      "feature maps", and the CLS token is not part of the spatial map — or with the prefix tokens
      when ``cka_prefix_tokens=True`` (attr ``cls_in_cka``); Swin, each block's output
      ``[H, W, C]`` read by a forward hook (``forward_intermediates`` only gives stage outputs).
      All tokens x channels flattened per image.

    Coords: ``block (layer)`` module names, ``num_heads (layer)``; Swin also ``stage (layer)`` and
    ``stage_j (layer_j)`` (0-based). Stages with fewer heads than ``head`` has are NaN-padded, so
    ``.mean("head")`` (xarray skips NaN) averages a layer's real heads; use ``np.nanmean`` on raw
    arrays. Attrs record units, ``kl_eps``, the CKA features and estimator, ``cls_in_cka`` (0/1).
    """
    if is_replknet(model):
        return probe_convnet(model, images, batch_size, probes, cka_unbiased, kl_eps)
    probe = ModelProbe(model, probes, cka_unbiased, kl_eps, cka_prefix_tokens)
    if probe.cka is not None and isinstance(images, torch.Tensor):
        if min(batch_size, images.shape[0]) < probe.min_cka_batch:
            raise ValueError(
                f"CKA needs batches of at least {probe.min_cka_batch} images, "
                f"got batch_size={batch_size} for {images.shape[0]} images"
            )
    for batch in _batches(images, batch_size):
        probe.update(batch)
    ds = probe.to_dataset()
    ds.attrs["batch_size"] = batch_size
    return ds


@torch.no_grad()
def probe_convnet(model: nn.Module, images: torch.Tensor | Iterable, batch_size: int = 64, probes: Iterable[str] = PROBES,
                  cka_unbiased: bool = True, kl_eps: float = 1e-8) -> xr.Dataset:
    """:func:`probe_model` for a RepLKNet: kernel probes for ``distance``/``entropy``/``kl`` and CKA over images.

    ``distance``, ``entropy`` or ``kl`` give :func:`.kernels.probe_kernels`'s ``kernel_distance``,
    ``kernel_entropy`` and ``kernel_kl`` (dims ``weights, layer, channel, normalisation``: they read
    weights, not images, and include a random-init control). ``cka``: linear CKA ``(layer, layer_j)``
    between the outputs of the large-kernel blocks (each RepLK block with its ConvFFN), NCHW flattened
    per image, accumulated by :class:`.cka.MinibatchCKA` in eval mode. Attrs ``merge_max_abs_error``
    and ``merge_max_rel_error``: how far :meth:`~mimstudy.models.replknet.RepLKNet.reparameterize`
    moves the outputs on these images.
    """
    probes = tuple(probes)
    if not probes or set(probes) - set(PROBES):
        raise ValueError(f"probes must be a non-empty subset of {PROBES}, got {probes}")
    kernels = probe_kernels(model, kl_eps=kl_eps)
    wanted = {"distance": "kernel_distance", "entropy": "kernel_entropy", "kl": "kernel_kl"}
    ds = kernels[[var for probe, var in wanted.items() if probe in probes]]
    cka = MinibatchCKA(unbiased=cka_unbiased) if "cka" in probes else None
    seen, errors = [], []
    was_training = model.training
    model.eval()
    merged = copy.deepcopy(model).reparameterize()
    try:
        for batch in _batches(images, batch_size):
            batch = batch.to(next(model.parameters()).device)
            if cka is not None and batch.shape[0] >= (4 if cka_unbiased else 2):
                outputs: list[torch.Tensor] = []
                handles = [m.register_forward_hook(lambda _m, _i, out: outputs.append(out.flatten(1)))
                           for m in block_outputs(model)]
                try:
                    model.forward_features(batch)
                finally:
                    for handle in handles:
                        handle.remove()
                cka.update(outputs)
            errors.append(merge_error(model, batch, merged))
            seen.append(batch.shape[0])
    finally:
        model.train(was_training)
    if not seen:
        raise ValueError("no images to probe")
    if cka is not None:
        if not cka.num_batches:
            raise ValueError(f"CKA needs batches of at least {4 if cka_unbiased else 2} images")
        layers = ds["layer"].values
        ds = ds.assign(cka=xr.DataArray(cka.compute().cpu().numpy(), dims=("layer", "layer_j"),
                                        coords={"layer": layers, "layer_j": layers},
                                        attrs={"long_name": "linear CKA of large-kernel block outputs"}))
        ds.attrs.update(cka_unbiased=int(cka.unbiased), cka_batches=cka.num_batches, cka_images=cka.num_examples,
                        cka_features="outputs of each large-kernel block (RepLK block + ConvFFN), NCHW flattened per image")
    ds.attrs.update(probes=",".join(p for p in PROBES if p in probes), architecture="convnet",
                    model_class=type(model).__name__, distance_units="pixels", entropy_units="nats", kl_eps=kl_eps,
                    merge_max_abs_error=max(e[0] for e in errors),
                    merge_max_rel_error=max(e[0] for e in errors) / max(max(e[1] for e in errors), 1e-30),
                    num_images=sum(seen), batch_size=batch_size)
    return ds


def probe_attention(model: nn.Module, images: torch.Tensor, batch_size: int = 64) -> xr.Dataset:
    """Per-image mean attention distance only: ``probe_model(..., probes=("distance",))``.

    ``attention_distance`` has dims ``(layer, head, image)`` in pixels, ``layer`` from 1 to depth.
    """
    return probe_model(model, images, batch_size, probes=("distance",))
