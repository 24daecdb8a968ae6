"""The COCO keypoints format: write a dataset, read it top-down (one crop per person), score OKS AP.

Layout (as COCO 2017: ``annotations/person_keypoints_train2017.json`` + ``train2017/``)::

    <root>/annotations/person_keypoints_<split>.json
    <root>/<split>/<file_name>

The same reader serves our generated benchmark and COCO itself (``split="val2017"``): each
annotation with labelled keypoints becomes one square crop around its box (side = 1.25 x the longer
box side, as top-down pose estimators crop), resampled to ``img_size`` with the continuous-coordinate
convention of the keypoints (pixel ``i`` covers ``[i, i + 1)``; ``grid_sample(align_corners=False)``).
Left/right pairs for flipping come from the category's keypoint names (``left_*`` / ``right_*``);
the person category is the file's one category with a ``keypoints`` list, whatever its id. Images
are read with the backbone's channels (grey or RGB) and cropped when an item is read, so a split
streams from disk or is held whole (:mod:`mimstudy.downstream.split`).

Scoring is pycocotools' ``COCOeval(iouType="keypoints")`` with the per-keypoint sigmas given (COCO's
values for COCO's 17 joints or our 13) and each ground truth's ``area`` as the OKS scale.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from mimstudy.atomic import atomic_path
from mimstudy.data.fashion_mnist import DatasetError
from mimstudy.downstream.images import check_channels, read_image, write_grey
from mimstudy.downstream.split import Split

# pycocotools' default sigmas for COCO's 17 keypoints
COCO_SIGMAS = (0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072, 0.062, 0.062, 0.107, 0.107,
               0.087, 0.087, 0.089, 0.089)
# CrowdPose's 14 (crowdposetools' cocoeval: COCO's shoulders to ankles, then head top and neck)
CROWDPOSE_SIGMAS = (0.079, 0.079, 0.072, 0.072, 0.062, 0.062, 0.107, 0.107, 0.087, 0.087, 0.089, 0.089, 0.079, 0.079)
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


class KeypointCrops(Split):
    """A split read top-down: one crop per annotated person; items ``(crop [C, S, S], keypoints [K, 3])``
    (x, y in crop pixels, v as annotated), the crop cut from its image when read."""

    def __init__(self, files: list[Path], keypoints: torch.Tensor, image_ids: np.ndarray, crops: np.ndarray,
                 annotation_path: Path, keypoint_names: tuple[str, ...], category_id: int, img_size: int, channels: int):
        self.files, self.keypoints, self.image_ids, self.crops = files, keypoints, image_ids, crops
        self.annotation_path, self.keypoint_names, self.category_id = annotation_path, keypoint_names, category_id
        self.img_size, self.image_channels = img_size, channels

    def __len__(self) -> int:
        return len(self.files)

    def item(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = torch.from_numpy(read_image(self.files[i], self.image_channels, "image", str(self.annotation_path)))
        x0, y0, side = self.crops[i]
        return crop(image[None], x0, y0, side, self.img_size), self.keypoints[i]

    def target(self, i: int) -> torch.Tensor:
        return self.keypoints[i]

    @property
    def flip_pairs(self) -> list[tuple[int, int]]:
        return flip_pairs(self.keypoint_names)

    def to_image_coords(self, xy: np.ndarray) -> np.ndarray:
        """Crop-pixel ``[N, K, 2]`` -> image-pixel coordinates."""
        x0, y0, side = (self.crops[:, i][:, None] for i in range(3))
        size = self.img_size
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


def keypoint_category(spec: dict, path: Path) -> dict:
    """The file's category with a ``keypoints`` list (COCO's and CrowdPose's person, whatever its id)."""
    people = [c for c in spec["categories"] if isinstance(c, dict) and c.get("keypoints")]
    if len(people) != 1:
        raise DatasetError(f"{path}: expected exactly one category with a 'keypoints' list (the person category), "
                           f"found {len(people)}")
    return people[0]


def crop(image: torch.Tensor, x0: float, y0: float, side: float, size: int) -> torch.Tensor:
    """The square ``[x0, x0 + side) x [y0, y0 + side)`` of ``image [1, C, H, W]`` resampled to ``size``: ``[C, size, size]``."""
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


def read_split(root: str | Path, split: str, img_size: int, limit: int | None = None, channels: int = 1) -> KeypointCrops:
    """Index a split top-down (see the module docstring); ``limit`` keeps its first annotations. The crops
    are cut when read (:class:`KeypointCrops`). A missing or malformed file raises :class:`DatasetError`
    naming it and what is wrong."""
    root = Path(root)
    path = annotation_file(root, split)
    spec = load_coco_json(path)
    category = keypoint_category(spec, path)
    names = tuple(category["keypoints"])
    try:
        files = {int(r["id"]): r["file_name"] for r in spec["images"]}
    except (KeyError, TypeError, ValueError) as err:
        raise DatasetError(f"{path}: an entry of 'images' lacks 'id' or 'file_name' ({err})") from err
    paths, keypoints, image_ids, crops = [], [], [], []
    for ann in spec["annotations"]:
        try:
            if ann.get("iscrowd", 0) or ann.get("category_id") != category["id"] or ann.get("num_keypoints", 0) == 0:
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
        side = max(w, h, 1.0) * CROP_PADDING
        x0, y0 = x + w / 2 - side / 2, y + h / 2 - side / 2
        kp = kp.reshape(-1, 3)
        local = np.stack([(kp[:, 0] - x0) * img_size / side, (kp[:, 1] - y0) * img_size / side, kp[:, 2]], axis=1)
        local[kp[:, 2] == 0, :2] = 0.0
        paths.append(root / split / files[image_id])
        keypoints.append(torch.from_numpy(local).float())
        image_ids.append(image_id)
        crops.append((x0, y0, side))
        if limit is not None and len(paths) >= limit:
            break
    if not paths:
        raise DatasetError(f"{path} holds no person annotation with keypoints")
    return KeypointCrops(paths, torch.stack(keypoints), np.array(image_ids), np.array(crops, dtype=np.float64), path,
                         names, int(category["id"]), img_size, check_channels(channels))


def oks_ap(annotation_path: str | Path, image_ids: np.ndarray, xy: np.ndarray, scores: np.ndarray,
           sigmas: tuple[float, ...], category_id: int = PERSON) -> dict[str, float]:
    """OKS AP, AP50 and AP75 of one prediction per ground-truth person, by pycocotools' ``COCOeval``.

    ``xy [N, K, 2]`` in image pixels; ``scores [N]`` rank the predictions; ``image_ids`` names each
    prediction's image. Only the images named are evaluated.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        gt = COCO(str(annotation_path))
        results = [{"image_id": int(i), "category_id": category_id, "score": float(s),
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
