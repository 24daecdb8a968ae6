"""Why the study pre-trains on garments over photographs: the numbers behind the choice, stored.

For Fashion-MNIST and the photo composites (``fashion_mnist_photos``), on ``images`` standardised
training and test images each: the lag-1 correlation of horizontal neighbours; the masked-pixel l1
of three hand-made predictors under SimMIM's masks (60 % of 8-px patches, the preset's ViT patch):
the nearest visible pixel, the mean of the visible pixels and the *position prior* (the mean of
``prior_images`` training images at the masked pixel's position); and the median image std. For
every ``skimage.data`` photograph the composites draw backgrounds from: the fraction of
``crops`` random raw 32-px crops (any of the generator's scales) flatter than ``FLAT_STD``, the
flatness that made the generator redraw flat crops (version 2).

    python -m mimstudy.study.regime --rationale --threads 1     # writes results/regime/rationale/data.nc

The regime page renders it (:func:`mimstudy.book.pages.regime.rationale_markdown`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import xarray as xr

from mimstudy.data import memory_splits, photo_composites
from mimstudy.models.backbones import create_backbone, patch_size_of
from mimstudy.objectives.masking import MaskGenerator
from mimstudy.probes.reconstruction import baseline_l1
from mimstudy.results import save_dataset

DATASETS = ("fashion_mnist", "fashion_mnist_photos")
FLAT_STD = 0.02  # grey std on [0, 1] below which a raw crop counts as flat
ARCH = "vit_micro_32_sincos"  # the claim-carrying preset's ViT: its patch serves the masks
MASK_RATIO, MASK_PATCH = 0.6, 8


def lag1_correlation(images: torch.Tensor) -> float:
    """Pearson correlation of every pixel with its right-hand neighbour, over all images."""
    left, right = images[..., :, :-1].reshape(-1).double(), images[..., :, 1:].reshape(-1).double()
    return float(torch.corrcoef(torch.stack([left, right]))[0, 1])


def flat_crop_fraction(name: str, crops: int, rng: np.random.Generator) -> float:
    """The fraction of ``crops`` random raw 32-px crops of photo ``name`` with grey std < :data:`FLAT_STD`."""
    size = photo_composites.IMAGE_SIZE
    flat = 0
    for _ in range(crops):
        image = photo_composites.photo(name, photo_composites.SCALES[rng.integers(len(photo_composites.SCALES))])
        top, left = rng.integers(0, image.shape[0] - size + 1), rng.integers(0, image.shape[1] - size + 1)
        flat += float(image[top: top + size, left: left + size].std()) < FLAT_STD
    return flat / crops


def data_rationale(images: int = 2000, prior_images: int = 5000, crops: int = 1000, seed: int = 0) -> xr.Dataset:
    patch = patch_size_of(create_backbone(ARCH))
    masks = MaskGenerator(photo_composites.IMAGE_SIZE, MASK_PATCH, patch, MASK_RATIO)
    names = ("lag1_correlation", "nearest_visible_l1", "visible_mean_l1", "position_mean_l1", "median_image_std")
    table = np.full((len(DATASETS), 2, len(names)), np.nan)
    for d, dataset in enumerate(DATASETS):
        splits = memory_splits(dataset, max(images, prior_images), 0, images, seed=seed)
        train = splits.train.tensors[0]
        prior = train[:prior_images].mean(0, keepdim=True)
        for s, x in enumerate((train[:images], splits.test.tensors[0][:images])):
            mask = masks(x.shape[0], generator=torch.Generator().manual_seed(seed))
            found = {"lag1_correlation": lag1_correlation(x), **baseline_l1(x, mask, patch, prior),
                     "median_image_std": float(x.flatten(1).std(1).median())}
            table[d, s] = [found[n] for n in names]
    photos = (*photo_composites.TRAIN_PHOTOS, *photo_composites.TEST_PHOTOS)
    rng = np.random.default_rng(seed)
    flat = [flat_crop_fraction(name, crops, rng) for name in photos]
    data = {n: (("dataset", "split"), table[..., i]) for i, n in enumerate(names)}
    data["flat_crop_fraction"] = ("photo", flat)
    return xr.Dataset(data, coords={"dataset": list(DATASETS), "split": ["train", "test"], "photo": list(photos),
                                    "photo_split": ("photo", ["train"] * len(photo_composites.TRAIN_PHOTOS)
                                                    + ["test"] * len(photo_composites.TEST_PHOTOS))})


def save_rationale(results_dir: str = "results", **sizes) -> Path:
    ds = data_rationale(**sizes)
    ds.attrs["data_generator"] = photo_composites.GENERATOR_VERSION
    ds.attrs["threads"] = torch.get_num_threads()  # the l1 means are float sums: bitwise equal at equal threads
    parameters = {"images": 2000, "prior_images": 5000, "crops": 1000, "seed": 0, **sizes, "arch": ARCH,
                  "mask_ratio": MASK_RATIO, "mask_patch_size": MASK_PATCH, "flat_std": FLAT_STD}
    return save_dataset(ds, Path(results_dir) / "regime" / "rationale" / "data.nc", parameters, "regime",
                        parameters["seed"])
