"""GarmentWorld-Depth: pinhole scenes with a depth map per pixel, drawn from real image content.

The depth benchmark's analog (NYUv2). A camera 1.5 m above a ground plane, focal length 32 px,
looks at a textured ground (a ``skimage.data`` photograph laid on the plane, so its texture shrinks
with distance: a texture gradient), a textured back wall 6-10 m away, and 1-4 Fashion-MNIST *test*
garments standing on the ground 1-9 m away, each with its class's height in metres (±10%), so its
size and its contact row agree with its depth, painted far to near (occlusion). The horizon row is
drawn anew for every scene (6-14 px from the top, with up to 5 degrees of roll), so the row index
alone does not give the depth. Depth is in metres, capped at 10 m. Train and test use disjoint
photographs and garments (:mod:`mimstudy.downstream.garments`). Item ``i`` of split ``s`` with
dataset seed ``seed`` comes from ``np.random.default_rng([seed, 2, split_id, i])`` alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from skimage.transform import resize

from mimstudy.data.photo_composites import photo
from mimstudy.downstream.garments import (SPLIT_IDS, STREAM_IDS, garment_labels, garment_sprites, photos_for,
                                          sprite_range, write_dataset)
from mimstudy.downstream.nyu_depth import write_split

GENERATOR_VERSION = 2  # cached datasets are keyed on it (2: photos by mimstudy.data.photo_composites.photo, float32:
# 52 of 614,400 8-bit pixels of 600 items moved by 1)
STREAM_ID = STREAM_IDS["garment_world"]
CAMERA_HEIGHT = 1.5  # m
FOCAL = 32.0  # px
MAX_DEPTH = 10.0  # m
TEXTURE_PX_PER_M = 40.0  # photograph pixels per metre of ground
# Fashion-MNIST classes' heights in metres: T-shirt, trouser, pullover, dress, coat, sandal, shirt, sneaker, bag, boot
CLASS_HEIGHTS = (0.7, 1.0, 0.7, 1.1, 1.0, 0.25, 0.75, 0.3, 0.45, 0.4)


@dataclass
class Scene:
    image: np.ndarray  # [size, size] grey in [0, 1]
    depth: np.ndarray  # [size, size] metres in (0, MAX_DEPTH]


def _sample(texture: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Bilinear-free lookup with wrap-around (a texture tiles the plane)."""
    h, w = texture.shape
    return texture[np.floor(rows).astype(int) % h, np.floor(cols).astype(int) % w]


def draw_scene(split: str, index: int, size: int = 32, seed: int = 0) -> Scene:
    """Scene ``index`` of ``split`` (``train``/``test``): deterministic (see the module docstring)."""
    if split not in SPLIT_IDS:
        raise ValueError(f"split must be one of {sorted(SPLIT_IDS)}, got {split!r}")
    rng = np.random.default_rng([seed, STREAM_ID, SPLIT_IDS[split], index])
    names = photos_for(split)
    ground_tex, wall_tex = (photo(names[rng.integers(len(names))], 1) for _ in range(2))
    horizon, roll = rng.uniform(6, 14), np.radians(rng.uniform(-5, 5))
    wall = rng.uniform(6, 10)
    offset = rng.uniform(0, 1000, size=2)
    s = 2  # supersampling of the image; depth at pixel centres
    n = size * s
    yy, xx = np.mgrid[0:n, 0:n]
    x, y = (xx + 0.5) / s - size / 2, (yy + 0.5) / s - size / 2  # centred continuous coordinates
    u = np.cos(roll) * x + np.sin(roll) * y  # camera-upright coordinates
    v = -np.sin(roll) * x + np.cos(roll) * y + size / 2
    below = v > horizon + 1e-6
    ground = np.where(below, FOCAL * CAMERA_HEIGHT / np.maximum(v - horizon, 1e-6), np.inf)
    depth = np.minimum(np.minimum(ground, wall), MAX_DEPTH)
    on_ground = ground <= min(wall, MAX_DEPTH)
    lateral = u * depth / FOCAL  # metres left/right
    image = np.empty((n, n))
    g = _sample(ground_tex, offset[0] + depth * TEXTURE_PX_PER_M, offset[1] + lateral * TEXTURE_PX_PER_M)
    w_rows = offset[0] + (horizon - v) * wall / FOCAL * TEXTURE_PX_PER_M
    w_cols = offset[1] + u * wall / FOCAL * TEXTURE_PX_PER_M
    image = np.where(on_ground, 0.15 + 0.5 * g, 0.35 + 0.5 * _sample(wall_tex, w_rows, w_cols))
    image *= np.clip(1.1 - depth / (2 * MAX_DEPTH), 0.5, 1.0)  # a little haze with distance
    lo, hi = sprite_range(split)
    objects = sorted(((rng.uniform(1, 9), rng.uniform(-0.4, 0.4) * size, int(rng.integers(lo, hi)), rng.uniform(0.9, 1.1),
                       rng.uniform(0.3, 1.0)) for _ in range(rng.integers(1, 5))), reverse=True)
    for z, lateral_px, sprite_index, stretch, tone in objects:  # far to near
        if z >= wall:
            continue
        sprite = garment_sprites()[sprite_index]
        height = FOCAL * CLASS_HEIGHTS[int(garment_labels()[sprite_index])] * stretch / z  # px
        side = max(int(round(height * s)), 2)
        scaled = resize(sprite, (side, side), order=1, anti_aliasing=True)
        contact = horizon + FOCAL * CAMERA_HEIGHT / z  # the row (upright frame) where it meets the ground
        # its pixels in the upright frame, mapped back through the roll
        rows, cols = np.nonzero(scaled > 0.15)
        vv = contact - (side - rows - 0.5) / s
        uu = lateral_px + (cols + 0.5 - side / 2) / s
        xr = np.cos(roll) * uu - np.sin(roll) * (vv - size / 2)
        yr = np.sin(roll) * uu + np.cos(roll) * (vv - size / 2)
        px, py = np.floor((xr + size / 2) * s).astype(int), np.floor((yr + size / 2) * s).astype(int)
        keep = (px >= 0) & (px < n) & (py >= 0) & (py < n)
        image[py[keep], px[keep]] = tone * 0.7 + 0.3 * scaled[rows[keep], cols[keep]]
        depth[py[keep], px[keep]] = z
    image = image.reshape(size, s, size, s).mean(axis=(1, 3))
    depth = depth[s // 2::s, s // 2::s]  # the sample at each pixel's centre (s = 2: the lower-right one)
    return Scene(np.clip(image, 0, 1), depth)


def generated_dataset(cache_dir: str | Path, train_size: int, test_size: int, img_size: int, seed: int) -> Path:
    """The folder of a generated GarmentWorld-Depth dataset in the NYUv2 layout, written once and reused."""
    root = Path(cache_dir) / f"depth-v{GENERATOR_VERSION}-seed{seed}-{train_size}x{test_size}-{img_size}px"

    def write(folder: Path, split: str, n: int) -> None:
        items = [draw_scene(split, i, img_size, seed) for i in range(n)]
        write_split(folder, split, [s.image for s in items], [s.depth for s in items])

    return write_dataset(root, {"train": train_size, "test": test_size}, write)
