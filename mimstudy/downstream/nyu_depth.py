"""The NYUv2 depth layout used by BTS / GLPDepth: RGB and depth PNG pairs listed in a text file; its metrics.

Layout::

    <root>/<split>_list.txt          one pair per line: "/<split>/rgb_00000.png /<split>/sync_depth_00000.png"
                                     (further fields, as BTS's focal length, ignored)
    <root>/<split>/rgb_<i>.png       the image (read with the backbone's channels: RGB, or grey for ours)
    <root>/<split>/sync_depth_<i>.png  depth in millimetres, uint16 (0 = no measurement)

as GLPDepth's ``nyudepthv2.py`` reads it (``cv2.imread(..., IMREAD_UNCHANGED) / 1000.0``). Images of
another size are resized to ``img_size`` (depth by nearest neighbour). Metrics as GLPDepth's
``eval_depth``, per image over pixels with ``min_depth < gt <= max_depth`` (predictions clamped to
that range), then averaged over images: RMSE, AbsRel and delta1 = mean(max(p/g, g/p) < 1.25).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from mimstudy.atomic import atomic_path
from mimstudy.data.fashion_mnist import DatasetError
from mimstudy.downstream.images import check_channels, open_image, read_image, resized, write_grey
from mimstudy.downstream.split import Split

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


class DepthPairs(Split):
    """A split's listed pairs; items ``(image [C, S, S], depth [1, S, S] in metres, 0: no measurement)``."""

    def __init__(self, list_path: Path, pairs: list[tuple[int, Path, Path]], img_size: int, channels: int):
        self.list_path, self.pairs, self.img_size, self.image_channels = list_path, pairs, img_size, channels

    def __len__(self) -> int:
        return len(self.pairs)

    def metres(self, i: int) -> torch.Tensor:
        """Depth map ``i`` in metres at its own size ``[1, H, W]``."""
        number, _, depth = self.pairs[i]
        return torch.from_numpy(np.asarray(open_image(depth, "depth map", f"{self.list_path}, line {number}"),
                                           dtype=np.float32) / 1000.0)[None]

    def item(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        number, image_path, _ = self.pairs[i]
        image = torch.from_numpy(read_image(image_path, self.image_channels, "image", f"{self.list_path}, line {number}"))
        metres = self.metres(i)
        if image.shape[1:] != metres.shape[1:]:
            raise DatasetError(f"{self.list_path}, line {number}: image {tuple(image.shape[1:])} and depth "
                               f"{tuple(metres.shape[1:])} differ in size")
        return resized(image, self.img_size), resized(metres, self.img_size, "nearest")

    def target(self, i: int) -> torch.Tensor:
        return resized(self.metres(i), self.img_size, "nearest")


def read_split(root: str | Path, split: str, img_size: int, limit: int | None = None, channels: int = 1) -> DepthPairs:
    """Index a split's pairs (the first ``limit``): extra fields of a line (BTS's focal length) are ignored;
    a missing list or a malformed line raises :class:`DatasetError` naming it (a missing image when read)."""
    root = Path(root)
    path = list_file(root, split)
    if not path.is_file():
        raise DatasetError(f"{path} is missing: an NYUv2-style dataset needs <split>_list.txt listing image/depth pairs")
    pairs = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) < 2:
            raise DatasetError(f"{path}, line {number}: expected '<image path> <depth path>', got {line!r}")
        pairs.append((number, root / parts[0].lstrip("/"), root / parts[1].lstrip("/")))
        if limit is not None and len(pairs) >= limit:
            break
    if not pairs:
        raise DatasetError(f"{path} lists no image/depth pairs")
    return DepthPairs(path, pairs, img_size, check_channels(channels))


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
