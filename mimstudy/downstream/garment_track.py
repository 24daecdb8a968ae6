"""GarmentTrack: videos of a moving Fashion-MNIST garment among look-alikes over a panned photograph.

The tracking benchmark's analog (GOT-10k). Each sequence is ``length`` grey frames of ``FRAME_SIZE``
px: a window panning slowly (up to 0.5 px a frame) across a ``skimage.data`` photograph (train and
test use the disjoint photos of :mod:`mimstudy.data.photo_composites`, at one of its downsampling
scales, with its contrast normalisation), a target garment 10-18 px on its longer side moving on a
velocity walk (|v| <= 2 px a frame, bouncing off the borders) with drifting scale (0.75-1.3x),
rotation (within 25 degrees) and brightness (0.75-1.25x), and 2-3 distractor garments moving the
same way, half of them of the target's class, each drawn behind or (p = 0.3) in front of the
target. Garments are Fashion-MNIST *test* images (train sequences use images 0-6,999, test
sequences 7,000-9,999), their filled silhouettes opaque, as in the photo composites.

Ground truth per frame: the box of the target's whole silhouette (clipped to the frame, covered
parts included, as GOT-10k annotates) and its visible ratio as a ``cover.label`` level. The
template defines the target and same-class distractors punish category features: the task asks
for correspondence and motion, not semantics. Sequence ``i`` of split ``s`` with dataset seed
``seed`` comes from ``np.random.default_rng([seed, STREAM_ID, split_id, i])`` alone.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.ndimage import affine_transform

from mimstudy.data.photo_composites import MIN_CROP_STD, SCALES, photo
from mimstudy.downstream.garments import (SPLIT_IDS, STREAM_IDS, garment_cutout, garment_labels, normalised,
                                          photos_for, sprite_range, write_dataset)
from mimstudy.downstream.got10k import Sequence, cover_level, write_split

GENERATOR_VERSION = 1  # bump when the drawing changes: cached datasets are keyed on it
STREAM_ID = STREAM_IDS["garment_track"]
FRAME_SIZE = 64
SEQUENCE_LENGTH = 40
MAX_SPEED, PAN_SPEED = 2.0, 0.5  # px per frame
SIZE_RANGE = (10, 18)  # the target's longer side in the first frame, px
BACKGROUND_TRIES = 16


def _background(rng: np.random.Generator, split: str, length: int, size: int) -> np.ndarray:
    """``[length, size, size]`` frames of a window panning across a photo (contrast-normalised)."""
    names = photos_for(split)
    velocity = rng.uniform(-PAN_SPEED, PAN_SPEED, size=2)
    travel = np.abs(velocity) * (length - 1)
    span = size + int(np.ceil(travel.max())) + 1
    best, best_std = None, -1.0
    for _ in range(BACKGROUND_TRIES):
        source = photo(names[rng.integers(len(names))], SCALES[rng.integers(len(SCALES))])
        if min(source.shape) < span:
            continue
        top, left = (int(rng.integers(0, n - span + 1)) for n in source.shape)
        region = source[top:top + span, left:left + span]
        std = float(region.std())
        if std > best_std:
            best, best_std = region, std
        if std >= MIN_CROP_STD:
            break
    if best is None:  # every draw hit a photo too small at its scale: take the first photo at scale 1
        best = photo(names[0], 1)[:span, :span]
    region = normalised(best, rng)
    start = np.where(velocity < 0, travel, 0.0)
    frames = []
    for t in range(length):
        x, y = np.round(start + velocity * t).astype(int)
        frames.append(region[y:y + size, x:x + size])
    return np.stack(frames).astype(np.float64)


class _Walker:
    """A garment on a velocity walk with drifting scale, rotation and brightness."""

    def __init__(self, rng: np.random.Generator, index: int, size: int):
        self.pixels, self.alpha = garment_cutout(index)
        self.frame = size
        self.side = rng.uniform(*SIZE_RANGE)
        self.position = rng.uniform(0.25 * size, 0.75 * size, size=2)  # centre x, y
        self.velocity = rng.uniform(-MAX_SPEED, MAX_SPEED, size=2) / 2
        self.log_scale, self.angle, self.brightness = 0.0, rng.uniform(-10, 10), rng.uniform(0.85, 1.15)

    def step(self, rng: np.random.Generator) -> None:
        self.velocity = self.velocity + rng.normal(0, 0.5, size=2)
        speed = np.hypot(*self.velocity)
        if speed > MAX_SPEED:
            self.velocity *= MAX_SPEED / speed
        self.position = self.position + self.velocity
        margin = 0.25 * self.side
        for k in range(2):  # bounce off the borders, the centre staying a quarter of the side inside
            if not margin <= self.position[k] <= self.frame - margin:
                self.position[k] = np.clip(self.position[k], margin, self.frame - margin)
                self.velocity[k] = -self.velocity[k]
        self.log_scale = float(np.clip(self.log_scale + rng.normal(0, 0.02), np.log(0.75), np.log(1.3)))
        self.angle = float(np.clip(self.angle + rng.normal(0, 2.0), -25, 25))
        self.brightness = float(np.clip(self.brightness + rng.normal(0, 0.02), 0.75, 1.25))

    def render(self) -> tuple[np.ndarray, np.ndarray]:
        """The garment's pixels and coverage ``[frame, frame]`` at its current pose (bilinear)."""
        h, w = self.alpha.shape
        zoom = self.side * np.exp(self.log_scale) / max(h, w)  # frame px per garment px
        c, s = np.cos(np.radians(self.angle)), np.sin(np.radians(self.angle))
        # frame (row, col) -> garment (row, col): rotate about the garment centre, then scale
        matrix = np.array([[c, s], [-s, c]]) / zoom
        centre = np.array([h, w]) / 2 - 0.5
        offset = centre - matrix @ (self.position[::-1] - 0.5)
        shape = (self.frame, self.frame)
        alpha = affine_transform(self.alpha, matrix, offset, output_shape=shape, order=1, cval=0.0)
        pixels = affine_transform(self.pixels, matrix, offset, output_shape=shape, order=1, cval=0.0)
        return np.clip(pixels * self.brightness, 0, 1), alpha


def _box(alpha: np.ndarray) -> np.ndarray:
    """x, y, w, h of the pixels at least half covered."""
    rows, cols = np.nonzero(alpha >= 0.5)
    if not len(rows):
        return np.array([0.0, 0.0, 0.0, 0.0])
    return np.array([cols.min(), rows.min(), cols.max() + 1 - cols.min(), rows.max() + 1 - rows.min()], dtype=np.float64)


def draw_sequence(split: str, index: int, length: int = SEQUENCE_LENGTH, seed: int = 0,
                  size: int = FRAME_SIZE) -> Sequence:
    """Sequence ``index`` of ``split`` (``train``/``test``): deterministic (see the module docstring)."""
    if split not in SPLIT_IDS:
        raise ValueError(f"split must be one of {sorted(SPLIT_IDS)}, got {split!r}")
    rng = np.random.default_rng([seed, STREAM_ID, SPLIT_IDS[split], index])
    frames = _background(rng, split, length, size)
    lo, hi = sprite_range(split)
    target_index = int(rng.integers(lo, hi))
    labels = garment_labels()[lo:hi]
    same_class = np.flatnonzero(labels == labels[target_index - lo]) + lo
    walkers = [_Walker(rng, target_index, size)]
    in_front = [False]
    for k in range(int(rng.integers(2, 4))):
        pool_index = int(rng.choice(same_class)) if k % 2 == 0 else int(rng.integers(lo, hi))
        walkers.append(_Walker(rng, pool_index, size))
        in_front.append(bool(rng.random() < 0.3))
    boxes, cover = [], []
    for t in range(length):
        if t:
            for walker in walkers:
                walker.step(rng)
        drawn = [w.render() for w in walkers]
        frame, target_alpha = frames[t], drawn[0][1]
        for k in sorted(range(len(walkers)), key=lambda k: 1 if k == 0 else 2 * in_front[k]):  # behind, target, front
            pixels, alpha = drawn[k]
            frame = alpha * pixels + (1 - alpha) * frame
        frames[t] = frame
        hidden = np.ones_like(target_alpha)
        for k in range(1, len(walkers)):
            if in_front[k]:
                hidden *= 1 - drawn[k][1]
        visible = float((target_alpha * hidden).sum() / max(target_alpha.sum(), 1e-6))
        boxes.append(_box(target_alpha))
        cover.append(cover_level(visible))
    return Sequence(f"GarmentTrack_{split}_{index:06d}", frames.astype(np.float32), np.stack(boxes),
                    np.array(cover, dtype=np.int64))


def generated_dataset(cache_dir: str | Path, train_sequences: int, test_sequences: int, seed: int,
                      length: int = SEQUENCE_LENGTH) -> Path:
    """The folder of a generated GarmentTrack dataset in the GOT-10k layout, written once and then reused.

    The folder name holds everything that determines its content."""
    root = Path(cache_dir) / (f"tracking-v{GENERATOR_VERSION}-seed{seed}-{train_sequences}x"
                              f"{test_sequences}-{length}f-{FRAME_SIZE}px")
    return write_dataset(root, {"train": train_sequences, "test": test_sequences}, lambda folder, split, n:
                         write_split(folder, split, [draw_sequence(split, i, length, seed) for i in range(n)]))
