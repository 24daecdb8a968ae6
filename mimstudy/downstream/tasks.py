"""The downstream tasks by name: a plain table of (task module, generated analog), and the one data-loading path.

Every task is fine-tuned by the one path of :mod:`mimstudy.downstream.transfer`. A task module
(:mod:`pose`, :mod:`depth`, :mod:`tracking`, :mod:`classification`, :mod:`segmentation`,
:mod:`detection`) has the same interface:

* ``load(root, config, channels) -> (train, test)``: ``config``'s splits of the folder ``root`` in the
  task's file format, images read with ``channels`` (the backbone's ``in_chans``). The training split
  is a :class:`~mimstudy.downstream.split.Split`, a ``Dataset`` of ``(image, target)`` items streamed
  from disk (``config.stream``) or held in memory; class counts and label maps come from its files;
* ``objective(backbone, train, config, stats)``: the backbone and the task's head, sized by ``train``
  (``stats``: the per-channel pixel mean and std of the backbone's pre-training dataset,
  :mod:`mimstudy.downstream.inputs`);
* ``evaluate(objective, test, device) -> (metrics, predictions)``;
* ``trivial(train, test) -> metrics``: the learnability floor (named by ``TRIVIAL``);
* ``examples(test, predictions, n) -> (data vars, coords)``: a few inputs, targets and predictions
  for the book (``example_image`` and ``example_<target>`` / ``example_predicted_<target>``, named
  per kind of target so runs of different tasks concatenate);
* ``METRICS``, ``PRIMARY`` (the metric a run is judged and a learning rate chosen by) and
  ``HIGHER_IS_BETTER``; optionally ``heldout(objective, test, device, seed) -> {name: value}``, losses
  on held-out images recorded after every epoch as ``heldout_<name>``.

A task's data is ``config.data_dir`` when given, else its generated analog, written once under
``<runs_dir>/data`` (:func:`dataset_root`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Callable

from mimstudy.config import DownstreamConfig
from mimstudy.downstream import (classification, concepts, depth, detection, garment_scenes, garment_track,
                                 garment_world, pose, puppets, segmentation, tracking)

Generate = Callable[[Path, DownstreamConfig], Path]  # (cache folder, config) -> the generated dataset's root


def dataset_root(config: DownstreamConfig, generate: Generate) -> Path:
    """The folder a run reads: ``config.data_dir``, or the generated analog cached under ``<runs_dir>/data``."""
    return Path(config.data_dir) if config.data_dir else generate(Path(config.runs_dir) / "data", config)


class _FromModule:
    """A :class:`Task` attribute read from its task module: ``name`` there (``None`` if optional and absent)."""

    def __init__(self, name: str, optional: bool = False):
        self.name, self.optional = name, optional

    def __get__(self, task, owner=None):
        if task is None:
            return self
        return getattr(task.module, self.name, None) if self.optional else getattr(task.module, self.name)


@dataclass(frozen=True)
class Task:
    name: str
    description: str
    module: ModuleType  # the task module (see the module docstring)
    generate: Generate  # its generated analog
    primary_metric: str = ""  # "": the module's PRIMARY

    objective = _FromModule("objective")
    evaluate = _FromModule("evaluate")
    trivial = _FromModule("trivial")
    examples = _FromModule("examples")
    heldout = _FromModule("heldout", optional=True)
    metrics = _FromModule("METRICS")
    higher_is_better = _FromModule("HIGHER_IS_BETTER")
    trivial_name = _FromModule("TRIVIAL")

    def load(self, config: DownstreamConfig, channels: int = 1):
        """``(train, test)`` of ``config`` (:func:`dataset_root`), images read with ``channels``."""
        return self.module.load(dataset_root(config, self.generate), config, channels)

    @property
    def primary(self) -> str:
        return self.primary_metric or self.module.PRIMARY


def _puppets(cache: Path, c: DownstreamConfig) -> Path:
    return puppets.generated_dataset(cache, c.train_size, c.test_size, c.img_size, c.seed, task=c.task)


def _garment_world(cache: Path, c: DownstreamConfig) -> Path:
    return garment_world.generated_dataset(cache, c.train_size, c.test_size, c.img_size, c.seed)


def _garment_track(cache: Path, c: DownstreamConfig) -> Path:
    """The sequences ``train_size`` training pairs are cut from, ``test_size`` test sequences."""
    return garment_track.generated_dataset(cache, tracking.sequences_for(c.train_size), c.test_size, c.seed)


def _garment_scenes(layout: str) -> Generate:
    return lambda cache, c: garment_scenes.generated_dataset(cache, c.train_size, c.test_size, c.seed, layout=layout)


def _concepts(concept_set: str, long_tail: bool = False) -> Generate:
    """Concept set ``concept_set`` as an ImageFolder tree (``long_tail``: its training split long-tailed,
    :func:`mimstudy.downstream.concepts.long_tail_counts`)."""
    return lambda cache, c: concepts.generated_dataset(concept_set, cache, c.train_size, c.test_size, c.seed,
                                                       long_tail=long_tail)


def _semantic(name: str, concept_set: str, description: str, primary: str = "", long_tail: bool = False) -> Task:
    return Task(name, description, classification, _concepts(concept_set, long_tail), primary)


# Section 4.1: the concept-generalization ladder (levels in measured order, concepts.LADDER) and a K12-like set
SEMANTIC_TASKS: dict[str, Task] = {
    **{f"cog_l{level}": _semantic(f"cog_l{level}", name, f"CoG-lite L{level}: {concepts.CONCEPT_SETS[name].what}, "
                                  "top-1") for level, name in enumerate(concepts.LADDER, start=1)},
    "k12_garments": _semantic("k12_garments", "garments", "K12-lite, covered (CIFAR's role): the ten "
                              "pre-training classes on unseen photos, top-1"),
    "k12_digits": _semantic("k12_digits", "digits", "K12-lite, new domain: handwritten digits, top-1"),
    "k12_materials": _semantic("k12_materials", "materials", "K12-lite, new domain (DTD's role): photo textures, top-1"),
    "k12_fine": _semantic("k12_fine", "fine", "K12-lite, fine-grained (Aircraft's role): 50 garment sub-classes, "
                          "mean per-class accuracy", "mean_class_acc"),
    "inat_lite": _semantic("inat_lite", "fine", "iNat-lite (iNat18's role): the 50 garment sub-classes with "
                           "long-tailed training counts (1 / rank), balanced test, top-1", long_tail=True),
}

# Appendix D: semantic segmentation (ADE20K's role)
SEGMENTATION_TASKS: dict[str, Task] = {
    "segmentation": Task("segmentation", "GarmentScenes-Seg (ADE20K analog): garments on photos labelled per pixel, "
                         "mIoU", segmentation, _garment_scenes("ade20k")),
}

# Table 6 and Figure 7: object detection and instance segmentation (COCO's role)
DETECTION_TASKS: dict[str, Task] = {
    "detection": Task("detection", "GarmentScenes-Det (COCO analog): garments on photos, Mask R-CNN, box and mask AP",
                      detection, _garment_scenes("coco")),
}

TASKS: dict[str, Task] = {
    "pose": Task("pose", "Puppet-Pose (COCO keypoints analog): one figure per crop, OKS AP", pose, _puppets),
    "crowdpose": Task("crowdpose", "Puppet-Crowd (CrowdPose analog): the target among 1-2 overlapping figures, OKS AP",
                      pose, _puppets),
    "depth": Task("depth", "GarmentWorld-Depth (NYUv2 analog): pinhole scenes, RMSE in metres", depth, _garment_world),
    "tracking": Task("tracking", "GarmentTrack (GOT-10k analog): a garment among look-alikes over a panned photo, "
                     "AO / SR / success AUC", tracking, _garment_track),
    **SEMANTIC_TASKS,
    **SEGMENTATION_TASKS,
    **DETECTION_TASKS,
}


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise KeyError(f"unknown task {name!r}; tasks: {sorted(TASKS)}")
    return TASKS[name]
