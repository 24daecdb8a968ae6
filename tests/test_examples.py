"""Every downstream task's stored examples can be drawn, by the one drawing function the notebook and the book share."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import xarray as xr  # noqa: E402

from mimstudy.book import examples  # noqa: E402
from mimstudy.downstream import classification, depth, detection, pose, segmentation  # noqa: E402
from mimstudy.downstream.split import Split  # noqa: E402

N, S = 3, 32


class Held(Split):
    """A split held in memory: ``images`` and ``targets`` as a task's loader would stack them, plus the
    attributes its ``examples`` reads (``labels``, ``keypoints``, ``keypoint_names``)."""

    def __init__(self, images: torch.Tensor, targets: torch.Tensor, **attributes):
        self._memory = (images, targets)
        self.__dict__.update(attributes)

    def __len__(self) -> int:
        return len(self._memory[0])


def stored(data_and_coords) -> xr.Dataset:
    data, coords = data_and_coords
    return xr.Dataset(data, coords=coords)


def task_examples(kind: str) -> xr.Dataset:
    """A run's examples as the task's own ``examples`` function writes them."""
    images = torch.rand(N, 1, S, S)
    if kind == "label":
        return stored(classification.examples(Held(images, torch.tensor([0, 1, 2]), labels=torch.tensor([0, 1, 2])),
                                               np.array([0, 2, 2]), N))
    if kind == "mask":
        masks = torch.zeros(N, S, S, dtype=torch.int64)
        masks[:, 8:20, 8:20] = 3
        return stored(segmentation.examples(Held(images, masks), masks.numpy(), N))
    if kind == "instances":
        targets = torch.full((N, 2, 5 + S * S), -1.0)
        targets[:, 0, :5] = torch.tensor([3.0, 4, 6, 20, 18])  # one garment of class 3 per scene; row 1 pads
        found = np.full((N, 2, len(detection.FIELDS)), np.nan, np.float32)
        found[:, 0] = [5, 6, 20, 18, 0.9, 3]
        found[:, 1] = [0, 0, 9, 9, 0.2, 1]  # below SCORE_SHOWN: not drawn
        return stored(detection.examples(Held(images, targets), found, N))
    if kind == "keypoints":
        keypoints = torch.tensor([[[4.0, 5, 2], [10, 11, 1], [0, 0, 0]]]).repeat(N, 1, 1)  # the third not annotated
        return stored(pose.examples(Held(images, keypoints, keypoints=keypoints, keypoint_names=("a", "b", "c")),
                                    np.full((N, 3, 2), 7.0), N))
    if kind == "depth":
        depths = torch.full((N, 1, S, S), 4.0)
        return stored(depth.examples(Held(images, depths), depths[:, 0].numpy(), N))
    assert kind == "box"  # tracking: the last frame of each test sequence and its last true / tracked box
    boxes = np.tile([4.0, 4, 8, 8], (N, 1))  # as tracking.examples stores them: x, y, w, h
    return xr.Dataset({"example_image": (("example", "y", "x"), images[:, 0].numpy()),
                       "example_box": (("example", "box"), boxes),
                       "example_predicted_box": (("example", "box"), np.tile([6.0, 6, 8, 8], (N, 1)))},
                      coords={"box": ["x", "y", "w", "h"]})


@pytest.fixture
def captured(monkeypatch):
    shown = []
    monkeypatch.setattr(examples, "display", lambda obj: shown.append(obj.data))
    monkeypatch.setattr(examples.plt, "show", lambda: None)
    plt.close("all")
    yield shown
    plt.close("all")


@pytest.mark.parametrize("kind", examples.KINDS)
def test_each_task_kind_draws_its_examples(kind, captured):
    run = task_examples(kind)
    assert examples.example_kind(run) == kind
    examples.show_examples(run, n=2, title="t")
    axes = plt.gcf().axes
    assert len(axes) == 2 * examples.panels(kind)
    assert captured and captured[0].startswith("*") and "first fine-tuning seed." in captured[0]
    first = axes[0]
    if kind == "instances":
        assert len(first.patches) == 2  # the true box and the one detection scored >= SCORE_SHOWN
    elif kind == "box":
        assert len(first.patches) == 2
    elif kind == "keypoints":
        truth, predicted = first.lines
        assert len(truth.get_xdata()) == 2 and len(predicted.get_xdata()) == 3  # unannotated joint left out
    elif kind == "label":
        assert first.get_title() == "0 → 0" and axes[1].get_title() == "1 → 2"
        assert axes[1].title.get_color() == "red" and first.title.get_color() == "black"
    else:  # three panels: input, target, prediction, on fixed scales
        assert [ax.images[0].get_clim() for ax in axes[:3]][0] == (0, 1)
        top = examples.DEPTH_MAX if kind == "depth" else examples.MASK_COLOURS - 1
        assert axes[1].images[0].get_clim() == (0, top) == axes[2].images[0].get_clim()


def test_runs_side_by_side_draw_each_models_own_kind(captured):
    """Concatenated runs of several tasks hold every pair (NaN where not theirs): the pair with values decides."""
    runs = xr.concat([task_examples("keypoints"), task_examples("mask")], dim="model", join="outer")
    runs = runs.assign_coords(model=["pose_run", "seg_run"])
    assert examples.example_kind(runs.sel(model="seg_run")) == "mask"
    examples.show_examples(runs, ["seg_run", None], n=2)
    assert len(plt.gcf().axes) == 2 * 3 and plt.gcf().axes[0].get_ylabel() == "seg_run"


def test_nothing_to_draw_and_bad_examples(captured):
    examples.show_examples(xr.Dataset({"top1": ("seed", [0.5])}))
    assert not captured and not plt.get_fignums()
    with pytest.raises(ValueError, match="example_mystery"):
        examples.example_kind(xr.Dataset({"example_image": (("example", "y", "x"), np.zeros((1, 2, 2))),
                                           "example_mystery": (("example",), [1.0])}))
