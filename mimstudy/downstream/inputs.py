"""Downstream inputs standardised as the backbone saw them in pre-training: that dataset's per-channel mean and std.

A checkpoint's stored config names its pre-training ``dataset`` (``fashion_mnist``: Fashion-MNIST's
0.250 / 0.341; ``fashion_mnist_photos``: the photo composites' statistics,
:func:`mimstudy.data.photo_composites.pixel_stats`, about 0.535 / 0.211; ``image_folder``:
ImageNet's RGB 0.485 / 0.456 / 0.406 and 0.229 / 0.224 / 0.225, as the paper's checkpoints were
trained, :mod:`mimstudy.data.imagenet`); a checkpoint made before the config had the field
pre-trained on ``fashion_mnist``, the field's default. Random weights saw no data: they are
standardised as the study's presets pre-train (``RANDOM_INIT_DATASET``, a parameter of
:func:`~mimstudy.downstream.transfer.run_downstream`), so a random-init control gets the same inputs
as the pre-trained models it is compared with. Every task's objective applies a
:class:`Standardise` to its [0, 1] images before the backbone; the statistics have one entry per
channel, as many as the backbone takes (:func:`check_stats`).
"""

from __future__ import annotations

import torch
import torch.nn as nn

RANDOM_INIT_DATASET = "fashion_mnist_photos"  # the pre-training dataset of the quick, cpu and gpu presets
CHECKPOINT_DEFAULT_DATASET = "fashion_mnist"  # PretrainConfig.dataset's default, for configs stored without it

Stats = tuple[tuple[float, ...], tuple[float, ...]]  # per-channel (mean, std)


def pretraining_dataset(pretrained: dict, random_dataset: str = RANDOM_INIT_DATASET) -> str:
    """The dataset a backbone pre-trained on: from its checkpoint's config (``{}`` for random weights: ``random_dataset``)."""
    if not pretrained:
        return random_dataset
    return pretrained.get("dataset", CHECKPOINT_DEFAULT_DATASET)


def dataset_stats(dataset: str) -> Stats:
    """Per-channel pixel mean and std (of [0, 1] images) with which ``dataset`` standardises its inputs."""
    if dataset == "fashion_mnist":
        from mimstudy.data.fashion_mnist import PIXEL_MEAN, PIXEL_STD

        return (float(PIXEL_MEAN),), (float(PIXEL_STD),)
    if dataset == "fashion_mnist_photos":
        from mimstudy.data.photo_composites import pixel_stats

        mean, std = pixel_stats()
        return (float(mean),), (float(std),)
    if dataset == "image_folder":
        from mimstudy.data.imagenet import IMAGENET_MEAN, IMAGENET_STD

        return tuple(IMAGENET_MEAN), tuple(IMAGENET_STD)
    raise ValueError(f"no pixel statistics for pre-training dataset {dataset!r}: known are fashion_mnist, "
                     "fashion_mnist_photos (grey) and image_folder (ImageNet's RGB)")


def check_stats(stats: Stats, channels: int, dataset: str) -> Stats:
    """``stats`` when they have one mean and std per channel of the backbone; else a ValueError naming both."""
    if len(stats[0]) != channels or len(stats[1]) != channels:
        raise ValueError(f"the backbone takes {channels} channel(s) but its pre-training dataset {dataset!r} has "
                         f"statistics for {len(stats[0])}: a checkpoint and its dataset disagree")
    return stats


class Standardise(nn.Module):
    """``[B, C, H, W]`` images in [0, 1] -> ``(x - mean[c]) / std[c]``; the statistics are non-persistent
    buffers (checkpoints are unchanged)."""

    def __init__(self, mean: tuple[float, ...] | float, std: tuple[float, ...] | float):
        super().__init__()
        mean, std = (tuple(float(v) for v in (s if isinstance(s, (tuple, list)) else (s,))) for s in (mean, std))
        if len(mean) != len(std) or not mean:
            raise ValueError(f"one mean and one std per channel, got {len(mean)} and {len(std)}")
        if not all(s > 0 for s in std):
            raise ValueError(f"std must be positive, got {std}")
        self.register_buffer("mean", torch.tensor(mean).view(-1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(-1, 1, 1), persistent=False)

    @property
    def channels(self) -> int:
        return self.mean.shape[0]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[-3] != self.channels:
            raise ValueError(f"images have {images.shape[-3]} channel(s), the statistics {self.channels}")
        return (images - self.mean) / self.std

    def extra_repr(self) -> str:
        return "mean=" + ", ".join(f"{v:.4f}" for v in self.mean.flatten()) + "; std=" + \
            ", ".join(f"{v:.4f}" for v in self.std.flatten())
