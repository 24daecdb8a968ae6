"""Attention maps from unmodified timm models, via ``timm.utils.AttentionExtract``."""

from __future__ import annotations

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


class AttentionMaps:
    """Callable returning ``{block name: [B, H, N, N]}`` softmax attention of every block."""

    def __init__(self, model: nn.Module):
        self.extractor = AttentionExtract(disable_fused_attention(model), method="fx")
        self.names = list(self.extractor.names)

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.extractor(images)
