"""A UPerNet-lite decode head (Xiao et al., 2018; mmseg's ``UPerHead``) over the simple feature pyramid.

Input: the ``OrderedDict`` of :class:`~mimstudy.downstream.pyramid.SimpleFeaturePyramid` (finest
first, ``channels`` each). A pyramid pooling module on the coarsest map (average pooling to 1x1,
2x2 and 4x4 bins, each a 1x1 convolution, upsampled back and concatenated with the map, then a 3x3
convolution), an FPN top-down path (1x1 laterals, upsample-and-add, a 3x3 convolution per level),
every level upsampled to the finest and concatenated, a 3x3 fusion convolution and a 1x1
classifier: ``[B, num_classes, h, w]`` logits at the finest stride. Convolutions are followed by
BatchNorm and ReLU (mmseg's ``ConvModule``); upsampling is bilinear.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F

POOL_SCALES = (1, 2, 4)


def conv_bn_relu(in_channels: int, out_channels: int, kernel: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel, padding=kernel // 2, bias=False),
                         nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


def _resize(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


class UPerHead(nn.Module):
    """``OrderedDict`` of ``levels`` maps with ``channels`` channels -> ``[B, num_classes, h0, w0]`` logits."""

    def __init__(self, channels: int, levels: int, num_classes: int, pool_scales: tuple[int, ...] = POOL_SCALES):
        super().__init__()
        self.pool_scales = tuple(pool_scales)
        self.ppm = nn.ModuleList(conv_bn_relu(channels, channels, 1) for _ in pool_scales)
        self.bottleneck = conv_bn_relu(channels * (len(pool_scales) + 1), channels, 3)
        self.laterals = nn.ModuleList(conv_bn_relu(channels, channels, 1) for _ in range(levels - 1))
        self.fpn = nn.ModuleList(conv_bn_relu(channels, channels, 3) for _ in range(levels - 1))
        self.fuse = conv_bn_relu(channels * levels, channels, 3)
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(self, pyramid: "OrderedDict[str, torch.Tensor]") -> torch.Tensor:
        maps = list(pyramid.values())
        top = maps[-1]
        pooled = [_resize(conv(F.adaptive_avg_pool2d(top, s)), top) for conv, s in zip(self.ppm, self.pool_scales)]
        laterals = [lateral(x) for lateral, x in zip(self.laterals, maps[:-1])] + [self.bottleneck(torch.cat([top, *pooled], 1))]
        for i in range(len(laterals) - 1, 0, -1):  # top-down
            laterals[i - 1] = laterals[i - 1] + _resize(laterals[i], laterals[i - 1])
        outs = [conv(x) for conv, x in zip(self.fpn, laterals[:-1])] + [laterals[-1]]
        fused = self.fuse(torch.cat([outs[0]] + [_resize(x, outs[0]) for x in outs[1:]], 1))
        return self.classifier(fused)
