"""Pretrained backbones from the files people have: timm's hub, DeiT, MoCo v3 and SimMIM releases.

>>> model, report = load_backbone("beit_base_patch16_224", "simmim_pretrain__vit_base__img224__800ep.pth",
...                               allow_pickle=True)  # doctest: +SKIP

See :mod:`mimstudy.models.checkpoints.layouts` for the key layout of each release.
"""

from mimstudy.models.checkpoints.layouts import LAYOUTS, detect_layout
from mimstudy.models.checkpoints.loading import LoadReport, load_backbone
from mimstudy.models.checkpoints.reading import CheckpointError, UnsafeCheckpointError, read_checkpoint

__all__ = [
    "LAYOUTS",
    "CheckpointError",
    "LoadReport",
    "UnsafeCheckpointError",
    "detect_layout",
    "load_backbone",
    "read_checkpoint",
]
