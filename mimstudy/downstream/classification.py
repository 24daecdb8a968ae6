"""Image classification (Section 4.1): a backbone + a linear head on its pooled last feature map.

As Appendix E's fine-tuning: the last block's output (with the final norm) averaged over positions,
a linear layer (weights initialised at N(0, 2e-5) as MAE / SimMIM's heads), cross-entropy with label
smoothing 0.1. Augmentation: a random shift of up to 2 px (reflect padding,
:func:`~mimstudy.downstream.augment.random_shift`), safe for every task (a flip would change a digit,
an arrow or an outfit). Scored by top-1 accuracy and mean
per-class accuracy (the mean over the classes present in the test split of each class's recall;
Kornblith et al.'s metric for Aircraft, Pets, Caltech-101 and Flowers); the trivial predictor is the
training split's majority class.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from mimstudy.downstream.augment import random_shift
from mimstudy.downstream.backbone import feature_shape, features
from mimstudy.downstream.imagefolder import LabelledImages, read_split
from mimstudy.downstream.inputs import Standardise, Stats
from mimstudy.downstream.split import batches, example_images, stream_or_hold

LABEL_SMOOTHING = 0.1
HEAD_INIT_STD = 2e-5
METRICS = ("top1", "mean_class_acc")
PRIMARY, HIGHER_IS_BETTER, TRIVIAL = "top1", True, "majority class"


class ClassifierObjective(nn.Module):
    """Backbone + linear head; ``forward(images, labels) -> (loss, {"loss", "acc"})``."""

    def __init__(self, backbone: nn.Module, num_classes: int, img_size: int, stats: Stats,
                 augment: bool = True, label_smoothing: float = LABEL_SMOOTHING):
        super().__init__()
        self.backbone = backbone
        self.standardise = Standardise(*stats)  # the pre-training dataset's per-channel pixel mean and std
        channels, _ = feature_shape(backbone, img_size, self.standardise.channels)
        self.head = nn.Linear(channels, num_classes)
        nn.init.normal_(self.head.weight, std=HEAD_INIT_STD)
        nn.init.zeros_(self.head.bias)
        self.augment, self.label_smoothing = augment, label_smoothing

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(features(self.backbone, self.standardise(images)).mean((2, 3)))

    def forward(self, images: torch.Tensor, labels: torch.Tensor):
        if self.training and self.augment:
            images = random_shift(images)
        logits = self.logits(images)
        loss = F.cross_entropy(logits, labels, label_smoothing=self.label_smoothing)
        return loss, {"loss": loss.detach(), "acc": (logits.argmax(1) == labels).float().mean().detach()}


@torch.no_grad()
def predict_argmax(objective: nn.Module, images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """The argmax over classes (dim 1) of ``objective.logits`` for a batch of ``images``, in eval mode
    (image labels here, pixel labels for segmentation), on the CPU."""
    objective.eval()
    return objective.logits(images.to(device)).argmax(1).cpu()


def top1(predicted: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.asarray(predicted) == np.asarray(labels)))


def mean_class_accuracy(predicted: np.ndarray, labels: np.ndarray) -> float:
    """The mean over the classes present in ``labels`` of the fraction of their items predicted right."""
    predicted, labels = np.asarray(predicted), np.asarray(labels)
    return float(np.mean([np.mean(predicted[labels == c] == c) for c in np.unique(labels)]))


def score(predicted: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    return {"top1": top1(predicted, labels), "mean_class_acc": mean_class_accuracy(predicted, labels)}


def majority_class(train: LabelledImages) -> int:
    """The most frequent training label (the lowest such label on a tie)."""
    return int(np.bincount(train.labels.numpy()).argmax())


def load(root: str | Path, config, channels: int = 1) -> tuple[LabelledImages, LabelledImages]:
    """``config``'s training and test splits of the ImageFolder tree ``root`` (the test split holds the
    training classes; their number is the head's), read with ``channels``."""
    train = read_split(root, config.train_split, config.img_size, config.train_size, channels=channels)
    test = read_split(root, config.test_split, config.img_size, config.test_size, train.classes, channels)
    return stream_or_hold(train, config), stream_or_hold(test, config)


def objective(backbone: nn.Module, train: LabelledImages, config, stats: Stats) -> ClassifierObjective:
    return ClassifierObjective(backbone, len(train.classes), config.img_size, stats, config.augment)


def evaluate(objective: ClassifierObjective, test: LabelledImages, device: torch.device,
             batch_size: int = 256) -> tuple[dict, np.ndarray]:
    predicted = torch.cat([predict_argmax(objective, images, device) for images, _ in batches(test, batch_size)]).numpy()
    return score(predicted, test.labels.numpy()), predicted


def trivial(train: LabelledImages, test: LabelledImages) -> dict[str, float]:
    return score(np.full(len(test), majority_class(train)), test.labels.numpy())


def examples(test: LabelledImages, predictions: np.ndarray, n: int):
    return {"example_image": example_images(test, n),
            "example_label": (("example",), test.labels[:n].numpy()),
            "example_predicted_label": (("example",), np.asarray(predictions[:n]))}, {}
