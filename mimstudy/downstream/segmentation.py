"""Semantic segmentation (Appendix D's ADE20K analog): a backbone + UPerNet-lite, scored by mIoU.

Data: GarmentScenes-Seg (:mod:`mimstudy.downstream.garment_scenes`) or any folder in ADE20K's layout
(:mod:`mimstudy.downstream.ade20k`, which also holds the metric). **Head** (App. D's UPerNet, scaled
down): the simple feature pyramid of :mod:`mimstudy.downstream.pyramid` (strides 4, 8, 16; 64
channels) and the UPerNet-lite head of :mod:`mimstudy.downstream.upernet` (pyramid pooling 1, 2, 4 +
FPN), its stride-4 logits upsampled bilinearly to the input; cross-entropy over labelled pixels,
random horizontal flips. The trivial predictor labels every pixel background.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from mimstudy.downstream.ade20k import IGNORE_INDEX, SegmentationPairs, read_split, score
from mimstudy.downstream.augment import paired_hflip
from mimstudy.downstream.classification import predict_argmax
from mimstudy.downstream.garment_scenes import NUM_CLASSES
from mimstudy.downstream.inputs import Standardise
from mimstudy.downstream.pyramid import SimpleFeaturePyramid
from mimstudy.downstream.upernet import UPerHead

METRICS = ("miou", "miou_fg", "aacc")
PRIMARY, HIGHER_IS_BETTER, TRIVIAL = "miou", True, "all background"


class SegmentationObjective(nn.Module):
    """Backbone + simple feature pyramid + UPerNet-lite head; ``forward(images, masks) -> (loss, {"loss": loss})``."""

    def __init__(self, backbone: nn.Module, img_size: int, stats: tuple[float, float], augment: bool = True,
                 num_classes: int = NUM_CLASSES):
        super().__init__()
        self.standardise = Standardise(*stats)
        self.pyramid = SimpleFeaturePyramid(backbone, img_size)
        self.head = UPerHead(self.pyramid.out_channels, len(self.pyramid.strides), num_classes)
        self.augment = augment

    @property
    def backbone(self) -> nn.Module:
        """The timm backbone (for layer-wise lr decay and block counts), held once inside the pyramid."""
        return self.pyramid.backbone

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, num_classes, H, W]``: the head's logits (at the finest pyramid stride) upsampled bilinearly."""
        logits = self.head(self.pyramid(self.standardise(images)))
        return F.interpolate(logits, size=images.shape[-2:], mode="bilinear", align_corners=False)

    def forward(self, images: torch.Tensor, masks: torch.Tensor):
        if self.training and self.augment:
            images, masks = paired_hflip(images, masks)
        loss = F.cross_entropy(self.logits(images), masks, ignore_index=IGNORE_INDEX)
        return loss, {"loss": loss.detach()}


def objective(backbone: nn.Module, train: SegmentationPairs, config, stats: tuple[float, float]) -> SegmentationObjective:
    return SegmentationObjective(backbone, config.img_size, stats, config.augment)


def targets(data: SegmentationPairs) -> torch.Tensor:
    return data.masks


def load(root: str | Path, config) -> tuple[SegmentationPairs, SegmentationPairs]:
    """``config``'s training and test splits of the ADE20K-layout folder ``root``."""
    return (read_split(root, config.train_split, config.img_size, config.train_size, num_classes=NUM_CLASSES),
            read_split(root, config.test_split, config.img_size, config.test_size, num_classes=NUM_CLASSES))


def evaluate(objective: SegmentationObjective, test: SegmentationPairs, device: torch.device) -> tuple[dict, np.ndarray]:
    predicted = predict_argmax(objective, test.images, device, batch_size=128)
    return score(predicted, test.masks.numpy(), NUM_CLASSES), predicted


def trivial(train: SegmentationPairs, test: SegmentationPairs) -> dict[str, float]:
    return score(np.zeros(test.masks.shape, np.int64), test.masks.numpy(), NUM_CLASSES)


def examples(test: SegmentationPairs, predictions: np.ndarray, n: int):
    return {"example_image": (("example", "y", "x"), test.images[:n, 0].numpy()),
            "example_mask": (("example", "y", "x"), test.masks[:n].numpy()),
            "example_predicted_mask": (("example", "y", "x"), np.asarray(predictions[:n]))}, {}

