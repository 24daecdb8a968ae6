"""Training augmentations the downstream tasks share, applied to a batch of [0, 1] grey images on the fly.

``paired_hflip`` mirrors images with their dense targets (depth, segmentation); ``photometric_jitter``
(brightness and gamma, as GLPDepth's) serves depth and tracking; ``random_shift`` (reflect padding)
serves classification, where a flip would change a digit, an arrow or an outfit. Pose warps its
crops with its keypoints (:func:`mimstudy.downstream.pose.random_affine`), tracking flips its pairs
with their boxes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

MAX_SHIFT = 2  # px: random_shift's default


def paired_hflip(images: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each (image, dense target) pair mirrored left-right with probability 1/2, one draw per pair."""
    flip = torch.rand(images.shape[0]) < 0.5

    def apply(x: torch.Tensor) -> torch.Tensor:
        return torch.where(flip.view(-1, *[1] * (x.dim() - 1)).to(x.device), x.flip(-1), x)

    return apply(images), apply(targets)


def photometric_jitter(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Per image, with p = 0.5 each: brightness x U(0.8, 1.2), gamma U(0.8, 1.2) (images in [0, 1])."""
    b = images.shape[0]
    ones = torch.ones(b)
    brightness = torch.where(torch.rand(b, generator=generator) < 0.5, 0.8 + 0.4 * torch.rand(b, generator=generator), ones)
    gamma = torch.where(torch.rand(b, generator=generator) < 0.5, 0.8 + 0.4 * torch.rand(b, generator=generator), ones)
    shape = (b, 1, 1, 1)
    return (images.clamp(0, 1) ** gamma.view(shape).to(images) * brightness.view(shape).to(images)).clamp(0, 1)


def random_shift(images: torch.Tensor, max_shift: int = MAX_SHIFT, generator: torch.Generator | None = None) -> torch.Tensor:
    """Each image translated by up to ``max_shift`` px in x and y (reflect padding)."""
    if max_shift <= 0:
        return images
    b, _, h, w = images.shape
    padded = F.pad(images, (max_shift,) * 4, mode="reflect")
    dy, dx = (torch.randint(0, 2 * max_shift + 1, (b,), generator=generator) for _ in range(2))
    return torch.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(b)])
