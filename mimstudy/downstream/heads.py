"""Deconvolution heads (SimpleBaseline, Xiao et al., 2018; the depth head of the paper's App. E) and heatmaps.

The head upsamples the backbone's last feature map (stride ``s``) with ``log2(s)`` transposed
convolutions (stride 2, BN, ReLU) back to the input resolution, then a final convolution gives the
outputs. Pose (SimpleBaseline): kernel 4 / padding 1, 64 filters, a 1x1 convolution to one heatmap
per keypoint; stride-1 heatmaps, since at 32 px one pixel of error already costs a sizeable share of
a joint's OKS. Depth (App. E): kernel 2, 32 filters, a 3x3 convolution. Initialisation as in
SimpleBaseline's ``pose_resnet.py``: deconvolutions and the final convolution N(0, 0.001), zero
biases, BN (1, 0).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from mimstudy.downstream.backbone import feature_shape, features
from mimstudy.downstream.inputs import Standardise, Stats


class DeconvHead(nn.Module):
    """``[B, C, h, w]`` features of stride ``stride`` -> ``[B, out_channels, h * stride, w * stride]``."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, width: int = 64, kernel: int = 4,
                 final_kernel: int = 1):
        super().__init__()
        if stride < 1 or 2 ** round(math.log2(stride)) != stride:
            raise ValueError(f"the feature stride must be a power of 2, got {stride}")
        layers, channels = [], in_channels
        for _ in range(round(math.log2(stride))):
            layers += [nn.ConvTranspose2d(channels, width, kernel, stride=2, padding=(kernel - 2) // 2, bias=False),
                       nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
            channels = width
        self.deconv = nn.Sequential(*layers)
        self.final = nn.Conv2d(channels, out_channels, final_kernel, padding=final_kernel // 2)
        for m in self.modules():
            if isinstance(m, (nn.ConvTranspose2d, nn.Conv2d)):
                nn.init.normal_(m.weight, std=0.001)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.final(self.deconv(features))


class DenseObjective(nn.Module):
    """The body the dense tasks share (pose heatmaps, depth): the backbone on inputs
    standardised with its pre-training dataset's per-channel pixel mean and std, and a :class:`DeconvHead` with
    ``out_channels`` outputs over its last feature map (``head`` : the head's keyword arguments)."""

    def __init__(self, backbone: nn.Module, img_size: int, stats: Stats, out_channels: int, **head):
        super().__init__()
        self.backbone = backbone
        self.standardise = Standardise(*stats)
        channels, stride = feature_shape(backbone, img_size, self.standardise.channels)
        self.head = DeconvHead(channels, out_channels, stride, **head)

    def dense(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, out_channels, H, W]`` head outputs at the input resolution."""
        return self.head(features(self.backbone, self.standardise(images)))


def gaussian_heatmaps(keypoints: torch.Tensor, size: int, sigma: float = 1.0) -> torch.Tensor:
    """``[B, K, 2+]`` keypoints (continuous pixels, pixel ``i`` covers ``[i, i + 1)``) -> ``[B, K, size, size]``."""
    centers = torch.arange(size, dtype=keypoints.dtype, device=keypoints.device) + 0.5
    dx = centers[None, None, None, :] - keypoints[..., 0, None, None]
    dy = centers[None, None, :, None] - keypoints[..., 1, None, None]
    return torch.exp(-(dx ** 2 + dy ** 2) / (2 * sigma ** 2))


def decode_heatmaps(heatmaps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Argmax of each heatmap shifted a quarter pixel toward the higher neighbour (SimpleBaseline).

    Returns ``xy [B, K, 2]`` (continuous pixels) and the peak values ``[B, K]``.
    """
    b, k, h, w = heatmaps.shape
    flat = heatmaps.reshape(b, k, -1)
    peak, index = flat.max(dim=-1)
    y, x = (index // w), (index % w)
    padded = torch.nn.functional.pad(heatmaps, (1, 1, 1, 1), mode="replicate")
    bi, ki = torch.meshgrid(torch.arange(b), torch.arange(k), indexing="ij")
    dx = padded[bi, ki, y + 1, x + 2] - padded[bi, ki, y + 1, x]
    dy = padded[bi, ki, y + 2, x + 1] - padded[bi, ki, y, x + 1]
    xy = torch.stack([x.float() + 0.5 + 0.25 * torch.sign(dx), y.float() + 0.5 + 0.25 * torch.sign(dy)], dim=-1)
    return xy, peak
