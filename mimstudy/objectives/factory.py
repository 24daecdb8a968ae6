"""Build the objective a :class:`~mimstudy.config.PretrainConfig` describes, freshly initialised."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

from ..augment import MoCoViews, SupervisedAugment
from ..config import ConfigError, PretrainConfig
from ..data import IMAGE_SIZE
from ..masking import MaskGenerator
from ..models import create_backbone, patch_size_of
from .finetune import classifier_from_checkpoint
from .moco import MoCoConfig, MoCoV3
from .simmim import SimMIM
from .supervised import Supervised

NUM_CLASSES = 10
CHECKPOINT_NAME = "checkpoint.pt"


def init_checkpoint(config: PretrainConfig) -> Path:
    """The checkpoint a fine-tuning run starts from: run ``init_from`` of the same preset."""
    return Path(config.runs_dir) / config.preset / config.init_from / CHECKPOINT_NAME


def supervised_augment(config: PretrainConfig) -> SupervisedAugment | None:
    """DeiT-style crop/flip + mixup/cutmix, or ``None`` when ``augment`` is off."""
    if not config.augment:
        return None
    return SupervisedAugment(num_classes=NUM_CLASSES, scale=(config.crop_scale_min, 1.0),
                             mixup_alpha=config.mixup_alpha, cutmix_alpha=config.cutmix_alpha,
                             mixup_prob=config.mixup_prob, label_smoothing=config.label_smoothing)


def build_objective(config: PretrainConfig) -> nn.Module:
    """supervised | moco | simmim | finetune (SimMIM checkpoint ``init_from`` -> supervised)."""
    torch.manual_seed(config.seed)
    if config.objective == "finetune":
        backbone, source = classifier_from_checkpoint(init_checkpoint(config), NUM_CLASSES,
                                                      drop_path_rate=config.drop_path)
        if source["arch"] != config.arch:
            raise ConfigError(f"init_from run {config.init_from!r} trained {source['arch']!r}, but arch is {config.arch!r}")
        return Supervised(backbone, config.label_smoothing, augment=supervised_augment(config))
    backbone = create_backbone(config.arch, num_classes=NUM_CLASSES, drop_path_rate=config.drop_path)
    if config.objective == "supervised":
        return Supervised(backbone, config.label_smoothing, augment=supervised_augment(config))
    if config.objective == "simmim":
        generator = MaskGenerator(IMAGE_SIZE, config.mask_patch_size, patch_size_of(backbone), config.mask_ratio)
        return SimMIM(backbone, generator, in_chans=1)
    if config.objective == "moco":
        moco = MoCoConfig(dim=config.moco_dim, mlp_dim=config.moco_mlp_dim, temperature=config.moco_temperature,
                          base_momentum=config.moco_momentum)
        return MoCoV3(backbone, MoCoViews(), moco)
    raise ConfigError(f"unknown objective {config.objective!r}")
