"""The downstream tasks by name: how each reads its data, builds its objective, scores a model.

Every task is fine-tuned by the one path of :mod:`mimstudy.downstream.finetune`; a task supplies
``load(config) -> (train, test)`` (objects with ``images``, a target tensor and ``__len__``),
``objective(backbone, train, config, stats)`` (``stats``: the pixel mean and std of the backbone's
pre-training dataset, :mod:`mimstudy.downstream.inputs`), ``evaluate(objective, test, device) -> (metrics, predictions)``,
``trivial(train, test) -> metrics`` (the learnability floor), ``targets(data)`` (the tensor its
objective takes beside the images), ``examples(test, predictions, n) -> (data vars, coords)`` (a few
inputs, targets and predictions for the book: ``example_image`` and ``example_<target>`` /
``example_predicted_<target>``, named per kind of target so runs of different tasks concatenate),
the name of its primary metric and whether higher is better; optionally ``heldout(objective, test,
device, seed) -> {name: value}``, losses on held-out images recorded after every epoch as
``heldout_<name>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from mimstudy.downstream import (classification, concepts, depth, detection, got10k, imagefolder, pose, segmentation,
                                 tracking)


@dataclass(frozen=True)
class Task:
    name: str
    description: str
    load: Callable
    objective: Callable
    evaluate: Callable
    trivial: Callable
    targets: Callable
    examples: Callable
    metrics: tuple[str, ...]
    primary: str
    higher_is_better: bool = True
    trivial_name: str = ""
    heldout: Callable | None = None


def _pose_load(config):
    root = Path(config.data_dir) if config.data_dir else pose.generated_dataset(
        config.task, Path(config.runs_dir) / "data", config.train_size, config.test_size, config.img_size, config.seed)
    return pose.load_splits(root, config.img_size, config.train_split, config.test_split,
                            config.train_size, config.test_size)


def _pose_objective(backbone, train, config, stats):
    return pose.PoseObjective(backbone, train.keypoints.shape[1], train.flip_pairs, config.img_size, stats,
                              config.augment)


def _pose_evaluate(objective, test, device, batch_size: int = 128):
    xy, peaks = pose.predict_split(objective, test, batch_size, device)
    return pose.score(test, xy, peaks, pose.sigmas_for(test.keypoint_names)), xy


def _pose_trivial(train, test):
    mean = pose.mean_keypoints(train)
    xy = np.broadcast_to(mean, (len(test), *mean.shape)).copy()
    return pose.score(test, xy, np.ones(xy.shape[:2]), pose.sigmas_for(test.keypoint_names))


def _pose_examples(test, predictions, n: int):
    data = {"example_image": (("example", "y", "x"), test.images[:n, 0].numpy()),
            "example_keypoints": (("example", "joint", "coord"), test.keypoints[:n].numpy()),
            "example_predicted_keypoints": (("example", "joint", "xy"), predictions[:n])}
    return data, {"joint": list(test.keypoint_names), "coord": ["x", "y", "v"], "xy": ["x", "y"]}


def _pose_task(name: str, description: str) -> Task:
    return Task(name, description, _pose_load, _pose_objective, _pose_evaluate, _pose_trivial,
                lambda data: data.keypoints, _pose_examples, ("ap", "ap50", "ap75"), "ap", True, "mean keypoints")


def _depth_load(config):
    root = Path(config.data_dir) if config.data_dir else depth.generated_dataset(
        Path(config.runs_dir) / "data", config.train_size, config.test_size, config.img_size, config.seed)
    return depth.load_splits(root, config.img_size, config.train_split, config.test_split,
                             config.train_size, config.test_size)


def _depth_evaluate(objective, test, device, batch_size: int = 128):
    pred = depth.predict_split(objective, test, batch_size, device)
    return depth.score(pred, test), pred


def _depth_trivial(train, test):
    mean = depth.mean_depth_map(train)
    return depth.score(np.broadcast_to(mean, (len(test), *mean.shape)).copy(), test)


def _depth_examples(test, predictions, n: int):
    return {"example_image": (("example", "y", "x"), test.images[:n, 0].numpy()),
            "example_depth": (("example", "y", "x"), test.depths[:n, 0].numpy()),
            "example_predicted_depth": (("example", "y", "x"), predictions[:n])}, {}


def _tracking_load(config):
    root = Path(config.data_dir) if config.data_dir else tracking.generated_dataset(
        Path(config.runs_dir) / "data", tracking.sequences_for(config.train_size), config.test_size, config.seed)
    return tracking.load_splits(root, config.img_size, config.train_split, config.test_split, config.train_size,
                                config.test_size, config.seed)


def _tracking_trivial(train, test):
    return got10k.score(tracking.stay_tracks(test.sequences), test.sequences)


def _tracking_examples(test, predictions, n: int):
    sub = tracking.TrackingSequences(test.sequences[:n], test.img_size)
    truth = sub.last_boxes([s.boxes for s in sub.sequences])
    return {"example_image": (("example", "y", "x"), sub.images[:, 0].numpy()),
            "example_box": (("example", "box"), truth),
            "example_predicted_box": (("example", "box"), sub.last_boxes(predictions[:n]))}, {"box": ["x", "y", "w", "h"]}


def _classification_task(name: str, concept_set: str, description: str, primary: str = "top1",
                         long_tail: bool = False) -> Task:
    """A classification task on an ImageFolder tree: ``data_dir``, or concept set ``concept_set`` generated
    (``long_tail``: its training split long-tailed, :func:`mimstudy.downstream.concepts.long_tail_counts`)."""

    def load(config):
        root = Path(config.data_dir) if config.data_dir else concepts.generated_dataset(
            concept_set, Path(config.runs_dir) / "data", config.train_size, config.test_size, config.seed,
            long_tail=long_tail)
        train = imagefolder.read_split(root, config.train_split, config.img_size, config.train_size)
        return train, imagefolder.read_split(root, config.test_split, config.img_size, config.test_size, train.classes)

    return Task(name, description, load,
                lambda backbone, train, config, stats: classification.ClassifierObjective(
                    backbone, len(train.classes), config.img_size, stats, config.augment),
                classification.evaluate, classification.trivial, lambda data: data.labels, classification.examples,
                ("top1", "mean_class_acc"), primary, True, "majority class")


# Section 4.1: the concept-generalization ladder (levels in measured order, concepts.LADDER) and a K12-like set
SEMANTIC_TASKS: dict[str, Task] = {
    **{f"cog_l{level}": _classification_task(f"cog_l{level}", name, f"CoG-lite L{level}: {concepts.CONCEPT_SETS[name].what}, "
                                              "top-1") for level, name in enumerate(concepts.LADDER, start=1)},
    "k12_garments": _classification_task("k12_garments", "garments", "K12-lite, covered (CIFAR's role): the ten "
                                          "pre-training classes on unseen photos, top-1"),
    "k12_digits": _classification_task("k12_digits", "digits", "K12-lite, new domain: handwritten digits, top-1"),
    "k12_materials": _classification_task("k12_materials", "materials", "K12-lite, new domain (DTD's role): photo "
                                          "textures, top-1"),
    "k12_fine": _classification_task("k12_fine", "fine", "K12-lite, fine-grained (Aircraft's role): 50 garment "
                                     "sub-classes, mean per-class accuracy", "mean_class_acc"),
    "inat_lite": _classification_task("inat_lite", "fine", "iNat-lite (iNat18's role): the 50 garment sub-classes "
                                      "with long-tailed training counts (1 / rank), balanced test, top-1",
                                      long_tail=True),
}


def _scenes_load(module):
    """``load`` of a task reading ``config.data_dir`` or ``module.generated_dataset`` with ``module.load_splits``."""

    def load(config):
        root = Path(config.data_dir) if config.data_dir else module.generated_dataset(
            Path(config.runs_dir) / "data", config.train_size, config.test_size, config.seed)
        return module.load_splits(root, config.img_size, config.train_split, config.test_split,
                                  config.train_size, config.test_size)

    return load


# Appendix D: semantic segmentation (ADE20K's role)
SEGMENTATION_TASKS: dict[str, Task] = {
    "segmentation": Task("segmentation", "GarmentScenes-Seg (ADE20K analog): garments on photos labelled per pixel, "
                         "mIoU", _scenes_load(segmentation),
                         lambda backbone, train, config, stats: segmentation.SegmentationObjective(
                             backbone, config.img_size, stats, config.augment),
                         segmentation.evaluate, segmentation.trivial, lambda data: data.masks, segmentation.examples,
                         ("miou", "miou_fg", "aacc"), "miou", True, "all background"),
}


# Table 6 and Figure 7: object detection and instance segmentation (COCO's role)
DETECTION_TASKS: dict[str, Task] = {
    "detection": Task("detection", "GarmentScenes-Det (COCO analog): garments on photos, Mask R-CNN, box and mask AP",
                      _scenes_load(detection),
                      lambda backbone, train, config, stats: detection.DetectionObjective(backbone, config.img_size,
                                                                                          stats),
                      detection.evaluate, detection.trivial, lambda data: data.targets, detection.examples,
                      ("box_ap", "box_ap50", "box_ap75", "mask_ap", "mask_ap50", "mask_ap75"), "box_ap", True,
                      "one whole-image box of the majority class", detection.heldout_losses),
}


TASKS: dict[str, Task] = {
    "pose": _pose_task("pose", "Puppet-Pose (COCO keypoints analog): one figure per crop, OKS AP"),
    "crowdpose": _pose_task("crowdpose", "Puppet-Crowd (CrowdPose analog): the target among 1-2 overlapping figures, OKS AP"),
    "depth": Task("depth", "GarmentWorld-Depth (NYUv2 analog): pinhole scenes, RMSE in metres", _depth_load,
                  lambda backbone, train, config, stats: depth.DepthObjective(backbone, config.img_size, stats,
                                                                                config.augment),
                  _depth_evaluate, _depth_trivial, lambda data: data.depths, _depth_examples,
                  ("rmse", "abs_rel", "delta1"), "rmse", False, "mean depth map"),
    "tracking": Task("tracking", "GarmentTrack (GOT-10k analog): a garment among look-alikes over a panned photo, "
                     "AO / SR / success AUC", _tracking_load,
                     lambda backbone, train, config, stats: tracking.TrackingObjective(
                         backbone, config.img_size, stats, config.augment),
                     tracking.evaluate, _tracking_trivial, lambda data: data.boxes, _tracking_examples,
                     ("ao", "sr50", "sr75", "auc"), "ao", True, "first frame's box kept"),
    **SEMANTIC_TASKS,
    **SEGMENTATION_TASKS,
    **DETECTION_TASKS,
}


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise KeyError(f"unknown task {name!r}; tasks: {sorted(TASKS)}")
    return TASKS[name]
