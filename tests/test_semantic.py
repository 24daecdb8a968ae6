"""Section 4.1's semantic transfer: the concept sets, their ImageFolder layout, the measured ladder, the
classification metrics and a fine-tuning through the shared loop that learns."""

from __future__ import annotations

import shutil

from pathlib import Path

import numpy as np
import pytest
import torch

from mimstudy.config import DownstreamConfig
from mimstudy.data.fashion_mnist import DatasetError
from mimstudy.downstream import augment, classification, concepts, imagefolder
from mimstudy.downstream.transfer import transfer_seed
from mimstudy.downstream.tasks import SEMANTIC_TASKS, TASKS, get_task

from .conftest import requires_real_data


def test_metrics_on_hand_made_predictions():
    labels = np.array([0, 0, 0, 0, 0, 0, 1, 1, 2, 2])
    predicted = np.array([0, 0, 0, 0, 0, 0, 0, 1, 0, 0])  # class 0 all right, class 1 half, class 2 none
    assert classification.top1(predicted, labels) == pytest.approx(0.7)
    assert classification.mean_class_accuracy(predicted, labels) == pytest.approx((1 + 0.5 + 0) / 3)
    # classes absent from the test labels do not count, whatever is predicted
    assert classification.mean_class_accuracy(np.array([1, 3]), np.array([1, 1])) == pytest.approx(0.5)
    train = imagefolder.LabelledImages([Path("unread.png")] * 5, [2, 1, 1, 2, 0], ("a", "b", "c"), 2, 1)
    assert classification.majority_class(train) == 1  # tie of 1 and 2: the lower label
    test = imagefolder.LabelledImages([Path("unread.png")] * 10, labels.tolist(), ("a", "b", "c"), 2, 1)
    assert classification.trivial(train, test) == {"top1": pytest.approx(0.2), "mean_class_acc": pytest.approx(1 / 3)}


def test_random_shift_moves_content_by_at_most_the_margin():
    image = torch.zeros(3, 1, 8, 8)
    image[:, :, 3, 4] = 1.0
    shifted = augment.random_shift(image, 2, torch.Generator().manual_seed(0))
    assert shifted.shape == image.shape
    for one in shifted:
        y, x = np.argwhere(one[0].numpy() == 1.0)[0]
        assert abs(y - 3) <= 2 and abs(x - 4) <= 2


def test_every_semantic_task_is_registered_with_its_metric():
    assert set(SEMANTIC_TASKS) <= set(TASKS)
    assert [get_task(f"cog_l{k}").primary for k in range(1, 6)] == ["top1"] * 5
    assert get_task("k12_fine").primary == "mean_class_acc"  # Kornblith's metric for the fine-grained sets
    assert sorted(concepts.LADDER) == sorted(concepts.LADDER_CANDIDATES)
    for spec in concepts.CONCEPT_SETS.values():
        assert len(set(spec.classes)) == len(spec.classes) and list(spec.folder_names()) == sorted(spec.folder_names())


@requires_real_data
@pytest.mark.parametrize("name", sorted(concepts.CONCEPT_SETS))
def test_items_are_deterministic_grey_and_differ_across_items_splits_and_seeds(name):
    a, label = concepts.draw_item(name, "train", 13)
    again, _ = concepts.draw_item(name, "train", 13)
    assert np.array_equal(a, again) and label == 13 % len(concepts.CONCEPT_SETS[name].classes)
    assert a.shape == (32, 32) and a.dtype == np.float32 and 0 <= a.min() and a.max() <= 1 and a.std() > 0.02
    for other in (concepts.draw_item(name, "train", 13 + len(concepts.CONCEPT_SETS[name].classes))[0],
                  concepts.draw_item(name, "test", 13)[0], concepts.draw_item(name, "val", 13)[0],
                  concepts.draw_item(name, "train", 13, seed=1)[0]):
        assert not np.array_equal(a, other)


def test_shapes_are_the_named_shapes():
    y, x = np.mgrid[-1:1:64j, -1:1:64j]
    areas = {name: concepts.shape_mask(name, x, y).mean() for name in concepts.SHAPES}
    assert areas["ring"] < areas["disk"] and areas["crescent"] < areas["disk"] and areas["star"] < areas["pentagon"]
    assert not concepts.shape_mask("ring", np.zeros(1), np.zeros(1))[0] and concepts.shape_mask("disk", np.zeros(1), np.zeros(1))[0]
    with pytest.raises(ValueError, match="unknown shape"):
        concepts.shape_mask("blob", x, y)


@requires_real_data
def test_fine_sub_classes_split_every_class_and_appear_in_both_sprite_ranges():
    fine = concepts.fine_labels()
    assert fine.shape == (10000,) and set(np.unique(fine)) == set(range(10 * concepts.FINE_CLUSTERS))
    for lo, hi in concepts.SPRITE_RANGES.values():
        assert np.bincount(fine[lo:hi], minlength=50).min() >= 10


@pytest.fixture(scope="module")
def materials_root(tmp_path_factory):
    return concepts.generated_dataset("materials", tmp_path_factory.mktemp("cache"), 20, 10, seed=0, val_size=10)


def test_the_imagefolder_layout_reads_back_what_was_drawn(materials_root):
    classes = concepts.CONCEPT_SETS["materials"].folder_names()
    for split in ("train", "val", "test"):
        assert sorted(p.name for p in (materials_root / split).iterdir()) == list(classes)
    assert sorted(p.name for p in (materials_root / "train" / "03_moon").iterdir()) == ["00003.png", "00013.png"]
    back = imagefolder.read_split(materials_root, "train", 32).hold()
    assert back.classes == classes and back.images.shape == (20, 1, 32, 32)
    assert back.labels[:10].tolist() == list(range(10))  # round-robin over the classes
    for image, label, index in zip(back.images, back.labels, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]):
        drawn, drawn_label = concepts.draw_item("materials", "train", index)
        assert drawn_label == label and np.abs(image[0].numpy() - drawn).max() <= 0.5 / 255 + 1e-6
    subset = imagefolder.read_split(materials_root, "test", 16, limit=5, classes=classes).hold()
    rgb = imagefolder.read_split(materials_root, "test", 16, limit=1, classes=classes, channels=3)
    assert rgb[0][0].shape == (3, 16, 16) and torch.equal(rgb[0][0][1], subset.images[0, 0])  # grey read as RGB
    with pytest.raises(ValueError, match=r"1 \(grey\) or 3 \(RGB\) channels; the backbone takes 4"):
        imagefolder.read_split(materials_root, "test", 16, channels=4)
    assert subset.images.shape == (5, 1, 16, 16) and subset.labels.tolist() == [0, 1, 2, 3, 4]
    # written once: a second call reuses the folder (same path, same files)
    again = concepts.generated_dataset("materials", materials_root.parent, 20, 10, seed=0, val_size=10)
    assert again == materials_root and not list(materials_root.parent.glob(".materials-*"))


def test_bad_folders_and_images_are_named(materials_root, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(materials_root, root)
    with pytest.raises(DatasetError, match=r"copy/nope is missing"):
        imagefolder.read_split(root, "nope", 32)
    train = imagefolder.read_split(root, "train", 32)
    shutil.rmtree(root / "test" / "07_clock")
    with pytest.raises(DatasetError, match=r"class folder .*copy/test/07_clock is missing"):
        imagefolder.read_split(root, "test", 32, classes=train.classes)
    (root / "train" / "02_gravel" / "00002.png").write_bytes(b"not a png")
    with pytest.raises(DatasetError, match=r"copy/train/02_gravel/00002\.png cannot be read"):
        imagefolder.read_split(root, "train", 32).hold()
    for f in (root / "val" / "05_page").iterdir():
        f.unlink()
    with pytest.raises(DatasetError, match=r"class folder .*copy/val/05_page holds no images"):
        imagefolder.read_split(root, "val", 32)
    empty = tmp_path / "empty"
    (empty / "train").mkdir(parents=True)
    with pytest.raises(DatasetError, match=r"empty/train has no class folders"):
        imagefolder.read_split(empty, "train", 32)


@requires_real_data
def test_the_ladder_order_is_measured_and_the_covered_set_is_closest():
    """The seen-class classifier (HOG + logistic regression on pre-training composites) separates the
    covered garments best, then the levels in LADDER's order (about 15 s, 1 thread)."""
    measured = concepts.concept_separability(concepts.LADDER_CANDIDATES + ("garments",))
    print({k: {m: round(v, 3) for m, v in d.items()} for k, d in measured.items()})
    assert concepts.measured_ladder(measured)[0] == "garments"
    by_probe = concepts.measured_ladder({k: v for k, v in measured.items() if k != "garments"})
    assert by_probe == concepts.LADDER, by_probe
    assert concepts.measured_ladder({k: v for k, v in measured.items() if k != "garments"}, "nmi") == concepts.LADDER


@pytest.mark.slow
@requires_real_data
def test_classification_fine_tuning_beats_the_majority_class(tmp_path, one_thread):
    """A random vit_micro_32 + linear head on the materials (CoG L2, K12 new domain) through the shared loop (~20 s, 1 thread)."""
    config = DownstreamConfig(task="k12_materials", init_from="random", arch="vit_micro_32", runs_dir=str(tmp_path),
                              train_size=600, test_size=100, epochs=6, batch_size=32, lr=1e-3, warmup_epochs=0.5,
                              drop_path=0.0, layer_decay=1.0, resume=False)
    task = get_task("k12_materials")
    train, test = task.load(config)
    assert (tmp_path / "data").is_dir() and len(train) == 600 and train.classes == test.classes
    run = transfer_seed(config, task, train, test, 0, [], torch.device("cpu"), progress=False)
    majority = task.trivial(train, test)
    assert run.history[-1]["train_loss"] < run.history[0]["train_loss"]
    assert run.metrics["top1"] > majority["top1"] + 0.08, (run.metrics, majority)
    assert run.predictions.shape == (100,)
    examples, coords = task.examples(test, run.predictions, 3)
    assert examples["example_image"][1].shape == (3, 32, 32) and examples["example_predicted_label"][1].shape == (3,)


def test_the_long_tail_is_zipf_like_sums_exactly_and_keeps_every_class():
    from mimstudy.downstream.concepts import LONG_TAIL_MINIMUM, long_tail_counts

    counts = long_tail_counts(50, 1000, seed=0)
    assert counts.sum() == 1000 and counts.min() >= LONG_TAIL_MINIMUM and counts.max() > 10 * counts.min()
    ranked = np.sort(counts)[::-1]
    assert ranked[0] > 1.8 * ranked[1] > ranked[2]  # 1 / rank: the head class about twice the next
    assert np.array_equal(counts, long_tail_counts(50, 1000, seed=0))
    assert not np.array_equal(counts, long_tail_counts(50, 1000, seed=1))  # the ranks follow the seed
    with pytest.raises(ValueError, match="needs >= 100"):
        long_tail_counts(50, 99)


def test_inat_lite_trains_on_the_long_tail_and_tests_balanced(tmp_path):
    config = DownstreamConfig(task="inat_lite", init_from="random", arch="vit_micro_32", runs_dir=str(tmp_path),
                              train_size=150, test_size=100)
    train, test = get_task("inat_lite").load(config)
    train_counts = np.bincount(train.labels.numpy(), minlength=50)
    assert len(train) == 150 and train_counts.min() >= 2 and train_counts.max() > 5 * train_counts.min()
    assert np.bincount(test.labels.numpy(), minlength=50).tolist() == [2] * 50
