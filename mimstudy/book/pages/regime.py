"""The regime trials (:mod:`mimstudy.study.regime`) as a table and a figure for the Models part."""

from __future__ import annotations

import json

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

from mimstudy.probes.locality import most_local_head


def trial_parameters(ds: xr.Dataset, trial: str) -> dict:
    """The pre-training parameters a trial ran with (from its provenance)."""
    attrs = json.loads(str(ds["provenance"].sel(trial=trial).item()))
    params = attrs.get("parameters", "{}")
    return json.loads(params) if isinstance(params, str) else dict(params)


def _describe(params: dict) -> list[str]:
    arch = params["arch"]
    position = "sin-cos" if arch.endswith("_sincos") else "learned"
    data = {"fashion_mnist": "Fashion-MNIST", "fashion_mnist_photos": "garments on photos"}.get(params["dataset"],
                                                                                              params["dataset"])
    steps = int(params.get("steps", 0))
    objective = params["objective"] if steps else "random init"
    return [objective, position, data, f"{params['lr']:g}" if steps else "–", str(steps)]


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def regime_table(ds: xr.Dataset) -> str:
    """Markdown: per trial, what it trained and what it reached (locality, features, masked pixels)."""
    lam = most_local_head(ds["locality"])  # (trial, layer)
    head = ["objective", "position embedding", "data", "lr", "steps", "λ most local head, by layer",
            "max λ", "k-NN (patch mean)", "linear (patch mean)", "linear (head)", "masked-pixel l1: model / nearest visible / visible mean"]
    rows = ["| trial | " + " | ".join(head) + " |", "|---" * (len(head) + 1) + "|"]
    for trial in ds["trial"].values:
        one = ds.sel(trial=trial)
        params = trial_parameters(ds, trial)
        by_layer = " ".join(f"{v:.2f}" for v in lam.sel(trial=trial).values)
        l1 = "–"
        if "model_l1" in one and np.isfinite(one["model_l1"].item()):
            l1 = " / ".join(f"{one[k].item():.3f}" for k in ("model_l1", "nearest_visible_l1", "visible_mean_l1"))
        cells = [f"`{trial}`", *_describe(params), by_layer, f"{float(lam.sel(trial=trial).max()):.2f}",
                 _pct(one["knn_patch_mean"].item()), _pct(one["linear_patch_mean"].item()),
                 _pct(one["linear_head"].item()), l1]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def trial_provenance(ds: xr.Dataset) -> str:
    """One line: the commits, hardware, threads and dates the trials were made with."""
    records = [json.loads(str(ds["provenance"].sel(trial=t).item())) for t in ds["trial"].values]
    def values(key, length=None):
        return sorted({str(r.get(key, "?"))[:length] for r in records})
    commits = sorted({str(r.get("git_commit", "?"))[:10] + ("+dirty" if str(r.get("git_dirty")) == "1" else "")
                      for r in records})
    line = (f"*Provenance of the trials:* commit {', '.join(commits)}; {'; '.join(values('hardware'))}; "
            f"{', '.join(values('threads'))} torch thread(s); made {values('created', 16)[0]} to {values('created', 16)[-1]} UTC "
            "(on a machine shared with other jobs: the times in the table are not throughput measurements).")
    stale = stale_trials(ds)
    if stale:
        line += "\n\n**Stale results:** " + "; ".join(f"`{t}`: {why}" for t, why in stale.items()) + \
            " (re-run with `python -m mimstudy.study.regime --trial <name> --force`)."
    return line


def stale_trials(ds: xr.Dataset) -> dict[str, str]:
    """``{trial: why}`` for trials on the photo composites drawn by another generator version than today's."""
    from mimstudy.data.photo_composites import GENERATOR_VERSION

    stale = {}
    for trial in ds["trial"].values:
        record = json.loads(str(ds["provenance"].sel(trial=trial).item()))
        if trial_parameters(ds, trial).get("dataset") != "fashion_mnist_photos":
            continue
        made = record.get("data_generator")
        if made is None or int(made) != GENERATOR_VERSION:
            stale[str(trial)] = (f"made with photo composites generator version {made if made is not None else 'unrecorded (1)'}, "
                                 f"today's is {GENERATOR_VERSION}")
    return stale


def plot_regime_locality(ds: xr.Dataset, ax=None):
    """λ of the most local head per layer for every trial, on the absolute axis [-1, 1] (0 = uniform
    attention, 1 = attention on the query's own patch); random-init trials dashed."""
    ax = ax or plt.gca()
    lam = most_local_head(ds["locality"])
    for i, trial in enumerate(ds["trial"].values):
        steps = int(trial_parameters(ds, trial).get("steps", 0))
        ax.plot(lam["layer"], lam.sel(trial=trial), marker="o", ms=3, ls="-" if steps else "--",
                color=f"C{i % 10}", label=str(trial))
    ax.axhline(0.0, color="grey", lw=1, ls=":")
    ax.set_ylim(-1.0, 1.0)
    ax.set_xlabel("layer")
    ax.set_ylabel("λ = 1 − d / d_uniform of the most local head")
    ax.legend(fontsize=7, loc="lower left", ncol=2)
    ax.grid(alpha=0.3)
    return ax


def _cell(one: xr.Dataset, names: tuple[str, ...], fmt=_pct) -> str:
    values = [float(one[n]) if n in one else float("nan") for n in names]
    return " / ".join("–" if not np.isfinite(v) else fmt(v) for v in values)


def pilot_tables(ds: xr.Dataset) -> str:
    """Markdown: the pilot of a preset (:func:`mimstudy.study.regime.pilot`) as two tables, what each
    model learned (budget, validation curve, frozen features against random init and raw pixels) and
    what its attention and reconstructions look like (λ by layer beside its random-init control,
    SimMIM's masked-pixel l1 beside the hand-made predictors)."""
    learn = ["| model | objective, arch | steps (images seen) | training s (img/s) | val top-1, epoch 1 → last "
             "(last-epoch change) | val loss, last (last-epoch change) | linear, head: trained / random / pixels "
             "| linear, patch mean: trained / random / pixels | k-NN, patch mean: trained / random / pixels |",
             "|---" * 9 + "|"]
    look = ["| model | λ most local head, by layer | random-init control | masked-pixel l1: model / nearest visible "
            "/ visible mean / position mean |", "|---" * 4 + "|"]
    signed = lambda v: f"{v:+.3f}"  # noqa: E731
    for model in ds["model"].values:
        one = ds.sel(model=model)
        curve = "–"
        if "val_accuracy_first" in one and np.isfinite(float(one["val_accuracy_first"])):
            curve = (f"{_pct(float(one['val_accuracy_first']))} → {_pct(float(one['val_accuracy_last']))} "
                     f"({100 * float(one['val_accuracy_last_change']):+.1f} points)")
        loss = f"{float(one['val_loss_last']):.3f} ({signed(float(one['val_loss_last_change']))})" \
            if "val_loss_last" in one and np.isfinite(float(one["val_loss_last"])) else "–"
        learn.append(" | ".join([
            f"| `{model}`", f"{one['objective'].item()}, `{one['arch'].item()}`",
            f"{int(one['steps'])} ({int(one['images_seen']):,})",
            f"{float(one['train_seconds']):.0f} ({float(one['images_per_s']):.0f})", curve, loss,
            _cell(one, ("linear_head_pretrained", "linear_head_random_init", "linear_head_raw_pixels")),
            _cell(one, ("linear_patch_mean_pretrained", "linear_patch_mean_random_init", "linear_patch_mean_raw_pixels")),
            _cell(one, ("knn_patch_mean_pretrained", "knn_patch_mean_random_init", "knn_patch_mean_raw_pixels")),
        ]) + " |")
        lam = " ".join(f"{v:.2f}" for v in one["lambda_max"].values if np.isfinite(v)) if "lambda_max" in one else "–"
        ctl = " ".join(f"{v:.2f}" for v in one["control_lambda_max"].values if np.isfinite(v)) \
            if "control_lambda_max" in one else "–"
        l1 = "–"
        if "nearest_visible_l1" in one and np.isfinite(float(one["nearest_visible_l1"])):
            l1 = _cell(one, ("val_loss_last", "nearest_visible_l1", "visible_mean_l1", "position_mean_l1"),
                       lambda v: f"{v:.3f}")
        look.append(f"| `{model}` | {lam or '–'} | {ctl or '–'} | {l1} |")
    return "\n".join(learn) + "\n\n" + "\n".join(look)


def rationale_markdown(ds: xr.Dataset) -> str:
    """The data rationale's paragraph from its stored measurements (:mod:`mimstudy.study.data_rationale`)."""
    from mimstudy.data.photo_composites import MIN_CROP_STD

    params = json.loads(ds.attrs["parameters"])
    fm, ph = ds.sel(dataset="fashion_mnist"), ds.sel(dataset="fashion_mnist_photos")

    def pair(values) -> str:
        return f"{float(values.sel(split='train')):.2f} (train) / {float(values.sel(split='test')):.2f} (test)"

    gain = (ds.visible_mean_l1 - ds.nearest_visible_l1) / ds.visible_mean_l1
    flat = ds.flat_crop_fraction
    test_flat = flat.where(flat.photo_split == "test", drop=True)
    flattest = test_flat.sortby(test_flat, ascending=False)
    worst = flattest.where(flattest >= 0.25, drop=True)
    train_max = float(flat.where(flat.photo_split == "train", drop=True).max())
    return (
        f"**Why the photo composites, in numbers** ({params['images']:,} training and {params['images']:,} test images "
        f"of each, standardised; SimMIM's masks: {100 * params['mask_ratio']:.0f} % of {params['mask_patch_size']}-px "
        f"patches; stored in `results/regime/rationale/data.nc` by `python -m mimstudy.study.regime --rationale`). "
        f"The composites do *not* make neighbouring pixels more alike: the lag-1 correlation of horizontal neighbours "
        f"is {pair(fm.lag1_correlation)} on Fashion-MNIST and {pair(ph.lag1_correlation)} on the composites, and "
        f"copying the nearest visible pixel beats the mean of the visible pixels by "
        f"{100 * float(gain.sel(dataset='fashion_mnist').mean()):.0f} % on Fashion-MNIST but by only "
        f"{100 * float(gain.sel(dataset='fashion_mnist_photos').min()):.0f}–"
        f"{100 * float(gain.sel(dataset='fashion_mnist_photos').max()):.0f} % on the composites. What the composites "
        f"remove is the **position prior**: on Fashion-MNIST the mean of {params['prior_images']:,} training images, "
        f"read at the masked pixel's position, predicts it with l1 {pair(fm.position_mean_l1)}, almost as well as the "
        f"nearest visible pixel ({pair(fm.nearest_visible_l1)}), because every garment sits centred on black; on the "
        f"composites the same prior gives {pair(ph.position_mean_l1)}, no better than the visible mean "
        f"({pair(ph.visible_mean_l1)}). A model can no longer fill masks from where a pixel is; it has to read the "
        f"pixels around it. The test photos are often flat: of {params['crops']:,} random raw crops, "
        + ", ".join(f"{100 * float(v):.0f} % of `{p}`'s" for p, v in zip(worst.photo.values, worst.values))
        + f" have grey std < {params['flat_std']:g}, against at most {100 * train_max:.0f} % of any training "
        f"photo's; standardising such a crop amplifies its noise into texture no training image has, so since "
        f"generator version 2 a background crop needs std ≥ {MIN_CROP_STD:g} (median image std after "
        f"standardisation: {pair(ph.median_image_std)})."
    )


def stored_rationale_markdown() -> str:
    """:func:`rationale_markdown` of the stored measurements, or what to run when there are none."""
    from mimstudy.book.stored import results_root
    from mimstudy.results import load_dataset

    path = results_root() / "regime" / "rationale" / "data.nc"
    if not path.is_file():
        return ("**Why the photo composites**: not measured in these results "
                "(`python -m mimstudy.study.regime --rationale` stores the numbers).")
    return rationale_markdown(load_dataset(path))
