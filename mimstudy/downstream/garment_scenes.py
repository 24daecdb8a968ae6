"""GarmentScenes: photo crops with garments labelled per instance and per pixel (detection's and segmentation's analog).

A 32x32 crop of a photograph (contrast-normalised as the pre-training backgrounds) with 1-3
Fashion-MNIST *test* garments (longer side 12-22 px, possibly overlapping, painted in order so later
ones occlude). Each garment's instance is its visible silhouette (alpha > 0.5, less the pixels of
garments painted after it; a garment covered away entirely is dropped), with its class 1-10; its box
is the bounding box of those pixels; the semantic map (0 background) is painted from the instances.
One generator for both tasks: written in ADE20K's layout (:mod:`mimstudy.downstream.ade20k`) for
segmentation (GarmentScenes-Seg) and in COCO's (:mod:`mimstudy.downstream.coco_instances`) for
detection (GarmentScenes-Det). Sprites, photos and seeds are split as
:mod:`mimstudy.downstream.garments` (item ``i`` of split ``s``: ``np.random.default_rng([seed,
STREAM_ID, split_id, i])``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from skimage.transform import resize

from mimstudy.data.fashion_mnist import CLASS_NAMES
from mimstudy.data.photo_composites import background_crop
from mimstudy.downstream import ade20k, coco_instances
from mimstudy.downstream.garments import (SPLIT_IDS, STREAM_IDS, garment_cutout, garment_labels, normalised,
                                          photos_for, sprite_range, write_dataset)

GENERATOR_VERSION = 2  # 2: the ADE20K layout writes classes.txt (the same scenes as 1)
STREAM_ID = STREAM_IDS["garment_scenes"]
SIZE = 32
GARMENTS = (1, 3)
GARMENT_SIDE = (12, 22)
LAYOUTS = {"ade20k": "segmentation", "coco": "detection"}  # a layout -> the task it serves (its cache folder's prefix)


@dataclass
class GarmentScene:
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


def draw_scene(split: str, index: int, seed: int = 0) -> GarmentScene:
    """Scene ``index`` of ``split`` (train / val / test): deterministic, see the module docstring.

    Each garment's silhouette (alpha > 0.5) loses the pixels of the garments painted after it; the
    semantic map is painted from what remains."""
    if split not in SPLIT_IDS:
        raise ValueError(f"split must be one of {sorted(SPLIT_IDS)}, got {split!r}")
    rng = np.random.default_rng([seed, STREAM_ID, SPLIT_IDS[split], index])
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
    return GarmentScene(np.clip(image, 0, 1).astype(np.float32), semantic_map(instance_masks, labels), instance_masks, labels)


def write_split(root: str | Path, split: str, scenes: list[GarmentScene], layout: str) -> None:
    """``scenes`` as ``split`` of a dataset in ``layout`` (:data:`LAYOUTS`), atomically per file."""
    images = [scene.image for scene in scenes]
    if layout == "ade20k":
        ade20k.write_split(root, split, images, [scene.mask for scene in scenes], ("background", *CLASS_NAMES))
    elif layout == "coco":
        coco_instances.write_split(root, split, images, [s.instance_masks for s in scenes], [s.classes for s in scenes],
                                   CLASS_NAMES)
    else:
        raise ValueError(f"layout must be one of {sorted(LAYOUTS)}, got {layout!r}")


def generated_dataset(cache_dir: str | Path, train_size: int, test_size: int, seed: int = 0,
                      val_size: int | None = None, layout: str = "ade20k") -> Path:
    """The folder of GarmentScenes (train / val / test; val as large as test unless given) in ``layout``,
    written once and reused."""
    val_size = test_size if val_size is None else val_size
    root = Path(cache_dir) / f"{LAYOUTS[layout]}-v{GENERATOR_VERSION}-seed{seed}-{train_size}x{val_size}x{test_size}"
    return write_dataset(root, {"train": train_size, "val": val_size, "test": test_size}, lambda folder, split, n:
                         write_split(folder, split, [draw_scene(split, i, seed) for i in range(n)], layout))
