"""Table 6 / Figure 7's detection analog: the feature pyramid, COCO instances files, packed targets, AP and the loss curves."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from mimstudy.config import DownstreamConfig
from mimstudy.data.fashion_mnist import DatasetError
from mimstudy.downstream import coco_instances, detection, garment_scenes
from mimstudy.downstream.backbone import build_backbone
from mimstudy.downstream.transfer import downstream_dataset, transfer_seed
from mimstudy.downstream.pyramid import SimpleFeaturePyramid
from mimstudy.downstream.tasks import get_task

from .conftest import requires_real_data


def scene(boxes: list[tuple[int, int, int, int]], classes: list[int], size: int = 32) -> garment_scenes.GarmentScene:
    """A hand-made scene: rectangles ``x0, y0, x1, y1`` of the given classes on a flat image."""
    masks = np.zeros((len(boxes), size, size), bool)
    for mask, (x0, y0, x1, y1) in zip(masks, boxes):
        mask[y0:y1, x0:x1] = True
    image = np.full((size, size), 0.3, np.float32)
    image[masks.any(0)] = 0.8
    labels = np.array(classes, np.int64)
    return garment_scenes.GarmentScene(image, garment_scenes.semantic_map(masks, labels, size), masks, labels)


SCENES = [scene([(2, 3, 12, 20), (15, 10, 30, 30)], [1, 4]), scene([], []), scene([(0, 0, 32, 8)], [10]),
          scene([(5, 5, 25, 25)], [4])]


@pytest.fixture
def coco_root(tmp_path):
    for split in ("train", "test"):
        garment_scenes.write_split(tmp_path / "coco", split, SCENES, "coco")
    return tmp_path / "coco"


@pytest.mark.parametrize("arch, stride", [("vit_micro_32_sincos", 4), ("swinv2_micro_32", 8)])
def test_the_pyramid_has_strides_4_8_16_and_passes_gradients_to_the_backbone(arch, stride, one_thread):
    torch.manual_seed(0)
    backbone, _ = build_backbone(arch, None)
    pyramid = SimpleFeaturePyramid(backbone, 32)
    assert pyramid.feature_stride == stride and pyramid.out_channels == 64
    out = pyramid(torch.rand(2, 1, 32, 32))
    assert list(out) == ["0", "1", "2"]
    assert [tuple(v.shape) for v in out.values()] == [(2, 64, 8, 8), (2, 64, 4, 4), (2, 64, 2, 2)]
    sum(v.square().mean() for v in out.values()).backward()
    assert all(p.grad is not None for p in backbone.parameters() if p.requires_grad)
    assert all(p.grad.abs().sum() > 0 for p in backbone.patch_embed.parameters())  # (SwinV2's zero-init
    # residual post-norms leave its attention without gradient at initialisation)
    kinds = [type(level[0]).__name__ for level in pyramid.levels]  # ViT identity/maxpool/maxpool, Swin deconv/identity/maxpool
    assert kinds == (["Identity", "MaxPool2d", "MaxPool2d"] if stride == 4 else ["Sequential", "Identity", "MaxPool2d"])


def test_packing_round_trips_variable_instances():
    rng = np.random.default_rng(0)
    classes = [torch.tensor([3, 1]), torch.tensor([], dtype=torch.int64), torch.tensor([7])]
    boxes = [torch.tensor(rng.uniform(0, 32, (len(c), 4)), dtype=torch.float32) for c in classes]
    masks = [torch.from_numpy(rng.random((len(c), 8, 8)) > 0.5) for c in classes]
    packed = coco_instances.pack(classes, boxes, masks, 8)
    assert packed.shape == (3, 2, 5 + 64) and (packed[1, :, 0] == coco_instances.PAD).all()
    for target, c, b, m in zip(coco_instances.unpack(packed), classes, boxes, masks):
        assert torch.equal(target["labels"], c) and torch.equal(target["boxes"], b)
        assert target["masks"].dtype == torch.uint8 and torch.equal(target["masks"].bool(), m)
    with pytest.raises(ValueError, match="3 instances, more than 2"):
        coco_instances.pack([torch.tensor([1, 2, 3])], [torch.zeros(3, 4)], [torch.zeros(3, 8, 8)], 8, max_instances=2)


def test_coco_files_read_back_what_was_written(coco_root):
    content = json.loads(coco_instances.annotation_path(coco_root, "train").read_text())
    assert [c["name"] for c in content["categories"]][:2] == ["T-shirt/top", "Trouser"]
    first = content["annotations"][0]
    assert first["bbox"] == [2.0, 3.0, 10.0, 17.0] and first["area"] == 170.0 and first["iscrowd"] == 0
    assert isinstance(first["segmentation"]["counts"], str)
    data = coco_instances.read_split(coco_root, "train", 32).hold()
    assert data.images.shape == (4, 1, 32, 32) and data.targets.shape == (4, 2, 5 + 32 * 32)
    for target, drawn in zip(coco_instances.unpack(data.targets), SCENES):
        assert target["labels"].tolist() == drawn.classes.tolist()
        assert np.array_equal(target["boxes"].numpy(), drawn.boxes)
        assert np.array_equal(target["masks"].numpy().astype(bool), drawn.instance_masks)
    assert np.abs(data.images[0, 0].numpy() - SCENES[0].image).max() <= 0.5 / 255 + 1e-6
    small = coco_instances.read_split(coco_root, "train", 16, limit=1).hold()
    assert small.targets[0, 0, 1:5].tolist() == [1.0, 1.5, 6.0, 10.0]  # boxes scaled with the image


def test_category_ids_from_the_file_map_to_contiguous_labels(coco_root, tmp_path):
    """COCO's ids are 80 of 1..90: any ids map, in increasing order, to labels 1..K; the head has K + 1 classes."""
    path = coco_instances.annotation_path(coco_root, "train")
    content = json.loads(path.read_text())
    for entry in content["categories"] + content["annotations"]:
        key = "id" if "name" in entry else "category_id"
        entry[key] = 90 - 3 * entry[key]  # 87, 84, ..., 60: decreasing, gapped
    root = tmp_path / "gapped"
    shutil.copytree(coco_root, root)
    coco_instances.annotation_path(root, "train").write_text(json.dumps(content))
    data = coco_instances.read_split(root, "train", 32).hold()
    assert data.category_ids == tuple(range(60, 88, 3)) and data.categories[0] == "Ankle boot"
    original = coco_instances.read_split(coco_root, "train", 32).hold()
    assert torch.equal(data.targets[:, :, 0], torch.where(original.targets[:, :, 0] > 0, 11 - original.targets[:, :, 0],
                                                          original.targets[:, :, 0]))
    backbone, _ = build_backbone("vit_micro_32", None)
    head = detection.objective(backbone, data, DownstreamConfig(arch="vit_micro_32"), ((0.5,), (0.25,)))
    assert head.detector.roi_heads.box_predictor.cls_score.out_features == 11


def test_malformed_files_are_named(coco_root):
    path = coco_instances.annotation_path(coco_root, "train")
    good = json.loads(path.read_text())

    def write(content):
        path.write_text(json.dumps(content))

    path.write_text("{not json")
    with pytest.raises(DatasetError, match=r"instances_train\.json is not valid JSON"):
        coco_instances.read_split(coco_root, "train", 32).hold()
    write({"images": []})
    with pytest.raises(DatasetError, match=r"instances_train\.json is not a COCO annotation file: it lacks \['annotations', 'categories'\]"):
        coco_instances.read_split(coco_root, "train", 32).hold()
    bad = json.loads(json.dumps(good))
    bad["annotations"][1]["category_id"] = 11
    write(bad)
    with pytest.raises(DatasetError, match=r"instances_train\.json: annotation 2 of scene_000000\.png has category_id 11"):
        coco_instances.read_split(coco_root, "train", 32).hold()
    bad = json.loads(json.dumps(good))
    bad["annotations"][2]["bbox"] = [0, 0, 33, 8]
    write(bad)
    with pytest.raises(DatasetError, match=r"annotation 3 of scene_000002\.png has bbox \[0, 0, 33, 8\] outside"):
        coco_instances.read_split(coco_root, "train", 32).hold()
    write(good)
    (coco_root / "images" / "train" / "scene_000003.png").unlink()
    with pytest.raises(DatasetError, match=r"images/train/scene_000003\.png is missing \(named in .*instances_train\.json"):
        coco_instances.read_split(coco_root, "train", 32).hold()
    with pytest.raises(DatasetError, match=r"instances_nope\.json is missing"):
        coco_instances.read_split(coco_root, "nope", 32).hold()


def perfect(data: coco_instances.InstanceImages) -> list[dict]:
    return [{"boxes": t["boxes"].numpy(), "scores": np.ones(len(t["labels"])), "labels": t["labels"].numpy(),
             "masks": t["masks"].numpy().astype(bool)} for t in coco_instances.unpack(data.targets)]


def test_ap_is_one_for_the_truth_lower_for_shifted_boxes_and_spurious_detections(coco_root):
    test = coco_instances.read_split(coco_root, "test", 32).hold()
    truth = perfect(test)
    assert set(detection.score(test, truth).values()) == {1.0}
    shifted = [{**p, "boxes": p["boxes"] + np.array([3.0, 0, 3.0, 0]), "masks": np.roll(p["masks"], 3, axis=-1)}
               for p in truth]
    moved = detection.score(test, shifted)
    assert 0 < moved["box_ap"] < 1 and 0 < moved["mask_ap"] < 1 and moved["box_ap75"] < moved["box_ap50"]
    # the image without objects: a confident detection there is a false positive
    spurious = [dict(p) for p in truth]
    spurious[1] = {"boxes": np.array([[0.0, 0, 10, 10]]), "scores": np.array([2.0]), "labels": np.array([4]),
                   "masks": np.ones((1, 32, 32), bool)}
    assert detection.score(test, spurious)["box_ap"] < 1.0
    assert set(detection.score(test, []).values()) == {0.0}


def test_trivial_predictors(coco_root):
    train, test = (coco_instances.read_split(coco_root, split, 32).hold() for split in ("train", "test"))
    assert detection.majority_class(train) == 4
    floor = detection.trivial(train, test)
    assert all(floor[f"empty_{k}"] == 0.0 for k in ("box_ap", "box_ap50", "mask_ap"))
    # the whole-image box of class 4 covers a 20x20 garment (IoU 0.39) and a 15x20 one (IoU 0.29): below 0.5
    assert floor["box_ap50"] == 0.0 and floor["box_ap"] == 0.0


def test_heldout_losses_are_seeded_and_leave_modes_and_random_state_alone(coco_root, one_thread):
    torch.manual_seed(0)
    backbone, _ = build_backbone("vit_micro_32_sincos", None, drop_path=0.1)
    objective = detection.DetectionObjective(backbone, 32, ((0.5,), (0.25,)), 11)
    assert objective.backbone is backbone
    detector = objective.detector  # sized for 32 px, standardised with the given statistics, light heads
    assert detector.transform.min_size == (32,) and detector.transform.max_size == 32
    assert detector.transform.image_mean == [0.5] and detector.transform.image_std == [0.25]
    assert (detector.roi_heads.box_head.fc6.in_features, detector.roi_heads.box_head.fc7.out_features) == (64 * 49, 128)
    assert detector.roi_heads.box_predictor.cls_score.out_features == 11
    assert detector.rpn.anchor_generator.sizes == ((8, 12), (16, 24), (32, 48))
    assert detector.rpn.anchor_generator.num_anchors_per_location() == [6, 6, 6]
    test = coco_instances.read_split(coco_root, "test", 32).hold()
    objective.train()
    before = torch.get_rng_state()
    a = detection.heldout(objective, test, torch.device("cpu"), seed=3)
    assert torch.equal(torch.get_rng_state(), before) and all(m.training for m in objective.modules())
    assert a == detection.heldout(objective, test, torch.device("cpu"), seed=3)
    streamed = coco_instances.read_split(coco_root, "test", 32)  # read from disk by a DataLoader: the same losses
    assert detection.heldout(objective, streamed, torch.device("cpu"), seed=3) == a
    assert torch.equal(torch.get_rng_state(), before)
    assert set(a) == {"loss", *detection.LOSSES} and a["loss"] == pytest.approx(sum(a[k] for k in detection.LOSSES))
    objective.eval()
    detection.heldout(objective, test, torch.device("cpu"), seed=3)
    assert not any(m.training for m in objective.modules())


def test_one_epoch_records_the_named_losses_on_train_and_heldout_images(coco_root, tmp_path, one_thread):
    task = get_task("detection")
    config = DownstreamConfig(task="detection", init_from="random", arch="vit_micro_32_sincos", runs_dir=str(tmp_path),
                              data_dir=str(coco_root), train_size=4, test_size=4, epochs=1, batch_size=2, lr=1e-4,
                              warmup_epochs=0.5, drop_path=0.0, layer_decay=0.75, resume=False, num_examples=2)
    train, test = task.load(config)
    run = transfer_seed(config, task, train, test, 0, [], torch.device("cpu"), progress=False)
    record = run.history[0]
    for name in ("loss", *detection.LOSSES):
        assert np.isfinite(record[f"train_{name}"]) and np.isfinite(record[f"heldout_{name}"])
    assert set(run.metrics) == set(task.metrics)
    ds = downstream_dataset(config, task, {0: run}, task.trivial(train, test), test, [], 0.0, {})
    for name in ("train_loss_classifier", "train_loss_box_reg", "heldout_loss_classifier", "heldout_loss_box_reg"):
        assert ds[name].dims == ("seed", "epoch") and ds[name].shape == (1, 1)
    assert "trivial_box_ap" in ds and "trivial_empty_box_ap" in ds
    assert ds["example_instances"].shape == (2, 2, 5) and ds["example_predicted_instances"].shape[::2] == (2, 6)


@requires_real_data
def test_generated_scenes_are_written_as_coco_and_read_back(tmp_path):
    root = garment_scenes.generated_dataset(tmp_path, 6, 2, seed=0, val_size=1, layout="coco")
    data = coco_instances.read_split(root, "train", 32).hold()
    for i, target in enumerate(coco_instances.unpack(data.targets)):
        drawn = garment_scenes.draw_scene("train", i)
        assert target["labels"].tolist() == drawn.classes.tolist()
        assert np.array_equal(target["masks"].numpy().astype(bool), drawn.instance_masks)
        assert np.array_equal(target["boxes"].numpy(), drawn.boxes)
