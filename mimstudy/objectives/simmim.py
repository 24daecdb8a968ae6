"""SimMIM (Xie et al. 2022): masked patches in, raw pixels out, l1 on the masked pixels only."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import trunc_normal_
from timm.models.vision_transformer import VisionTransformer

from ..distributed import sample_rows
from ..masking import MaskGenerator
from ..models import grid_size_of, patch_size_of


class SimMIM(nn.Module):
    """A timm backbone with SimMIM's learnable mask token and one-layer linear decoder.

    The backbone stays an unmodified timm model: the mask token replaces the patch embeddings of
    masked patches before position embedding, the encoder runs the backbone's own blocks, and a
    1x1 convolution to ``stride**2 * C`` channels followed by a pixel shuffle reconstructs the image
    (``stride`` = the encoder's total stride in pixels).
    """

    def __init__(self, backbone: nn.Module, mask_generator: MaskGenerator, in_chans: int = 1):
        super().__init__()
        if not isinstance(backbone, VisionTransformer):
            raise TypeError(f"SimMIM supports timm VisionTransformer backbones, got {type(backbone).__name__}")
        if mask_generator.model_patch_size != patch_size_of(backbone):
            raise ValueError(
                f"mask generator works on {mask_generator.model_patch_size}-px patches but the backbone's "
                f"patches are {patch_size_of(backbone)} px"
            )
        self.backbone = backbone
        self.mask_generator = mask_generator
        self.in_chans = in_chans
        self.stride = patch_size_of(backbone)
        dim = backbone.embed_dim
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        trunc_normal_(self.mask_token, std=0.02)
        self.decoder = nn.Sequential(
            nn.Conv2d(dim, self.stride**2 * in_chans, kernel_size=1),
            nn.PixelShuffle(self.stride),
        )

    def forward_encoder(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Images ``[B, C, H, W]`` and mask ``[B, h, w]`` -> feature map ``[B, D, h, w]``."""
        vit = self.backbone
        tokens = vit.patch_embed(x)  # [B, L, D]
        w = mask.flatten(1).unsqueeze(-1).type_as(tokens)  # [B, L, 1]
        tokens = tokens * (1 - w) + self.mask_token.to(tokens.dtype) * w
        tokens = vit.norm_pre(vit.patch_drop(vit._pos_embed(tokens)))  # [B, P + L, D]
        tokens = vit.norm(vit.blocks(tokens))
        patches = tokens[:, vit.num_prefix_tokens:]  # [B, L, D]
        h, w_ = grid_size_of(vit)
        return patches.transpose(1, 2).reshape(x.shape[0], -1, h, w_)  # [B, D, h, w]

    def forward_decoder(self, z: torch.Tensor) -> torch.Tensor:
        """Feature map ``[B, D, h, w]`` -> reconstruction ``[B, C, H, W]``."""
        return self.decoder(z)

    def forward_loss(self, x: torch.Tensor, x_rec: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """l1 over masked pixels, averaged over masked pixels and channels."""
        pixel_mask = mask.repeat_interleave(self.stride, 1).repeat_interleave(self.stride, 2)  # [B, H, W]
        pixel_mask = pixel_mask.unsqueeze(1).type_as(x)  # [B, 1, H, W]
        l1 = F.l1_loss(x_rec.float(), x.float(), reduction="none")  # [B, C, H, W]
        return (l1 * pixel_mask).sum() / (pixel_mask.sum() * self.in_chans).clamp_min(1.0)

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None, mask: torch.Tensor | None = None):
        """Returns ``(loss, metrics)``; a mask is sampled when none is given.

        Under data parallelism the masks of the whole global batch are sampled and this process's
        rows kept, so a sample's mask does not depend on the number of processes.
        """
        if mask is None:
            mask = sample_rows(self.mask_generator, images.shape[0]).to(images.device)
        x_rec = self.forward_decoder(self.forward_encoder(images, mask))
        loss = self.forward_loss(images, x_rec, mask)
        return loss, {"loss": loss.detach()}
