"""Single-object tracking: a Siamese backbone + a correlation head (SiamFC / SiamRPN++ style), scored by AO / SR / AUC.

Crops follow SiamFC: around a box ``(w, h)`` the template side is ``z = sqrt((w + p)(h + p))``,
``p = (w + h) / 2`` (about twice the box), the search side twice that (about four times the box).
Both are resampled to the backbone's size ``S`` (32 px): the search crop fills it, and the template
is the central ``S / 2`` (16 px) of a crop of the search's side centred on the target in the
template frame. The study's backbones take a fixed 32-px input, so the template enters the backbone
with its context and its kernel is the central half of that feature map (16 px of the 32-px crop);
the scale per pixel is the same in template and search, as in SiamFC.

Head: 1x1 projections of both feature maps to 64 channels, depth-wise cross-correlation of the
search map with the template kernel (SiamRPN++), a 3x3 convolution (BN, ReLU), then per response
cell a score and a box (its centre's offset from the cell's centre in feature strides, log width
and height relative to ``S / 4``). Loss: binary cross-entropy of the scores against a Gaussian of the
distance from each cell's centre to the target's (sigma = one stride), plus L1 (x 5, in units of
``S``) and GIoU (x 2, ``torchvision.ops``) of the boxes, weighted by that Gaussian.

Training pairs (``PAIRS_PER_SEQUENCE`` per training sequence): a template frame and a search frame
at most ``MAX_GAP`` frames apart, the target visible in both; the search side is the template box's
times ``U(1/1.15, 1.15)`` (log-uniform) and its centre is shifted from the target's by up to a
quarter of the side, so the target is not always in the middle. Training flips both crops
(p = 0.5) and jitters brightness / gamma (as depth).

Inference tracks each sequence frame by frame from its first box: the search crop is centred on
the previous box, scores are blended with a Hann window (weight ``WINDOW_INFLUENCE``), the best
cell's box is mapped back to the frame, and the size is smoothed (rate ``SIZE_RATE``). The trivial
predictor keeps the first frame's box. The tracking constants live here, since ``DownstreamConfig``
has no tracking fields: ``train_size`` counts training pairs, ``test_size`` test sequences.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from mimstudy.downstream import garment_track
from mimstudy.downstream.augment import photometric_jitter
from mimstudy.downstream.backbone import feature_shape, features
from mimstudy.downstream.coco_keypoints import crop_batch
from mimstudy.downstream.got10k import Sequence, read_split, score
from mimstudy.downstream.inputs import Standardise, Stats
from mimstudy.downstream.split import Split, image_variable, stream_or_hold

PAIRS_PER_SEQUENCE = 50  # the design's 30k pairs from 600 videos
MAX_GAP = 20  # frames between template and search
SHIFT = 0.25  # of the search side: how far the target's centre may sit from the crop's
SCALE_JITTER = 1.15
TEMPLATE_FRACTION = 0.5  # the template: the central half of a search-sized crop (16 of 32 px)
WINDOW_INFLUENCE = 0.3
SIZE_RATE = 0.5
PAIR_STREAM = 2  # rng stream of the training pairs: [seed, garment_track.STREAM_ID, PAIR_STREAM, i]
METRICS = ("ao", "sr50", "sr75", "auc")
PRIMARY, HIGHER_IS_BETTER, TRIVIAL = "ao", True, "first frame's box kept"


def template_side(box: np.ndarray) -> np.ndarray:
    """SiamFC's context side ``sqrt((w + p)(h + p))``, ``p = (w + h) / 2``, of ``[..., 4]`` boxes (>= 4 px)."""
    w, h = np.asarray(box)[..., 2], np.asarray(box)[..., 3]
    p = (w + h) / 2
    return np.maximum(np.sqrt((w + p) * (h + p)), 4.0)


def centre(box: np.ndarray) -> np.ndarray:
    box = np.asarray(box)
    return box[..., :2] + box[..., 2:] / 2


def search_crops(frames: torch.Tensor, centres: np.ndarray, sides: np.ndarray, size: int) -> torch.Tensor:
    """Square crops ``[B, 1, size, size]`` of ``frames [B, 1, H, W]`` of ``sides`` around ``centres [B, 2]``."""
    c, s = torch.as_tensor(centres, dtype=torch.float32), torch.as_tensor(sides, dtype=torch.float32)
    return crop_batch(frames, c[:, 0] - s / 2, c[:, 1] - s / 2, s, size)


def to_crop(boxes: np.ndarray, centres: np.ndarray, sides: np.ndarray, size: int) -> np.ndarray:
    """Frame boxes ``[B, 4]`` -> boxes in the pixels of crops of ``sides`` around ``centres``."""
    scale = (size / sides)[:, None]
    origin = centres - sides[:, None] / 2
    return np.concatenate([(boxes[:, :2] - origin) * scale, boxes[:, 2:] * scale], axis=1)


def to_frame(boxes: np.ndarray, centres: np.ndarray, sides: np.ndarray, size: int) -> np.ndarray:
    """The inverse of :func:`to_crop`."""
    scale = (sides / size)[:, None]
    origin = centres - sides[:, None] / 2
    return np.concatenate([boxes[:, :2] * scale + origin, boxes[:, 2:] * scale], axis=1)


class TrackingPairs(Split):
    """Training pairs; item ``i``: ``(image [2C, S, S], box [4])``, channels ``:C`` the search crop and ``C:``
    the template frame's crop of the same side centred on the target, ``box`` the target in search-crop
    pixels (x, y, w, h). ``plans[i]``: (sequence, template frame, search frame, side, search centre)."""

    def __init__(self, sequences: list[Sequence], plans: list[tuple], img_size: int):
        self.sequences, self.plans, self.img_size = sequences, plans, img_size

    def __len__(self) -> int:
        return len(self.plans)

    def item(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        s, a, b, side, search_centre = self.plans[i]
        seq, sides = self.sequences[s], np.array([side])
        search = search_crops(seq.frames_at([b]), search_centre[None], sides, self.img_size)[0]
        template = search_crops(seq.frames_at([a]), centre(seq.boxes[a:a + 1]), sides, self.img_size)[0]
        box = to_crop(seq.boxes[b:b + 1], search_centre[None], sides, self.img_size)[0]
        return torch.cat([search, template]), torch.from_numpy(box).float()


def make_pairs(sequences: list[Sequence], n: int, img_size: int, seed: int = 0) -> TrackingPairs:
    """``n`` training pairs, pair ``i`` from sequence ``i mod len(sequences)`` (deterministic per pair)."""
    plans = []
    for i in range(n):
        seq = sequences[i % len(sequences)]
        rng = np.random.default_rng([seed, garment_track.STREAM_ID, PAIR_STREAM, i])
        shown = np.ones(len(seq), dtype=bool) if seq.cover is None else seq.cover > 0
        visible = np.flatnonzero(shown & (seq.boxes[:, 2] > 0) & (seq.boxes[:, 3] > 0))
        a = int(rng.choice(visible))
        b = int(rng.choice(visible[np.abs(visible - a) <= MAX_GAP]))
        side = 2 * template_side(seq.boxes[a]) * math.exp(rng.uniform(-1, 1) * math.log(SCALE_JITTER))
        shift = rng.uniform(-SHIFT, SHIFT, size=2) * side
        plans.append((i % len(sequences), a, b, side, centre(seq.boxes[b]) + shift))
    return TrackingPairs(sequences, plans, img_size)


@dataclass
class TrackingSequences:
    """Test sequences; :attr:`images` holds each one's last frame at ``img_size`` (the book's examples)."""

    sequences: list[Sequence]
    img_size: int

    def __len__(self) -> int:
        return len(self.sequences)

    @property
    def images(self) -> torch.Tensor:
        size = (self.img_size, self.img_size)
        return torch.cat([F.interpolate(s.frames_at([len(s) - 1]), size=size, mode="bilinear", align_corners=False,
                                        antialias=True) for s in self.sequences])

    def last_boxes(self, tracks: np.ndarray | list[np.ndarray]) -> np.ndarray:
        """The last box of each track in the pixels of :attr:`images`."""
        out = []
        for seq, track in zip(self.sequences, tracks):
            height, width = seq.frame_size
            out.append(np.asarray(track)[len(seq) - 1] * np.array([self.img_size / width, self.img_size / height] * 2))
        return np.stack(out)


class CorrelationHead(nn.Module):
    """Depth-wise cross-correlation of search features with the template kernel -> score logits and raw boxes."""

    def __init__(self, channels: int, width: int = 64):
        super().__init__()
        self.template, self.search = nn.Conv2d(channels, width, 1), nn.Conv2d(channels, width, 1)
        self.fuse = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(inplace=True))
        self.score, self.box = nn.Conv2d(width, 1, 1), nn.Conv2d(width, 4, 1)
        nn.init.zeros_(self.box.weight)
        nn.init.zeros_(self.box.bias)

    def forward(self, kernel: torch.Tensor, search: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z, x = self.template(kernel), self.search(search)
        b, c, k = z.shape[0], z.shape[1], z.shape[-1]
        response = F.conv2d(x.reshape(1, b * c, *x.shape[-2:]), z.reshape(b * c, 1, k, k), groups=b * c)
        response = self.fuse(response.reshape(b, c, *response.shape[-2:]) / (k * k))
        return self.score(response)[:, 0], self.box(response)


class TrackingObjective(nn.Module):
    """Backbone + correlation head; ``forward(images [B, 2, S, S], boxes [B, 4]) -> (loss, parts)``."""

    def __init__(self, backbone: nn.Module, img_size: int, stats: Stats, augment: bool = True,
                 width: int = 64):
        super().__init__()
        self.backbone = backbone
        self.standardise = Standardise(*stats)  # the pre-training dataset's pixel mean and std
        channels, self.stride = feature_shape(backbone, img_size, self.standardise.channels)
        self.cells = img_size // self.stride
        self.kernel = max(1, round(self.cells * TEMPLATE_FRACTION))
        self.head = CorrelationHead(channels, width)
        self.img_size, self.augment = img_size, augment
        responses = self.cells - self.kernel + 1
        # response cell -> the crop pixel of its kernel position's centre
        self.register_buffer("centres", (torch.arange(responses) + self.kernel / 2).float() * self.stride,
                             persistent=False)
        hann = torch.hann_window(responses + 2, periodic=False)[1:-1]
        self.register_buffer("window", hann[:, None] * hann[None, :], persistent=False)

    def template_kernel(self, template_crops: torch.Tensor) -> torch.Tensor:
        """The central ``kernel x kernel`` cells of the template crops' features."""
        f = features(self.backbone, self.standardise(template_crops))
        start = (self.cells - self.kernel) // 2
        return f[..., start:start + self.kernel, start:start + self.kernel]

    def decode(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw box outputs ``[B, 4, m, m]`` -> boxes ``[B, m, m, 4]`` (x0, y0, x1, y1 in search-crop pixels)."""
        cx = self.centres[None, None, :] + raw[:, 0] * self.stride
        cy = self.centres[None, :, None] + raw[:, 1] * self.stride
        ref = self.img_size / 4
        w, h = ref * torch.exp(raw[:, 2].clamp(-4, 4)), ref * torch.exp(raw[:, 3].clamp(-4, 4))
        return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1)

    def forward(self, images: torch.Tensor, boxes: torch.Tensor):
        from torchvision.ops import generalized_box_iou_loss

        if self.training and self.augment:
            flip = (torch.rand(images.shape[0]) < 0.5).to(images.device)
            images = torch.where(flip.view(-1, 1, 1, 1), images.flip(-1), images)
            mirrored = torch.stack([self.img_size - boxes[:, 0] - boxes[:, 2], boxes[:, 1], boxes[:, 2], boxes[:, 3]], 1)
            boxes = torch.where(flip.view(-1, 1), mirrored, boxes)
            images = photometric_jitter(images)
        b = images.shape[0]
        c = self.standardise.channels
        kernel = self.template_kernel(images[:, c:])
        logits, raw = self.head(kernel, features(self.backbone, self.standardise(images[:, :c])))
        predicted = self.decode(raw)
        true = boxes[:, None, None, :]
        tx, ty = true[..., 0] + true[..., 2] / 2, true[..., 1] + true[..., 3] / 2
        d2 = (self.centres[None, None, :] - tx) ** 2 + (self.centres[None, :, None] - ty) ** 2
        label = torch.exp(-d2 / (2 * self.stride ** 2))
        bce = F.binary_cross_entropy_with_logits(logits, label)
        target = torch.cat([true[..., :2], true[..., :2] + true[..., 2:]], dim=-1).expand_as(predicted)
        weight = label / label.sum(dim=(1, 2), keepdim=True).clamp_min(1e-6) / b
        l1 = ((predicted - target).abs().sum(-1) / self.img_size * weight).sum()
        giou = (generalized_box_iou_loss(predicted.reshape(-1, 4), target.reshape(-1, 4), reduction="none")
                .reshape(weight.shape) * weight).sum()
        loss = bce + 5 * l1 + 2 * giou
        return loss, {"loss": loss.detach(), "bce": bce.detach(), "l1": l1.detach(), "giou": giou.detach()}

    @torch.no_grad()
    def best_boxes(self, kernel: torch.Tensor, search_crops: torch.Tensor) -> torch.Tensor:
        """The box ``[B, 4]`` (x, y, w, h in search-crop pixels) of the best cell after the Hann window."""
        logits, raw = self.head(kernel, features(self.backbone, self.standardise(search_crops)))
        scores = (1 - WINDOW_INFLUENCE) * torch.sigmoid(logits) + WINDOW_INFLUENCE * self.window
        best = scores.flatten(1).argmax(dim=1)
        x0, y0, x1, y1 = self.decode(raw).flatten(1, 2)[torch.arange(len(best)), best].unbind(-1)
        return torch.stack([x0, y0, x1 - x0, y1 - y0], dim=-1)


@torch.no_grad()
def track(objective: TrackingObjective, sequences: list[Sequence], device: torch.device,
          batch_size: int = 128) -> list[np.ndarray]:
    """Each sequence's ``[T, 4]`` boxes, tracked frame by frame from its first box (in eval mode)."""
    objective.eval()
    size = objective.img_size
    tracks = []
    for start in range(0, len(sequences), batch_size):
        batch = sequences[start:start + batch_size]
        first = np.stack([s.boxes[0] for s in batch])
        sides = 2 * template_side(first)
        templates = torch.cat([search_crops(s.frames_at([0]), centre(s.boxes[:1]), sides[i:i + 1], size)
                               for i, s in enumerate(batch)])
        kernel = objective.template_kernel(templates.to(device))
        boxes = [[s.boxes[0].astype(np.float64)] for s in batch]
        for t in range(1, max(len(s) for s in batch)):
            live = [i for i, s in enumerate(batch) if len(s) > t]
            previous = np.stack([boxes[i][-1] for i in live])
            centres, sides = centre(previous), 2 * template_side(previous)
            crops = search_crops(torch.cat([batch[i].frames_at([t]) for i in live]), centres, sides, size)
            found = to_frame(objective.best_boxes(kernel[live], crops.to(device)).cpu().numpy(), centres, sides, size)
            for row, i in enumerate(live):
                height, width = batch[i].frame_size
                wh = (1 - SIZE_RATE) * previous[row, 2:] + SIZE_RATE * np.maximum(found[row, 2:], 2.0)
                c = np.clip(centre(found[row]), 0, [width, height])
                boxes[i].append(np.concatenate([c - wh / 2, wh]))
        tracks += [np.stack(b) for b in boxes]
    return tracks


def padded(tracks: list[np.ndarray]) -> np.ndarray:
    """Tracks of different lengths as one ``[N, T_max, 4]`` array (NaN after a track's end)."""
    out = np.full((len(tracks), max(len(t) for t in tracks), 4), np.nan)
    for i, t in enumerate(tracks):
        out[i, :len(t)] = t
    return out


def stay_tracks(sequences: list[Sequence]) -> list[np.ndarray]:
    """The trivial predictor: every frame keeps the first frame's box."""
    return [np.repeat(s.boxes[:1], len(s), axis=0) for s in sequences]


def evaluate(objective: TrackingObjective, test: TrackingSequences, device: torch.device) -> tuple[dict, np.ndarray]:
    """GOT-10k's metrics of the tracked test sequences and the tracks ``[N, T, 4]``."""
    tracks = track(objective, test.sequences, device)
    return score(tracks, test.sequences), padded(tracks)


def sequences_for(pairs: int) -> int:
    """Training sequences read or generated for ``pairs`` training pairs."""
    return max(1, math.ceil(pairs / PAIRS_PER_SEQUENCE))


def load(root: str | Path, config, channels: int = 1) -> tuple[TrackingPairs, TrackingSequences]:
    """``config.train_size`` pairs from the first sequences of ``config.train_split`` of the GOT-10k-layout folder
    ``root`` (drawn with ``config.seed``); its first ``config.test_size`` test sequences. Frames are read with
    ``channels``; with ``config.stream`` they are read when a pair or a tracked frame needs them."""
    train = read_split(root, config.train_split, sequences_for(config.train_size), channels, config.stream)
    test = read_split(root, config.test_split, config.test_size, channels, config.stream)
    return (stream_or_hold(make_pairs(train, config.train_size, config.img_size, config.seed), config),
            TrackingSequences(test, config.img_size))


def objective(backbone: nn.Module, train: TrackingPairs, config, stats: Stats) -> TrackingObjective:
    return TrackingObjective(backbone, config.img_size, stats, config.augment)


def trivial(train: TrackingPairs, test: TrackingSequences) -> dict[str, float]:
    return score(stay_tracks(test.sequences), test.sequences)


def examples(test: TrackingSequences, predictions: np.ndarray, n: int):
    sub = TrackingSequences(test.sequences[:n], test.img_size)
    truth = sub.last_boxes([s.boxes for s in sub.sequences])
    return {"example_image": image_variable(sub.images.numpy()),
            "example_box": (("example", "box"), truth),
            "example_predicted_box": (("example", "box"), sub.last_boxes(predictions[:n]))}, {"box": ["x", "y", "w", "h"]}
