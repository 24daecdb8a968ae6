"""Size and compute of a backbone: parameter count and forward FLOPs of one image.

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` (matrix products and
convolutions, 2 FLOPs per multiply-add; norms, softmax and activations are not counted). Fused
attention is switched off while counting, since the counter does not see inside the CPU kernel of
``scaled_dot_product_attention``; timm's unfused path computes the same products explicitly. Large
depth-wise kernels that a RepLKNet computes by FFT on the CPU are counted as the direct convolution
they equal (the counter does not see FFTs).
"""

from __future__ import annotations

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from mimstudy.models.replknet import LargeDepthwiseConv2d


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (all, or only those with ``requires_grad``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


@torch.no_grad()
def count_flops(model: nn.Module, input_shape: tuple[int, ...] = (1, 1, 32, 32)) -> int:
    """Forward FLOPs of ``model`` on one zero batch of ``input_shape`` (eval mode, fused attention off).

    The model may live on the ``meta`` device (``create_backbone(..., device="meta")``): counting
    then needs no memory and no weight initialisation.
    """
    fused = {m: m.fused_attn for m in model.modules() if hasattr(m, "fused_attn")}
    impls = {m: m.impl for m in model.modules() if isinstance(m, LargeDepthwiseConv2d)}
    was_training = model.training
    try:
        for module in fused:
            module.fused_attn = False
        for module in impls:
            module.impl = "direct"
        model.eval()
        device = next(model.parameters()).device
        with FlopCounterMode(display=False) as counter:
            model(torch.zeros(input_shape, device=device))
        return int(counter.get_total_flops())
    finally:
        for module, flag in fused.items():
            module.fused_attn = flag
        for module, impl in impls.items():
            module.impl = impl
        model.train(was_training)
