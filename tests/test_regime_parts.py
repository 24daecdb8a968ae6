"""The pieces of the training-regime study: sin-cos position embeddings, garments on photos,
masked-pixel baselines, locality, patch-mean features and probes through pre-training."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import xarray as xr

from mimstudy.data import memory_splits
from mimstudy.data.photo_composites import (MIN_CROP_STD, TEST_PHOTOS, TRAIN_PHOTOS, background_crop, composites,
                                           fashion_mnist_on_photos)
from mimstudy.models.backbones import ModelConfigError, create_backbone, fix_sincos_pos_embed
from mimstudy.probes.evaluation import extract_features, pooled_features
from mimstudy.probes.dataset import uniform_reference
from mimstudy.probes.locality import locality, most_local_head
from mimstudy.probes.reconstruction import baseline_l1, masked_l1, nearest_visible, pixel_mask, visible_mean
from mimstudy.probes.trajectory import probe_trajectory

from .conftest import requires_real_data


def test_sincos_backbone_is_fixed_and_survives_a_state_dict_round_trip():
    vit = create_backbone("vit_micro_32_sincos")
    assert not vit.pos_embed.requires_grad
    assert torch.all(vit.pos_embed[0, 0] == 0)  # the CLS token gets no position
    table = vit.pos_embed[0, 1:]  # [64, 64]: sin of both coordinates x 16 frequencies, then their cos
    assert torch.allclose(table[:, :32].pow(2) + table[:, 32:].pow(2), torch.ones(64, 32), atol=1e-6)
    # neighbouring patches have more similar embeddings than distant ones (what makes locality cheap)
    sim = table @ table.T
    assert sim[0, 1] > sim[0, 7] and sim[0, 8] > sim[0, 63]
    other = create_backbone("vit_micro_32_sincos")
    other.load_state_dict(vit.state_dict())
    assert torch.equal(other.pos_embed, vit.pos_embed) and not other.pos_embed.requires_grad
    learned = create_backbone("vit_micro_32")
    assert learned.pos_embed.requires_grad


def test_sincos_needs_a_position_embedding():
    swin = create_backbone("swinv2_micro_32")
    with pytest.raises(ModelConfigError, match="sin-cos"):
        fix_sincos_pos_embed(swin)


@requires_real_data
def test_photo_composites_are_deterministic_per_image_and_split_photos():
    a, labels_a = composites("train", np.array([5, 9, 11]))
    b, labels_b = composites("train", np.array([11, 5]))
    assert np.array_equal(a[0], b[1]) and np.array_equal(a[2], b[0]) and labels_a[0] == labels_b[1]
    assert a.dtype == np.float32 and a.shape == (3, 32, 32) and 0 <= a.min() and a.max() <= 1
    assert not set(TRAIN_PHOTOS) & set(TEST_PHOTOS)
    # the same garments and labels as plain Fashion-MNIST, for the same arguments
    plain, photos = memory_splits("fashion_mnist", 64, 16, 32, seed=3), fashion_mnist_on_photos(64, 16, 32, seed=3)
    for split in ("train", "val", "test"):
        assert torch.equal(getattr(plain, split).tensors[1], getattr(photos, split).tensors[1])
    x = photos.train.tensors[0]
    assert x.shape == (64, 1, 32, 32)
    # natural backgrounds: the garment-free border varies (plain Fashion-MNIST's border is constant)
    border = x[:, 0, 0, :]
    assert border.std(1).mean() > 0.05 and plain.train.tensors[0][:, 0, 0, :].std(1).max() == 0


def test_background_crops_are_textured_in_both_splits():
    # the test photos are mostly flat (moon, cell, retina): without the floor ~half their crops
    # have std < 0.02; with it no crop of either split is flatter than MIN_CROP_STD
    for photos in (TRAIN_PHOTOS, TEST_PHOTOS):
        stds = [background_crop(np.random.default_rng([7, i]), photos).std() for i in range(300)]
        assert min(stds) >= MIN_CROP_STD, photos
    assert background_crop(np.random.default_rng(1), ("moon",)).shape == (32, 32)


def test_memory_splits_rejects_unknown_datasets():
    with pytest.raises(ValueError, match="fashion_mnist_photos"):
        memory_splits("imagenet")


def test_nearest_visible_copies_the_closest_visible_pixel():
    images = torch.arange(16.0).reshape(1, 1, 4, 4)
    masked = torch.zeros(1, 4, 4, dtype=torch.bool)
    masked[0, :, 2:] = True  # right half masked: each masked pixel copies column 1 of its row
    out = nearest_visible(images, masked)
    assert torch.equal(out[0, 0, :, 2], images[0, 0, :, 1]) and torch.equal(out[0, 0, :, 3], images[0, 0, :, 1])
    assert torch.equal(out[~masked.unsqueeze(1)], images[~masked.unsqueeze(1)])
    mean = visible_mean(images, masked)
    assert torch.allclose(mean[0, 0, 0, 3], images[0, 0, :, :2].mean())
    with pytest.raises(ValueError, match="no visible pixel"):
        nearest_visible(images, torch.ones(1, 4, 4, dtype=torch.bool))


def test_baselines_rank_local_and_global_guesses_on_a_smooth_image():
    # a smooth ramp: copying a neighbour is nearly exact, the global mean is not
    ramp = torch.linspace(0, 1, 32).repeat(32, 1).reshape(1, 1, 32, 32)
    mask = torch.zeros(1, 8, 8, dtype=torch.long)
    mask[0, 2:4, 2:4] = 1
    scores = baseline_l1(ramp, mask, patch_size=4)
    assert scores["nearest_visible_l1"] < 0.1 < scores["visible_mean_l1"]
    masked = pixel_mask(mask, 4)
    assert masked.sum() == 16 * 4 and masked_l1(ramp, ramp, masked) == 0


def test_locality_is_zero_for_uniform_and_one_for_self_attention():
    d_uniform = float(uniform_reference(create_backbone("vit_micro_32"))["uniform_distance"][0])
    assert d_uniform == pytest.approx(16.55, abs=0.01)  # the ~16.5 px of uniform attention on the 8x8 grid of 4 px
    distance = xr.DataArray([[d_uniform, 0.0], [2 * d_uniform, d_uniform / 2]], dims=("layer", "head"))
    lam = locality(distance, d_uniform)
    assert lam.values.tolist() == [[0.0, 1.0], [-1.0, 0.5]]
    assert most_local_head(lam).values.tolist() == [1.0, 0.5]
    with pytest.raises(ValueError):
        locality(distance, 0.0)


def test_patch_mean_features_ignore_the_cls_token():
    vit = create_backbone("vit_micro_32", num_classes=0).eval()
    images = torch.randn(3, 1, 32, 32)
    with torch.no_grad():
        tokens = vit.forward_features(images)
        assert torch.allclose(pooled_features(vit, images, "patch_mean"), tokens[:, 1:].mean(1))
        assert torch.allclose(pooled_features(vit, images, "head"), tokens[:, 0])
    swin = create_backbone("swinv2_micro_32", num_classes=0).eval()
    assert torch.allclose(extract_features(swin, images, pool="patch_mean"), extract_features(swin, images, pool="head"),
                          atol=1e-6)  # a Swin's head already averages its tokens
    with pytest.raises(ValueError, match="pool"):
        pooled_features(vit, images, "max")


def test_trajectory_of_a_swin_uses_each_blocks_own_baseline():
    torch.manual_seed(0)
    ds = probe_trajectory([(0, create_backbone("swinv2_micro_32").eval())], torch.randn(4, 1, 32, 32), batch_size=4,
                          probes=("distance", "entropy"))
    assert float(abs(ds["locality"]).max()) < 0.2  # NaN-padded heads skipped
    assert 0 < float(ds["normalized_entropy"].min()) and float(ds["normalized_entropy"].max()) <= 1 + 1e-6
    assert ds["normalized_entropy"].attrs["units"] == "fraction of the uniform entropy"


def test_trajectory_stacks_epochs_and_is_scale_free():
    torch.manual_seed(0)
    models = [(0, create_backbone("vit_micro_32").eval()), (3, create_backbone("vit_micro_32").eval())]
    images = torch.randn(8, 1, 32, 32)
    ds = probe_trajectory(models, images, batch_size=8)
    assert ds["epoch"].values.tolist() == [0, 3]
    assert ds["locality"].dims == ("epoch", "layer", "head")
    assert float(abs(ds["locality"]).max()) < 0.2  # random init: close to uniform attention
    assert (ds["normalized_entropy"] <= 1).all() and (ds["normalized_entropy"] > 0.9).all()
    with pytest.raises(ValueError, match="keep_epochs"):
        probe_trajectory([], images)


def _trial(name: str, steps: int, lam: list[list[float]], dataset: str = "fashion_mnist_photos", record: dict | None = None,
           **extra) -> xr.Dataset:
    import json

    params = {"arch": "vit_mini_32_sincos", "dataset": dataset, "objective": "simmim", "lr": 1e-3, "steps": steps}
    scalars = {"knn_patch_mean": 0.5, "linear_patch_mean": 0.6, "linear_head": 0.4, **extra}
    ds = xr.Dataset({"locality": (("layer", "head"), np.array(lam))} | {k: float(v) for k, v in scalars.items()},
                    coords={"layer": [1, 2], "head": [0, 1]})
    return ds.assign_coords(trial=name, provenance=json.dumps({"parameters": json.dumps(params), **(record or {})}))


def test_trials_on_composites_of_another_generator_version_are_marked_stale():
    from mimstudy.book.pages.regime import stale_trials, trial_provenance
    from mimstudy.data.photo_composites import GENERATOR_VERSION

    lam = [[0.1, 0.2], [0.1, 0.2]]
    trials = xr.concat([_trial("old", 10, lam), _trial("older", 10, lam, record={"data_generator": GENERATOR_VERSION - 1}),
                        _trial("now", 10, lam, record={"data_generator": GENERATOR_VERSION}),
                        _trial("fmnist", 10, lam, dataset="fashion_mnist")], dim="trial", coords="all")
    stale = stale_trials(trials)
    assert sorted(stale) == ["old", "older"] and "unrecorded" in stale["old"]
    assert "**Stale results:** `old`" in trial_provenance(trials.assign_coords(
        provenance=("trial", [json_record(p) for p in trials["provenance"].values])))


def json_record(provenance: str) -> str:
    """A trial's provenance with the fields trial_provenance reads."""
    import json

    return json.dumps({**json.loads(provenance), "git_commit": "abc", "hardware": "cpu", "threads": 1,
                       "created": "2026-12-06T00:00"})


def test_regime_table_reports_the_most_local_head_and_the_baselines():
    from mimstudy.book.pages.regime import plot_regime_locality, regime_table

    trials = xr.concat([_trial("a", 500, [[0.1, 0.6], [0.2, -0.1]], model_l1=0.2, nearest_visible_l1=0.3,
                               visible_mean_l1=0.5),
                        _trial("init", 0, [[0.0, 0.01], [0.0, 0.0]])], dim="trial", coords="all")
    rows = regime_table(trials).splitlines()
    assert rows[2].startswith("| `a` | simmim | sin-cos | garments on photos | 0.001 | 500 | 0.60 0.20 | 0.60 |")
    assert rows[2].endswith("| 0.200 / 0.300 / 0.500 |")
    assert rows[3].startswith("| `init` | random init | sin-cos | garments on photos | – | 0 |") and rows[3].endswith("| – |")
    import matplotlib
    matplotlib.use("Agg")
    ax = plot_regime_locality(trials)
    assert ax.get_ylim() == (-1.0, 1.0)


def _store(results, notebook, run, ds, parameters, seed=0):
    from mimstudy.results import save_dataset

    return save_dataset(ds.assign_coords(model=run), results / "pilot" / notebook / f"{run}.nc", parameters, "pilot", seed)


@pytest.mark.slow
@requires_real_data
def test_pilot_summarises_one_seed_of_a_preset(tmp_path):
    from mimstudy.probes import probe_model
    from mimstudy.study.regime import pilot

    torch.manual_seed(0)
    images = torch.randn(4, 1, 32, 32)
    params = dict(epochs=2, train_size=256, batch_size=128, arch="vit_micro_32_sincos", dataset="fashion_mnist_photos",
                  val_size=32, seed=0, mask_ratio=0.6, mask_patch_size=8, img_size=32)

    def curves(objective, accuracy):
        data = {"seconds": ("epoch", [10.0, 12.0]), "images_per_s": ("epoch", [25.0, 21.0]),
                "val_loss": ("epoch", [0.9, 0.8])}
        if accuracy:
            data["val_accuracy"] = ("epoch", [0.5, 0.6])
        return xr.Dataset(data, coords={"epoch": [1, 2], "objective": objective, "arch": params["arch"]})

    def probes(objective):
        torch.manual_seed(1)
        ds = probe_model(create_backbone(params["arch"]).eval(), images, batch_size=4, probes=("distance",))
        return ds.assign_coords(objective=objective, arch=params["arch"])

    evaluation = xr.Dataset({m: (("weights", "pool"), np.full((3, 2), 0.4)) for m in ("knn_accuracy", "linear_accuracy")},
                            coords={"weights": ["pretrained", "random_init", "raw_pixels"], "pool": ["head", "patch_mean"],
                                    "objective": "supervised", "arch": params["arch"]})
    _store(tmp_path, "pretrain", "sup-s0", curves("supervised", True), dict(params, objective="supervised"))
    _store(tmp_path, "pretrain", "mim-s0", curves("simmim", False), dict(params, objective="simmim"))
    _store(tmp_path, "pretrain", "sup-s1", curves("supervised", True), dict(params, objective="supervised", seed=1), seed=1)
    _store(tmp_path, "evaluate", "sup-s0", evaluation, params)
    _store(tmp_path, "probes", "sup-s0", probes("supervised"), params)
    _store(tmp_path, "probes", "random-s0", probes("random"), params)
    path, made = pilot("pilot", 0, str(tmp_path))
    assert made and pilot("pilot", 0, str(tmp_path)) == (path, False)  # current: kept, not re-written
    created = xr.open_dataset(path).attrs["created"]
    assert pilot("pilot", 0, str(tmp_path), force=True) == (path, True)
    _store(tmp_path, "probes", "random-s0", probes("random"), params)  # an input re-made: the pilot follows
    assert pilot("pilot", 0, str(tmp_path))[1] and created
    ds = xr.open_dataset(path)
    assert sorted(ds["model"].values) == ["mim-s0", "sup-s0"]  # seed 1 is not this pilot's
    sup, mim = ds.sel(model="sup-s0"), ds.sel(model="mim-s0")
    assert int(sup["steps"]) == 4 and int(sup["images_seen"]) == 512 and float(sup["train_seconds"]) == 22.0
    assert float(sup["val_accuracy_last_change"]) == pytest.approx(0.1)
    assert float(sup["linear_head_raw_pixels"]) == pytest.approx(0.4)
    # the same untrained network probed twice: the control's most local head equals the model's, layer by layer
    np.testing.assert_allclose(sup["lambda_max"].values, sup["control_lambda_max"].values)
    assert sup["lambda_max"].sizes["layer"] == 4 and np.isnan(float(sup["nearest_visible_l1"]))
    # SimMIM: the hand-made predictors on its validation images (on the composites the nearest visible
    # pixel beats the visible mean), no evaluation or probes stored yet -> NaN, not an error
    assert 0 < float(mim["nearest_visible_l1"]) < float(mim["visible_mean_l1"])
    assert np.isfinite(float(mim["position_mean_l1"])) and np.isnan(float(mim["linear_head_pretrained"]))
    with pytest.raises(FileNotFoundError, match="mimstudy run --preset pilot"):
        pilot("pilot", 5, str(tmp_path))


def test_lag1_correlation_and_flat_crops_on_known_inputs():
    from mimstudy.study.data_rationale import flat_crop_fraction, lag1_correlation

    rows = torch.arange(32.0).view(1, 32, 1).expand(4, 32, 32)  # constant along each row: neighbours equal
    assert lag1_correlation(rows) == pytest.approx(1.0)
    noise = torch.randn(64, 32, 32, generator=torch.Generator().manual_seed(0))
    assert abs(lag1_correlation(noise)) < 0.02
    rng = np.random.default_rng(0)
    assert flat_crop_fraction("moon", 200, rng) > 0.3 > flat_crop_fraction("brick", 200, rng)


@requires_real_data
def test_the_data_rationale_is_measured_stored_and_rendered(tmp_path):
    from mimstudy.book.pages.regime import rationale_markdown
    from mimstudy.results import load_dataset
    from mimstudy.study.data_rationale import save_rationale

    path = save_rationale(str(tmp_path), images=200, prior_images=300, crops=40)
    ds = load_dataset(path)
    fm, photos = ds.sel(dataset="fashion_mnist"), ds.sel(dataset="fashion_mnist_photos")
    # the position prior nearly matches the nearest visible pixel on Fashion-MNIST, not on the composites
    assert float(fm.position_mean_l1.mean()) < float(fm.visible_mean_l1.mean()) - 0.2
    assert float(photos.position_mean_l1.mean()) > float(photos.nearest_visible_l1.mean())
    text = rationale_markdown(ds)
    assert "200 training and 200 test images" in text and "of 40 random raw crops" in text


def test_the_simmim_gates_baselines_see_the_models_own_validation_masks(tmp_path, fashion_dir):
    """The hand predictors are scored on the pixels the model's validation l1 was: the model's l1 on
    the replayed images and masks equals the validation loss its run recorded (other masks would not)."""
    from mimstudy.config import PretrainConfig
    from mimstudy.study.regime import masked_pixel_baselines, validation_masks
    from mimstudy.training.pretrain import pretrain

    config = PretrainConfig.from_dict(dict(preset="t", run_id="mim", objective="simmim", arch="vit_micro_32",
                                           runs_dir=str(tmp_path), results_dir=str(tmp_path), seed=3, train_size=128,
                                           val_size=80, epochs=1, batch_size=32, warmup_epochs=0.0))
    result = pretrain(config, progress=False)
    params = config.to_dict()
    images, masks, train = validation_masks(params)
    assert images.shape[0] == masks.shape[0] == 80 and train.shape[0] == 128
    objective = result.objective.eval()
    with torch.no_grad():
        replayed = objective(images, mask=masks)[0].item()
        other = objective(images, mask=torch.roll(masks, 1, dims=0))[0].item()
    recorded = result.history[-1]["val_loss"]
    assert replayed == pytest.approx(recorded, rel=1e-5) and other != pytest.approx(recorded, rel=1e-5)
    baselines = masked_pixel_baselines(params)
    assert set(baselines) == {"nearest_visible_l1", "visible_mean_l1", "position_mean_l1"}
    assert baselines == masked_pixel_baselines({**params, "run_id": "again"})  # deterministic


def test_mocos_random_init_control_is_its_own_initial_network(tmp_path, fashion_dir):
    """The MoCo gate's control: the run's objective at its seeded initialisation, validated as the run was."""
    from mimstudy.config import PretrainConfig
    from mimstudy.objectives.factory import build_objective
    from mimstudy.study.regime import random_init_validation

    params = PretrainConfig.from_dict(dict(preset="t", run_id="moco", objective="moco", arch="vit_micro_32",
                                           runs_dir=str(tmp_path), results_dir=str(tmp_path), seed=2, train_size=64,
                                           val_size=64, batch_size=32)).to_dict()
    first = random_init_validation(params)
    assert 0.0 <= first["val_contrastive_top1"] <= 1.0 and first == random_init_validation(params)
    other = random_init_validation({**params, "seed": 3})  # another seed: another initial network and split
    assert other != first
    a, b = (build_objective(PretrainConfig.from_dict(p)).state_dict() for p in (params, params))
    assert all(torch.equal(a[k], b[k]) for k in a)  # seeded: the initialisation the run itself started from


def test_a_pilot_row_of_older_results_leaves_out_what_they_lack():
    """Results stored before the raw-pixel baseline and the uniform-attention reference (the committed
    gpu preset's): the row has what they hold, and no value for what they lack, instead of an error."""
    from mimstudy.study.regime import pilot_row

    params = dict(epochs=2, train_size=256, batch_size=128)
    curves = xr.Dataset({"seconds": ("epoch", [10.0, 12.0]), "images_per_s": ("epoch", [25.0, 21.0]),
                         "val_loss": ("epoch", [0.9, 0.8])},
                        coords={"epoch": [1, 2], "objective": "simmim", "arch": "vit_micro_32"},
                        attrs={"parameters": json.dumps(params)})
    evaluation = xr.Dataset({m: (("weights", "pool"), np.full((2, 2), 0.4)) for m in ("knn_accuracy", "linear_accuracy")},
                            coords={"weights": ["pretrained", "random_init"], "pool": ["head", "patch_mean"]})
    probes = xr.Dataset({"attention_distance": (("layer", "head", "image"), np.ones((2, 2, 3)))})
    row = pilot_row(curves, evaluation, probes, None)
    assert row["knn_head_pretrained"] == 0.4 and row["linear_patch_mean_random_init"] == 0.4
    assert not [k for k in row if k.endswith("raw_pixels")] and "lambda_max" not in row and row["steps"] == 4
