"""Semantic-transfer datasets (Section 4.1): a concept-generalization ladder and a Kornblith-12-like set.

The seen concepts are the ten Fashion-MNIST classes on photo backgrounds the presets pre-train on
(:mod:`mimstudy.data.photo_composites`). Every image is 32x32 grey, drawn from real offline content:

* ``hybrids``: a new garment made of seen parts: the top half of a garment of class a over the
  bottom half of one of class b (ten fixed pairs), on a photo background.
* ``outfits``: two half-scale garments side by side (ten fixed ordered pairs), on a photo background.
* ``digits``: scikit-learn's 8x8 handwritten digits, upsampled to 16-22 px, on a photo background.
* ``shapes``: ten geometric shapes (disk, ring, square, triangle, pentagon, star, cross, ellipse,
  crescent, arrow), 14-24 px, rotated, on a photo background.
* ``materials``: full-frame crops of ten ``skimage.data`` photographs used as textures (DTD's role),
  contrast-normalised as the backgrounds are so brightness alone does not tell them apart; training
  crops from the top 60 % of rows (left 80 % of columns; validation: the right 20 %), test crops from
  the bottom 40 %.
* ``garments``: the ten seen classes themselves (CIFAR's role in K12: covered by the pre-training).
* ``fine``: fine-grained garments: each class split into :data:`FINE_CLUSTERS` sub-classes by
  k-means of the sprites' HOG descriptors (Aircraft / Cars' role: sub-classes within classes).

Garment sprites come from the Fashion-MNIST *test* split (images 0-6,999 for training and
validation, 7,000-9,999 for test; the training split is pre-training data), digits 0-1,199 / 1,200-1,796;
training and validation backgrounds come from ``TRAIN_PHOTOS``, test backgrounds from the disjoint
``TEST_PHOTOS``. Item ``i`` of split ``s`` of a dataset with seed ``seed`` is drawn from
``np.random.default_rng([seed, STREAM_IDS[name], split_id, i])`` alone, its label is ``i mod classes``
(balanced splits). :mod:`mimstudy.downstream.imagefolder` stores the splits as ImageFolder trees.

Which set is closest to the seen classes is measured, not assumed (:func:`concept_separability`); the
ladder's levels L1 (closest) to L5 (farthest), :data:`LADDER`, are the five candidates in that measured order.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np
from skimage.transform import resize

from mimstudy.data.fashion_mnist import CLASS_NAMES
from mimstudy.data.photo_composites import composite, photo
from mimstudy.downstream import imagefolder
from mimstudy.downstream.garments import (SPLIT_IDS, SPRITE_RANGES, STREAM_IDS, garment_labels, garment_sprites,
                                          normalised, photos_for, sprite_range, write_dataset)

GENERATOR_VERSION = 1  # bump when the drawing changes: cached datasets are keyed on it
DIGIT_RANGES = {"train": (0, 1200), "val": (0, 1200), "test": (1200, 1797)}
SIZE = 32
SPRITE = 28  # the frame a sprite is drawn in before compositing (Fashion-MNIST's)
SHORT = ("tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot")
HYBRID_PAIRS = ((0, 1), (1, 0), (2, 3), (3, 4), (4, 9), (6, 1), (8, 5), (9, 7), (0, 3), (2, 8))
OUTFIT_PAIRS = ((0, 1), (2, 1), (3, 5), (4, 1), (6, 9), (0, 7), (8, 3), (4, 9), (2, 5), (6, 8))
SHAPES = ("disk", "ring", "square", "triangle", "pentagon", "star", "cross", "ellipse", "crescent", "arrow")
MATERIALS = ("brick", "grass", "gravel", "moon", "coins", "page", "text", "clock", "cell", "hubble_deep_field")
MATERIAL_REGIONS = {"train": ((0.0, 0.6), (0.0, 0.8)), "val": ((0.0, 0.6), (0.8, 1.0)), "test": ((0.6, 1.0), (0.0, 1.0))}
FINE_CLUSTERS = 5
LONG_TAIL_ID = 97  # seeds the long tail's class ranks apart from every item's draw
LONG_TAIL_MINIMUM = 2  # training images of the rarest classes


@lru_cache(maxsize=1)
def _class_pools() -> dict[tuple[str, int], np.ndarray]:
    labels = garment_labels()
    pools = {}
    for split in ("train", "test"):
        lo, hi = SPRITE_RANGES[split]
        for c in range(len(CLASS_NAMES)):
            pools[split, c] = lo + np.flatnonzero(labels[lo:hi] == c)
    return pools


def _class_sprite(rng: np.random.Generator, split: str, cls: int) -> np.ndarray:
    """A random Fashion-MNIST test sprite ``[28, 28]`` in [0, 1] of class ``cls`` from ``split``'s range."""
    pool = _class_pools()["test" if split == "test" else "train", cls]
    return garment_sprites()[pool[rng.integers(len(pool))]]


def _on_photo(sprite: np.ndarray, rng: np.random.Generator, split: str) -> np.ndarray:
    """``sprite`` (``[28, 28]`` in [0, 1], dark = transparent) over a photo crop, as the pre-training composites."""
    return composite(np.round(np.clip(sprite, 0, 1) * 255).astype(np.uint8), rng, photos_for(split))


def _place(patch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``patch`` at a random position in an empty 28x28 frame."""
    frame = np.zeros((SPRITE, SPRITE))
    h, w = patch.shape
    y, x = rng.integers(0, SPRITE - h + 1), rng.integers(0, SPRITE - w + 1)
    frame[y:y + h, x:x + w] = patch
    return frame


def draw_hybrid(rng, split, label):
    a, b = HYBRID_PAIRS[label]
    sprite = np.concatenate([_class_sprite(rng, split, a)[:SPRITE // 2], _class_sprite(rng, split, b)[SPRITE // 2:]])
    return _on_photo(sprite, rng, split)


def draw_outfit(rng, split, label):
    halves = [_class_sprite(rng, split, c).reshape(14, 2, 14, 2).mean((1, 3)) for c in OUTFIT_PAIRS[label]]
    sprite = np.zeros((SPRITE, SPRITE))
    for k, half in enumerate(halves):
        top = rng.integers(0, SPRITE - 14 + 1)
        sprite[top:top + 14, 14 * k:14 * k + 14] = half
    return _on_photo(sprite, rng, split)


@lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    data = load_digits()
    return data.images / 16.0, data.target


def draw_digit(rng, split, label):
    images, targets = _digits()
    lo, hi = DIGIT_RANGES[split]
    pool = lo + np.flatnonzero(targets[lo:hi] == label)
    side = int(rng.integers(16, 23))
    digit = resize(images[pool[rng.integers(len(pool))]], (side, side), order=1, anti_aliasing=False)
    return _on_photo(_place(digit * rng.uniform(0.6, 1.0), rng), rng, split)


def _polygon(points: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    from skimage.measure import points_in_poly

    return points_in_poly(np.stack([x.ravel(), y.ravel()], 1), points).reshape(x.shape)


def _regular(n: int, radius: float = 1.0, phase: float = -np.pi / 2) -> np.ndarray:
    t = phase + 2 * np.pi * np.arange(n) / n
    return radius * np.stack([np.cos(t), np.sin(t)], 1)


def shape_mask(name: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Whether points ``(x, y)`` (unit coordinates, the shape spans about [-1, 1]) lie inside shape ``name``."""
    r = np.hypot(x, y)
    if name == "disk":
        return r <= 0.95
    if name == "ring":
        return (r <= 0.95) & (r >= 0.55)
    if name == "square":
        return np.maximum(np.abs(x), np.abs(y)) <= 0.75
    if name == "triangle":
        return _polygon(_regular(3) + [0, 0.2], x, y)
    if name == "pentagon":
        return _polygon(_regular(5, 0.95), x, y)
    if name == "star":
        outer, inner = _regular(5), _regular(5, 0.4, -np.pi / 2 + np.pi / 5)
        return _polygon(np.stack([outer, inner], 1).reshape(-1, 2), x, y)
    if name == "cross":
        return ((np.abs(x) <= 0.3) & (np.abs(y) <= 0.95)) | ((np.abs(y) <= 0.3) & (np.abs(x) <= 0.95))
    if name == "ellipse":
        return (x / 0.95) ** 2 + (y / 0.5) ** 2 <= 1
    if name == "crescent":
        return (r <= 0.95) & (np.hypot(x - 0.45, y) > 0.75)
    if name == "arrow":
        return _polygon(np.array([[-0.95, -0.25], [0.2, -0.25], [0.2, -0.65], [0.95, 0], [0.2, 0.65], [0.2, 0.25],
                                  [-0.95, 0.25]]), x, y)
    raise ValueError(f"unknown shape {name!r}; shapes: {SHAPES}")


def draw_shape(rng, split, label, supersample: int = 4):
    side = rng.uniform(14, 24)
    angle = rng.uniform(-np.pi / 6, np.pi / 6)
    n = SPRITE * supersample
    grid = (np.arange(n) + 0.5) / supersample - SPRITE / 2 - rng.uniform(-(SPRITE - side) / 2, (SPRITE - side) / 2, 2)[:, None]
    y, x = np.meshgrid(grid[0], grid[1], indexing="ij")
    c, s = np.cos(angle), np.sin(angle)
    u, v = (c * x + s * y) / (side / 2), (-s * x + c * y) / (side / 2)
    alpha = shape_mask(SHAPES[label], u, v).reshape(SPRITE, supersample, SPRITE, supersample).mean((1, 3))
    fill = rng.uniform(0.5, 1.0) * (0.85 + 0.15 * rng.random((SPRITE, SPRITE)))
    return _on_photo(alpha * fill, rng, split)


def draw_material(rng, split, label):
    texture = photo(MATERIALS[label], int(rng.integers(1, 3)))
    (r0, r1), (c0, c1) = MATERIAL_REGIONS[split]
    h, w = texture.shape
    top = rng.integers(int(r0 * h), int(r1 * h) - SIZE + 1)
    left = rng.integers(int(c0 * w), int(c1 * w) - SIZE + 1)
    return normalised(texture[top:top + SIZE, left:left + SIZE], rng)


def draw_garment(rng, split, label):
    return _on_photo(_class_sprite(rng, split, label), rng, split)


@lru_cache(maxsize=1)
def fine_labels() -> np.ndarray:
    """Sub-class of every Fashion-MNIST test sprite: ``class * FINE_CLUSTERS + cluster`` (k-means of HOG within its class)."""
    from skimage.feature import hog
    from sklearn.cluster import KMeans

    sprites, labels = garment_sprites(), garment_labels()
    out = np.zeros(len(labels), np.int64)
    for c in range(len(CLASS_NAMES)):
        members = np.flatnonzero(labels == c)
        descriptors = np.stack([hog(sprites[i], orientations=8, pixels_per_cell=(7, 7), cells_per_block=(1, 1))
                                for i in members])
        clusters = KMeans(FINE_CLUSTERS, n_init=4, random_state=0).fit_predict(descriptors)
        out[members] = c * FINE_CLUSTERS + clusters
    return out


def draw_fine(rng, split, label):
    lo, hi = sprite_range(split)
    pool = lo + np.flatnonzero(fine_labels()[lo:hi] == label)
    return _on_photo(garment_sprites()[pool[rng.integers(len(pool))]], rng, split)


@dataclass(frozen=True)
class ConceptSet:
    """A classification dataset's generator: ``draw(rng, split, label) -> [32, 32]`` image in [0, 1]."""

    classes: tuple[str, ...]
    draw: Callable
    what: str

    def folder_names(self) -> tuple[str, ...]:
        return tuple(f"{k:02d}_{name}" for k, name in enumerate(self.classes))


def _fine_classes() -> tuple[str, ...]:
    return tuple(f"{SHORT[c]}_{k}" for c in range(len(SHORT)) for k in range(FINE_CLUSTERS))


CONCEPT_SETS: dict[str, ConceptSet] = {
    "hybrids": ConceptSet(tuple(f"{SHORT[a]}_over_{SHORT[b]}" for a, b in HYBRID_PAIRS), draw_hybrid,
                          "top half of one garment class over the bottom half of another"),
    "outfits": ConceptSet(tuple(f"{SHORT[a]}_and_{SHORT[b]}" for a, b in OUTFIT_PAIRS), draw_outfit,
                          "two half-scale garments side by side"),
    "digits": ConceptSet(tuple(f"digit_{d}" for d in range(10)), draw_digit, "scikit-learn handwritten digits"),
    "shapes": ConceptSet(SHAPES, draw_shape, "geometric shapes"),
    "materials": ConceptSet(MATERIALS, draw_material, "full-frame photo textures"),
    "garments": ConceptSet(SHORT, draw_garment, "the ten pre-training classes (covered)"),
    "fine": ConceptSet(_fine_classes(), draw_fine, "garment sub-classes (HOG k-means within each class)"),
}


def draw_item(name: str, split: str, index: int, seed: int = 0) -> tuple[np.ndarray, int]:
    """Item ``index`` of ``split`` of concept set ``name``: a ``[32, 32]`` float32 image and its label."""
    if split not in SPLIT_IDS:
        raise ValueError(f"split must be one of {sorted(SPLIT_IDS)}, got {split!r}")
    spec = CONCEPT_SETS[name]
    label = index % len(spec.classes)
    rng = np.random.default_rng([seed, STREAM_IDS[name], SPLIT_IDS[split], index])
    return spec.draw(rng, split, label).astype(np.float32), label


def draw_split(name: str, split: str, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    items = [draw_item(name, split, i, seed) for i in range(n)]
    return np.stack([im for im, _ in items]), np.array([lab for _, lab in items], np.int64)


def long_tail_counts(classes: int, total: int, seed: int = 0, minimum: int = LONG_TAIL_MINIMUM) -> np.ndarray:
    """Training images per class for a long-tailed split (iNat18's role): ``minimum`` each, the rest
    shared in proportion to 1 / rank (Zipf), ranks a seeded permutation of the classes; the counts sum
    to ``total`` exactly (largest remainders)."""
    if total < minimum * classes:
        raise ValueError(f"a long-tailed split of {classes} classes needs >= {minimum * classes} images, got {total}")
    ranks = np.random.default_rng([seed, LONG_TAIL_ID]).permutation(classes)
    share = (total - minimum * classes) * (1.0 / (ranks + 1)) / (1.0 / (ranks + 1)).sum()
    counts = minimum + np.floor(share).astype(int)
    counts[np.argsort(-(share - np.floor(share)), kind="stable")[: total - int(counts.sum())]] += 1
    return counts


def long_tailed_split(name: str, total: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The training split of ``name`` with :func:`long_tail_counts` images per class (items ``c + k * classes``)."""
    classes = len(CONCEPT_SETS[name].classes)
    counts = long_tail_counts(classes, total, seed)
    items = [draw_item(name, "train", c + k * classes, seed) for c in range(classes) for k in range(counts[c])]
    return np.stack([im for im, _ in items]), np.array([lab for _, lab in items], np.int64)


def generated_dataset(name: str, cache_dir: str | Path, train_size: int, test_size: int, seed: int = 0,
                      val_size: int | None = None, long_tail: bool = False) -> Path:
    """The ImageFolder tree of concept set ``name`` (train / val / test; val as large as test unless given), cached.
    ``long_tail``: the training split's class counts follow :func:`long_tail_counts` (validation and test stay balanced)."""
    val_size = test_size if val_size is None else val_size
    tail = "-longtail" if long_tail else ""
    root = Path(cache_dir) / f"{name}{tail}-v{GENERATOR_VERSION}-seed{seed}-{train_size}x{val_size}x{test_size}"
    classes = CONCEPT_SETS[name].folder_names()

    def write(folder: Path, split: str, n: int) -> None:
        tailed = long_tail and split == "train"
        images, labels = long_tailed_split(name, n, seed) if tailed else draw_split(name, split, n, seed)
        imagefolder.write_split(folder, split, images, labels, classes)

    return write_dataset(root, {"train": train_size, "val": val_size, "test": test_size}, write)


LADDER_CANDIDATES = ("hybrids", "outfits", "digits", "shapes", "materials")
# The levels L1..L5 in the order concept_separability measured (HOG probe / NMI, seed 0, 40 per class):
# hybrids 0.54 / 0.37, materials 0.34 / 0.17, shapes 0.31 / 0.12, digits 0.24 / 0.11, outfits 0.23 / 0.07
# (the covered garments: 0.60 / 0.51). tests/test_semantic.py re-measures it.
LADDER = ("hybrids", "materials", "shapes", "digits", "outfits")
REFERENCE_IMAGES = 3000  # pre-training composites the seen-class classifier is fitted on


def hog_features(images: np.ndarray) -> np.ndarray:
    """HOG descriptors (9 orientations, 8-px cells, 2x2 blocks) of ``[n, 32, 32]`` images: tolerant of small shifts."""
    from skimage.feature import hog

    return np.stack([hog(im, orientations=9, pixels_per_cell=(8, 8), cells_per_block=(2, 2)) for im in images])


@lru_cache(maxsize=2)
def reference_classifier(n: int = REFERENCE_IMAGES):
    """A logistic regression of the ten seen classes on HOG descriptors, fitted on the first ``n``
    pre-training composites (Fashion-MNIST training garments on training photos; 64 % top-1 on test
    composites, raw pixels reach 52 %): the stand-in for the WordNet hierarchy CoG measures concept
    distance in."""
    from sklearn.linear_model import LogisticRegression

    from mimstudy.data.photo_composites import composites

    images, labels = composites("train", np.arange(n))
    return LogisticRegression(max_iter=500, C=0.1).fit(hog_features(images), labels)


def concept_separability(names: tuple[str, ...] = LADDER_CANDIDATES, per_class: int = 40, seed: int = 0,
                         reference_images: int = REFERENCE_IMAGES) -> dict[str, dict[str, float]]:
    """How well the seen-class classifier tells each concept set's classes apart (higher: closer to the seen concepts).

    For ``per_class`` training items per class of each set: ``probe``, the 5-fold accuracy of a
    logistic regression on the classifier's ten logits (its features, frozen: how much of a concept
    survives the seen-class bottleneck), and ``nmi``, the normalised mutual information between the
    concept labels and the seen class the classifier predicts (the design's stand-in for CoG's Lin
    similarity). About 15 s on one core."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import normalized_mutual_info_score
    from sklearn.model_selection import cross_val_score

    reference = reference_classifier(reference_images)
    out = {}
    for name in names:
        images, labels = draw_split(name, "train", per_class * len(CONCEPT_SETS[name].classes), seed)
        logits = reference.decision_function(hog_features(images))
        probe = cross_val_score(LogisticRegression(max_iter=1000), logits, labels, cv=5).mean()
        out[name] = {"probe": float(probe), "nmi": float(normalized_mutual_info_score(labels, logits.argmax(1)))}
    return out


def measured_ladder(separability: dict[str, dict[str, float]], key: str = "probe") -> tuple[str, ...]:
    """The concept sets from closest to farthest by ``key``."""
    return tuple(sorted(separability, key=lambda name: -separability[name][key]))
