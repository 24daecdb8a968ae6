"""Section 4.3 / Appendix D verdicts on hand-made downstream results: detection AP, Figure 7's final
held-out losses and segmentation mIoU, with the learnability gate and seeds counted."""

import json

import numpy as np
import pytest
import xarray as xr

from mimstudy.book.claims.combined import final_losses
from mimstudy.book.claims.evidence import PresetResults
from mimstudy.book.claims.registry import claim

EPOCHS = 3


def runs(rows: list[tuple], trivial: float = 0.05) -> xr.Dataset:
    """``rows``: ``(task, objective, init_from, metric value per seed, final box loss, final cls loss)``;
    held-out losses fall linearly to their final values over :data:`EPOCHS` epochs."""
    n, seeds = len(rows), 3
    data = {k: np.full((n, seeds), np.nan) for k in ("box_ap", "miou")}
    losses = {k: np.full((n, seeds, EPOCHS), np.nan) for k in ("heldout_loss_box_reg", "heldout_loss_classifier",
                                                              "train_loss_box_reg", "train_loss_classifier")}
    for i, (task, _, _, value, box, cls) in enumerate(rows):
        data["box_ap" if task == "detection" else "miou"][i] = value + np.array([0.0, 0.005, -0.005])
        if task == "detection":
            for key, final in (("loss_box_reg", box), ("loss_classifier", cls)):
                curve = np.linspace(2 * final, final, EPOCHS)
                losses[f"heldout_{key}"][i] = curve + np.array([[0.0], [0.002], [-0.002]])
                losses[f"train_{key}"][i] = curve
    provenance = [json.dumps({"parameters": json.dumps({"init_from": r[2]})}) for r in rows]
    return xr.Dataset(
        {**{k: (("model", "seed"), v) for k, v in data.items()},
         **{k: (("model", "seed", "epoch"), v) for k, v in losses.items()},
         "trivial_box_ap": ("model", np.full(n, trivial)), "trivial_miou": ("model", np.full(n, trivial))},
        coords={"model": [f"{r[0]}-{r[1]}-{r[2] or 'rand'}" for r in rows], "seed": np.arange(seeds),
                "epoch": np.arange(1, EPOCHS + 1), "task": ("model", [r[0] for r in rows]),
                "arch": ("model", ["vit_micro_32_sincos"] * n), "objective": ("model", [r[1] for r in rows]),
                "blocks": ("model", [4] * n), "total_blocks": ("model", [4] * n), "block_order": ("model", [""] * n),
                "protocol": ("model", ["finetune"] * n), "provenance": ("model", provenance)})


def rows_for(task: str, sup: tuple, mim: tuple, pretraining_seeds: int = 3) -> list[tuple]:
    """``sup`` / ``mim``: (metric, final box loss, final cls loss); random init far behind."""
    rows = []
    for s in range(pretraining_seeds):
        rows.append((task, "supervised", f"vit_sup-s{s}", sup[0] + 0.001 * s, sup[1], sup[2]))
        rows.append((task, "simmim", f"vit_simmim-s{s}", mim[0] + 0.001 * s, mim[1], mim[2]))
    rows.append((task, "random", "", 0.20, 0.60, 0.60))
    return rows


def preset(ds) -> PresetResults:
    return PresetResults("combined", stale={}, probes=None, evaluate=None, pretrain=None, downstream=ds)


def test_final_losses_read_the_last_epoch_each_seed_reached():
    ds = runs(rows_for("detection", (0.4, 0.30, 0.20), (0.5, 0.20, 0.25)))
    np.testing.assert_allclose(final_losses(ds, "detection-simmim-vit_simmim-s0", "loss_box_reg"), [0.20, 0.202, 0.198])


@pytest.mark.parametrize("key, task, sup, mim, expected", [
    ("detection", "detection", (0.40, 0.3, 0.2), (0.50, 0.2, 0.25), "supported"),
    ("detection", "detection", (0.50, 0.3, 0.2), (0.40, 0.2, 0.25), "not supported"),
    ("detection-losses", "detection", (0.40, 0.30, 0.20), (0.50, 0.20, 0.25), "supported"),
    ("detection-losses", "detection", (0.40, 0.20, 0.20), (0.50, 0.20, 0.25), "partly supported"),  # same L_bbox
    ("detection-losses", "detection", (0.40, 0.20, 0.25), (0.50, 0.20, 0.25), "not supported"),  # same losses
    ("segmentation", "segmentation", (0.50, 0, 0), (0.40, 0, 0), "supported"),
    ("segmentation", "segmentation", (0.40, 0, 0), (0.50, 0, 0), "not supported"),
])
def test_each_claim_reads_its_direction(key, task, sup, mim, expected):
    verdict = claim(key).judge(preset(runs(rows_for(task, sup, mim))))
    assert verdict.verdict == expected, verdict.summary()


def test_one_pretraining_seed_or_an_unlearned_task_leaves_them_undetermined():
    one = claim("detection").judge(preset(runs(rows_for("detection", (0.4, 0.3, 0.2), (0.5, 0.2, 0.25), 1))))
    assert one.verdict == "undetermined" and "seeds" in [b.tag for b in one.blockers]
    unlearned = claim("detection").judge(preset(runs(rows_for("detection", (0.4, 0.3, 0.2), (0.5, 0.2, 0.25)),
                                                     trivial=0.5)))
    assert unlearned.verdict == "undetermined" and "gate" in [b.tag for b in unlearned.blockers]


def test_without_runs_or_curves_they_are_not_run():
    for key in ("detection", "detection-losses", "segmentation"):
        assert claim(key).judge(preset(None)).verdict == "not run"
    no_curves = runs(rows_for("detection", (0.4, 0.3, 0.2), (0.5, 0.2, 0.25))).drop_vars("heldout_loss_box_reg")
    assert claim("detection-losses").judge(preset(no_curves)).verdict == "not run"


def test_the_page_draws_figure7_and_example_scenes(monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    from mimstudy.book.pages import combined_tasks as combined_page

    shown = []
    from mimstudy.book import examples
    from mimstudy.book.pages import geometric_tasks as geometric_page

    for page in (combined_page, geometric_page, examples):  # show_figure lives with the 4.2 page
        monkeypatch.setattr(page, "display", lambda obj: shown.append(getattr(obj, "data", obj)))
    monkeypatch.setattr(combined_page.plt, "show", lambda: shown.append("figure"))
    ds = runs(rows_for("detection", (0.4, 0.3, 0.2), (0.5, 0.2, 0.25)))
    n = ds.sizes["model"]
    truth = np.full((n, 2, 3, 5), -1.0)
    truth[:, :, 0] = [3, 4, 6, 20, 18]  # one garment of class 3 per scene (label, box)
    found = np.full((n, 2, 2, 6), np.nan)
    found[:, :, 0] = [5, 6, 20, 18, 0.9, 3]  # box, score, label
    ds = ds.assign(example_image=(("model", "example", "y", "x"), np.zeros((n, 2, 32, 32))),
                   example_instances=(("model", "example", "instance", "instance_field"), truth),
                   example_predicted_instances=(("model", "example", "detection", "detection_field"), found))
    combined_page.show_figure7(ds, "vit")
    examples.show_examples(ds, list(ds["model"].values[:2]))
    assert shown.count("figure") == 2 and "Figure 7's analog" in shown[1] and "true boxes green" in shown[3]
    axes = combined_page.plt.gcf().axes
    assert len(axes[0].patches) == 2  # the true box and the one confident prediction
