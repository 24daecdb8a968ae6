"""The ADE20K layout for semantic segmentation (as mmseg's ``ADE20KDataset`` reads it) and its metric, mIoU.

Layout::

    <root>/images/<split>/<name>.png|jpg        the image (read with the backbone's channels)
    <root>/annotations/<split>/<name>.png       uint8 class indices (255: ignored)
    <root>/objectInfo150.txt or classes.txt     the classes and the label convention (:func:`label_convention`)

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
from PIL import Image

from mimstudy.atomic import atomic_path
from mimstudy.data.fashion_mnist import DatasetError
from mimstudy.downstream.imagefolder import IMAGE_EXTENSIONS
from mimstudy.downstream.images import check_channels, open_image, read_image, resized, write_grey
from mimstudy.downstream.split import Split

IGNORE_INDEX = 255
ADE20K_CLASSES_FILE = "objectInfo150.txt"  # ADEChallengeData2016's class table: Idx, Ratio, Train, Val, Name
CLASSES_FILE = "classes.txt"  # our layout's: one class name a line, line k naming label k


def write_split(root: str | Path, split: str, images: list[np.ndarray], masks: list[np.ndarray],
                classes: tuple[str, ...], stem: str = "scene") -> None:
    """``images/<split>/<stem>_<i>.png`` (grey in [0, 1]), ``annotations/<split>/<stem>_<i>.png`` (uint8
    class indices into ``classes``) and ``classes.txt``, atomically per file."""
    root = Path(root)
    for folder in ("images", "annotations"):
        (root / folder / split).mkdir(parents=True, exist_ok=True)
    for i, (image, mask) in enumerate(zip(images, masks)):
        write_grey(root / "images" / split / f"{stem}_{i:06d}.png", image)
        with atomic_path(root / "annotations" / split / f"{stem}_{i:06d}.png") as tmp:
            Image.fromarray(mask.astype(np.uint8), mode="L").save(tmp, format="PNG")
    with atomic_path(root / CLASSES_FILE) as tmp:
        tmp.write_text("".join(name + "\n" for name in classes))


@dataclass(frozen=True)
class LabelConvention:
    """What a layout's annotation values mean: ``classes`` (label k names ``classes[k]``) and whether
    file values are reduced (mmseg's ``reduce_zero_label``: 0 -> ignored, k -> k - 1)."""

    classes: tuple[str, ...]
    reduce_zero_label: bool
    source: Path

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def labels(self, values: np.ndarray) -> np.ndarray:
        """File values -> training labels (``IGNORE_INDEX`` kept)."""
        if not self.reduce_zero_label:
            return values.astype(np.int64)
        labels = values.astype(np.int64) - 1
        labels[(values == 0) | (values == IGNORE_INDEX)] = IGNORE_INDEX
        return labels

    @property
    def file_values(self) -> list[int]:
        """The values an annotation may hold."""
        offset = int(self.reduce_zero_label)
        return [*range(offset + self.num_classes), IGNORE_INDEX]


def label_convention(root: str | Path) -> LabelConvention:
    """The classes of an ADE20K-layout folder and its label convention, from its files:

    * ``objectInfo150.txt`` (ADEChallengeData2016, as released): its 150 classes (rows ``Idx`` 1-150,
      tab-separated, the name last); annotations hold 0 ("other", ignored) and 1-150, reduced to
      0-149 as mmseg's ``ADE20KDataset`` (``reduce_zero_label=True``), 255 ignored;
    * ``classes.txt`` (our layout, GarmentScenes-Seg): one name a line, line k naming label k;
      annotations hold the labels themselves (0 is a class: background), 255 ignored.
    """
    root = Path(root)
    ade = root / ADE20K_CLASSES_FILE
    if ade.is_file():
        rows = [line.split("\t") for line in ade.read_text().splitlines()[1:] if line.strip()]
        try:
            names = {int(row[0]): row[-1].strip() for row in rows}
        except (ValueError, IndexError) as err:
            raise DatasetError(f"{ade}: expected a header, then 'Idx<TAB>Ratio<TAB>Train<TAB>Val<TAB>Name' rows") from err
        if sorted(names) != list(range(1, len(names) + 1)):
            raise DatasetError(f"{ade}: Idx must run 1..{len(names)}, got {sorted(names)[:5]}...")
        return LabelConvention(tuple(names[i] for i in range(1, len(names) + 1)), True, ade)
    ours = root / CLASSES_FILE
    if ours.is_file():
        names = tuple(line.strip() for line in ours.read_text().splitlines() if line.strip())
        if not names:
            raise DatasetError(f"{ours} names no class")
        return LabelConvention(names, False, ours)
    raise DatasetError(f"{root} has neither {ADE20K_CLASSES_FILE} (ADE20K: 150 classes, reduce_zero_label) nor "
                       f"{CLASSES_FILE} (one class name a line): the class count comes from one of them")


class SegmentationPairs(Split):
    """An ADE20K-layout split: items ``(image [C, S, S], labels [S, S] int64)`` (``IGNORE_INDEX``: unlabelled)."""

    def __init__(self, root: Path, split: str, files: list[Path], convention: LabelConvention, img_size: int,
                 channels: int):
        self.root, self.split, self.files, self.convention = root, split, files, convention
        self.img_size, self.image_channels = img_size, channels

    def __len__(self) -> int:
        return len(self.files)

    @property
    def num_classes(self) -> int:
        return self.convention.num_classes

    def annotation(self, i: int) -> Path:
        return self.root / "annotations" / self.split / f"{self.files[i].stem}.png"

    def labels(self, i: int) -> np.ndarray:
        """Annotation ``i`` as labels at its own size; malformed files raise naming them."""
        annotation = self.annotation(i)
        values = np.asarray(open_image(annotation, "annotation", f"the image {self.files[i]}"))
        if values.ndim != 2:
            raise DatasetError(f"annotation {annotation} has shape {values.shape}: expected one channel of class indices")
        bad = np.setdiff1d(np.unique(values), self.convention.file_values)
        if bad.size:
            allowed = self.convention.file_values
            raise DatasetError(f"annotation {annotation} holds class indices {bad.tolist()} outside {allowed[0]}-{allowed[-2]} "
                               f"(and {IGNORE_INDEX}: ignored; classes from {self.convention.source})")
        return self.convention.labels(values)

    def item(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        path = self.files[i]
        image = torch.from_numpy(read_image(path, self.image_channels, "image", f"folder {path.parent}"))
        labels = self.labels(i)
        if labels.shape != tuple(image.shape[1:]):
            raise DatasetError(f"annotation {self.annotation(i)} is {labels.shape}, its image {path} "
                               f"{tuple(image.shape[1:])}")
        return resized(image, self.img_size), self.target_of(labels)

    def target_of(self, labels: np.ndarray) -> torch.Tensor:
        return resized(torch.from_numpy(labels)[None].float(), self.img_size, "nearest")[0].long()

    def target(self, i: int) -> torch.Tensor:
        return self.target_of(self.labels(i))


def read_split(root: str | Path, split: str, img_size: int, limit: int | None = None,
               channels: int = 1) -> SegmentationPairs:
    """Index a split (sorted by file name; the first ``limit``); its classes from :func:`label_convention`;
    missing or malformed files raise naming them (when read)."""
    root = Path(root)
    folder = root / "images" / split
    if not folder.is_dir():
        raise DatasetError(f"{folder} is missing: an ADE20K-style dataset needs images/<split>/ and annotations/<split>/")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)[:limit]
    if not files:
        raise DatasetError(f"{folder} holds no images")
    return SegmentationPairs(root, split, files, label_convention(root), img_size, check_channels(channels))


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

