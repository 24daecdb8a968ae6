"""A ViTDet-style simple feature pyramid over a backbone's last feature map (Li et al., 2022).

The backbone's last kept block's output (:func:`~mimstudy.downstream.backbone.features`, timm's
``forward_intermediates``) of stride ``s`` is brought to each pyramid stride ``t`` by itself alone:
``log2(s / t)`` transposed convolutions (kernel 2, stride 2; GroupNorm and GELU between two) where
``t < s``, the identity where ``t = s``, max pooling by ``t / s`` where ``t > s``. Each level then
gets a 1x1 convolution to :data:`CHANNELS` channels, GroupNorm (one group) and a 3x3 convolution.
At 32 px with the default strides (4, 8, 16): ViT (patch 4, stride 4) gives identity / maxpool 2 /
maxpool 4; SwinV2 (stride 8) deconvolution / identity / maxpool 2; maps of 8x8, 4x4 and 2x2.

The module returns an ``OrderedDict`` of maps keyed ``"0"``, ``"1"``, ... (finest first) and has
``out_channels``, as torchvision's detection models expect of a backbone; the detection
(:mod:`mimstudy.downstream.detection`) and segmentation (:mod:`mimstudy.downstream.upernet`) heads
both read it. Inputs are taken as given: standardise them before.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
import torch.nn as nn

from mimstudy.downstream.backbone import feature_shape, features

CHANNELS = 64
STRIDES = (4, 8, 16)


def _power_of_two(n: float) -> bool:
    return n >= 1 and 2 ** round(math.log2(n)) == n


def resampler(channels: int, ratio: float) -> nn.Module:
    """Brings a map to ``ratio`` times its stride: deconvolutions (``ratio < 1``), identity or max pooling."""
    if ratio == 1:
        return nn.Identity()
    if ratio > 1:
        if not _power_of_two(ratio):
            raise ValueError(f"pyramid strides must be the feature stride times a power of 2, got ratio {ratio}")
        return nn.MaxPool2d(int(ratio))
    if not _power_of_two(1 / ratio):
        raise ValueError(f"pyramid strides must be the feature stride over a power of 2, got ratio {ratio}")
    layers: list[nn.Module] = []
    for i in range(round(math.log2(1 / ratio))):
        if i:
            layers += [nn.GroupNorm(1, channels), nn.GELU()]
        layers.append(nn.ConvTranspose2d(channels, channels, 2, stride=2))
    return nn.Sequential(*layers)


class SimpleFeaturePyramid(nn.Module):
    """``backbone`` + one level per stride of ``strides``: ``forward(images) -> OrderedDict[str, Tensor]``."""

    def __init__(self, backbone: nn.Module, img_size: int, strides: tuple[int, ...] = STRIDES,
                 out_channels: int = CHANNELS, in_chans: int = 1):
        super().__init__()
        self.backbone = backbone
        channels, stride = feature_shape(backbone, img_size, in_chans)
        if any(img_size % t for t in strides):
            raise ValueError(f"img_size {img_size} must be a multiple of every pyramid stride {strides}")
        self.strides, self.out_channels, self.feature_stride = tuple(strides), out_channels, stride
        self.levels = nn.ModuleList(
            nn.Sequential(resampler(channels, t / stride), nn.Conv2d(channels, out_channels, 1, bias=False),
                          nn.GroupNorm(1, out_channels), nn.Conv2d(out_channels, out_channels, 3, padding=1))
            for t in strides)

    def forward(self, images: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
        last = features(self.backbone, images)
        return OrderedDict((str(i), level(last)) for i, level in enumerate(self.levels))
