"""Puppet-Pose: articulated figures with 13 keypoints and their visibility, drawn from real image content.

The pose benchmark's analog (COCO keypoints; the crowded variant plays CrowdPose). Each image is a
grey ``size`` x ``size`` crop of a photograph from ``skimage.data`` (train and test use disjoint
photos) holding one target figure: a torso, a head and eight limb segments whose textures are
Fashion-MNIST *test* garments (train items use test images 0-6,999, test items 7,000-9,999; the
training split is left to pre-training), a few garment sprites as clutter behind it and, sometimes,
one in front. The crowded variant adds one or two other figures 6-12 px away, drawn before or after
the target, so they occlude it or are occluded by it.

Keypoints (COCO's order without eyes and ears): nose, left/right shoulder, elbow, wrist, hip, knee,
ankle. Coordinates are continuous, pixel ``i`` covering ``[i, i + 1)``. Visibility as in COCO:
2 = the joint's pixel shows a part of the target the joint belongs to, 1 = inside the image but
covered (by a later part, another figure or clutter), 0 = outside the image (stored as ``0, 0, 0``).

Geometry: torso 9-12 px times a scale of 0.8-1.2, rotated by up to 40 degrees, centred within 2 px;
the limbs bend at random within human-like ranges; the side turned away is drawn first, so the
torso hides it. Rendering is 2x supersampled. Item ``i`` of split ``s`` of a dataset with seed
``seed`` is drawn from ``np.random.default_rng([seed, STREAM_IDS[task], split_id, i])`` alone, so every item
is reproducible on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from skimage.draw import disk, polygon
from skimage.transform import resize

from mimstudy.data.photo_composites import photo
from mimstudy.downstream.coco_keypoints import write_split
from mimstudy.downstream.garments import SPLIT_IDS, STREAM_IDS, garment_sprites, photos_for, sprite_range, write_dataset

GENERATOR_VERSION = 3  # bump when the drawing changes: cached datasets are keyed on it (2: area = silhouette;
# 3: photos by mimstudy.data.photo_composites.photo, float32: 4 of 614,400 8-bit pixels of 600 items moved by 1)
KEYPOINTS = ("nose", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist",
             "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle")
FLIP_PAIRS = ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12))
# COCO's per-keypoint OKS sigmas for these 13 joints (pycocotools' defaults without eyes and ears)
SIGMAS = (0.026, 0.079, 0.079, 0.072, 0.072, 0.062, 0.062, 0.107, 0.107, 0.087, 0.087, 0.089, 0.089)
SKELETON = ((1, 2), (1, 3), (3, 5), (2, 4), (4, 6), (1, 7), (2, 8), (7, 8), (7, 9), (9, 11), (8, 10), (10, 12),
            (0, 1), (0, 2))  # 0-based joint pairs (written 1-based into the COCO file, as COCO does)
VARIANTS = ("pose", "crowdpose")
SUPERSAMPLE = 2

# Parts: name, joints it spans, width as a fraction of the torso length. Joint ownership follows.
LIMBS = {"l_upper_arm": (1, 3, 0.22), "l_forearm": (3, 5, 0.18), "r_upper_arm": (2, 4, 0.22),
         "r_forearm": (4, 6, 0.18), "l_thigh": (7, 9, 0.28), "l_shin": (9, 11, 0.22),
         "r_thigh": (8, 10, 0.28), "r_shin": (10, 12, 0.22)}
PARTS = ("torso", "head", *LIMBS)
OWNERS = {0: {"head"}, 1: {"torso", "l_upper_arm"}, 2: {"torso", "r_upper_arm"}, 3: {"l_upper_arm", "l_forearm"},
          4: {"r_upper_arm", "r_forearm"}, 5: {"l_forearm"}, 6: {"r_forearm"}, 7: {"torso", "l_thigh"},
          8: {"torso", "r_thigh"}, 9: {"l_thigh", "l_shin"}, 10: {"r_thigh", "r_shin"}, 11: {"l_shin"},
          12: {"r_shin"}}
CLUTTER_ID = 255


@dataclass
class Puppet:
    """One drawn item: the grey image, the target's keypoints ``[13, 3]`` (x, y, v) and its box."""

    image: np.ndarray  # [size, size] float in [0, 1]
    keypoints: np.ndarray  # [13, 3]
    bbox: tuple[float, float, float, float]  # x, y, w, h of the target's drawn silhouette (clipped)
    area: float  # the target's visible silhouette in image pixels (COCO's segmentation area; it scales the OKS)


def _rotation(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s], [s, c]])


def _limb(rng: np.random.Generator, root: np.ndarray, sign: float, swing: tuple[float, float],
          bend: float, lengths: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Middle and end joints of a two-segment limb hanging from ``root``: the first segment swings
    outward by an angle in ``swing`` (degrees from hanging down), the second bends by up to ``bend``."""
    angle = np.radians(rng.uniform(*swing))
    first = np.array([np.sin(angle) * sign, np.cos(angle)])
    second = _rotation(np.radians(rng.uniform(0, bend)) * rng.choice([-1, 1]) * sign) @ first
    middle = root + lengths[0] * first
    return middle, middle + lengths[1] * second


def skeleton(rng: np.random.Generator, center: np.ndarray) -> tuple[np.ndarray, float]:
    """Joint positions ``[13, 2]`` (x, y) of a random pose around ``center`` and the torso length."""
    torso = rng.uniform(9, 12) * rng.uniform(0.8, 1.2)
    j = np.zeros((13, 2))
    j[0] = (0.0, -0.5 - 0.38)
    for side, sign in ((0, 1.0), (1, -1.0)):  # left joints sit at +x (a figure facing the viewer)
        shoulder, hip = np.array([0.32 * sign, -0.5]), np.array([0.22 * sign, 0.5])
        j[1 + side], j[7 + side] = shoulder, hip
        j[3 + side], j[5 + side] = _limb(rng, shoulder, sign, (-30, 150), 120, (0.45, 0.42))  # elbow, wrist
        j[9 + side], j[11 + side] = _limb(rng, hip, sign, (-15, 50), 90, (0.5, 0.48))  # knee, ankle
    angle = np.radians(rng.uniform(-40, 40))
    return center + (j * torso) @ _rotation(angle).T, torso


def _segment_polygon(a: np.ndarray, b: np.ndarray, width: float) -> np.ndarray:
    """Corners (x, y) of a rectangle of ``width`` from ``a`` to ``b`` with half-width caps."""
    d = b - a
    length = max(np.hypot(*d), 1e-6)
    u, n = d / length, np.array([-d[1], d[0]]) / length * width / 2
    a2, b2 = a - u * width / 4, b + u * width / 4
    return np.array([a2 + n, b2 + n, b2 - n, a2 - n])


def _texture(rng: np.random.Generator, split: str, shape: tuple[int, int]) -> np.ndarray:
    """A garment's pixels stretched over ``shape``, mapped to a bright or dark tone band."""
    lo, hi = sprite_range(split)
    sprite = garment_sprites()[rng.integers(lo, hi)]
    rows, cols = np.nonzero(sprite > 0.05)
    if len(rows):
        sprite = sprite[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    texture = resize(sprite, shape, order=1, mode="edge", anti_aliasing=False)
    base = rng.uniform(0.55, 0.75) if rng.random() < 0.7 else rng.uniform(0.0, 0.15)
    return base + 0.3 * texture


class Canvas:
    """A supersampled grey canvas with a layer map: which figure part (or clutter) each pixel shows."""

    def __init__(self, rng: np.random.Generator, split: str, size: int):
        self.size, self.scale = size, SUPERSAMPLE
        n = size * SUPERSAMPLE
        names = photos_for(split)
        source = photo(names[rng.integers(len(names))], 1)
        side = int(rng.integers(n, min(source.shape) // 2 + 1))
        r0, c0 = rng.integers(0, source.shape[0] - side + 1), rng.integers(0, source.shape[1] - side + 1)
        crop = resize(source[r0:r0 + side, c0:c0 + side], (n, n), order=1, anti_aliasing=True)
        lo = rng.uniform(0.1, 0.4)
        span = crop.max() - crop.min()
        self.pixels = lo + 0.35 * (crop - crop.min()) / (span if span > 0 else 1.0)
        self.layer = np.zeros((n, n), dtype=np.int32)  # 0: background; fig * 16 + part + 1; CLUTTER_ID

    def fill(self, rows: np.ndarray, cols: np.ndarray, values: np.ndarray, layer_id: int) -> None:
        self.pixels[rows, cols] = values
        self.layer[rows, cols] = layer_id

    def polygon(self, corners: np.ndarray, texture: np.ndarray, layer_id: int) -> np.ndarray:
        """Fill a polygon given in continuous image coordinates (x, y); returns its pixel mask."""
        n = self.size * self.scale
        rr, cc = polygon(corners[:, 1] * self.scale - 0.5, corners[:, 0] * self.scale - 0.5, shape=(n, n))
        self.fill(rr, cc, texture[rr, cc], layer_id)
        return rr, cc

    def disk(self, center: np.ndarray, radius: float, texture: np.ndarray, layer_id: int):
        n = self.size * self.scale
        rr, cc = disk((center[1] * self.scale - 0.5, center[0] * self.scale - 0.5), radius * self.scale, shape=(n, n))
        self.fill(rr, cc, texture[rr, cc], layer_id)
        return rr, cc

    def sprite(self, rng: np.random.Generator, split: str, layer_id: int) -> None:
        """A garment sprite (10-16 px) at a random place, its alpha from the garment's own pixels."""
        n = self.size * self.scale
        lo, hi = sprite_range(split)
        side = int(rng.integers(10, 17)) * self.scale
        sprite = resize(garment_sprites()[rng.integers(lo, hi)], (side, side), order=1, anti_aliasing=True)
        r0, c0 = (int(v) for v in rng.integers(-side // 2, n - side // 2, size=2))
        rows, cols = np.nonzero(sprite > 0.1)
        rr, cc = rows + r0, cols + c0
        keep = (rr >= 0) & (rr < n) & (cc >= 0) & (cc < n)
        tone = rng.uniform(0.2, 0.9)
        self.fill(rr[keep], cc[keep], tone * 0.6 + 0.4 * sprite[rows[keep], cols[keep]], layer_id)

    def image(self) -> np.ndarray:
        s = self.scale
        return np.clip(self.pixels.reshape(self.size, s, self.size, s).mean(axis=(1, 3)), 0.0, 1.0)


def draw_figure(canvas: Canvas, rng: np.random.Generator, split: str, center: np.ndarray, figure: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw one figure back to front; returns its joints ``[13, 2]`` and its silhouette mask."""
    joints, torso = skeleton(rng, center)
    n = canvas.size * canvas.scale
    shape = (n, n)
    top, bottom = _texture(rng, split, shape), _texture(rng, split, shape)
    far = "r" if rng.random() < 0.5 else "l"  # the side turned away is drawn first
    near = "l" if far == "r" else "r"
    order = [f"{far}_thigh", f"{far}_shin", f"{far}_upper_arm", f"{far}_forearm", "torso", "head",
             f"{near}_thigh", f"{near}_shin", f"{near}_upper_arm", f"{near}_forearm"]
    mask = np.zeros(shape, dtype=bool)
    for part in order:
        layer_id = figure * 16 + PARTS.index(part) + 1
        shade = rng.uniform(-0.08, 0.08)
        if part == "torso":
            corners = joints[[1, 2, 8, 7]]
            rr, cc = canvas.polygon(corners, top + shade, layer_id)
        elif part == "head":
            rr, cc = canvas.disk(joints[0], 0.22 * torso, top + shade, layer_id)
        else:
            a, b, width = LIMBS[part]
            texture = top if "arm" in part else bottom
            rr, cc = canvas.polygon(_segment_polygon(joints[a], joints[b], max(width * torso, 1.2)), texture + shade,
                                    layer_id)
        mask[rr, cc] = True
    return joints, mask


def visibility(joints: np.ndarray, layer: np.ndarray, figure: int, size: int) -> np.ndarray:
    """COCO visibility of each joint of ``figure`` from the final layer map (see the module docstring)."""
    v = np.zeros(len(joints), dtype=np.int64)
    n = layer.shape[0]
    for k, (x, y) in enumerate(joints):
        if not (0 <= x < size and 0 <= y < size):
            continue
        shown = layer[min(int(y * n / size), n - 1), min(int(x * n / size), n - 1)]
        owners = {figure * 16 + PARTS.index(p) + 1 for p in OWNERS[k]}
        v[k] = 2 if shown in owners else 1
    return v


def draw_puppet(task: str, split: str, index: int, size: int = 32, seed: int = 0) -> Puppet:
    """Item ``index`` of ``split`` (``train``/``test``) of ``task`` (``pose``/``crowdpose``): deterministic."""
    if task not in VARIANTS or split not in SPLIT_IDS:
        raise ValueError(f"task must be one of {sorted(VARIANTS)} and split one of {sorted(SPLIT_IDS)}, got {task!r}, {split!r}")
    rng = np.random.default_rng([seed, STREAM_IDS[task], SPLIT_IDS[split], index])
    canvas = Canvas(rng, split, size)
    for _ in range(rng.integers(0, 3)):
        canvas.sprite(rng, split, CLUTTER_ID)
    center = size / 2 + rng.uniform(-2, 2, size=2)
    others = []
    if task == "crowdpose":
        for _ in range(rng.integers(1, 3)):
            angle, distance = rng.uniform(0, 2 * np.pi), rng.uniform(6, 12)
            others.append((center + distance * np.array([np.cos(angle), np.sin(angle)]), rng.random() < 0.5))
    figure = 1
    for other_center, before in others:
        if before:
            draw_figure(canvas, rng, split, other_center, figure)
            figure += 1
    joints, mask = draw_figure(canvas, rng, split, center, 0)
    for other_center, before in others:
        if not before:
            draw_figure(canvas, rng, split, other_center, figure)
            figure += 1
    if rng.random() < 0.25:
        canvas.sprite(rng, split, CLUTTER_ID)
    v = visibility(joints, canvas.layer, 0, size)
    keypoints = np.concatenate([np.where(v[:, None] > 0, joints, 0.0), v[:, None]], axis=1)
    rows, cols = np.nonzero(mask)
    s = canvas.scale
    x0, y0 = cols.min() / s, rows.min() / s
    w, h = (cols.max() + 1) / s - x0, (rows.max() + 1) / s - y0
    return Puppet(canvas.image(), keypoints, (float(x0), float(y0), float(w), float(h)),
                  silhouette_area(canvas.layer, 0, s))


def silhouette_area(layer: np.ndarray, figure: int, scale: int) -> float:
    """Image pixels showing ``figure`` in the final layer map (supersampled by ``scale``): COCO's ``area``,
    the pixel count of the person's segmentation, which covers what is visible of it."""
    return float(((layer > figure * 16) & (layer <= figure * 16 + len(PARTS))).sum() / scale ** 2)


def generated_dataset(cache_dir: str | Path, train_size: int, test_size: int, img_size: int, seed: int,
                      task: str = "pose") -> Path:
    """The folder of a generated Puppet-Pose dataset in COCO format, written once and then reused.

    The folder name holds everything that determines its content (task, generator version, seed,
    sizes), so a changed generator or seed never reads a stale cache.
    """
    root = Path(cache_dir) / f"{task}-v{GENERATOR_VERSION}-seed{seed}-{train_size}x{test_size}-{img_size}px"

    def write(folder: Path, split: str, n: int) -> None:
        items = [draw_puppet(task, split, i, img_size, seed) for i in range(n)]
        write_split(folder, split, [p.image for p in items], [p.keypoints for p in items], [p.bbox for p in items],
                    [p.area for p in items], KEYPOINTS, SKELETON)

    return write_dataset(root, {"train": train_size, "test": test_size}, write)
