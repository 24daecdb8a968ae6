"""Semantic segmentation (Appendix D's ADE20K analog): a backbone + UPerNet-lite, scored by mIoU.

Data: GarmentScenes-Seg (:mod:`mimstudy.downstream.garment_scenes`) or any folder in ADE20K's layout
(:mod:`mimstudy.downstream.ade20k`, which also holds the metric). **Head** (App. D's UPerNet, scaled
down): the simple feature pyramid of :mod:`mimstudy.downstream.pyramid` (strides 4, 8, 16; 64
channels) and the UPerNet-lite head of :mod:`mimstudy.downstream.upernet` (pyramid pooling 1, 2, 4 +
FPN), its stride-4 logits upsampled bilinearly to the input; cross-entropy over labelled pixels,
random horizontal flips. The head's classes come from the data's files (``classes.txt``, or
ADE20K's ``objectInfo150.txt`` with ``reduce_zero_label``). The trivial predictor labels every pixel 0.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from mimstudy.downstream.ade20k import IGNORE_INDEX, SegmentationPairs, confusion_matrix, iou_metrics, read_split
from mimstudy.downstream.augment import paired_hflip
from mimstudy.downstream.classification import predict_argmax
from mimstudy.downstream.inputs import Standardise, Stats
from mimstudy.downstream.split import batches, example_images, stream_or_hold
from mimstudy.downstream.pyramid import SimpleFeaturePyramid
from mimstudy.downstream.upernet import UPerHead

METRICS = ("miou", "miou_fg", "aacc")
PRIMARY, HIGHER_IS_BETTER, TRIVIAL = "miou", True, "all background"


class SegmentationObjective(nn.Module):
    """Backbone + simple feature pyramid + UPerNet-lite head; ``forward(images, masks) -> (loss, {"loss": loss})``."""

    def __init__(self, backbone: nn.Module, img_size: int, stats: Stats, num_classes: int, augment: bool = True):
        super().__init__()
        self.standardise = Standardise(*stats)
        self.pyramid = SimpleFeaturePyramid(backbone, img_size, in_chans=self.standardise.channels)
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


def objective(backbone: nn.Module, train: SegmentationPairs, config, stats: Stats) -> SegmentationObjective:
    """The head has the training split's classes (:func:`~mimstudy.downstream.ade20k.label_convention`)."""
    return SegmentationObjective(backbone, config.img_size, stats, train.num_classes, config.augment)


def load(root: str | Path, config, channels: int = 1) -> tuple[SegmentationPairs, SegmentationPairs]:
    """``config``'s training and test splits of the ADE20K-layout folder ``root``, read with ``channels``."""
    return tuple(stream_or_hold(read_split(root, split, config.img_size, size, channels), config)
                 for split, size in ((config.train_split, config.train_size), (config.test_split, config.test_size)))


def evaluate(objective: SegmentationObjective, test: SegmentationPairs, device: torch.device,
             batch_size: int = 128) -> tuple[dict, np.ndarray]:
    """mIoU from the confusion matrix summed over batches; the predicted label maps (uint8: up to 256 classes)."""
    confusion, predicted = 0, []
    for images, masks in batches(test, batch_size):
        labels = predict_argmax(objective, images, device).numpy()
        confusion = confusion + confusion_matrix(labels, masks.numpy(), test.num_classes)
        predicted.append(labels.astype(np.uint8))
    return iou_metrics(confusion), np.concatenate(predicted)


def trivial(train: SegmentationPairs, test: SegmentationPairs) -> dict[str, float]:
    """Every pixel labelled 0 (background in our analog; the first class, wall, in ADE20K)."""
    confusion = sum(confusion_matrix(np.zeros(masks.shape, np.int64), masks.numpy(), test.num_classes)
                    for _, masks in batches(test, 256))
    return iou_metrics(confusion)


def examples(test: SegmentationPairs, predictions: np.ndarray, n: int):
    masks = torch.cat([masks for _, masks in batches(test, n, limit=n)]).numpy()
    return {"example_image": example_images(test, n),
            "example_mask": (("example", "y", "x"), masks),
            "example_predicted_mask": (("example", "y", "x"), np.asarray(predictions[:n]))}, {}
