"""Attention maps from unmodified timm models, via ``timm.utils.AttentionExtract``."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn as nn
from timm.utils import AttentionExtract


def disable_fused_attention(model: nn.Module) -> nn.Module:
    """Switch every attention module to the explicit softmax path so its maps can be traced.

    timm's fused kernel (``F.scaled_dot_product_attention``) never materialises the softmax;
    the per-instance ``fused_attn`` flag selects timm's own unfused code, numerically the same.
    """
    for module in model.modules():
        if hasattr(module, "fused_attn"):
            module.fused_attn = False
    return model


@contextmanager
def unfused_attention(model: nn.Module) -> Iterator[nn.Module]:
    """:func:`disable_fused_attention` for the duration of a ``with`` block, then restore each flag."""
    flags = {module: module.fused_attn for module in model.modules() if hasattr(module, "fused_attn")}
    disable_fused_attention(model)
    try:
        yield model
    finally:
        for module, flag in flags.items():
            module.fused_attn = flag


@contextmanager
def attention_hooks(
    model: nn.Module, blocks: dict[str, nn.Module], callback: Callable[[str, torch.Tensor], None]
) -> Iterator[None]:
    """Call ``callback(block name, [B, H, N, N] softmax attention)`` for each block during any forward.

    Forward hooks on each block's ``attn.attn_drop``, the modules ``timm.utils.AttentionExtract``
    hooks by default (``method="hook"``): with fused attention off (done here, undone on exit)
    timm applies them to the softmax output, unchanged in eval mode. Unlike the fx route of
    :class:`AttentionMaps`, the unmodified model runs, so one forward (e.g.
    ``forward_intermediates``) also yields features, and each map can be reduced as soon as its
    block has run instead of holding all blocks' maps. Hooks are removed on exit.
    """
    handles = []
    with unfused_attention(model):
        try:
            for name, block in blocks.items():
                dropout = getattr(getattr(block, "attn", None), "attn_drop", None)
                if dropout is None:
                    raise ValueError(f"{name}: no attn.attn_drop module to read the attention maps from")
                handles.append(dropout.register_forward_hook(lambda _m, _i, out, name=name: callback(name, out)))
            yield
        finally:
            for handle in handles:
                handle.remove()


class AttentionMaps:
    """Callable returning ``{block name: [B, H, N, N]}`` softmax attention of every block."""

    def __init__(self, model: nn.Module):
        self.extractor = AttentionExtract(disable_fused_attention(model), method="fx")
        self.names = list(self.extractor.names)

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.extractor(images)


@dataclass(frozen=True)
class WindowAttentionMap:
    """One Swin block's window attention and the geometry the window probes need.

    ``attn``: ``[B * nW, H, N, N]`` softmax maps, window ``w`` of image ``b`` at ``b * nW + w``;
    ``pair_mask``: bool ``[B * nW, N, N]``, True = the pair may attend (False only across the seam
    of shifted windows); ``pixel_stride``: input pixels per token at this block's stage.
    """

    attn: torch.Tensor
    window_size: tuple[int, int]
    shift_size: tuple[int, int]
    pixel_stride: float
    pair_mask: torch.Tensor

    @property
    def shifted(self) -> bool:
        return any(self.shift_size)


def allowed_pairs(block: nn.Module, num_images: int) -> torch.Tensor:
    """``[B * nW, N, N]`` bool: pairs that the block's shifted-window mask lets attend."""
    rows, cols = (math.ceil(r / w) for r, w in zip(block.input_resolution, block.window_size))
    area = block.window_size[0] * block.window_size[1]
    if any(block.shift_size):
        additive = block.attn_mask if block.attn_mask is not None else block.get_attn_mask()  # [nW, N, N]
        allowed = additive == 0  # timm puts -100 on pairs from different pre-roll regions
    else:
        allowed = torch.ones(rows * cols, area, area, dtype=torch.bool)
    return allowed.cpu().repeat(num_images, 1, 1)


class SwinAttentionMaps:
    """Callable returning ``{block name: WindowAttentionMap}`` for every block of a timm Swin(V2).

    Traces the ``*attn.softmax`` nodes of ``WindowAttention`` with ``AttentionExtract`` (fx), the same
    route as :class:`AttentionMaps`; works for ``swinv2_*`` and, with fused attention disabled, for
    ``swin_*``. Block geometry comes from the blocks' own ``window_size``, ``shift_size``,
    ``input_resolution`` and shifted-window ``attn_mask``. Consecutive blocks alternate regular and
    shifted windows (no shift when a stage's map fits in one window). The images must have the size
    the model was built for. If a window size does not divide a stage's map, timm pads the map with
    zero tokens that are not masked; they then count as ordinary keys here too.
    """

    def __init__(self, model: nn.Module):
        self.model = model
        with warnings.catch_warnings():  # torchvision notes that Swin's eval graph lacks train-only nodes
            warnings.filterwarnings("ignore", message="NOTE: The nodes obtained by tracing", category=UserWarning)
            self.extractor = AttentionExtract(disable_fused_attention(model), names=["*attn.softmax"], method="fx")
        self.blocks = {name.removesuffix(".attn.softmax"): name for name in self.extractor.names}

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> dict[str, WindowAttentionMap]:
        check_image_size(self.model, images)
        maps = self.extractor(images)
        return {
            block_name: window_attention_map(self.model.get_submodule(block_name), maps[node], images.shape, block_name)
            for block_name, node in self.blocks.items()
        }


def check_image_size(model: nn.Module, images: torch.Tensor) -> None:
    """Raise ``ValueError`` unless ``images`` ``[B, C, H, W]`` have the size the Swin model was built for."""
    expected = tuple(getattr(model.patch_embed, "img_size", None) or ())
    if expected and tuple(images.shape[-2:]) != expected:
        raise ValueError(
            f"images are {tuple(images.shape[-2:])} pixels, the model was built for {expected}: "
            "build it with img_size matching the images"
        )


def window_attention_map(
    block: nn.Module, attn: torch.Tensor, image_shape: tuple[int, ...], block_name: str = "block"
) -> WindowAttentionMap:
    """Wrap one Swin block's softmax maps ``[B * nW, H, N, N]`` with the block's window geometry.

    ``image_shape``: the input batch's shape ``[B, C, H, W]`` (only ``B``, ``H`` and ``W`` are used).
    """
    stride_h, stride_w = (size / res for size, res in zip(image_shape[-2:], block.input_resolution))
    if stride_h != stride_w:
        raise ValueError(f"{block_name}: anisotropic token stride {stride_h} x {stride_w} pixels")
    pair_mask = allowed_pairs(block, image_shape[0]).to(attn.device)  # [B * nW, N, N]
    if pair_mask.shape[0] != attn.shape[0]:
        raise ValueError(
            f"{block_name}: {attn.shape[0]} attention windows, expected {pair_mask.shape[0]}; "
            f"are the images {tuple(image_shape[-2:])} the size the model was built for?"
        )
    return WindowAttentionMap(attn, tuple(block.window_size), tuple(block.shift_size), float(stride_h), pair_mask)


def swin_attention_maps(model: nn.Module, images: torch.Tensor) -> dict[str, WindowAttentionMap]:
    """One-off :class:`SwinAttentionMaps` call; build the class once to probe many batches."""
    return SwinAttentionMaps(model)(images)
