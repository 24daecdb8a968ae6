"""The GOT-10k layout: write a tracking split, read it (ours or the real GOT-10k folders), score AO / SR / AUC.

Layout (as GOT-10k's ``train/`` and ``val/``)::

    <root>/<split>/list.txt                       one sequence folder name a line
    <root>/<split>/<sequence>/00000001.jpg ...    the frames, numbered from 1
    <root>/<split>/<sequence>/groundtruth.txt     one "x,y,w,h" box a frame (pixels, top-left origin)
    <root>/<split>/<sequence>/cover.label         optional: the target's visible ratio per frame, 0-8

Frames are read with the backbone's channels (grey or RGB), held in memory or read on demand;
our generated frames are grey JPEG (quality 95), GOT-10k's RGB JPEG.
GOT-10k's ``test/`` split gives only the first frame's box; its boxes are scored by the evaluation
server, so read ``val`` (or ``train``) for local scores. A malformed ``groundtruth.txt`` (a line
without four numbers, fewer lines than frames), a ``list.txt`` naming a missing folder or a missing
frame raises :class:`~mimstudy.data.fashion_mnist.DatasetError` naming the file and what to fix.

Metrics as the GOT-10k toolkit (``got10k`` 0.1.3, ``experiments/got10k.py``: ``report`` and
``_evaluate``; ``utils/metrics.py``: ``rect_iou``): per sequence the IoU of the predicted and
ground-truth boxes, both clipped to the frame, over frames ``1 ..`` (the first frame, where the
tracker is given the box, is excluded) where the target is visible (``cover > 0``); the frames of
all sequences are pooled, then AO = mean IoU, SR_t = mean(IoU > t) for t = 0.5 and 0.75, and the
success curve = mean(IoU > thr) over ``thr = linspace(0, 1, 101)``, whose mean is the success AUC.
The package itself is not a dependency (it pulls in Shapely, fire and wget, and its evaluation reads
result files from disk); ``tests/test_tracking.py`` checks these formulas on hand-computed boxes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from mimstudy.atomic import atomic_path
from mimstudy.data.fashion_mnist import DatasetError
from mimstudy.downstream.images import check_channels, read_image, write_grey

FRAME_PATTERN = "{:08d}.jpg"
IOU_THRESHOLDS = np.linspace(0.0, 1.0, 101)
COVER_LEVELS = 8  # cover.label: 0 = fully covered ... 8 = fully visible


@dataclass
class Sequence:
    """One video: its frames (in memory, or read from ``frame_files`` when asked for), a box per frame and
    (when annotated) the visible ratio."""

    name: str
    frames: np.ndarray | None  # [T, H, W] grey or [T, C, H, W] float32 in [0, 1]; None: streamed from frame_files
    boxes: np.ndarray  # [T, 4] x, y, w, h in pixels
    cover: np.ndarray | None = None  # [T] int in 0..8 (0: the target is fully covered)
    frame_files: tuple[Path, ...] = ()
    channels: int = 1

    def __len__(self) -> int:
        return len(self.frame_files) if self.frames is None else len(self.frames)

    @property
    def frame_size(self) -> tuple[int, int]:
        """``(height, width)`` of the frames."""
        if self.frames is not None:
            return tuple(self.frames.shape[-2:])
        with Image.open(self.frame_files[0]) as image:
            return image.height, image.width

    def frames_at(self, indices) -> torch.Tensor:
        """Frames ``indices`` as ``[n, C, H, W]`` float32 (read from disk when streamed)."""
        indices = [int(t) for t in np.atleast_1d(indices)]
        if self.frames is None:
            return torch.stack([torch.from_numpy(read_image(self.frame_files[t], self.channels, "frame",
                                                            f"the frame numbering of {self.frame_files[t].parent}"))
                                for t in indices])
        frames = torch.from_numpy(np.ascontiguousarray(self.frames[indices], dtype=np.float32))
        return frames[:, None] if frames.dim() == 3 else frames


def list_file(root: str | Path, split: str) -> Path:
    return Path(root) / split / "list.txt"


def cover_level(visible: float) -> int:
    """A visible ratio in [0, 1] as a ``cover.label`` level: ceil(8 x ratio) (0 only when fully covered)."""
    return int(np.ceil(np.clip(visible, 0.0, 1.0) * COVER_LEVELS - 1e-9))


def write_split(root: str | Path, split: str, sequences: list[Sequence], quality: int = 95) -> Path:
    """Write ``sequences`` (frames as JPEG) in the GOT-10k layout; ``list.txt`` last, atomically."""
    folder = Path(root) / split
    for seq in sequences:
        (folder / seq.name).mkdir(parents=True, exist_ok=True)
        for t, frame in enumerate(seq.frames, start=1):
            write_grey(folder / seq.name / FRAME_PATTERN.format(t), frame, "JPEG", quality=quality)
        with atomic_path(folder / seq.name / "groundtruth.txt") as tmp:
            tmp.write_text("".join(",".join(f"{v:.4f}" for v in box) + "\n" for box in seq.boxes))
        if seq.cover is not None:
            with atomic_path(folder / seq.name / "cover.label") as tmp:
                tmp.write_text("".join(f"{int(c)}\n" for c in seq.cover))
    path = list_file(root, split)
    with atomic_path(path) as tmp:
        tmp.write_text("".join(seq.name + "\n" for seq in sequences))
    return path


def read_boxes(path: Path) -> np.ndarray:
    """``groundtruth.txt`` as ``[lines, 4]``: four numbers a line (commas, tabs or spaces)."""
    if not path.is_file():
        raise DatasetError(f"{path} is missing: each GOT-10k sequence folder needs groundtruth.txt, one "
                           "'x,y,w,h' line per frame")
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            values = [float(v) for v in line.replace(",", " ").split()]
        except ValueError:
            values = []
        if len(values) != 4 or not np.all(np.isfinite(values)):
            raise DatasetError(f"{path}, line {number}: expected four numbers 'x,y,w,h', got {line!r}; fix the line "
                               "or re-generate the sequence")
        rows.append(values)
    return np.asarray(rows, dtype=np.float64).reshape(-1, 4)


def _read_cover(path: Path, frames: int) -> np.ndarray | None:
    if not path.is_file():
        return None
    try:
        cover = np.array([int(float(v)) for v in path.read_text().split()], dtype=np.int64)
    except ValueError as err:
        raise DatasetError(f"{path}: expected one integer 0-8 per frame ({err})") from err
    if len(cover) < frames:
        raise DatasetError(f"{path} has {len(cover)} values for {frames} frames: give one per frame")
    return cover[:frames]


def read_sequence(folder: Path, channels: int = 1, stream: bool = False) -> Sequence:
    """One sequence folder: frames ``00000001.jpg ...`` in order, its boxes and its cover levels.

    The sequence has as many frames as the highest frame number or the box lines, whichever is more:
    a gap in the numbering or a box line without its frame names the missing frame.
    """
    if not folder.is_dir():
        raise DatasetError(f"sequence folder {folder} is missing (named in {folder.parent / 'list.txt'})")
    gt = folder / "groundtruth.txt"
    boxes = read_boxes(gt)
    numbers = [int(p.stem) for p in folder.glob("*.jpg") if p.stem.isdigit()]
    count = max(max(numbers, default=0), len(boxes))
    if count == 0:
        raise DatasetError(f"{folder} holds no frames (00000001.jpg, ...) and {gt} no boxes")
    names = [FRAME_PATTERN.format(t) for t in range(1, count + 1)]
    missing = sorted(set(range(1, count + 1)) - set(numbers))
    if missing:
        raise DatasetError(f"frame {folder / names[missing[0] - 1]} is missing ({len(missing)} of {count} frames "
                           f"absent; {gt} has {len(boxes)} boxes): restore the frames or re-generate the sequence")
    if len(boxes) < count:
        raise DatasetError(f"{gt} has {len(boxes)} box line(s) for {count} frames: give one 'x,y,w,h' line per "
                           "frame (GOT-10k's test split holds only the first box: score on val)")
    files = tuple(folder / name for name in names)
    cover = _read_cover(folder / "cover.label", count)
    if stream:
        return Sequence(folder.name, None, boxes, cover, files, channels)
    frames = np.stack([read_image(file, channels, "frame", f"the frame numbering of {folder}") for file in files])
    return Sequence(folder.name, frames[:, 0] if channels == 1 else frames, boxes, cover, files, channels)


def read_split(root: str | Path, split: str, limit: int | None = None, channels: int = 1,
               stream: bool = False) -> list[Sequence]:
    """The sequences ``list.txt`` names (the first ``limit``), in its order; their frames read with ``channels``,
    held in memory or (``stream``) read when asked for."""
    path = list_file(root, split)
    if not path.is_file():
        raise DatasetError(f"{path} is missing: a GOT-10k split needs list.txt naming its sequence folders")
    names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not names:
        raise DatasetError(f"{path} names no sequences")
    return [read_sequence(path.parent / name, check_channels(channels), stream) for name in names[:limit]]


def rect_iou(a: np.ndarray, b: np.ndarray, bound: tuple[float, float] | None = None) -> np.ndarray:
    """IoU of ``[..., 4]`` x, y, w, h boxes, each first clipped to ``bound = (width, height)`` (the toolkit's)."""
    a, b = np.array(a, dtype=np.float64), np.array(b, dtype=np.float64)
    if bound is not None:
        for box in (a, b):
            box[..., 0] = np.clip(box[..., 0], 0, bound[0])
            box[..., 1] = np.clip(box[..., 1], 0, bound[1])
            box[..., 2] = np.clip(box[..., 2], 0, bound[0] - box[..., 0])
            box[..., 3] = np.clip(box[..., 3], 0, bound[1] - box[..., 1])
    w = np.clip(np.minimum(a[..., 0] + a[..., 2], b[..., 0] + b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    h = np.clip(np.minimum(a[..., 1] + a[..., 3], b[..., 1] + b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = w * h
    union = a[..., 2] * a[..., 3] + b[..., 2] * b[..., 3] - inter
    return np.clip(inter / (union + np.finfo(float).eps), 0.0, 1.0)


def sequence_ious(predicted: np.ndarray, seq: Sequence) -> np.ndarray:
    """IoU over frames ``1 ..`` where the target is visible (the toolkit's per-sequence list)."""
    height, width = seq.frame_size
    ious = rect_iou(np.asarray(predicted)[1:], seq.boxes[1:], bound=(width, height))
    return ious if seq.cover is None else ious[seq.cover[1:] > 0]


def summarise(ious: np.ndarray) -> dict[str, float]:
    """AO, SR at 0.5 / 0.75 and the success AUC of pooled per-frame IoUs."""
    ious = np.asarray(ious, dtype=np.float64)
    curve = np.greater(ious[:, None], IOU_THRESHOLDS[None, :]).mean(axis=0)
    return {"ao": float(ious.mean()), "sr50": float((ious > 0.5).mean()), "sr75": float((ious > 0.75).mean()),
            "auc": float(curve.mean())}


def score(predictions: list[np.ndarray] | np.ndarray, sequences: list[Sequence]) -> dict[str, float]:
    """GOT-10k's metrics of one ``[T, 4]`` box track per sequence, frames pooled over sequences."""
    if len(predictions) != len(sequences):
        raise ValueError(f"{len(predictions)} predicted tracks for {len(sequences)} sequences")
    return summarise(np.concatenate([sequence_ious(p, s) for p, s in zip(predictions, sequences)]))
