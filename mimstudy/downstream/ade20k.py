"""The ADE20K layout for semantic segmentation (as mmseg's ``ADE20KDataset`` reads it) and its metric, mIoU.

Layout::

    <root>/images/<split>/<name>.png|jpg        the image (read as grey)
    <root>/annotations/<split>/<name>.png       uint8 class indices (255: ignored)

**Metric** as mmseg's ``IoUMetric``: one confusion matrix over every test pixel, per-class IoU =
TP / (TP + FP + FN), mIoU the mean over the classes with a non-empty union (``nanmean``), also
without the background class (``miou_fg``, as ``reduce_zero_label`` scores ADE20K), and the overall
pixel accuracy (``aAcc``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from mimstudy.atomic import atomic_path
from mimstudy.data.fashion_mnist import DatasetError
from mimstudy.downstream.imagefolder import IMAGE_EXTENSIONS
from mimstudy.downstream.images import open_image, read_grey, write_grey

IGNORE_INDEX = 255


def write_split(root: str | Path, split: str, images: list[np.ndarray], masks: list[np.ndarray],
                stem: str = "scene") -> None:
    """``images/<split>/<stem>_<i>.png`` (grey in [0, 1]) and ``annotations/<split>/<stem>_<i>.png`` (uint8
    class indices), atomically per file."""
    root = Path(root)
    for folder in ("images", "annotations"):
        (root / folder / split).mkdir(parents=True, exist_ok=True)
    for i, (image, mask) in enumerate(zip(images, masks)):
        write_grey(root / "images" / split / f"{stem}_{i:06d}.png", image)
        with atomic_path(root / "annotations" / split / f"{stem}_{i:06d}.png") as tmp:
            Image.fromarray(mask.astype(np.uint8), mode="L").save(tmp, format="PNG")


@dataclass
class SegmentationPairs:
    images: torch.Tensor  # [N, 1, S, S] in [0, 1]
    masks: torch.Tensor  # [N, S, S] int64 class indices (IGNORE_INDEX: unlabelled)

    def __len__(self) -> int:
        return len(self.images)


def read_split(root: str | Path, split: str, img_size: int, limit: int | None = None, *,
               num_classes: int) -> SegmentationPairs:
    """Read a split (sorted by file name; the first ``limit``); missing or malformed files raise naming them."""
    root = Path(root)
    folder = root / "images" / split
    if not folder.is_dir():
        raise DatasetError(f"{folder} is missing: an ADE20K-style dataset needs images/<split>/ and annotations/<split>/")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)[:limit]
    if not files:
        raise DatasetError(f"{folder} holds no images")
    images, masks = [], []
    for path in files:
        grey = torch.from_numpy(read_grey(path, "image", f"folder {folder}"))[None, None]
        annotation = root / "annotations" / split / f"{path.stem}.png"
        labels = np.asarray(open_image(annotation, "annotation", f"the image {path}"))
        if labels.ndim != 2:
            raise DatasetError(f"annotation {annotation} has shape {labels.shape}: expected one channel of class indices")
        bad = np.setdiff1d(np.unique(labels), [*range(num_classes), IGNORE_INDEX])
        if bad.size:
            raise DatasetError(f"annotation {annotation} holds class indices {bad.tolist()} outside 0-{num_classes - 1} "
                               f"(and {IGNORE_INDEX}: ignored)")
        if labels.shape != tuple(grey.shape[2:]):
            raise DatasetError(f"annotation {annotation} is {labels.shape}, its image {path} {tuple(grey.shape[2:])}")
        mask = torch.from_numpy(labels.astype(np.int64))[None, None].float()
        if grey.shape[-2:] != (img_size, img_size):
            grey = F.interpolate(grey, size=(img_size, img_size), mode="bilinear", align_corners=False, antialias=True)
            mask = F.interpolate(mask, size=(img_size, img_size), mode="nearest")
        images.append(grey[0])
        masks.append(mask[0, 0].long())
    return SegmentationPairs(torch.stack(images), torch.stack(masks))


def confusion_matrix(predicted: np.ndarray, labels: np.ndarray, num_classes: int,
                     ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    """``[C, C]`` pixel counts (row: true class, column: predicted) over every labelled pixel of the set."""
    predicted, labels = np.asarray(predicted).ravel(), np.asarray(labels).ravel()
    keep = labels != ignore_index
    return np.bincount(labels[keep] * num_classes + predicted[keep], minlength=num_classes ** 2).reshape(num_classes,
                                                                                                         num_classes)


def iou_metrics(confusion: np.ndarray) -> dict[str, float]:
    """mmseg's ``IoUMetric`` from a dataset-level confusion matrix: mIoU over the classes with a non-empty
    union, ``miou_fg`` without class 0 (background) and the overall pixel accuracy ``aacc``."""
    confusion = np.asarray(confusion, dtype=np.float64)
    tp = np.diag(confusion)
    union = confusion.sum(0) + confusion.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, tp / union, np.nan)
    return {"miou": float(np.nanmean(iou)), "miou_fg": float(np.nanmean(iou[1:])), "aacc": float(tp.sum() / confusion.sum())}


def score(predicted: np.ndarray, labels: np.ndarray, num_classes: int) -> dict[str, float]:
    return iou_metrics(confusion_matrix(predicted, labels, num_classes))

