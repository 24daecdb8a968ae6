"""A downstream run's test examples drawn, for every task: the input with its target and the prediction.

Each task stores ``example_image`` and a pair ``example_<target>`` / ``example_predicted_<target>``
(:mod:`mimstudy.downstream.tasks`); the kind of target decides the drawing:

* ``keypoints`` (pose): true joints (green dots, visible or covered) and predicted ones (red crosses);
* ``box`` (tracking, x y w h) and ``instances`` (detection, label and x0 y0 x1 y1; label -1 pads):
  true boxes green, predicted red (detections from score :data:`SCORE_SHOWN` up);
* ``label`` (classification): the true and predicted class index over the input, red when wrong;
* ``depth`` and ``mask`` (segmentation): three panels, input / target / prediction, on fixed scales
  (0 to :data:`DEPTH_MAX` metres; one colour per class).

One function draws the examples of one run (a downstream notebook) or of several (the book's pages).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
from IPython.display import Markdown, display

KINDS = ("keypoints", "depth", "box", "instances", "label", "mask")
SCORE_SHOWN = 0.5  # detections drawn from this score up
DEPTH_MAX = 10.0  # metres: the depth tasks' scenes lie within it
MASK_COLOURS = 20  # tab20: one colour per class index below it
CAPTIONS = {
    "keypoints": "input crops, annotated joints (green dots: target, visible or covered) and predicted joints (red crosses)",
    "depth": f"input, true depth and predicted depth (0–{DEPTH_MAX:.0f} m, dark is near), three panels per scene",
    "box": "the last frame of each sequence, the true box (green) and the tracked box (red)",
    "instances": f"test scenes, true boxes green, predicted boxes (score ≥ {SCORE_SHOWN}) red",
    "label": "test images with their true → predicted class index (red when wrong)",
    "mask": "image, true classes and predicted classes (one colour per class, background dark blue), three panels per scene",
}


def example_kind(run: xr.Dataset) -> str:
    """The kind of target a run's examples hold (:data:`KINDS`): the pair with values (runs of several tasks
    side by side hold every task's pair, NaN where not theirs); a ValueError names what it found instead."""
    for kind in KINDS:
        pair = (f"example_{kind}", f"example_predicted_{kind}")
        if all(v in run for v in pair) and np.isfinite(np.asarray(run[pair[0]], dtype=float)).any():
            return kind
    found = sorted(str(v) for v in run.data_vars if str(v).startswith("example_"))
    raise ValueError(f"no drawable example pair (example_<kind> and example_predicted_<kind>, kind one of {KINDS}) "
                     f"among {found}")


def panels(kind: str) -> int:
    """Axes one example takes."""
    return 3 if kind in ("depth", "mask") else 1


def _rectangles(ax, boxes: np.ndarray, colour: str) -> None:
    for x0, y0, x1, y1 in boxes:
        ax.add_patch(plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, color=colour, lw=1))


def draw_example(run: xr.Dataset, i: int, axes, kind: str | None = None) -> None:
    """Example ``i`` of one run on ``axes`` (:func:`panels` of them), pixel edges at integer coordinates."""
    kind = kind or example_kind(run)
    image = np.asarray(run.example_image[i])
    extent = (0, image.shape[1], image.shape[0], 0)
    truth, predicted = np.asarray(run[f"example_{kind}"][i]), np.asarray(run[f"example_predicted_{kind}"][i])
    if panels(kind) == 3:
        scale = ("viridis", DEPTH_MAX) if kind == "depth" else ("tab20", MASK_COLOURS - 1)
        for ax, picture, (cmap, vmax) in zip(axes, (image, truth, predicted), (("gray", 1.0), scale, scale)):
            ax.imshow(picture, cmap=cmap, vmin=0, vmax=vmax, extent=extent, interpolation="nearest")
        return
    ax = axes[0]
    ax.imshow(image, cmap="gray", vmin=0, vmax=1, extent=extent)
    if kind == "keypoints":
        shown = truth[:, 2] > 0
        ax.plot(truth[shown, 0], truth[shown, 1], "o", ms=3, color="lime")
        ax.plot(predicted[:, 0], predicted[:, 1], "x", ms=4, color="red")
    elif kind == "box":
        for box, colour in ((truth, "lime"), (predicted, "red")):
            x, y, w, h = box
            _rectangles(ax, np.array([[x, y, x + w, y + h]]), colour)
    elif kind == "instances":
        _rectangles(ax, truth[truth[:, 0] >= 0, 1:5], "lime")
        _rectangles(ax, predicted[np.nan_to_num(predicted[:, 4]) >= SCORE_SHOWN, :4], "red")
    else:  # label
        ax.set_title(f"{int(truth)} → {int(predicted)}", fontsize=7, color="black" if truth == predicted else "red")


def show_examples(runs: xr.Dataset, models: list[str] | None = None, n: int = 4, title: str = "") -> None:
    """The first ``n`` test examples of each run, one row per run: ``runs`` with a ``model`` dimension and
    the ``models`` to draw (those without finite examples are left out), or one run's dataset."""
    rows = [runs] if "model" not in runs.dims else [
        runs.sel(model=m) for m in (models or []) if m and "example_image" in runs
        and np.isfinite(runs["example_image"].sel(model=m)).all()]
    rows = [r for r in rows if r.sizes.get("example", 0)]
    if not rows:
        return
    kind = example_kind(rows[0])
    n = min(n, rows[0].sizes["example"])
    per = panels(kind)
    fig, axes = plt.subplots(len(rows), per * n, figsize=(1.5 * per * n, 1.8 * len(rows)), squeeze=False)
    for row_axes, run in zip(axes, rows):
        for i in range(n):
            draw_example(run, i, row_axes[per * i: per * (i + 1)], kind)
        for ax in row_axes:
            ax.set_xticks([])
            ax.set_yticks([])
        if "model" in run.coords:
            row_axes[0].set_ylabel(str(run["model"].item()), fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    plt.show()
    display(Markdown(f"*{CAPTIONS[kind][0].upper() + CAPTIONS[kind][1:]}; first fine-tuning seed"
                     + (", one row per model.*" if len(rows) > 1 else ".*")))
