"""The NYUv2 depth layout used by BTS / GLPDepth: RGB and depth PNG pairs listed in a text file; its metrics.

Layout::

    <root>/<split>_list.txt          one pair per line: "/<split>/rgb_00000.png /<split>/sync_depth_00000.png"
    <root>/<split>/rgb_<i>.png       the image (read as grey for our one-channel backbones)
    <root>/<split>/sync_depth_<i>.png  depth in millimetres, uint16 (0 = no measurement)

as GLPDepth's ``nyudepthv2.py`` reads it (``cv2.imread(..., IMREAD_UNCHANGED) / 1000.0``). Images of
another size are resized to ``img_size`` (depth by nearest neighbour). Metrics as GLPDepth's
``eval_depth``, per image over pixels with ``min_depth < gt <= max_depth`` (predictions clamped to
that range), then averaged over images: RMSE, AbsRel and delta1 = mean(max(p/g, g/p) < 1.25).
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
from mimstudy.downstream.images import open_image, write_grey

MIN_DEPTH, MAX_DEPTH = 1e-3, 10.0


def list_file(root: str | Path, split: str) -> Path:
    return Path(root) / f"{split}_list.txt"


def write_split(root: str | Path, split: str, images: list[np.ndarray], depths: list[np.ndarray]) -> Path:
    """Write grey images (floats in [0, 1]) and depths (metres) as PNG pairs, then the list (atomically, last)."""
    root = Path(root)
    (root / split).mkdir(parents=True, exist_ok=True)
    lines = []
    for i, (image, depth) in enumerate(zip(images, depths)):
        rgb, gt = f"/{split}/rgb_{i:05d}.png", f"/{split}/sync_depth_{i:05d}.png"
        write_grey(root / rgb[1:], image)
        with atomic_path(root / gt[1:]) as tmp:
            Image.fromarray(np.round(np.asarray(depth) * 1000).astype(np.uint16)).save(tmp, format="PNG")
        lines.append(f"{rgb} {gt}")
    path = list_file(root, split)
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class DepthPairs:
    images: torch.Tensor  # [N, 1, S, S] in [0, 1]
    depths: torch.Tensor  # [N, 1, S, S] metres (0: no measurement)

    def __len__(self) -> int:
        return len(self.images)


def read_split(root: str | Path, split: str, img_size: int, limit: int | None = None) -> DepthPairs:
    """Read a split's pairs (the first ``limit``); a missing or malformed file raises :class:`DatasetError` naming it."""
    root = Path(root)
    path = list_file(root, split)
    if not path.is_file():
        raise DatasetError(f"{path} is missing: an NYUv2-style dataset needs <split>_list.txt listing image/depth pairs")
    images, depths = [], []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) < 2:
            raise DatasetError(f"{path}, line {number}: expected '<image path> <depth path>', got {line!r}")
        image = open_image(root / parts[0].lstrip("/"), "image")
        depth = open_image(root / parts[1].lstrip("/"), "depth map")
        grey = torch.from_numpy(np.asarray(image.convert("L"), dtype=np.float32) / 255.0)[None, None]
        metres = torch.from_numpy(np.asarray(depth, dtype=np.float32) / 1000.0)[None, None]
        if grey.shape != metres.shape:
            raise DatasetError(f"{path}, line {number}: image {tuple(grey.shape[2:])} and depth {tuple(metres.shape[2:])} "
                               "differ in size")
        if grey.shape[-1] != img_size or grey.shape[-2] != img_size:
            grey = F.interpolate(grey, size=(img_size, img_size), mode="bilinear", align_corners=False, antialias=True)
            metres = F.interpolate(metres, size=(img_size, img_size), mode="nearest")
        images.append(grey[0])
        depths.append(metres[0])
        if limit is not None and len(images) >= limit:
            break
    if not images:
        raise DatasetError(f"{path} lists no image/depth pairs")
    return DepthPairs(torch.stack(images), torch.stack(depths))


def depth_metrics(pred: np.ndarray, gt: np.ndarray) -> dict[str, np.ndarray]:
    """Per-image RMSE, AbsRel and delta1 (GLPDepth's ``eval_depth``) of ``[N, H, W]`` maps in metres."""
    out = {"rmse": [], "abs_rel": [], "delta1": []}
    for p, g in zip(np.asarray(pred, dtype=np.float64), np.asarray(gt, dtype=np.float64)):
        valid = (g > MIN_DEPTH) & (g <= MAX_DEPTH)
        p, g = np.clip(p[valid], MIN_DEPTH, MAX_DEPTH), g[valid]
        ratio = np.maximum(p / g, g / p)
        out["rmse"].append(np.sqrt(np.mean((g - p) ** 2)))
        out["abs_rel"].append(np.mean(np.abs(g - p) / g))
        out["delta1"].append(np.mean(ratio < 1.25))
    return {k: np.array(v) for k, v in out.items()}
