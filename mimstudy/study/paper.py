"""Paper scale: the weights and images a :class:`~mimstudy.config.PaperProbeConfig` names.

``checkpoint_path`` picks the weights: ``""`` a randomly initialised model (CI only: its probes
describe no trained model), ``"timm"`` timm's pretrained weights, anything else a released
checkpoint file read by :func:`mimstudy.models.checkpoints.load_backbone`.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

from mimstudy.models.checkpoints import load_backbone
from mimstudy.config import TIMM_WEIGHTS, PaperProbeConfig
from mimstudy.data.imagenet import image_folder, sample_photos
from mimstudy.models.backbones import create_backbone

RANDOM_NOTE = (
    "NOTE: checkpoint_path is empty, so {model} is RANDOMLY INITIALISED (seed {seed}). These probes "
    "exercise the pipeline only: they are NOT the paper's DeiT / MoCo v3 / SimMIM models."
)


def weights_label(config: PaperProbeConfig) -> str:
    """Where the weights come from, in a few words: stored as the ``weights`` coord."""
    if config.random_weights:
        return f"random init (seed {config.seed})"
    if config.checkpoint_path == TIMM_WEIGHTS:
        return f"timm pretrained {config.model_name}"
    return Path(config.checkpoint_path).name


def load_model(config: PaperProbeConfig, log=print) -> nn.Module:
    """``model_name`` headless, in eval mode on ``config.device``, with the weights ``checkpoint_path`` names."""
    if config.random_weights:
        torch.manual_seed(config.seed)
        model = create_backbone(config.model_name, num_classes=0, img_size=config.img_size)
        log(RANDOM_NOTE.format(model=config.model_name, seed=config.seed))
    else:
        path = None if config.checkpoint_path == TIMM_WEIGHTS else config.checkpoint_path
        model, report = load_backbone(config.model_name, path, layout=config.layout,
                                      allow_pickle=config.allow_pickle, img_size=config.img_size)
        log(report)
    device = config.device if config.device != "auto" else "cuda" if torch.cuda.is_available() else "cpu"
    return model.eval().to(device)


def load_images(config: PaperProbeConfig) -> torch.Tensor:
    """``[num_images, 3, img_size, img_size]``: drawn from ``image_dir``, or the offline sample photos."""
    if config.image_dir:
        return image_folder(config.image_dir, config.img_size, config.num_images, config.seed)
    return sample_photos(config.img_size, config.num_images)


def paper_coords(config: PaperProbeConfig) -> dict[str, str]:
    """Scalar coords naming the probed model: run id, objective (``random`` for no weights), arch, weights."""
    return {"model": config.run_id, "objective": config.objective, "arch": config.model_name,
            "weights": weights_label(config)}
