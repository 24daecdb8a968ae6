"""What every generated downstream analog shares: Fashion-MNIST *test* garments, photographs, random streams, a cache.

The training split of Fashion-MNIST is pre-training data, so the generators (:mod:`puppets`,
:mod:`garment_world`, :mod:`garment_track`, :mod:`garment_scenes`, :mod:`concepts`) take their
garments from the test split: images 0-6,999 for training and validation items, 7,000-9,999 for
test items (:func:`sprite_range`); backgrounds come from the disjoint training and test photographs
of :mod:`mimstudy.data.photo_composites` (:func:`photos_for`). Item ``i`` of split ``s`` of a
generator is drawn from ``np.random.default_rng([seed, STREAM_IDS[<generator>], SPLIT_IDS[s], i])``
alone, so no two generators (or concept sets) draw the same numbers. A generated dataset is written
once, into a temporary folder renamed into place when every split is written
(:func:`write_dataset`), so an interrupted generation leaves no half-written dataset to be reused.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np
from scipy.ndimage import binary_fill_holes

from mimstudy.data.photo_composites import CONTRAST, TEST_PHOTOS, TRAIN_PHOTOS

SPLIT_IDS = {"train": 0, "test": 1, "val": 2}
STREAM_IDS = {"pose": 0, "crowdpose": 1, "garment_world": 2, "garment_track": 3,  # puppets' two variants first
              "hybrids": 4, "outfits": 5, "digits": 6, "shapes": 7, "materials": 8, "garments": 9, "fine": 10,  # concepts
              "garment_scenes": 11}
SPRITE_RANGES = {"train": (0, 7000), "test": (7000, 10000)}  # Fashion-MNIST test-split indices


def sprite_range(split: str) -> tuple[int, int]:
    """The garment indices items of ``split`` draw from (validation shares the training range)."""
    return SPRITE_RANGES["test" if split == "test" else "train"]


def photos_for(split: str) -> tuple[str, ...]:
    """The photographs behind items of ``split`` (validation shares the training photos)."""
    return TEST_PHOTOS if split == "test" else TRAIN_PHOTOS


def normalised(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A photo crop at mean 0.5 and a random contrast, as the pre-training composites' backgrounds."""
    contrast = rng.uniform(*CONTRAST)
    return np.clip(0.5 + contrast * (crop - crop.mean()) / max(float(crop.std()), 1e-3) * 0.2, 0.0, 1.0)


@lru_cache(maxsize=1)
def garment_sprites() -> np.ndarray:
    """Fashion-MNIST test images ``[10000, 28, 28]`` in [0, 1]."""
    from mimstudy.data.fashion_mnist import load_split

    return load_split("test")[0].astype(np.float64) / 255.0


@lru_cache(maxsize=1)
def garment_labels() -> np.ndarray:
    """Fashion-MNIST test labels ``[10000]`` (the classes of :func:`garment_sprites`)."""
    from mimstudy.data.fashion_mnist import load_split

    return load_split("test")[1]


def garment_cutout(index: int) -> tuple[np.ndarray, np.ndarray]:
    """Garment ``index``'s pixels and its filled silhouette (float 0 / 1), cropped to the silhouette's box."""
    g = garment_sprites()[index]
    alpha = binary_fill_holes(g > 0.02)
    rows, cols = np.nonzero(alpha)
    box = slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1)
    return g[box], alpha[box].astype(np.float64)


def write_dataset(root: str | Path, sizes: dict[str, int], write: Callable[[Path, str, int], object]) -> Path:
    """The dataset at ``root``, generated once: ``write(folder, split, n)`` for each split and its size in
    ``sizes``, into a temporary sibling folder renamed to ``root`` when every split is written (reused when
    ``root`` exists)."""
    root = Path(root)
    if root.is_dir():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}-", dir=root.parent))
    try:
        for split, n in sizes.items():
            write(tmp, split, n)
        os.replace(tmp, root)
    except OSError:
        if not root.is_dir():
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # another process finished first, or an error: drop ours
    return root
