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
from mimstudy.downstream.inputs import Stats
from mimstudy.downstream.split import batches, example_images, stream_or_hold
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

    def __init__(self, backbone: nn.Module, img_size: int, stats: Stats, augment: bool = True,
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


def per_image(predict, data: DepthPairs, batch_size: int) -> tuple[dict[str, np.ndarray], list[np.ndarray]]:
    """Per-image metrics of ``predict(images) -> [B, S, S]`` over ``data``'s batches, and the predictions."""
    metrics, predictions = [], []
    for images, depths in batches(data, batch_size):
        pred = predict(images)
        metrics.append(depth_metrics(pred, depths.numpy()[:, 0]))
        predictions.append(pred)
    return {k: np.concatenate([m[k] for m in metrics]) for k in metrics[0]}, predictions


def summary(metrics: dict[str, np.ndarray]) -> dict[str, float]:
    return {k: float(v.mean()) for k, v in metrics.items()}


def mean_depth_map(train: DepthPairs, batch_size: int = 256) -> np.ndarray:
    """The trivial predictor: the per-pixel mean over measured training pixels (summed map by map)."""
    total = count = None
    for _, depths in batches(train, batch_size):
        for d in depths.numpy()[:, 0]:
            valid = d > MIN_DEPTH
            total = d * valid if total is None else total + d * valid
            count = valid.astype(np.int64) if count is None else count + valid
    return total / np.maximum(count, 1)


def load(root: str | Path, config, channels: int = 1) -> tuple[DepthPairs, DepthPairs]:
    """``config``'s training and test splits of the NYUv2-layout folder ``root``, read with ``channels``."""
    return tuple(stream_or_hold(read_split(root, split, config.img_size, size, channels), config)
                 for split, size in ((config.train_split, config.train_size), (config.test_split, config.test_size)))


def objective(backbone: nn.Module, train: DepthPairs, config, stats: Stats) -> DepthObjective:
    return DepthObjective(backbone, config.img_size, stats, config.augment)


def evaluate(objective: DepthObjective, test: DepthPairs, device: torch.device,
             batch_size: int = 128) -> tuple[dict[str, float], np.ndarray]:
    objective.eval()
    metrics, predictions = per_image(lambda images: objective.predict(images.to(device)).cpu().numpy()[:, 0],
                                     test, batch_size)
    return summary(metrics), np.concatenate(predictions)


def trivial(train: DepthPairs, test: DepthPairs) -> dict[str, float]:
    mean = mean_depth_map(train)
    return summary(per_image(lambda images: np.broadcast_to(mean, (len(images), *mean.shape)).copy(), test, 256)[0])


def examples(test: DepthPairs, predictions: np.ndarray, n: int):
    depths = torch.cat([depths for _, depths in batches(test, n, limit=n)]).numpy()
    return {"example_image": example_images(test, n),
            "example_depth": (("example", "y", "x"), depths[:, 0]),
            "example_predicted_depth": (("example", "y", "x"), predictions[:n])}, {}
