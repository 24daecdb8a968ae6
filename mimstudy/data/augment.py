"""Random augmentations of standardised image batches ``[B, C, H, W]``, drawn independently per image.

Two recipes built on the same per-sample operations:

- :class:`SupervisedAugment`, DeiT's: random-resized crop and horizontal flip, then mixup/cutmix
  through ``timm.data.Mixup``, which also gives the soft (label-smoothed) targets.
- :class:`MoCoViews`, MoCo v3's (BYOL's recipe) adapted to grayscale: two views of each image,
  each with its own crop, flip, brightness/contrast jitter, gaussian blur and solarization.

Why batched ops and not a loop of ``torchvision.transforms.v2`` over the images: such a loop costs
about 1 ms per image and view on one CPU core (0.6 s per MoCo step of 256 images) and one kernel
launch per op and image on a GPU. Here every op is one tensor operation over the batch with one
parameter per image. The parameters follow torchvision's distributions (e.g.
``v2.RandomResizedCrop``'s ten tries then a centre crop) and each op reproduces the matching
``torchvision.transforms.v2.functional`` call image by image; ``tests/test_augment.py`` checks that.

Randomness: every parameter is drawn on the CPU from torch's global default generator (``torch.rand``
and friends with no ``generator=``) and then moved to the images' device. ``torch.manual_seed`` (which
the pre-training loop calls at the start of each epoch) therefore fixes all augmentations, and a
CPU and a GPU run draw the same parameters. timm's ``Mixup`` draws from numpy's global RNG:
:class:`SupervisedAugment` runs it under a numpy seed drawn from torch's generator and restores
numpy's state afterwards.

Augmentations run in float32 even inside a bf16 autocast region (the training loop's ``bf16``).
Photometric ops work on ``[0, 1]`` intensities: images are un-standardised with
:data:`mimstudy.data.fashion_mnist.PIXEL_MEAN`/``PIXEL_STD`` before them and standardised again after.
Geometric ops and mixup are affine-equivariant and act on the standardised values directly.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.data import Mixup
from timm.data.mixup import mixup_target

from mimstudy.data.fashion_mnist import PIXEL_MEAN, PIXEL_STD

CROP_TRIES = 10  # as torchvision's RandomResizedCrop


# ---------------------------------------------------------------------------------------------
# parameter draws (CPU, torch's global generator)


def draw_mask(batch: int, p: float) -> torch.Tensor:
    """Which images an op applied with probability ``p`` touches: bool ``[B]``."""
    return torch.rand(batch) < p


def draw_uniform(batch: int, low: float, high: float) -> torch.Tensor:
    """One factor per image, uniform in ``[low, high]``: float ``[B]``."""
    return torch.empty(batch).uniform_(low, high)


def draw_crop_boxes(batch: int, height: int, width: int, scale: tuple[float, float],
                    ratio: tuple[float, float]) -> torch.Tensor:
    """``v2.RandomResizedCrop``'s boxes, one per image: int64 ``[B, 4]`` as ``(top, left, h, w)``.

    Area fraction uniform in ``scale``, log aspect ratio uniform in ``log(ratio)``, the first of
    ten tries that fits; none fitting, the largest centred box within ``ratio``.
    """
    area = height * width
    target_area = area * torch.empty(batch, CROP_TRIES).uniform_(*scale)  # [B, T]
    aspect = torch.exp(torch.empty(batch, CROP_TRIES).uniform_(math.log(ratio[0]), math.log(ratio[1])))
    w = torch.round(torch.sqrt(target_area * aspect)).long()  # [B, T]
    h = torch.round(torch.sqrt(target_area / aspect)).long()
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)  # [B, T]
    first = torch.where(fits.any(1), fits.float().argmax(1), -1)  # [B], -1: no try fits
    rows = torch.arange(batch)
    h, w = h[rows, first.clamp_min(0)], w[rows, first.clamp_min(0)]  # [B]
    top = (torch.rand(batch) * (height - h + 1)).long()
    left = (torch.rand(batch) * (width - w + 1)).long()

    fallback_h, fallback_w = height, width
    if width / height < min(ratio):
        fallback_h = int(round(width / min(ratio)))
    elif width / height > max(ratio):
        fallback_w = int(round(height * max(ratio)))
    none = first < 0
    h, w = torch.where(none, fallback_h, h), torch.where(none, fallback_w, w)
    top = torch.where(none, (height - fallback_h) // 2, top)
    left = torch.where(none, (width - fallback_w) // 2, left)
    return torch.stack([top, left, h, w], dim=1)


# ---------------------------------------------------------------------------------------------
# batched ops, each equal image by image to a torchvision.transforms.v2.functional call


def resized_crop(x: torch.Tensor, boxes: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Crop box ``b`` of image ``b`` and resize it bilinearly to ``size``: ``[B, C, H, W]`` -> ``[B, C, *size]``.

    Like ``v2.functional.resized_crop`` (bilinear, ``align_corners=False``, edge pixels of the crop
    repeated): sampling positions are clamped to the crop, then read with one ``grid_sample``.
    With ``size`` the image size (as in the recipes below) boxes are never larger than ``size``, so
    the resize only enlarges and torchvision's antialiasing changes nothing.
    """
    _, _, height, width = x.shape
    boxes = boxes.to(x.device, torch.float32)
    top, left, h, w = boxes.unbind(1)  # [B] each

    def positions(start, length, out, limit):  # grid coordinates in [-1, 1]: [B, out]
        centres = torch.arange(out, device=x.device, dtype=torch.float32) + 0.5  # [out]
        src = start[:, None] + centres[None] * (length[:, None] / out) - 0.5  # pixel coordinates
        src = torch.minimum(torch.maximum(src, start[:, None]), (start + length - 1)[:, None])
        return (2 * src + 1) / limit - 1

    gy = positions(top, h, size[0], height)  # [B, H']
    gx = positions(left, w, size[1], width)  # [B, W']
    grid = torch.stack(torch.broadcast_tensors(gx[:, None, :], gy[:, :, None]), dim=-1)  # [B, H', W', 2]
    return F.grid_sample(x, grid.to(x.dtype), mode="bilinear", padding_mode="border", align_corners=False)


def hflip(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mirror the images where ``mask`` (bool ``[B]``) holds, as ``v2.functional.horizontal_flip``."""
    return torch.where(mask.to(x.device)[:, None, None, None], x.flip(-1), x)


def _per_image(values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return values.to(x.device, x.dtype)[:, None, None, None]  # [B, 1, 1, 1]


def adjust_brightness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """``[0, 1]`` images times ``factor[b]``, clipped, as ``v2.functional.adjust_brightness``."""
    return (x * _per_image(factor, x)).clamp(0.0, 1.0)


def adjust_contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend ``[0, 1]`` grayscale images with their mean, as ``v2.functional.adjust_contrast``."""
    if x.shape[1] != 1:
        raise ValueError(f"adjust_contrast handles grayscale images, got {x.shape[1]} channels")
    f = _per_image(factor, x)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)  # [B, 1, 1, 1]
    return (f * x + (1 - f) * mean).clamp(0.0, 1.0)


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Blur image ``b`` with a ``kernel_size``-tap gaussian of ``sigma[b]`` px, as ``v2.functional.gaussian_blur``."""
    batch, channels, height, width = x.shape
    half = (kernel_size - 1) * 0.5
    taps = torch.linspace(-half, half, kernel_size, device=x.device, dtype=torch.float32)  # [k]
    pdf = torch.exp(-0.5 * (taps[None] / sigma.to(x.device, torch.float32)[:, None]) ** 2)  # [B, k]
    kernel1d = pdf / pdf.sum(1, keepdim=True)
    kernel2d = kernel1d[:, :, None] * kernel1d[:, None, :]  # [B, k, k]
    weight = kernel2d.repeat_interleave(channels, 0)[:, None].to(x.dtype)  # [B * C, 1, k, k]
    pad = kernel_size // 2
    padded = F.pad(x.reshape(1, batch * channels, height, width), (pad, pad, pad, pad), mode="reflect")
    return F.conv2d(padded, weight, groups=batch * channels).reshape(x.shape)


def solarize(x: torch.Tensor, mask: torch.Tensor, threshold: float) -> torch.Tensor:
    """Invert ``[0, 1]`` pixels ``>= threshold`` of the images where ``mask`` holds, as ``v2.functional.solarize``."""
    inverted = torch.where(x >= threshold, 1.0 - x, x)
    return torch.where(mask.to(x.device)[:, None, None, None], inverted, x)


def grayscale(x: torch.Tensor) -> torch.Tensor:
    """``[B, 3, H, W]`` RGB -> ``[B, 1, H, W]`` luma, as ``v2.functional.rgb_to_grayscale``."""
    r, g, b = x.unbind(1)
    return (0.2989 * r + 0.587 * g + 0.114 * b).unsqueeze(1)


def adjust_contrast_rgb(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend ``[0, 1]`` RGB images with the mean of their luma, as ``v2.functional.adjust_contrast``."""
    f = _per_image(factor, x)
    mean = grayscale(x).mean(dim=(1, 2, 3), keepdim=True)  # [B, 1, 1, 1]
    return (f * x + (1 - f) * mean).clamp(0.0, 1.0)


def adjust_saturation(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend ``[0, 1]`` RGB images with their luma, as ``v2.functional.adjust_saturation``."""
    f = _per_image(factor, x)
    return (f * x + (1 - f) * grayscale(x)).clamp(0.0, 1.0)


def rgb_to_hsv(x: torch.Tensor) -> torch.Tensor:
    """``[B, 3, H, W]`` RGB in ``[0, 1]`` -> HSV, each in ``[0, 1]`` (torchvision's conversion)."""
    r, g, b = x.unbind(1)
    maxc, minc = x.amax(1), x.amin(1)
    span = maxc - minc
    flat = span == 0
    s = span / torch.where(flat, torch.ones_like(maxc), maxc)
    span = torch.where(flat, torch.ones_like(span), span)
    rc, gc, bc = (maxc - r) / span, (maxc - g) / span, (maxc - b) / span
    h = torch.where(maxc == r, bc - gc, torch.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
    h = torch.where(flat, torch.zeros_like(h), h)
    return torch.stack([(h / 6.0 + 1.0) % 1.0, s, maxc], dim=1)


def hsv_to_rgb(x: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rgb_to_hsv`."""
    h, s, v = x.unbind(1)
    h6 = h * 6.0
    i = torch.floor(h6)
    f = h6 - i
    sector = i.long().remainder(6).unsqueeze(1)  # [B, 1, H, W]
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    table = torch.stack([torch.stack(c, dim=1) for c in ((v, q, p, p, t, v), (t, v, v, q, p, p), (p, p, t, v, v, q))],
                        dim=1)  # [B, 3 (rgb), 6 (sector), H, W]
    return table.gather(2, sector.unsqueeze(1).expand(-1, 3, 1, -1, -1)).squeeze(2)


def adjust_hue(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Rotate the hue of ``[0, 1]`` RGB images by ``factor[b]`` turns, as ``v2.functional.adjust_hue``."""
    hsv = rgb_to_hsv(x)
    hue = (hsv[:, :1] + _per_image(factor, x)) % 1.0
    return hsv_to_rgb(torch.cat([hue, hsv[:, 1:]], dim=1))


def _channel_stats(x: torch.Tensor, mean, std) -> tuple:
    if mean is None:
        return PIXEL_MEAN, PIXEL_STD
    shape = (1, len(mean), 1, 1)
    return (torch.tensor(mean, dtype=x.dtype, device=x.device).view(shape),
            torch.tensor(std, dtype=x.dtype, device=x.device).view(shape))


def to_unit(x: torch.Tensor, mean=None, std=None) -> torch.Tensor:
    """Standardised images -> ``[0, 1]`` intensities (per-channel ``mean``/``std``; default Fashion-MNIST's)."""
    m, s = _channel_stats(x, mean, std)
    return x * s + m


def to_standard(x: torch.Tensor, mean=None, std=None) -> torch.Tensor:
    """``[0, 1]`` intensities -> standardised images."""
    m, s = _channel_stats(x, mean, std)
    return (x - m) / s


# ---------------------------------------------------------------------------------------------
# recipes


def full_precision(x: torch.Tensor):
    """Context in which ops on ``x``'s device run in its own precision, outside any autocast."""
    return torch.autocast(x.device.type, enabled=False)


def random_resized_crop_flip(x: torch.Tensor, scale: tuple[float, float], ratio: tuple[float, float],
                             flip_prob: float) -> torch.Tensor:
    """Per-image random-resized crop back to the input size, then a horizontal flip with ``flip_prob``."""
    batch, _, height, width = x.shape
    x = resized_crop(x, draw_crop_boxes(batch, height, width, scale, ratio), (height, width))
    return hflip(x, draw_mask(batch, flip_prob))


@contextlib.contextmanager
def numpy_seeded_from_torch():
    """Run a block with numpy's global RNG seeded from torch's generator; numpy's state is restored after."""
    seed = int(torch.randint(0, 2**31 - 1, ()))
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


class SupervisedAugment(nn.Module):
    """DeiT's training augmentation: random-resized crop, flip, then mixup or cutmix with soft targets.

    ``forward(images, labels)`` -> ``(images, targets)`` with images ``[B, C, H, W]`` (same size) and
    targets ``[B, num_classes]`` whose rows sum to 1. Without mixup and cutmix (both alphas 0 or
    ``mixup_prob=0``) the targets are the label-smoothed one-hots, and soft-target cross-entropy on
    them equals ``F.cross_entropy(..., label_smoothing=label_smoothing)``. Mixing works on pairs
    ``(b, B-1-b)`` of one batch (timm's ``mode="batch"``, DeiT's), so ``B`` must be even.
    """

    def __init__(self, num_classes: int = 10, scale: tuple[float, float] = (0.35, 1.0),
                 ratio: tuple[float, float] = (3 / 4, 4 / 3), flip: bool = True, mixup_alpha: float = 0.8,
                 cutmix_alpha: float = 1.0, mixup_prob: float = 1.0, switch_prob: float = 0.5,
                 label_smoothing: float = 0.1):
        super().__init__()
        if not 0.0 < scale[0] <= scale[1] <= 1.0:
            raise ValueError(f"crop scale must satisfy 0 < min <= max <= 1, got {scale}")
        if mixup_alpha < 0 or cutmix_alpha < 0 or not 0.0 <= mixup_prob <= 1.0:
            raise ValueError("mixup_alpha and cutmix_alpha must be >= 0 and mixup_prob in [0, 1]")
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must lie in [0, 1), got {label_smoothing}")
        self.num_classes, self.scale, self.ratio, self.flip = num_classes, tuple(scale), tuple(ratio), flip
        self.label_smoothing = label_smoothing
        self.mixes = mixup_prob > 0 and (mixup_alpha > 0 or cutmix_alpha > 0)
        self.mixup = Mixup(mixup_alpha=mixup_alpha, cutmix_alpha=cutmix_alpha, prob=mixup_prob,
                           switch_prob=switch_prob, mode="batch", label_smoothing=label_smoothing,
                           num_classes=num_classes) if self.mixes else None

    def forward_crop(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W]`` -> ``[B, C, H, W]``: a random crop of each image, flipped half of the time."""
        return random_resized_crop_flip(images, self.scale, self.ratio, 0.5 if self.flip else 0.0)

    def forward_mix(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images ``[B, C, H, W]`` and labels ``[B]`` -> mixed images and soft targets ``[B, K]``."""
        if self.mixup is None:
            return images, mixup_target(labels, self.num_classes, lam=1.0, smoothing=self.label_smoothing)
        if images.shape[0] % 2:
            raise ValueError(f"mixup/cutmix pairs images within a batch: the batch size must be even, got {images.shape[0]}")
        with numpy_seeded_from_torch():
            return self.mixup(images.clone(), labels)  # timm mixes in place

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with full_precision(images):
            return self.forward_mix(self.forward_crop(images), labels)


@dataclass(frozen=True)
class ViewRecipe:
    """One view of MoCo v3's (BYOL's) augmentation, for standardised images.

    Order as in MoCo v3: crop, colour jitter (its ops in random order, as ``ColorJitter``), random
    grayscale, blur, solarize, flip. Hue, saturation and random grayscale act on RGB images only
    (they have no meaning on one channel); the defaults are the study's grayscale recipe at 32 px.
    """

    scale: tuple[float, float] = (0.2, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip_prob: float = 0.5
    jitter_prob: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    blur_prob: float = 1.0
    blur_sigma: tuple[float, float] = (0.1, 1.0)  # px; BYOL's (0.1, 2.0) is for 224-px images
    blur_kernel_size: int = 3
    solarize_prob: float = 0.0
    solarize_threshold: float = 0.5  # on [0, 1] intensities
    saturation: float = 0.0  # RGB only
    hue: float = 0.0  # RGB only
    grayscale_prob: float = 0.0  # RGB only


BYOL_VIEW_1 = ViewRecipe(blur_prob=1.0, solarize_prob=0.0)
BYOL_VIEW_2 = ViewRecipe(blur_prob=0.1, solarize_prob=0.2)


def rgb_view_recipes(img_size: int = 224) -> tuple[ViewRecipe, ViewRecipe]:
    """MoCo v3's RGB views (its ``main_moco.py``, ViT: ``--crop-min 0.08``): ColorJitter(0.4, 0.4, 0.2, 0.1)
    with p=0.8, grayscale p=0.2, blur sigma in [0.1, 2] (BYOL: a 23-px kernel at 224 px, a tenth of
    the image), solarize p=0 / 0.2, flip p=0.5."""
    kernel = 2 * round(img_size * 0.05) + 1  # 23 at 224 px
    rgb = dict(scale=(0.08, 1.0), brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1, grayscale_prob=0.2,
               blur_sigma=(0.1, 2.0), blur_kernel_size=kernel)
    return ViewRecipe(**rgb, blur_prob=1.0, solarize_prob=0.0), ViewRecipe(**rgb, blur_prob=0.1, solarize_prob=0.2)


def jitter(x: torch.Tensor, recipe: ViewRecipe) -> torch.Tensor:
    """``v2.RandomApply([v2.ColorJitter(brightness, contrast)], p=jitter_prob)`` per ``[0, 1]`` image."""
    batch = x.shape[0]
    apply = draw_mask(batch, recipe.jitter_prob).to(x.device)[:, None, None, None]
    bright = draw_uniform(batch, max(0.0, 1 - recipe.brightness), 1 + recipe.brightness)
    contrast = draw_uniform(batch, max(0.0, 1 - recipe.contrast), 1 + recipe.contrast)
    brightness_first = draw_mask(batch, 0.5).to(x.device)[:, None, None, None]
    a = adjust_contrast(adjust_brightness(x, bright), contrast)
    b = adjust_brightness(adjust_contrast(x, contrast), bright)
    return torch.where(apply, torch.where(brightness_first, a, b), x)


def jitter_rgb(x: torch.Tensor, recipe: ViewRecipe) -> torch.Tensor:
    """``v2.RandomApply([v2.ColorJitter(brightness, contrast, saturation, hue)], p=jitter_prob)`` then
    ``v2.RandomGrayscale(grayscale_prob)`` per ``[0, 1]`` RGB image, each image's four ops in its own random order."""
    batch = x.shape[0]
    apply = draw_mask(batch, recipe.jitter_prob).to(x.device)[:, None, None, None]
    factors = [draw_uniform(batch, max(0.0, 1 - recipe.brightness), 1 + recipe.brightness),
               draw_uniform(batch, max(0.0, 1 - recipe.contrast), 1 + recipe.contrast),
               draw_uniform(batch, max(0.0, 1 - recipe.saturation), 1 + recipe.saturation),
               draw_uniform(batch, -recipe.hue, recipe.hue)]
    order = torch.rand(batch, 4).argsort(1).to(x.device)  # [B, 4]: a permutation of the ops per image
    ops = (adjust_brightness, adjust_contrast_rgb, adjust_saturation, adjust_hue)
    y = x
    for position in range(4):
        done = [op(y, f) for op, f in zip(ops, factors)]
        pick = order[:, position][:, None, None, None]
        y = sum(torch.where(pick == k, done[k], torch.zeros_like(y)) for k in range(4))
    x = torch.where(apply, y, x)
    gray = draw_mask(batch, recipe.grayscale_prob).to(x.device)[:, None, None, None]
    return torch.where(gray, grayscale(x).expand_as(x), x)


def augment_view(images: torch.Tensor, recipe: ViewRecipe, mean=None, std=None) -> torch.Tensor:
    """Standardised ``[B, C, H, W]`` (C = 1 or 3; ``mean``/``std`` per channel, default Fashion-MNIST's)
    -> one augmented view ``[B, C, H, W]``, standardised."""
    batch, channels, height, width = images.shape
    x = resized_crop(images, draw_crop_boxes(batch, height, width, recipe.scale, recipe.ratio), (height, width))
    x = jitter(to_unit(x), recipe) if channels == 1 and mean is None else \
        jitter_rgb(to_unit(x, mean, std), recipe)
    blur = draw_mask(batch, recipe.blur_prob)
    sigma = draw_uniform(batch, *recipe.blur_sigma)
    x = torch.where(blur.to(x.device)[:, None, None, None], gaussian_blur(x, sigma, recipe.blur_kernel_size), x)
    x = solarize(x, draw_mask(batch, recipe.solarize_prob), recipe.solarize_threshold)
    return hflip(to_standard(x, mean, std), draw_mask(batch, recipe.flip_prob))


class MoCoViews(nn.Module):
    """Two differently augmented views of each image: ``forward(images [B, C, H, W])`` -> ``(view1, view2)``.

    The defaults are BYOL's asymmetric pair as used by MoCo v3, for the study's grayscale images:
    view 1 always blurred and never solarized, view 2 blurred with p=0.1 and solarized with p=0.2.
    RGB images take :func:`rgb_view_recipes` and their normalisation's per-channel ``mean``/``std``.
    """

    def __init__(self, view1: ViewRecipe = BYOL_VIEW_1, view2: ViewRecipe = BYOL_VIEW_2,
                 mean: tuple[float, ...] | None = None, std: tuple[float, ...] | None = None):
        super().__init__()
        self.view1, self.view2, self.mean, self.std = view1, view2, mean, std

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with full_precision(images):
            return (augment_view(images, self.view1, self.mean, self.std),
                    augment_view(images, self.view2, self.mean, self.std))
