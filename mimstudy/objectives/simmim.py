"""SimMIM (Xie et al. 2022): masked patches in, raw pixels out, l1 on the masked pixels only.

Works on timm ViTs and Swin Transformers (v1/v2), following the official ``VisionTransformerForSimMIM``
and ``SwinTransformerV2ForSimMIM``: the mask token replaces the patch embeddings of masked patches
(at patch-embedding resolution), the backbone's own layers encode them, and a linear decoder maps the
last feature map back to pixels. Only the encoder differs between the families.

On a RepLKNet (Appendix B) the mask token replaces the output of the 1x1 convolution the backbone
has before its stem (``in_proj``), pixel by pixel inside masked patches, as the paper does ("before
the stem ... a normal 1x1 convolution maps the image into a high-dimensional space where we randomly
mask out some patches"); the stem and stages encode it, and the same linear decoder + pixel shuffle
reconstructs the pixels.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import trunc_normal_
from timm.models.vision_transformer import VisionTransformer

from mimstudy.distributed import sample_rows
from mimstudy.objectives.masking import MaskGenerator
from mimstudy.models.backbones import grid_size_of, is_replknet, is_swin, model_stride, patch_size_of


def replace_masked(tokens: torch.Tensor, mask: torch.Tensor, mask_token: torch.Tensor) -> torch.Tensor:
    """Tokens ``[B, ..., D]`` with those where ``mask`` (``[B, ...]``, 1 = masked) is set replaced by ``mask_token``."""
    w = mask.reshape(tokens.shape[:-1]).unsqueeze(-1).type_as(tokens)  # [B, ..., 1]
    return tokens * (1 - w) + mask_token.to(tokens.dtype) * w


class SimMIM(nn.Module):
    """A timm ViT, Swin or RepLKNet backbone with SimMIM's learnable mask token and one-layer linear decoder.

    The backbone stays an unmodified timm model. The mask is given at patch-embedding resolution
    (``mask_generator.model_patch_size`` = the backbone's patch size). The decoder, a 1x1 convolution
    to ``stride**2 * C`` channels followed by a pixel shuffle, reconstructs the image from the last
    feature map, ``stride`` = :func:`~mimstudy.models.backbones.model_stride` (ViT: the patch size; Swin: the
    patch size times 2 per patch merging).
    """

    def __init__(self, backbone: nn.Module, mask_generator: MaskGenerator, in_chans: int = 1):
        super().__init__()
        if is_swin(backbone):
            self.family = "swin"
            dim = backbone.patch_embed.proj.out_channels  # mask token lives at patch-embedding width
        elif isinstance(backbone, VisionTransformer):
            self.family = "vit"
            dim = backbone.embed_dim
        elif is_replknet(backbone):
            if backbone.in_proj is None:
                raise ValueError("SimMIM on a RepLKNet masks the output of its 1x1 in-projection: build it with "
                                 "in_proj > 0 (the study's replk_* backbones have one)")
            self.family = "convnet"
            dim = backbone.in_proj.out_channels  # mask token lives in the in-projection's space, per pixel
        else:
            raise TypeError(
                f"SimMIM supports timm VisionTransformer, Swin and RepLKNet backbones, got {type(backbone).__name__}"
            )
        if mask_generator.model_patch_size != patch_size_of(backbone):
            raise ValueError(
                f"mask generator works on {mask_generator.model_patch_size}-px patches but the backbone's "
                f"patches are {patch_size_of(backbone)} px"
            )
        image = backbone.img_size if self.family == "convnet" else getattr(backbone.patch_embed, "img_size", None)
        image = image[0] if isinstance(image, (tuple, list)) else image
        if image is not None and mask_generator.input_size != image:
            raise ValueError(
                f"mask generator covers {mask_generator.input_size}-px images, the backbone takes {image} px"
            )
        self.backbone = backbone
        self.mask_generator = mask_generator
        self.in_chans = in_chans
        self.patch_size = patch_size_of(backbone)  # pixels per mask cell
        self.stride = model_stride(backbone)  # pixels per decoded feature
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        trunc_normal_(self.mask_token, std=0.02)
        self.decoder = nn.Sequential(
            nn.Conv2d(backbone.num_features, self.stride**2 * in_chans, kernel_size=1),
            nn.PixelShuffle(self.stride),
        )

    def _encode_vit(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """ViT: images ``[B, C, H, W]``, mask ``[B, h, w]`` -> ``[B, D, h, w]`` (``h = H / patch``)."""
        vit = self.backbone
        tokens = replace_masked(vit.patch_embed(x), mask, self.mask_token)  # [B, L, D]
        tokens = vit.norm_pre(vit.patch_drop(vit._pos_embed(tokens)))  # [B, P + L, D]
        tokens = vit.norm(vit.blocks(tokens))
        patches = tokens[:, vit.num_prefix_tokens:]  # [B, L, D]
        h, w = grid_size_of(vit)
        return patches.transpose(1, 2).reshape(x.shape[0], -1, h, w)  # [B, D, h, w]

    def _encode_swin(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Swin: images ``[B, C, H, W]``, mask ``[B, h, w]`` -> ``[B, D, H / stride, W / stride]``."""
        swin = self.backbone
        tokens = replace_masked(swin.patch_embed(x), mask, self.mask_token)  # [B, h, w, C0] (NHWC)
        tokens = swin.norm(swin.layers(tokens))  # [B, H / stride, W / stride, D]
        return tokens.permute(0, 3, 1, 2).contiguous()  # [B, D, H / stride, W / stride]

    def _encode_convnet(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """RepLKNet: images ``[B, C, H, W]``, pixel mask ``[B, H, W]`` -> ``[B, D, H / stride, W / stride]``."""
        net = self.backbone
        wide = net.embed(x).permute(0, 2, 3, 1)  # [B, H, W, D]: the 1x1 in-projection, channels last
        wide = replace_masked(wide, mask, self.mask_token).permute(0, 3, 1, 2)  # [B, D, H, W]
        return net.forward_embedded(wide)

    def forward_encoder(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Images ``[B, C, H, W]`` and mask ``[B, H / patch, W / patch]`` -> last feature map
        ``[B, D, H / stride, W / stride]``."""
        encode = {"swin": self._encode_swin, "vit": self._encode_vit, "convnet": self._encode_convnet}[self.family]
        return encode(x, mask)

    def forward_decoder(self, z: torch.Tensor) -> torch.Tensor:
        """Feature map ``[B, D, H / stride, W / stride]`` -> reconstruction ``[B, C, H, W]``."""
        return self.decoder(z)

    def forward_loss(self, x: torch.Tensor, x_rec: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """l1 over masked pixels, averaged over masked pixels and channels."""
        pixel_mask = mask.repeat_interleave(self.patch_size, 1).repeat_interleave(self.patch_size, 2)  # [B, H, W]
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
