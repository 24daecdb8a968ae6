"""SimMIM's random patch masking (Xie et al. 2022, `MaskGenerator` in the official code)."""

from __future__ import annotations

import math

import torch


class MaskGenerator:
    """Random square masks at ``mask_patch_size`` granularity, served at model-patch resolution.

    The image (``input_size`` pixels square) is divided into ``(input_size / mask_patch_size)**2``
    mask units; ``ceil(mask_ratio * units)`` of them are masked uniformly at random, and each unit
    is upsampled to ``mask_patch_size / model_patch_size`` model patches per side. A sampled mask is
    ``[B, input_size / model_patch_size, input_size / model_patch_size]`` with 1 = masked.
    """

    def __init__(self, input_size: int, mask_patch_size: int, model_patch_size: int, mask_ratio: float):
        if not 0.0 < mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must lie in (0, 1), got {mask_ratio}")
        if mask_patch_size <= 0 or input_size % mask_patch_size:
            raise ValueError(
                f"mask_patch_size={mask_patch_size} must divide input_size={input_size}; "
                "choose a mask patch size such as input_size / 4"
            )
        if model_patch_size <= 0 or mask_patch_size % model_patch_size:
            raise ValueError(
                f"model_patch_size={model_patch_size} must divide mask_patch_size={mask_patch_size}: "
                "a mask unit has to cover whole model patches"
            )
        self.input_size = input_size
        self.mask_patch_size = mask_patch_size
        self.model_patch_size = model_patch_size
        self.mask_ratio = mask_ratio
        self.rand_size = input_size // mask_patch_size  # mask units per side
        self.scale = mask_patch_size // model_patch_size  # model patches per mask unit side
        self.token_count = self.rand_size**2
        self.mask_count = math.ceil(self.token_count * mask_ratio)
        if self.mask_count >= self.token_count:
            raise ValueError(
                f"mask_ratio={mask_ratio} masks all {self.token_count} mask units of {mask_patch_size} px: "
                "nothing stays visible; lower mask_ratio or use a smaller mask_patch_size"
            )

    def __call__(self, batch_size: int = 1, generator: torch.Generator | None = None) -> torch.Tensor:
        """``[B, S, S]`` int mask at model-patch resolution (``S = input_size / model_patch_size``)."""
        scores = torch.rand(batch_size, self.token_count, generator=generator)  # [B, U]
        masked = scores.argsort(dim=1)[:, : self.mask_count]  # [B, mask_count]
        mask = torch.zeros(batch_size, self.token_count, dtype=torch.long)
        mask.scatter_(1, masked, 1)
        mask = mask.view(batch_size, self.rand_size, self.rand_size)  # [B, R, R]
        return mask.repeat_interleave(self.scale, 1).repeat_interleave(self.scale, 2)  # [B, S, S]

    def __repr__(self) -> str:
        return (
            f"MaskGenerator(input_size={self.input_size}, mask_patch_size={self.mask_patch_size}, "
            f"model_patch_size={self.model_patch_size}, mask_ratio={self.mask_ratio})"
        )
