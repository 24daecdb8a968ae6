"""The downstream tasks by name: how each reads its data, builds its objective, scores a model.

Every task is fine-tuned by the one path of :mod:`mimstudy.downstream.finetune`; a task supplies
``load(config) -> (train, test)`` (objects with ``images``, a target tensor and ``__len__``),
``objective(backbone, train, config)``, ``evaluate(objective, test, device) -> (metrics, predictions)``,
``trivial(train, test) -> metrics`` (the learnability floor) and the name of its primary metric and
whether higher is better.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from mimstudy.downstream import pose


@dataclass(frozen=True)
class Task:
    name: str
    description: str
    load: Callable
    objective: Callable
    evaluate: Callable
    trivial: Callable
    metrics: tuple[str, ...]
    primary: str
    higher_is_better: bool = True
    trivial_name: str = ""


def _pose_load(config):
    root = Path(config.data_dir) if config.data_dir else pose.generated_dataset(
        config.task, Path(config.runs_dir) / "data", config.train_size, config.test_size, config.img_size, config.seed)
    return pose.load_splits(root, config.img_size, config.train_split, config.test_split,
                            config.train_size, config.test_size)


def _pose_objective(backbone, train, config):
    return pose.PoseObjective(backbone, train.keypoints.shape[1], train.flip_pairs, config.img_size, config.augment)


def _pose_evaluate(objective, test, device, batch_size: int = 128):
    xy, peaks = pose.predict_split(objective, test, batch_size, device)
    return pose.score(test, xy, peaks, pose.sigmas_for(test.keypoint_names)), xy


def _pose_trivial(train, test):
    mean = pose.mean_keypoints(train)
    xy = np.broadcast_to(mean, (len(test), *mean.shape)).copy()
    return pose.score(test, xy, np.ones(xy.shape[:2]), pose.sigmas_for(test.keypoint_names))


def _pose_task(name: str, description: str) -> Task:
    return Task(name, description, _pose_load, _pose_objective, _pose_evaluate, _pose_trivial,
                ("ap", "ap50", "ap75"), "ap", True, "mean keypoints")


TASKS: dict[str, Task] = {
    "pose": _pose_task("pose", "Puppet-Pose (COCO keypoints analog): one figure per crop, OKS AP"),
    "crowdpose": _pose_task("crowdpose", "Puppet-Crowd (CrowdPose analog): the target among 1-2 overlapping figures, OKS AP"),
}


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise KeyError(f"unknown task {name!r}; tasks: {sorted(TASKS)}")
    return TASKS[name]


def targets(data) -> torch.Tensor:
    """The tensor a task's objective takes as its second argument (pose: keypoints ``[N, K, 3]``)."""
    return data.keypoints
