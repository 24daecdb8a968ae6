"""Top-down pose estimation: a backbone + SimpleBaseline head on person crops, scored by OKS AP.

Training (the objective's ``forward``): random flip (left/right joints swapped), rotation within
``rotation`` degrees and scale within ``1 +- scale`` about the crop centre, applied to the batch
by one affine warp; targets are Gaussian heatmaps (sigma 1 px) weighted 0 where a joint is
unlabelled (v = 0) or pushed out of the crop, with a mean squared error. Prediction averages the
heatmaps of the crop and of its mirror image (flip test), decodes each joint by
:func:`~mimstudy.downstream.heads.decode_heatmaps`, and scores a person by its mean peak.
The trivial predictor puts every joint at its mean position over the training crops.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from mimstudy.downstream import puppets
from mimstudy.downstream.coco_keypoints import KeypointCrops, oks_ap, read_split
from mimstudy.downstream.heads import DenseObjective, decode_heatmaps, gaussian_heatmaps
from mimstudy.downstream.inputs import Stats
from mimstudy.downstream.split import batches, example_images, stream_or_hold

METRICS = ("ap", "ap50", "ap75")
PRIMARY, HIGHER_IS_BETTER, TRIVIAL = "ap", True, "mean keypoints"


def flip_keypoints(keypoints: torch.Tensor, pairs: list[tuple[int, int]], size: int) -> torch.Tensor:
    """Mirror ``[B, K, 2+]`` keypoints left-right (x -> size - x) and swap left/right joints."""
    out = keypoints.clone()
    out[..., 0] = size - keypoints[..., 0]
    perm = list(range(keypoints.shape[1]))
    for a, b in pairs:
        perm[a], perm[b] = b, a
    return out[:, perm]


def random_affine(images: torch.Tensor, keypoints: torch.Tensor, pairs: list[tuple[int, int]], rotation: float,
                  scale: float, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Flip (p = 0.5), rotate and scale each crop about its centre; keypoints follow (v kept)."""
    b, size = images.shape[0], images.shape[-1]
    angle = (torch.rand(b, generator=generator) * 2 - 1) * math.radians(rotation)
    zoom = 1 + (torch.rand(b, generator=generator) * 2 - 1) * scale
    flip = torch.rand(b, generator=generator) < 0.5
    cos, sin = torch.cos(angle), torch.sin(angle)
    forward = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2) * zoom[:, None, None]
    sign = torch.where(flip, -1.0, 1.0)
    forward = forward * torch.stack([sign, torch.ones(b)], -1)[:, :, None]  # F @ (s R): mirror the output x
    inverse = torch.linalg.inv(forward)  # output (normalised) -> input (normalised); the centre stays put
    theta = torch.cat([inverse, torch.zeros(b, 2, 1)], dim=2).to(images)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    warped = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
    centred = keypoints[..., :2] - size / 2
    moved = torch.einsum("bij,bkj->bki", forward.to(keypoints), centred) + size / 2
    out = torch.cat([moved, keypoints[..., 2:]], dim=-1)
    if flip.any():
        perm = list(range(keypoints.shape[1]))
        for a, c in pairs:
            perm[a], perm[c] = c, a
        out[flip] = out[flip][:, perm]
    return warped, out


class PoseObjective(DenseObjective):
    """Backbone + deconvolution head; ``forward(images, keypoints) -> (loss, {"loss": loss})``."""

    def __init__(self, backbone: nn.Module, num_keypoints: int, pairs: list[tuple[int, int]], img_size: int,
                 stats: Stats, augment: bool = True, rotation: float = 30.0, scale: float = 0.25,
                 sigma: float = 1.0):
        super().__init__(backbone, img_size, stats, num_keypoints)
        self.pairs, self.img_size, self.sigma = list(pairs), img_size, sigma
        self.augment, self.rotation, self.scale = augment, rotation, scale

    def heatmaps(self, images: torch.Tensor) -> torch.Tensor:
        return self.dense(images)

    def forward(self, images: torch.Tensor, keypoints: torch.Tensor):
        if self.training and self.augment:
            images, keypoints = random_affine(images, keypoints, self.pairs, self.rotation, self.scale)
        size = self.img_size
        inside = (keypoints[..., 0] >= 0) & (keypoints[..., 0] < size) & (keypoints[..., 1] >= 0) & (keypoints[..., 1] < size)
        weight = ((keypoints[..., 2] > 0) & inside).float()
        target = gaussian_heatmaps(keypoints, size, self.sigma)
        predicted = self.heatmaps(images)
        loss = (((predicted - target) ** 2).mean(dim=(-1, -2)) * weight).mean()
        return loss, {"loss": loss.detach()}

    @torch.no_grad()
    def predict(self, images: torch.Tensor, flip_test: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Keypoints ``[B, K, 2]`` in crop pixels and per-joint peak values ``[B, K]``."""
        heatmaps = self.heatmaps(images)
        if flip_test:
            mirrored = self.heatmaps(images.flip(-1)).flip(-1)
            perm = list(range(heatmaps.shape[1]))
            for a, b in self.pairs:
                perm[a], perm[b] = b, a
            heatmaps = (heatmaps + mirrored[:, perm]) / 2
        return decode_heatmaps(heatmaps)


def predict_split(objective: PoseObjective, data: KeypointCrops, batch_size: int, device: torch.device) -> tuple[np.ndarray, np.ndarray]:
    """Crop-pixel keypoints ``[N, K, 2]`` and peak values ``[N, K]`` of every crop, in eval mode."""
    objective.eval()
    xy, peaks = [], []
    for images, _ in batches(data, batch_size):
        p, s = objective.predict(images.to(device))
        xy.append(p.cpu())
        peaks.append(s.cpu())
    return torch.cat(xy).numpy(), torch.cat(peaks).numpy()


def score(data: KeypointCrops, xy: np.ndarray, peaks: np.ndarray, sigmas: tuple[float, ...]) -> dict[str, float]:
    """OKS AP / AP50 / AP75 of crop-pixel predictions (mapped back to image pixels)."""
    return oks_ap(data.annotation_path, data.image_ids, data.to_image_coords(xy), peaks.mean(axis=1), sigmas,
                  data.category_id)


def mean_keypoints(train: KeypointCrops) -> np.ndarray:
    """The trivial predictor: each joint's mean crop position over the training crops where it is labelled."""
    kp = train.keypoints.numpy()
    labelled = kp[..., 2:] > 0
    return (kp[..., :2] * labelled).sum(0) / np.maximum(labelled.sum(0), 1)


def sigmas_for(names: tuple[str, ...]) -> tuple[float, ...]:
    """COCO's sigmas for COCO's 17 joints, CrowdPose's for its 14, ours (COCO's without eyes and ears) for
    Puppet-Pose's 13."""
    from mimstudy.downstream.coco_keypoints import COCO_SIGMAS, CROWDPOSE_SIGMAS

    if len(names) == 17:
        return COCO_SIGMAS
    if len(names) == 14:
        return CROWDPOSE_SIGMAS
    if tuple(names) == puppets.KEYPOINTS:
        return puppets.SIGMAS
    raise ValueError(f"no OKS sigmas known for keypoints {names}: use COCO's 17, CrowdPose's 14 or Puppet-Pose's 13")


def load(root: str | Path, config, channels: int = 1) -> tuple[KeypointCrops, KeypointCrops]:
    """``config``'s training and test splits of the COCO-keypoints folder ``root``, read with ``channels``."""
    return tuple(stream_or_hold(read_split(root, split, config.img_size, size, channels), config)
                 for split, size in ((config.train_split, config.train_size), (config.test_split, config.test_size)))


def objective(backbone: nn.Module, train: KeypointCrops, config, stats: Stats) -> PoseObjective:
    """One heatmap per keypoint of the training file's person category."""
    return PoseObjective(backbone, train.keypoints.shape[1], train.flip_pairs, config.img_size, stats, config.augment)


def evaluate(objective: PoseObjective, test: KeypointCrops, device: torch.device,
             batch_size: int = 128) -> tuple[dict[str, float], np.ndarray]:
    xy, peaks = predict_split(objective, test, batch_size, device)
    return score(test, xy, peaks, sigmas_for(test.keypoint_names)), xy


def trivial(train: KeypointCrops, test: KeypointCrops) -> dict[str, float]:
    mean = mean_keypoints(train)
    xy = np.broadcast_to(mean, (len(test), *mean.shape)).copy()
    return score(test, xy, np.ones(xy.shape[:2]), sigmas_for(test.keypoint_names))


def examples(test: KeypointCrops, predictions: np.ndarray, n: int):
    data = {"example_image": example_images(test, n),
            "example_keypoints": (("example", "joint", "coord"), test.keypoints[:n].numpy()),
            "example_predicted_keypoints": (("example", "joint", "xy"), predictions[:n])}
    return data, {"joint": list(test.keypoint_names), "coord": ["x", "y", "v"], "xy": ["x", "y"]}
