"""Downstream inputs standardised as the backbone saw them in pre-training: that dataset's pixel mean and std.

A checkpoint's stored config names its pre-training ``dataset`` (``fashion_mnist``: Fashion-MNIST's
0.250 / 0.341; ``fashion_mnist_photos``: the photo composites' statistics,
:func:`mimstudy.data.photo_composites.pixel_stats`, about 0.535 / 0.211); a checkpoint made before
the config had the field pre-trained on ``fashion_mnist``, the field's default. Random weights saw
no data: they are standardised as the study's presets pre-train (``RANDOM_INIT_DATASET``, a
parameter of :func:`~mimstudy.downstream.transfer.run_downstream`), so a random-init control gets
the same inputs as the pre-trained models it is compared with. Every task's objective applies a
:class:`Standardise` to its [0, 1] grey crops before the backbone.
"""

from __future__ import annotations

import torch
import torch.nn as nn

RANDOM_INIT_DATASET = "fashion_mnist_photos"  # the pre-training dataset of the quick, cpu and gpu presets
CHECKPOINT_DEFAULT_DATASET = "fashion_mnist"  # PretrainConfig.dataset's default, for configs stored without it


def pretraining_dataset(pretrained: dict, random_dataset: str = RANDOM_INIT_DATASET) -> str:
    """The dataset a backbone pre-trained on: from its checkpoint's config (``{}`` for random weights: ``random_dataset``)."""
    if not pretrained:
        return random_dataset
    return pretrained.get("dataset", CHECKPOINT_DEFAULT_DATASET)


def dataset_stats(dataset: str) -> tuple[float, float]:
    """Pixel mean and std (of [0, 1] grey images) with which ``dataset`` standardises its inputs."""
    if dataset == "fashion_mnist":
        from mimstudy.data.fashion_mnist import PIXEL_MEAN, PIXEL_STD

        return float(PIXEL_MEAN), float(PIXEL_STD)
    if dataset == "fashion_mnist_photos":
        from mimstudy.data.photo_composites import pixel_stats

        return pixel_stats()
    raise ValueError(f"no grey pixel statistics for pre-training dataset {dataset!r}: the downstream tasks are "
                     "single-channel; use a backbone pre-trained on fashion_mnist or fashion_mnist_photos")


class Standardise(nn.Module):
    """``[0, 1]`` grey images -> ``(x - mean) / std``; holds no state (checkpoints are unchanged)."""

    def __init__(self, mean: float, std: float):
        super().__init__()
        if not std > 0:
            raise ValueError(f"std must be positive, got {std}")
        self.mean, self.std = float(mean), float(std)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return (images - self.mean) / self.std

    def extra_repr(self) -> str:
        return f"mean={self.mean:.4f}, std={self.std:.4f}"
