"""Supervised pre-training: cross-entropy with label smoothing on the backbone's classifier.

With a :class:`~mimstudy.data.augment.SupervisedAugment` (DeiT's crop, flip, mixup and cutmix), training
batches are augmented and the loss is soft-target cross-entropy against the augmentation's targets;
evaluation always sees the plain images and the hard labels.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.loss import SoftTargetCrossEntropy

from mimstudy.data.augment import SupervisedAugment


class Supervised(nn.Module):
    """Classification objective around a timm backbone whose head has ``num_classes`` outputs."""

    def __init__(self, backbone: nn.Module, label_smoothing: float = 0.1, augment: SupervisedAugment | None = None):
        super().__init__()
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must lie in [0, 1), got {label_smoothing}")
        if getattr(backbone, "num_classes", 0) <= 0:
            raise ValueError("supervised pre-training needs a backbone built with num_classes > 0")
        if augment is not None:
            if augment.num_classes != backbone.num_classes:
                raise ValueError(f"augment makes targets over {augment.num_classes} classes, the backbone "
                                 f"predicts {backbone.num_classes}")
            if augment.label_smoothing != label_smoothing:
                raise ValueError(f"augment smooths labels by {augment.label_smoothing}, the objective by "
                                 f"{label_smoothing}: use the same value")
        self.backbone = backbone
        self.label_smoothing = label_smoothing
        self.augment = augment
        self.soft_target_loss = SoftTargetCrossEntropy()

    def forward(self, images: torch.Tensor, labels: torch.Tensor):
        """Returns ``(loss, metrics)`` with the batch's loss and top-1 accuracy against the hard labels."""
        if self.augment is not None and self.training:
            images, targets = self.augment(images, labels)  # [B, C, H, W], [B, K]
            logits = self.backbone(images)  # [B, K]
            loss = self.soft_target_loss(logits.float(), targets)
        else:
            logits = self.backbone(images)  # [B, K]
            loss = F.cross_entropy(logits.float(), labels, label_smoothing=self.label_smoothing)
        accuracy = (logits.argmax(dim=-1) == labels).float().mean()
        return loss, {"loss": loss.detach(), "accuracy": accuracy}
