"""The ImageNet / torchvision ``ImageFolder`` layout for classification tasks: write it, read it (streamed or held).

Layout::

    <root>/<split>/<class>/<name>.png      one folder per class, any image files inside (png, jpg, ...)

as torchvision's ``ImageFolder`` reads it: the classes are the split's sub-folders in sorted order
and a class's label is its index in that order (the generators name folders ``00_<concept>``, ... so
sorted order is the intended one). The test split must hold the training split's classes (a missing
class folder is named). Images are read as grey (colour converted to luminance) and resized to
``img_size`` when they differ, so the same reader reads a real folder dataset. ``limit`` keeps the
first ``limit`` images taken round-robin over the classes (image 0 of every class, then image 1, ...),
so a subset stays balanced where the folder is.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mimstudy.data.fashion_mnist import DatasetError
from mimstudy.downstream.images import check_channels, read_image, resized, write_grey
from mimstudy.downstream.split import Split

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")


class LabelledImages(Split):
    """An ImageFolder split: ``files[i]`` of class ``labels[i]``; items ``(image [C, S, S], label)``."""

    def __init__(self, files: list[Path], labels: list[int], classes: tuple[str, ...], img_size: int, channels: int):
        self.files, self.labels, self.classes = files, torch.tensor(labels, dtype=torch.int64), classes
        self.img_size, self.image_channels = img_size, channels

    def __len__(self) -> int:
        return len(self.files)

    def item(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        path = self.files[i]
        image = torch.from_numpy(read_image(path, self.image_channels, "image", f"class folder {path.parent}"))
        return resized(image, self.img_size), self.labels[i]

    def target(self, i: int) -> torch.Tensor:
        return self.labels[i]


def write_split(root: str | Path, split: str, images: np.ndarray, labels: np.ndarray, classes: tuple[str, ...]) -> Path:
    """Write grey images (floats in [0, 1]) as ``<root>/<split>/<classes[label]>/<i>.png``; every class gets a folder."""
    folder = Path(root) / split
    for name in classes:
        (folder / name).mkdir(parents=True, exist_ok=True)
    for i, (image, label) in enumerate(zip(images, labels)):
        write_grey(folder / classes[int(label)] / f"{i:05d}.png", image)
    return folder


def class_folders(root: str | Path, split: str, classes: tuple[str, ...] | None = None) -> list[Path]:
    """The split's class folders (sorted), or those named by ``classes``; a missing one raises naming it."""
    folder = Path(root) / split
    if not folder.is_dir():
        raise DatasetError(f"{folder} is missing: an ImageFolder dataset needs <root>/<split>/<class>/<image> folders")
    if classes is None:
        found = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not found:
            raise DatasetError(f"{folder} has no class folders")
        return found
    missing = [folder / name for name in classes if not (folder / name).is_dir()]
    if missing:
        raise DatasetError(f"class folder {missing[0]} is missing (the training split has class {missing[0].name!r})")
    return [folder / name for name in classes]


def read_split(root: str | Path, split: str, img_size: int, limit: int | None = None,
               classes: tuple[str, ...] | None = None, channels: int = 1) -> LabelledImages:
    """Index a split (see the module docstring; images are read on demand, or held by :meth:`Split.hold`);
    missing folders and unreadable images raise :class:`DatasetError` naming them."""
    folders = class_folders(root, split, classes)
    files = []
    for folder in folders:
        names = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        if not names:
            raise DatasetError(f"class folder {folder} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
        files.append(names)
    order = [(label, files[label][k]) for k in range(max(map(len, files))) for label in range(len(files))
             if k < len(files[label])]
    order = order[:limit] if limit is not None else order
    return LabelledImages([path for _, path in order], [label for label, _ in order], tuple(f.name for f in folders),
                          img_size, check_channels(channels))
