"""RGB images at paper scale: ImageNet-style folders, and offline sample photos for smoke runs.

The paper probes ImageNet-pre-trained ViT-B/16 at 224x224. ``image_folder`` reads the usual layout
(``root/<class>/<image>``, e.g. ImageNet's ``val/``) through torchvision; ``sample_photos`` serves the
natural photos shipped inside scikit-image and scikit-learn, so the paper-scale notebook runs
offline (in CI) on real photographs when no ImageNet folder is given.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Subset
from torchvision import datasets
from torchvision.transforms import v2

from mimstudy.data.fashion_mnist import DatasetError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SKIMAGE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "retina")


def eval_transform(size: int = 224) -> v2.Compose:
    """Resize the short side to ``size / 0.875``, centre-crop ``size``, scale and ImageNet-normalise."""
    return v2.Compose([
        v2.ToImage(),
        v2.Resize(int(round(size / 0.875)), antialias=True),
        v2.CenterCrop(size),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])


def train_transform(size: int, random_crop: bool = True, scale: tuple[float, float] = (0.08, 1.0)) -> v2.Compose:
    """Per-image training transform of an image-folder run, ending ImageNet-normalised ``[3, size, size]``.

    ``random_crop``: random-resized crop to ``size`` (area fraction in ``scale``) and horizontal flip,
    SimMIM's recipe (and plain supervised training's). Without it (objectives that crop and flip on
    the batch themselves: MoCo's views, DeiT's augmentation) the whole image, short side resized to
    ``size`` and centre-cropped, so that the batched crop samples from all of it.
    """
    geometry = [v2.RandomResizedCrop(size, scale=scale, antialias=True), v2.RandomHorizontalFlip()] \
        if random_crop else [v2.Resize(size, antialias=True), v2.CenterCrop(size)]
    return v2.Compose([v2.ToImage(), *geometry, v2.ToDtype(torch.float32, scale=True),
                       v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


@dataclass
class FolderSplits:
    """Training and validation images of an ImageNet-style tree (``root/{train,val}/<class>/<image>``)."""

    train: Dataset
    val: Dataset
    classes: list[str]


def folder_splits(root: str | Path, train_transform_: v2.Compose, size: int, train_size: int | None = None,
                  val_size: int | None = None, seed: int = 0) -> FolderSplits:
    """``ImageFolder`` datasets of ``root/train`` (with ``train_transform_``) and ``root/val``
    (:func:`eval_transform`), each cut to a seeded subset of at most ``train_size``/``val_size`` images."""
    root = Path(root)
    folders = {split: root / split for split in ("train", "val")}
    for split, folder in folders.items():
        if not folder.is_dir():
            raise DatasetError(f"{folder} does not exist: data_dir must hold train/<class>/<image> and "
                               "val/<class>/<image> (ImageNet's layout), e.g. data/imagenet")
    train = datasets.ImageFolder(str(folders["train"]), transform=train_transform_)
    val = datasets.ImageFolder(str(folders["val"]), transform=eval_transform(size))
    if train.classes != val.classes or not len(train):
        raise DatasetError(f"{root}: train/ and val/ must hold images in the same class folders "
                           f"(train: {train.classes[:5]}..., val: {val.classes[:5]}...)")
    return FolderSplits(_subset(train, train_size, seed), _subset(val, val_size, seed + 1), train.classes)


def _subset(dataset: Dataset, size: int | None, seed: int) -> Dataset:
    if size is None or size >= len(dataset):
        return dataset
    keep = np.sort(np.random.default_rng(seed).permutation(len(dataset))[:size])
    return Subset(dataset, keep.tolist())


def image_folder(root: str | Path, size: int = 224, num_images: int | None = None, seed: int = 0) -> torch.Tensor:
    """``[N, 3, size, size]`` images drawn (seeded, without replacement) from an ImageFolder tree."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"image folder {root} does not exist: pass an ImageNet-style folder (root/<class>/<image>)")
    dataset = datasets.ImageFolder(str(root), transform=eval_transform(size))
    if len(dataset) == 0:
        raise DatasetError(f"{root} holds no images in class sub-folders (root/<class>/<image>.JPEG)")
    count = len(dataset) if num_images is None else min(num_images, len(dataset))
    order = np.random.default_rng(seed).permutation(len(dataset))[:count]
    return torch.stack([dataset[int(i)][0] for i in order])


def sample_photos(size: int = 224, num_images: int | None = None) -> torch.Tensor:
    """``[N, 3, size, size]`` natural photos from scikit-image and scikit-learn, ImageNet-normalised.

    Up to 9 distinct photos (7 from ``skimage.data``, 2 from ``sklearn.datasets.load_sample_images``
    when scikit-learn is installed); more images repeat them with horizontal flips.
    """
    import skimage.data

    photos = [np.asarray(getattr(skimage.data, name)()) for name in SKIMAGE_PHOTOS]
    try:
        from sklearn.datasets import load_sample_images

        photos += list(load_sample_images().images)
    except ImportError:
        pass
    transform = eval_transform(size)
    tensors = [transform(torch.from_numpy(np.ascontiguousarray(p[..., :3])).permute(2, 0, 1)) for p in photos]
    images = torch.stack(tensors)
    if num_images is None or num_images <= len(images):
        return images[:num_images]
    repeats = [images, images.flip(-1)]
    while sum(len(r) for r in repeats) < num_images:
        repeats.append(repeats[-2].roll(size // 7, dims=-1))
    return torch.cat(repeats)[:num_images]
