"""Supervised pre-training: cross-entropy with label smoothing on the backbone's classifier."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class Supervised(nn.Module):
    """Classification objective around a timm backbone whose head has ``num_classes`` outputs."""

    def __init__(self, backbone: nn.Module, label_smoothing: float = 0.1):
        super().__init__()
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must lie in [0, 1), got {label_smoothing}")
        if getattr(backbone, "num_classes", 0) <= 0:
            raise ValueError("supervised pre-training needs a backbone built with num_classes > 0")
        self.backbone = backbone
        self.label_smoothing = label_smoothing

    def forward(self, images: torch.Tensor, labels: torch.Tensor):
        """Returns ``(loss, metrics)`` with the batch's loss and top-1 accuracy."""
        logits = self.backbone(images)  # [B, K]
        loss = F.cross_entropy(logits.float(), labels, label_smoothing=self.label_smoothing)
        accuracy = (logits.argmax(dim=-1) == labels).float().mean()
        return loss, {"loss": loss.detach(), "accuracy": accuracy}
