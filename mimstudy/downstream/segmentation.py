"""Semantic segmentation (Appendix D's ADE20K analog): GarmentScenes with per-pixel classes, UPerNet-lite, mIoU.

**GarmentScenes.** A 32x32 crop of a photograph (contrast-normalised as the pre-training
backgrounds) with 1-3 Fashion-MNIST *test* garments (longer side 12-22 px, possibly overlapping,
painted in order so later ones occlude). Each garment's instance is its visible silhouette (alpha
> 0.5, less the pixels of garments painted after it; a garment covered away entirely is dropped),
with its class 1-10; the semantic map (0 background) is painted from the instances. The same scenes
serve detection (:mod:`mimstudy.downstream.detection`, COCO layout). Sprites, photos and seeds are
split as :mod:`mimstudy.downstream.garments` (item ``i`` of split ``s``: ``np.random.default_rng([seed,
TASK_ID, split_id, i])``).

**Layout** (ADE20K's, as mmseg's ``ADE20KDataset`` reads it)::

    <root>/images/<split>/<name>.png|jpg        the image (read as grey)
    <root>/annotations/<split>/<name>.png       uint8 class indices (255: ignored)

**Head** (App. D's UPerNet, scaled down): the simple feature pyramid of
:mod:`mimstudy.downstream.pyramid` (strides 4, 8, 16; 64 channels) and the UPerNet-lite head of
:mod:`mimstudy.downstream.upernet` (pyramid pooling 1, 2, 4 + FPN), its stride-4 logits upsampled
bilinearly to the input; cross-entropy over labelled pixels, random horizontal flips. **Metric** as
mmseg's ``IoUMetric``: one confusion matrix over every test pixel, per-class IoU = TP / (TP + FP +
FN), mIoU the mean over the classes with a non-empty union (``nanmean``), also without the
background class (``miou_fg``, as ``reduce_zero_label`` scores ADE20K), and the overall pixel
accuracy (``aAcc``). The trivial predictor labels every pixel background.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image
from skimage.transform import resize

from mimstudy.atomic import atomic_path
from mimstudy.data.fashion_mnist import DatasetError
from mimstudy.data.photo_composites import background_crop
from mimstudy.downstream.classification import predict_argmax
from mimstudy.downstream.concepts import normalised
from mimstudy.downstream.garments import SPLIT_IDS, garment_cutout, garment_labels, photos_for, sprite_range
from mimstudy.downstream.heads import paired_hflip
from mimstudy.downstream.imagefolder import IMAGE_EXTENSIONS, write_dataset
from mimstudy.downstream.images import open_image, read_grey, write_grey
from mimstudy.downstream.inputs import Standardise
from mimstudy.downstream.pyramid import SimpleFeaturePyramid
from mimstudy.downstream.upernet import UPerHead

GENERATOR_VERSION = 1
TASK_ID = 11  # concept sets 4-10
NUM_CLASSES = 11  # background + the ten Fashion-MNIST classes
IGNORE_INDEX = 255
SIZE = 32
GARMENTS = (1, 3)
GARMENT_SIDE = (12, 22)


@dataclass
class SegScene:
    image: np.ndarray  # [32, 32] grey in [0, 1]
    mask: np.ndarray  # [32, 32] uint8 class indices
    instance_masks: np.ndarray  # [K, 32, 32] bool: each garment's visible pixels (after occlusion)
    classes: np.ndarray  # [K] int64 class indices 1-10 (instances covered away entirely are dropped)

    @property
    def boxes(self) -> np.ndarray:
        """``[K, 4]`` float ``x0, y0, x1, y1`` of each instance's visible pixels (pixel ``i`` spans ``[i, i + 1)``)."""
        return np.array([mask_box(m) for m in self.instance_masks], np.float32).reshape(-1, 4)


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """The ``x0, y0, x1, y1`` box of a non-empty boolean mask's pixels (as COCO's ``toBbox``, ``x1 = x0 + w``)."""
    rows, cols = np.nonzero(mask)
    return int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1


def semantic_map(instance_masks: np.ndarray, classes: np.ndarray, size: int = SIZE) -> np.ndarray:
    """``[size, size]`` uint8 class indices from disjoint instance masks (0 where none lies)."""
    mask = np.zeros((size, size), np.uint8)
    for instance, cls in zip(instance_masks, classes):
        mask[instance] = cls
    return mask


def draw_scene(split: str, index: int, seed: int = 0) -> SegScene:
    """Scene ``index`` of ``split`` (train / val / test): deterministic, see the module docstring.

    Each garment's silhouette (alpha > 0.5) loses the pixels of the garments painted after it; the
    semantic map is painted from what remains."""
    if split not in SPLIT_IDS:
        raise ValueError(f"split must be one of {sorted(SPLIT_IDS)}, got {split!r}")
    rng = np.random.default_rng([seed, TASK_ID, SPLIT_IDS[split], index])
    image = normalised(background_crop(rng, photos_for(split)), rng).astype(np.float64)
    silhouettes, classes = [], []
    lo, hi = sprite_range(split)
    for _ in range(rng.integers(GARMENTS[0], GARMENTS[1] + 1)):
        sprite_index = int(rng.integers(lo, hi))
        g, alpha = garment_cutout(sprite_index)
        scale = rng.uniform(*GARMENT_SIDE) / max(g.shape)
        shape = tuple(max(2, round(s * scale)) for s in g.shape)
        g, alpha = resize(g, shape, order=1), resize(alpha, shape, order=1)
        y, x = rng.integers(0, SIZE - shape[0] + 1), rng.integers(0, SIZE - shape[1] + 1)
        window = (slice(y, y + shape[0]), slice(x, x + shape[1]))
        image[window] = alpha * g + (1 - alpha) * image[window]
        silhouette = np.zeros((SIZE, SIZE), bool)
        silhouette[window] = alpha > 0.5
        for earlier in silhouettes:
            earlier &= ~silhouette
        silhouettes.append(silhouette)
        classes.append(int(garment_labels()[sprite_index]) + 1)
    keep = [i for i, s in enumerate(silhouettes) if s.any()]
    instance_masks = np.array([silhouettes[i] for i in keep], bool).reshape(-1, SIZE, SIZE)
    labels = np.array([classes[i] for i in keep], np.int64)
    return SegScene(np.clip(image, 0, 1).astype(np.float32), semantic_map(instance_masks, labels), instance_masks, labels)


def write_split(root: str | Path, split: str, scenes: list[SegScene]) -> None:
    """``images/<split>/<i>.png`` and ``annotations/<split>/<i>.png`` (uint8 class indices), atomically per file."""
    root = Path(root)
    for folder in ("images", "annotations"):
        (root / folder / split).mkdir(parents=True, exist_ok=True)
    for i, scene in enumerate(scenes):
        write_grey(root / "images" / split / f"scene_{i:06d}.png", scene.image)
        with atomic_path(root / "annotations" / split / f"scene_{i:06d}.png") as tmp:
            Image.fromarray(scene.mask.astype(np.uint8), mode="L").save(tmp, format="PNG")


def generated_dataset(cache_dir: str | Path, train_size: int, test_size: int, seed: int = 0,
                      val_size: int | None = None) -> Path:
    """The ADE20K-layout folder of GarmentScenes-Seg (train / val / test), written once and reused."""
    val_size = test_size if val_size is None else val_size
    root = Path(cache_dir) / f"segmentation-v{GENERATOR_VERSION}-seed{seed}-{train_size}x{val_size}x{test_size}"

    def writer(split: str, n: int):
        return lambda folder: write_split(folder, split, [draw_scene(split, i, seed) for i in range(n)])

    sizes = {"train": train_size, "val": val_size, "test": test_size}
    return write_dataset(root, {split: writer(split, n) for split, n in sizes.items()})


@dataclass
class SegmentationPairs:
    images: torch.Tensor  # [N, 1, S, S] in [0, 1]
    masks: torch.Tensor  # [N, S, S] int64 class indices (IGNORE_INDEX: unlabelled)

    def __len__(self) -> int:
        return len(self.images)


def read_split(root: str | Path, split: str, img_size: int, limit: int | None = None,
               num_classes: int = NUM_CLASSES) -> SegmentationPairs:
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


def confusion_matrix(predicted: np.ndarray, labels: np.ndarray, num_classes: int = NUM_CLASSES,
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


def score(predicted: np.ndarray, labels: np.ndarray, num_classes: int = NUM_CLASSES) -> dict[str, float]:
    return iou_metrics(confusion_matrix(predicted, labels, num_classes))


class SegmentationObjective(nn.Module):
    """Backbone + simple feature pyramid + UPerNet-lite head; ``forward(images, masks) -> (loss, {"loss": loss})``."""

    def __init__(self, backbone: nn.Module, img_size: int, stats: tuple[float, float], augment: bool = True,
                 num_classes: int = NUM_CLASSES):
        super().__init__()
        self.standardise = Standardise(*stats)
        self.pyramid = SimpleFeaturePyramid(backbone, img_size)
        self.head = UPerHead(self.pyramid.out_channels, len(self.pyramid.strides), num_classes)
        self.augment = augment

    @property
    def backbone(self) -> nn.Module:
        """The timm backbone (for layer-wise lr decay and block counts), held once inside the pyramid."""
        return self.pyramid.backbone

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, num_classes, H, W]``: the head's logits (at the finest pyramid stride) upsampled bilinearly."""
        logits = self.head(self.pyramid(self.standardise(images)))
        return F.interpolate(logits, size=images.shape[-2:], mode="bilinear", align_corners=False)

    def forward(self, images: torch.Tensor, masks: torch.Tensor):
        if self.training and self.augment:
            images, masks = paired_hflip(images, masks)
        loss = F.cross_entropy(self.logits(images), masks, ignore_index=IGNORE_INDEX)
        return loss, {"loss": loss.detach()}


def evaluate(objective: SegmentationObjective, test: SegmentationPairs, device: torch.device) -> tuple[dict, np.ndarray]:
    predicted = predict_argmax(objective, test.images, device, batch_size=128)
    return score(predicted, test.masks.numpy()), predicted


def trivial(train: SegmentationPairs, test: SegmentationPairs) -> dict[str, float]:
    return score(np.zeros(test.masks.shape, np.int64), test.masks.numpy())


def examples(test: SegmentationPairs, predictions: np.ndarray, n: int):
    return {"example_image": (("example", "y", "x"), test.images[:n, 0].numpy()),
            "example_mask": (("example", "y", "x"), test.masks[:n].numpy()),
            "example_predicted_mask": (("example", "y", "x"), np.asarray(predictions[:n]))}, {}


def load_splits(root: str | Path, img_size: int, train_split: str = "train", test_split: str = "test",
                train_size: int | None = None, test_size: int | None = None) -> tuple[SegmentationPairs, SegmentationPairs]:
    return read_split(root, train_split, img_size, train_size), read_split(root, test_split, img_size, test_size)
