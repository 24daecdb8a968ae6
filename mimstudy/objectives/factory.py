"""Build the objective a :class:`~mimstudy.config.PretrainConfig` describes, freshly initialised."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

from mimstudy.data.augment import MoCoViews, SupervisedAugment, rgb_view_recipes
from mimstudy.config import ConfigError, PretrainConfig
from mimstudy.data.imagenet import IMAGENET_MEAN, IMAGENET_STD
from mimstudy.objectives.masking import MaskGenerator
from mimstudy.models.backbones import create_backbone, in_chans_of, patch_size_of
from mimstudy.models.checkpoints.weights import weights_file
from mimstudy.objectives.finetune import classifier_from_checkpoint
from mimstudy.objectives.moco import MoCoConfig, MoCoV3
from mimstudy.objectives.simmim import SimMIM
from mimstudy.objectives.supervised import Supervised

NUM_CLASSES = 10  # Fashion-MNIST's; an image-folder run has its folder's classes
CHECKPOINT_NAME = "checkpoint.pt"


def init_checkpoint(config: PretrainConfig) -> Path:
    """The weights a fine-tuning run starts from: the committed final weights of run ``init_from`` of
    the same preset (:func:`mimstudy.models.checkpoints.weights.weights_file`)."""
    return weights_file(config.results_dir, config.preset, config.init_from)


def supervised_augment(config: PretrainConfig, num_classes: int = NUM_CLASSES) -> SupervisedAugment | None:
    """DeiT-style crop/flip + mixup/cutmix, or ``None`` when ``augment`` is off."""
    if not config.augment:
        return None
    return SupervisedAugment(num_classes=num_classes, scale=(config.crop_scale_min, 1.0),
                             mixup_alpha=config.mixup_alpha, cutmix_alpha=config.cutmix_alpha,
                             mixup_prob=config.mixup_prob, label_smoothing=config.label_smoothing)


def moco_views(in_chans: int, img_size: int) -> MoCoViews:
    """MoCo v3's two views: grayscale as in the study, or for RGB the full recipe (hue, saturation,
    random grayscale, BYOL's blur sigma and a kernel of about a tenth of the image) on ImageNet-normalised images."""
    if in_chans == 1:
        return MoCoViews()
    return MoCoViews(*rgb_view_recipes(img_size), mean=IMAGENET_MEAN, std=IMAGENET_STD)


def build_objective(config: PretrainConfig, num_classes: int = NUM_CLASSES) -> nn.Module:
    """supervised | moco | simmim | finetune (SimMIM checkpoint ``init_from`` -> supervised).

    ``num_classes``: the classifier's classes (the data's); input channels come from the backbone.
    """
    torch.manual_seed(config.seed)
    augment = supervised_augment(config, num_classes)
    if config.objective == "finetune":
        backbone, source = classifier_from_checkpoint(init_checkpoint(config), num_classes,
                                                      drop_path_rate=config.drop_path)
        if source["arch"] != config.arch:
            raise ConfigError(f"init_from run {config.init_from!r} trained {source['arch']!r}, but arch is {config.arch!r}")
        return Supervised(backbone, config.label_smoothing, augment=augment)
    backbone = create_backbone(config.arch, num_classes=num_classes, img_size=config.img_size,
                               drop_path_rate=config.drop_path)
    in_chans = in_chans_of(backbone)
    if config.objective == "supervised":
        return Supervised(backbone, config.label_smoothing, augment=augment)
    if config.objective == "simmim":
        generator = MaskGenerator(config.img_size, config.mask_patch_size, patch_size_of(backbone), config.mask_ratio)
        return SimMIM(backbone, generator, in_chans=in_chans)
    if config.objective == "moco":
        moco = MoCoConfig(dim=config.moco_dim, mlp_dim=config.moco_mlp_dim, temperature=config.moco_temperature,
                          base_momentum=config.moco_momentum)
        return MoCoV3(backbone, moco_views(in_chans, config.img_size), moco)
    raise ConfigError(f"unknown objective {config.objective!r}")
