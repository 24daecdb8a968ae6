"""COCO instances: the detection benchmark's file format, its fixed-shape tensor form and its AP.

**Layout** (COCO's)::

    <root>/images/<split>/<file_name>                 the image (read with the backbone's channels);
                                                      <root>/<split>/ as COCO 2017's release when images/ is absent
    <root>/annotations/instances_<split>.json         images, annotations, categories

An annotation has ``bbox [x, y, w, h]`` (pixels, pixel ``i`` spanning ``[i, i + 1)``), its
``segmentation`` (polygons as COCO's files, or an RLE: we write ``pycocotools.mask.encode``'s with a
string ``counts``), ``area`` (mask pixels), ``iscrowd`` and a ``category_id`` among the file's
``categories``, whose ids may be any (COCO uses 80 of 1..90): they map, in increasing order, to the
contiguous labels 1..K the detector predicts (0: background), so the head's class count is the file's. Images with no annotation are
allowed. Reading checks what COCO's tools would trip over later and raises
:class:`~mimstudy.data.fashion_mnist.DatasetError` naming the file: malformed JSON or missing
fields, a missing or unreadable image, an unknown category, a box outside its image.

**Packed targets.** One image's instances travel as one row of a fixed-shape tensor
``[K, 5 + S * S]`` (``K``: the most instances of any image of the split): the class index
(-1 for padding), the box ``x0, y0, x1, y1`` and the mask flattened, so a split's targets are one
``[N, K, 5 + S * S]`` tensor (an item of the split one row of it); :func:`unpack`
gives torchvision's list of target dicts back.

**Scoring**: pycocotools' ``COCOeval`` for ``bbox`` and ``segm`` (AP over IoU 0.50:0.95, AP50, AP75,
100 detections per image) against ground truth built from the packed targets. A set without any
detection scores 0 (pycocotools cannot load an empty result list).
"""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import torch

from mimstudy.atomic import atomic_path
from mimstudy.data.fashion_mnist import DatasetError
from mimstudy.downstream.coco_keypoints import load_coco_json
from mimstudy.downstream.images import check_channels, read_image, resized, write_grey
from mimstudy.downstream.split import Split

PAD = -1


def annotation_path(root: str | Path, split: str) -> Path:
    return Path(root) / "annotations" / f"instances_{split}.json"


def rle(mask: np.ndarray) -> dict:
    """A boolean ``[H, W]`` mask as COCO's RLE with a string ``counts`` (JSON-ready)."""
    from pycocotools import mask as mask_utils

    encoded = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(s) for s in encoded["size"]], "counts": encoded["counts"].decode("ascii")}


def decode(segmentation: dict | list, height: int, width: int) -> np.ndarray:
    """A COCO ``segmentation`` as a boolean ``[height, width]`` mask: polygons (``[[x, y, ...], ...]``,
    COCO's usual form), an uncompressed RLE (``counts`` a list) or a compressed one (``counts`` a string)."""
    from pycocotools import mask as mask_utils

    if isinstance(segmentation, list):
        return mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))).astype(bool)
    counts = segmentation["counts"]
    if isinstance(counts, list):
        return mask_utils.decode(mask_utils.frPyObjects(segmentation, height, width)).astype(bool)
    return mask_utils.decode({"size": segmentation["size"],
                              "counts": counts.encode("ascii") if isinstance(counts, str) else counts}).astype(bool)


def annotation(ann_id: int, image_id: int, category_id: int, mask: np.ndarray, **extra) -> dict:
    """A COCO annotation of one instance mask; ``bbox`` and ``area`` are the mask's (``toBbox``, ``area``)."""
    from pycocotools import mask as mask_utils

    encoded = rle(mask)
    raw = {"size": encoded["size"], "counts": encoded["counts"].encode("ascii")}
    return {"id": ann_id, "image_id": image_id, "category_id": int(category_id), "segmentation": encoded,
            "bbox": [float(v) for v in mask_utils.toBbox(raw)], "area": float(mask_utils.area(raw)), "iscrowd": 0,
            **extra}


def instances_json(images: list[dict], masks: list[np.ndarray], classes: list[np.ndarray],
                   categories: tuple[str, ...]) -> dict:
    """A COCO instances dict: ``images`` (``id``, ``file_name``, ``height``, ``width``), per image its
    ``[k, H, W]`` masks and ``[k]`` category ids (1-based indices into ``categories``)."""
    annotations = []
    for image, image_masks, image_classes in zip(images, masks, classes):
        for mask, cls in zip(image_masks, image_classes):
            annotations.append(annotation(len(annotations) + 1, image["id"], int(cls), mask))
    return {"images": images, "annotations": annotations,
            "categories": [{"id": i, "name": name} for i, name in enumerate(categories, start=1)]}


def write_json(path: str | Path, content: dict) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(content))
    return path


def write_split(root: str | Path, split: str, images: list[np.ndarray], masks: list[np.ndarray],
                classes: list[np.ndarray], categories: tuple[str, ...], stem: str = "scene") -> Path:
    """Grey images (floats in [0, 1]) as ``images/<split>/<stem>_<i>.png`` and, per image, its ``[k, H, W]``
    instance masks of ``[k]`` category ids (1-based into ``categories``) as ``annotations/instances_<split>.json``,
    atomically per file."""
    root = Path(root)
    entries = []
    for i, image in enumerate(images):
        name = f"{stem}_{i:06d}.png"
        write_grey(root / "images" / split / name, image)
        entries.append({"id": i + 1, "file_name": name, "height": image.shape[0], "width": image.shape[1]})
    return write_json(annotation_path(root, split), instances_json(entries, masks, classes, categories))


def pack(classes: list[torch.Tensor], boxes: list[torch.Tensor], masks: list[torch.Tensor], size: int,
         max_instances: int | None = None) -> torch.Tensor:
    """Per image ``[k]`` classes, ``[k, 4]`` boxes and ``[k, S, S]`` masks -> ``[N, K, 5 + S * S]`` (class -1: padding)."""
    k_max = max([len(c) for c in classes] + [1]) if max_instances is None else max_instances
    packed = torch.zeros(len(classes), k_max, 5 + size * size)
    packed[:, :, 0] = PAD
    for i, (c, b, m) in enumerate(zip(classes, boxes, masks)):
        if len(c) > k_max:
            raise ValueError(f"image {i} has {len(c)} instances, more than {k_max}")
        k = len(c)
        packed[i, :k, 0] = c.float()
        packed[i, :k, 1:5] = b.float()
        packed[i, :k, 5:] = m.reshape(k, size * size).float()
    return packed


def unpack(packed: torch.Tensor) -> list[dict[str, torch.Tensor]]:
    """``[N, K, 5 + S * S]`` -> torchvision's targets: per image ``labels [k]`` (int64), ``boxes [k, 4]``,
    ``masks [k, S, S]`` (uint8), padding dropped."""
    size = round((packed.shape[-1] - 5) ** 0.5)
    targets = []
    for rows in packed:
        rows = rows[rows[:, 0] != PAD]
        targets.append({"labels": rows[:, 0].long(), "boxes": rows[:, 1:5],
                        "masks": rows[:, 5:].reshape(-1, size, size).to(torch.uint8)})
    return targets


class InstanceImages(Split):
    """A COCO instances split: items ``(image [C, S, S], packed instances [K, 5 + S * S])`` (:func:`pack`;
    ``K`` the most instances of any image of the split). ``categories`` are the file's category names
    in increasing id order; label ``k`` (1-based, 0: background) is ``category_ids[k - 1]``."""

    def __init__(self, path: Path, folder: Path, images: list[dict], annotations: list[list[dict]],
                 category_ids: tuple[int, ...], categories: tuple[str, ...], img_size: int, channels: int):
        self.source, self.folder, self.entries, self.annotations = path, folder, images, annotations
        self.category_ids, self.categories = category_ids, categories
        self.label_of = {cid: k for k, cid in enumerate(category_ids, start=1)}
        self.img_size, self.image_channels = img_size, channels
        self.max_instances = max([len(a) for a in annotations] + [1])

    def __len__(self) -> int:
        return len(self.entries)

    def instance_labels(self) -> np.ndarray:
        """The label of every instance of the split (from the annotations alone)."""
        return np.array([self.label_of[ann["category_id"]] for anns in self.annotations for ann in anns], np.int64)

    def instances(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, tuple[int, int]]:
        """Image ``i``'s labels ``[k]``, boxes ``[k, 4]`` (x0, y0, x1, y1) and masks ``[k, H, W]`` at its own
        size ``(H, W)`` (from the json's ``height`` and ``width``); malformed entries raise naming the file."""
        entry, path = self.entries[i], self.source
        h, w = int(entry["height"]), int(entry["width"])
        c, b, m = [], [], []
        for ann in self.annotations[i]:
            x, y, bw, bh = ann["bbox"]
            if not (x >= 0 and y >= 0 and bw > 0 and bh > 0 and x + bw <= w + 1e-2 and y + bh <= h + 1e-2):
                raise DatasetError(f"{path}: annotation {ann['id']} of {entry['file_name']} has bbox {ann['bbox']} "
                                   f"outside its {w}x{h} image (or empty)")
            mask = decode(ann["segmentation"], h, w)
            if mask.shape != (h, w):
                raise DatasetError(f"{path}: annotation {ann['id']}'s mask is {mask.shape}, its image "
                                   f"{entry['file_name']} {(h, w)}")
            c.append(self.label_of[ann["category_id"]])
            b.append([x, y, x + bw, y + bh])
            m.append(mask)
        masks = torch.from_numpy(np.array(m, bool).reshape(-1, h, w)).float()
        return torch.tensor(c, dtype=torch.int64), torch.tensor(b, dtype=torch.float32).reshape(-1, 4), masks, (h, w)

    def packed(self, i: int) -> torch.Tensor:
        classes, boxes, masks, (h, w) = self.instances(i)
        size = self.img_size
        if (h, w) != (size, size):
            masks = resized(masks, size, "nearest")
            boxes = boxes * torch.tensor([size / w, size / h] * 2)
        return pack([classes], [boxes], [masks], size, self.max_instances)[0]

    def item(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        file = self.folder / self.entries[i]["file_name"]
        image = torch.from_numpy(read_image(file, self.image_channels, "image", str(self.source)))
        expected = (int(self.entries[i]["height"]), int(self.entries[i]["width"]))
        if tuple(image.shape[1:]) != expected:
            raise DatasetError(f"image {file} is {tuple(image.shape[1:])}, {self.source} says {expected} (height, width)")
        return resized(image, self.img_size), self.packed(i)

    def target(self, i: int) -> torch.Tensor:
        return self.packed(i)


def read_split(root: str | Path, split: str, img_size: int, limit: int | None = None,
               channels: int = 1) -> InstanceImages:
    """Index the images of ``instances_<split>.json`` (sorted by file name; the first ``limit``) with their
    instances (crowd annotations left out, as torchvision's references train), categories from the file
    (any ids, mapped in increasing order to labels 1..K); problems raise :class:`DatasetError` naming the file."""
    root = Path(root)
    path = annotation_path(root, split)
    content = load_coco_json(path, "a COCO instances dataset needs annotations/instances_<split>.json")
    try:
        categories = {int(c["id"]): str(c["name"]) for c in content["categories"]}
        images = sorted(content["images"], key=lambda im: im["file_name"])[:limit]
        for image in images:
            int(image["id"]), int(image["height"]), int(image["width"]), str(image["file_name"])
        by_image: dict[int, list[dict]] = {int(im["id"]): [] for im in images}
        for ann in content["annotations"]:
            if int(ann["image_id"]) in by_image and not ann.get("iscrowd", 0):
                by_image[int(ann["image_id"])].append(ann)
                ann["bbox"], ann["segmentation"], ann["id"]
    except (KeyError, TypeError, ValueError) as err:
        raise DatasetError(f"{path} has a malformed entry (missing or bad {err!r}): COCO images need id, "
                           "file_name, height, width; annotations id, image_id, category_id, bbox, segmentation") from err
    if not categories:
        raise DatasetError(f"{path} lists no categories")
    if not images:
        raise DatasetError(f"{path} lists no images")
    for image in images:
        for ann in by_image[int(image["id"])]:
            if ann.get("category_id") not in categories:
                raise DatasetError(f"{path}: annotation {ann.get('id')} of {image['file_name']} has category_id "
                                   f"{ann.get('category_id')!r}, not one of {sorted(categories)}")
    ids = tuple(sorted(categories))
    folder = root / "images" / split if (root / "images" / split).is_dir() else root / split
    return InstanceImages(path, folder, images, [by_image[int(im["id"])] for im in images], ids,
                          tuple(categories[i] for i in ids), img_size, check_channels(channels))


def ground_truth(targets: Iterable[torch.Tensor], num_categories: int):
    """A pycocotools ``COCO`` index of packed targets (image ``i`` has id ``i + 1``): ``[N, K, 5 + S * S]``,
    or any iterable of one image's ``[K, 5 + S * S]`` (:meth:`~mimstudy.downstream.split.Split.each_target`:
    a streamed split's images one at a time, its masks kept only as RLE)."""
    from pycocotools.coco import COCO

    images, annotations = [], []
    for i, rows in enumerate(targets):
        target = unpack(rows[None])[0]
        size = round((rows.shape[-1] - 5) ** 0.5)
        images.append({"id": i + 1, "file_name": f"{i}", "height": size, "width": size})
        for mask, cls in zip(target["masks"].numpy().astype(bool), target["labels"].numpy()):
            annotations.append(annotation(len(annotations) + 1, i + 1, int(cls), mask))
    content = {"images": images, "annotations": annotations,
               "categories": [{"id": i, "name": str(i)} for i in range(1, num_categories + 1)]}
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = content
        gt.createIndex()
    return gt


def detections(image_index: int, boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray,
               masks: np.ndarray | None = None) -> list[dict]:
    """COCO results of one image's ``[d, 4]`` ``x0, y0, x1, y1`` boxes, scores, category ids and boolean masks."""
    results = []
    for j, (box, score, label) in enumerate(zip(np.asarray(boxes, np.float64), scores, labels)):
        result = {"image_id": image_index + 1, "category_id": int(label), "score": float(score),
                  "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]]}
        if masks is not None:
            result["segmentation"] = rle(masks[j])
        results.append(result)
    return results


def average_precision(gt, results: list[dict], iou_type: str) -> dict[str, float]:
    """AP, AP50 and AP75 of ``results`` against ``gt`` (``iou_type``: ``bbox`` or ``segm``); 0 without results."""
    from pycocotools.cocoeval import COCOeval

    if not results:
        return {"ap": 0.0, "ap50": 0.0, "ap75": 0.0}
    with contextlib.redirect_stdout(io.StringIO()):
        dt = gt.loadRes([dict(r) for r in results])
        evaluator = COCOeval(gt, dt, iouType=iou_type)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    stats = [max(float(s), 0.0) for s in evaluator.stats[:3]]  # -1: no ground truth at all
    return {"ap": stats[0], "ap50": stats[1], "ap75": stats[2]}


def score(targets: Iterable[torch.Tensor], results: list[dict], num_categories: int) -> dict[str, float]:
    """Box and mask AP (``box_ap``, ``box_ap50``, ..., ``mask_ap75``) of COCO ``results`` on packed targets."""
    gt = ground_truth(targets, num_categories)
    metrics = {}
    for prefix, iou_type, other in (("box", "bbox", "segmentation"), ("mask", "segm", "bbox")):
        if iou_type == "segm" and not all("segmentation" in r for r in results):
            continue
        without = [{k: v for k, v in r.items() if k != other} for r in results]  # pycocotools derives the rest
        metrics.update({f"{prefix}_{k}": v for k, v in average_precision(gt, without, iou_type).items()})
    return metrics
