"""Monocular depth: a backbone + the App. E deconvolution head, SILog loss, scored by RMSE / AbsRel / delta1.

The head (:class:`~mimstudy.downstream.heads.DeconvHead`, kernel 2, 32 filters, a 3x3 convolution)
ends in a sigmoid times the maximum depth (10 m), as GLPDepth's. Training: the scale-invariant log
loss of GLPDepth (``sqrt(mean(d^2) - 0.5 mean(d)^2)``, ``d = log gt - log pred`` over measured
pixels), with random horizontal flips and brightness / gamma jitter (p = 0.5 each). Prediction
averages the map of the image and of its mirror image (flip test). The trivial predictor is the
mean training depth map.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from mimstudy.downstream.augment import paired_hflip, photometric_jitter
from mimstudy.downstream.heads import DenseObjective
from mimstudy.downstream.nyu_depth import MAX_DEPTH, MIN_DEPTH, DepthPairs, depth_metrics, read_split

METRICS = ("rmse", "abs_rel", "delta1")
PRIMARY, HIGHER_IS_BETTER, TRIVIAL = "rmse", False, "mean depth map"


def silog_loss(pred: torch.Tensor, gt: torch.Tensor, lambd: float = 0.5) -> torch.Tensor:
    """GLPDepth's ``SiLogLoss`` over pixels with a measurement."""
    valid = gt > MIN_DEPTH
    d = torch.log(gt[valid]) - torch.log(pred[valid].clamp_min(MIN_DEPTH))
    return torch.sqrt((d ** 2).mean() - lambd * d.mean() ** 2 + 1e-12)


class DepthObjective(DenseObjective):
    """Backbone + depth head; ``forward(images, depths) -> (loss, {"loss": loss})``."""

    def __init__(self, backbone: nn.Module, img_size: int, stats: tuple[float, float], augment: bool = True,
                 max_depth: float = MAX_DEPTH):
        super().__init__(backbone, img_size, stats, 1, width=32, kernel=2, final_kernel=3)
        self.augment, self.max_depth = augment, max_depth

    def depth(self, images: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.dense(images)) * self.max_depth

    def forward(self, images: torch.Tensor, depths: torch.Tensor):
        if self.training and self.augment:
            images, depths = paired_hflip(images, depths)
            images = photometric_jitter(images)
        loss = silog_loss(self.depth(images), depths)
        return loss, {"loss": loss.detach()}

    @torch.no_grad()
    def predict(self, images: torch.Tensor, flip_test: bool = True) -> torch.Tensor:
        pred = self.depth(images)
        if flip_test:
            pred = (pred + self.depth(images.flip(-1)).flip(-1)) / 2
        return pred


def predict_split(objective: DepthObjective, data: DepthPairs, batch_size: int, device: torch.device) -> np.ndarray:
    objective.eval()
    return torch.cat([objective.predict(data.images[i:i + batch_size].to(device)).cpu()
                      for i in range(0, len(data), batch_size)]).numpy()[:, 0]


def score(pred: np.ndarray, data: DepthPairs) -> dict[str, float]:
    return {k: float(v.mean()) for k, v in depth_metrics(pred, data.depths.numpy()[:, 0]).items()}


def mean_depth_map(train: DepthPairs) -> np.ndarray:
    """The trivial predictor: the per-pixel mean over measured training pixels."""
    d = train.depths.numpy()[:, 0]
    valid = d > MIN_DEPTH
    return (d * valid).sum(0) / np.maximum(valid.sum(0), 1)


def load(root: str | Path, config) -> tuple[DepthPairs, DepthPairs]:
    """``config``'s training and test splits of the NYUv2-layout folder ``root``."""
    return (read_split(root, config.train_split, config.img_size, config.train_size),
            read_split(root, config.test_split, config.img_size, config.test_size))


def objective(backbone: nn.Module, train: DepthPairs, config, stats: tuple[float, float]) -> DepthObjective:
    return DepthObjective(backbone, config.img_size, stats, config.augment)


def targets(data: DepthPairs) -> torch.Tensor:
    return data.depths


def evaluate(objective: DepthObjective, test: DepthPairs, device: torch.device,
             batch_size: int = 128) -> tuple[dict[str, float], np.ndarray]:
    pred = predict_split(objective, test, batch_size, device)
    return score(pred, test), pred


def trivial(train: DepthPairs, test: DepthPairs) -> dict[str, float]:
    mean = mean_depth_map(train)
    return score(np.broadcast_to(mean, (len(test), *mean.shape)).copy(), test)


def examples(test: DepthPairs, predictions: np.ndarray, n: int):
    return {"example_image": (("example", "y", "x"), test.images[:n, 0].numpy()),
            "example_depth": (("example", "y", "x"), test.depths[:n, 0].numpy()),
            "example_predicted_depth": (("example", "y", "x"), predictions[:n])}, {}
