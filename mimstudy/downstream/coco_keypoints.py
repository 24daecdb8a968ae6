"""The COCO keypoints format: write a dataset, read it top-down (one crop per person), score OKS AP.

Layout (as COCO 2017: ``annotations/person_keypoints_train2017.json`` + ``train2017/``)::

    <root>/annotations/person_keypoints_<split>.json
    <root>/<split>/<file_name>

The same reader serves our generated benchmark and COCO itself (``split="val2017"``): each
annotation with labelled keypoints becomes one square crop around its box (side = 1.25 x the longer
box side, as top-down pose estimators crop), resampled to ``img_size`` with the continuous-coordinate
convention of the keypoints (pixel ``i`` covers ``[i, i + 1)``; ``grid_sample(align_corners=False)``).
Left/right pairs for flipping come from the category's keypoint names (``left_*`` / ``right_*``).

Scoring is pycocotools' ``COCOeval(iouType="keypoints")`` with the per-keypoint sigmas given (COCO's
values for COCO's 17 joints or our 13) and each ground truth's ``area`` as the OKS scale.
"""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from mimstudy.atomic import atomic_path
from mimstudy.data.fashion_mnist import DatasetError
from mimstudy.downstream.images import read_grey, write_grey

# pycocotools' default sigmas for COCO's 17 keypoints
COCO_SIGMAS = (0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072, 0.062, 0.062, 0.107, 0.107,
               0.087, 0.087, 0.089, 0.089)
CROP_PADDING = 1.25
PERSON = 1


def annotation_file(root: str | Path, split: str) -> Path:
    return Path(root) / "annotations" / f"person_keypoints_{split}.json"


def write_split(root: str | Path, split: str, images: list[np.ndarray], keypoints: list[np.ndarray],
                boxes: list[tuple[float, float, float, float]], areas: list[float], keypoint_names: tuple[str, ...],
                skeleton: tuple[tuple[int, int], ...]) -> Path:
    """Write one split: grey PNGs ``<split>/<id:012d>.png`` (from floats in [0, 1]) and the JSON.

    One person per image; ``keypoints[i]`` is ``[K, 3]`` (x, y, v) with COCO's convention (v = 0:
    not labelled, stored as 0, 0, 0). The JSON is written last and atomically, so a folder with a
    JSON is complete.
    """
    root = Path(root)
    folder = root / split
    folder.mkdir(parents=True, exist_ok=True)
    records, annotations = [], []
    for i, (image, kp, box, area) in enumerate(zip(images, keypoints, boxes, areas), start=1):
        name = f"{i:012d}.png"
        write_grey(folder / name, image)
        height, width = image.shape
        records.append({"id": i, "file_name": name, "width": int(width), "height": int(height)})
        kp = np.asarray(kp, dtype=np.float64)
        annotations.append({"id": i, "image_id": i, "category_id": PERSON, "iscrowd": 0,
                            "keypoints": [round(float(v), 3) for v in kp.reshape(-1)],
                            "num_keypoints": int((kp[:, 2] > 0).sum()),
                            "bbox": [round(float(v), 3) for v in box], "area": float(area)})
    spec = {"images": records, "annotations": annotations,
            "categories": [{"id": PERSON, "name": "person", "supercategory": "person",
                            "keypoints": list(keypoint_names),
                            "skeleton": [[a + 1, b + 1] for a, b in skeleton]}]}
    path = annotation_file(root, split)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(spec))
    return path


@dataclass
class KeypointCrops:
    """A split read top-down: one crop per annotated person, in memory."""

    images: torch.Tensor  # [N, 1, S, S] float in [0, 1]
    keypoints: torch.Tensor  # [N, K, 3]: x, y in crop pixels, v as annotated
    image_ids: np.ndarray  # [N] the COCO image of each crop
    crops: np.ndarray  # [N, 3]: x0, y0, side of each crop in its image (crop pixel = (x - x0) * S / side)
    annotation_path: Path
    keypoint_names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.images)

    @property
    def flip_pairs(self) -> list[tuple[int, int]]:
        return flip_pairs(self.keypoint_names)

    def to_image_coords(self, xy: np.ndarray) -> np.ndarray:
        """Crop-pixel ``[N, K, 2]`` -> image-pixel coordinates."""
        x0, y0, side = (self.crops[:, i][:, None] for i in range(3))
        size = self.images.shape[-1]
        return np.stack([xy[..., 0] * side / size + x0, xy[..., 1] * side / size + y0], axis=-1)


def flip_pairs(names: tuple[str, ...]) -> list[tuple[int, int]]:
    """Index pairs ``(left_x, right_x)`` among keypoint names."""
    return [(i, names.index("right_" + n[5:])) for i, n in enumerate(names)
            if n.startswith("left_") and "right_" + n[5:] in names]


def load_coco_json(path: Path, layout: str = "a COCO keypoints dataset needs annotations/person_keypoints_<split>.json") -> dict:
    """A COCO annotation file's content; a missing, malformed or incomplete file raises naming it (``layout``:
    what the missing file's message says is expected)."""
    if not path.is_file():
        raise DatasetError(f"{path} is missing: {layout}")
    try:
        spec = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DatasetError(f"{path} is not valid JSON ({err}); re-generate it or fix the file") from err
    missing = [key for key in ("images", "annotations", "categories") if key not in spec]
    if not isinstance(spec, dict) or missing:
        raise DatasetError(f"{path} is not a COCO annotation file: it lacks {missing or 'a top-level object'}")
    return spec


def _person_category(spec: dict, path: Path) -> dict:
    people = [c for c in spec["categories"] if c.get("id") == PERSON and c.get("keypoints")]
    if not people:
        raise DatasetError(f"{path}: no category with id {PERSON} and a 'keypoints' list (COCO's person category)")
    return people[0]


def _read_image(path: Path) -> torch.Tensor:
    return torch.from_numpy(read_grey(path, "image", "the annotation file"))[None, None]


def crop(image: torch.Tensor, x0: float, y0: float, side: float, size: int) -> torch.Tensor:
    """The square ``[x0, x0 + side) x [y0, y0 + side)`` of ``image [1, 1, H, W]`` resampled to ``size``."""
    return crop_batch(image, torch.tensor([x0]), torch.tensor([y0]), torch.tensor([side]), size)[0]


def crop_batch(images: torch.Tensor, x0: torch.Tensor, y0: torch.Tensor, side: torch.Tensor, size: int) -> torch.Tensor:
    """:func:`crop` of each image of ``images [B, C, H, W]`` at its own ``x0, y0, side`` (``[B]``), zeros outside."""
    height, width = images.shape[-2:]
    # output pixel centre (j + 0.5) maps to x0 + (j + 0.5) * side / size; normalise with align_corners=False
    steps = (torch.arange(size, dtype=torch.float32) + 0.5) / size
    offsets = steps[None, :] * side.float()[:, None]  # [B, size]
    gx = (x0.float()[:, None] + offsets) * 2 / width - 1
    gy = (y0.float()[:, None] + offsets) * 2 / height - 1
    grid = torch.stack([gx[:, None, :].expand(-1, size, -1), gy[:, :, None].expand(-1, -1, size)], dim=-1)
    return F.grid_sample(images, grid.to(images), mode="bilinear", padding_mode="zeros", align_corners=False)


def read_split(root: str | Path, split: str, img_size: int, limit: int | None = None) -> KeypointCrops:
    """Read a split top-down (see the module docstring); ``limit`` keeps its first annotations.

    A missing or malformed file raises :class:`DatasetError` naming it and what is wrong.
    """
    root = Path(root)
    path = annotation_file(root, split)
    spec = load_coco_json(path)
    names = tuple(_person_category(spec, path)["keypoints"])
    try:
        files = {int(r["id"]): r["file_name"] for r in spec["images"]}
    except (KeyError, TypeError, ValueError) as err:
        raise DatasetError(f"{path}: an entry of 'images' lacks 'id' or 'file_name' ({err})") from err
    images, keypoints, image_ids, crops = [], [], [], []
    cache: dict[int, torch.Tensor] = {}
    for ann in spec["annotations"]:
        try:
            if ann.get("iscrowd", 0) or ann.get("category_id") != PERSON or ann.get("num_keypoints", 0) == 0:
                continue
            kp = np.asarray(ann["keypoints"], dtype=np.float64)
            x, y, w, h = (float(v) for v in ann["bbox"])
            image_id = int(ann["image_id"])
        except (KeyError, TypeError, ValueError) as err:
            raise DatasetError(f"{path}: annotation {ann.get('id', '?')} lacks or mangles {err}") from err
        if kp.size != 3 * len(names):
            raise DatasetError(f"{path}: annotation {ann.get('id', '?')} has {kp.size} keypoint values, "
                               f"expected 3 x {len(names)} (x, y, v per keypoint)")
        if image_id not in files:
            raise DatasetError(f"{path}: annotation {ann.get('id', '?')} names image {image_id}, absent from 'images'")
        if image_id not in cache:
            cache[image_id] = _read_image(root / split / files[image_id])
        side = max(w, h, 1.0) * CROP_PADDING
        x0, y0 = x + w / 2 - side / 2, y + h / 2 - side / 2
        kp = kp.reshape(-1, 3)
        local = np.stack([(kp[:, 0] - x0) * img_size / side, (kp[:, 1] - y0) * img_size / side, kp[:, 2]], axis=1)
        local[kp[:, 2] == 0, :2] = 0.0
        images.append(crop(cache[image_id], x0, y0, side, img_size))
        keypoints.append(torch.from_numpy(local).float())
        image_ids.append(image_id)
        crops.append((x0, y0, side))
        if limit is not None and len(images) >= limit:
            break
    if not images:
        raise DatasetError(f"{path} holds no person annotation with keypoints")
    return KeypointCrops(torch.stack(images), torch.stack(keypoints), np.array(image_ids), np.array(crops, dtype=np.float64),
                         path, names)


def oks_ap(annotation_path: str | Path, image_ids: np.ndarray, xy: np.ndarray, scores: np.ndarray,
           sigmas: tuple[float, ...]) -> dict[str, float]:
    """OKS AP, AP50 and AP75 of one prediction per ground-truth person, by pycocotools' ``COCOeval``.

    ``xy [N, K, 2]`` in image pixels; ``scores [N]`` rank the predictions; ``image_ids`` names each
    prediction's image. Only the images named are evaluated.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        gt = COCO(str(annotation_path))
        results = [{"image_id": int(i), "category_id": PERSON, "score": float(s),
                    "keypoints": np.concatenate([p, np.ones((len(p), 1))], axis=1).reshape(-1).tolist()}
                   for i, p, s in zip(image_ids, np.asarray(xy, dtype=np.float64), scores)]
        dt = gt.loadRes(results)
        evaluator = COCOeval(gt, dt, iouType="keypoints")
        evaluator.params.kpt_oks_sigmas = np.asarray(sigmas, dtype=np.float64)
        evaluator.params.imgIds = sorted({int(i) for i in image_ids})
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    stats = evaluator.stats
    return {"ap": float(stats[0]), "ap50": float(stats[1]), "ap75": float(stats[2])}
