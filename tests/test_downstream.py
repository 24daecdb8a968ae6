"""Section 4.2's downstream path: the pose benchmark, its COCO files, OKS AP, heads and the block surgery."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from mimstudy.config import DOWNSTREAM_TASKS, ConfigError, DownstreamConfig
from mimstudy.data.fashion_mnist import DatasetError
from mimstudy.downstream import garment_world, puppets
from mimstudy.downstream.backbone import (block_indices, build_backbone, features, flat_blocks, keep_first_blocks,
                                          load_blocks_in_order, sample_block_order)
from mimstudy.downstream.coco_keypoints import annotation_file, crop, read_split
from mimstudy.downstream.heads import DeconvHead, decode_heatmaps, gaussian_heatmaps
from mimstudy.downstream.pose import flip_keypoints, mean_keypoints, random_affine, score
from mimstudy.downstream.tasks import TASKS, get_task
from mimstudy.models.backbones import create_backbone

from .conftest import requires_real_data


@pytest.fixture(scope="module")
def pose_root(tmp_path_factory):
    return puppets.generated_dataset(tmp_path_factory.mktemp("cache"), train_size=24, test_size=16, img_size=32, seed=0)


@requires_real_data
def test_generator_is_deterministic_per_item_and_seed():
    a, b = puppets.draw_puppet("pose", "train", 5), puppets.draw_puppet("pose", "train", 5)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.keypoints, b.keypoints)
    assert not np.array_equal(a.image, puppets.draw_puppet("pose", "train", 6).image)
    assert not np.array_equal(a.image, puppets.draw_puppet("pose", "train", 5, seed=1).image)
    assert not np.array_equal(a.image, puppets.draw_puppet("crowdpose", "train", 5).image)
    assert a.image.shape == (32, 32) and 0 <= a.image.min() and a.image.max() <= 1


@requires_real_data
def test_visibility_follows_layers_and_image_bounds():
    layer = np.zeros((64, 64), dtype=np.int32)
    head = puppets.PARTS.index("head") + 1
    layer[:, :32] = head  # left half shows figure 0's head
    joints = np.zeros((13, 2)) + 20.0
    joints[0] = (5.0, 5.0)  # the nose on its head: visible
    joints[1] = (5.0, 6.0)  # a shoulder where the head is drawn: covered
    joints[2] = (40.0, 5.0)  # outside the 32-px image
    v = puppets.visibility(joints, layer, figure=0, size=32)
    assert v[0] == 2 and v[1] == 1 and v[2] == 0


@requires_real_data
def test_written_files_read_back_to_the_drawn_keypoints(pose_root):
    test = read_split(pose_root, "test", img_size=32)
    drawn = [puppets.draw_puppet("pose", "test", i) for i in range(16)]
    assert len(test) == 16 and test.keypoint_names == puppets.KEYPOINTS
    back = test.to_image_coords(test.keypoints[..., :2].numpy())
    for i, p in enumerate(drawn):
        labelled = p.keypoints[:, 2] > 0
        assert np.array_equal(test.keypoints[i, :, 2].numpy(), p.keypoints[:, 2])
        np.testing.assert_allclose(back[i][labelled], p.keypoints[labelled, :2], atol=2e-3)
    spec = json.loads(annotation_file(pose_root, "test").read_text())
    ann = spec["annotations"][0]
    assert ann["num_keypoints"] == int((np.array(ann["keypoints"][2::3]) > 0).sum())
    assert ann["keypoints"][0::3][ann["keypoints"][2::3].index(0)] == 0 if 0 in ann["keypoints"][2::3] else True
    assert test.flip_pairs == list(puppets.FLIP_PAIRS)


def test_crop_keeps_the_continuous_pixel_convention():
    image = torch.zeros(1, 1, 20, 30)
    image[0, 0, 7, 11] = 1.0  # pixel (x=11, y=7): its centre is (11.5, 7.5)
    assert torch.allclose(crop(image, 0.0, 0.0, 20.0, 20)[0, :, :20], image[0, 0, :, :20])
    zoomed = crop(image, 6.5, 2.5, 10.0, 20)[0]  # 2x zoom: (11.5, 7.5) -> ((11.5 - 6.5) * 2, (7.5 - 2.5) * 2)
    y, x = np.unravel_index(int(zoomed.argmax()), zoomed.shape)
    assert abs(x + 0.5 - 10.0) <= 0.5 and abs(y + 0.5 - 10.0) <= 0.5


@requires_real_data
def test_oks_ap_is_one_for_perfect_keypoints_and_falls_with_the_shift(pose_root):
    test = read_split(pose_root, "test", img_size=32)
    xy = test.keypoints[..., :2].numpy()
    peaks = np.ones(xy.shape[:2])
    assert score(test, xy, peaks, puppets.SIGMAS) == {"ap": 1.0, "ap50": 1.0, "ap75": 1.0}
    scale = 32 / test.crops[:, 2][:, None, None]  # one image pixel in crop pixels
    aps = [score(test, xy + shift * scale, peaks, puppets.SIGMAS)["ap"] for shift in (0.5, 1.5, 3.0)]
    assert 1.0 > aps[0] > aps[1] > aps[2] >= 0.0


@requires_real_data
def test_trivial_predictor_is_far_from_perfect(pose_root):
    train, test = read_split(pose_root, "train", 32), read_split(pose_root, "test", 32)
    mean = mean_keypoints(train)
    assert mean.shape == (13, 2) and mean[0, 1] < mean[11, 1]  # the nose above the ankles
    ap = score(test, np.broadcast_to(mean, (len(test), 13, 2)).copy(), np.ones((len(test), 13)), puppets.SIGMAS)["ap"]
    assert 0.0 <= ap < 0.5


@requires_real_data
def test_bad_dataset_files_are_named(pose_root, tmp_path):
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(pose_root, root)
    with pytest.raises(DatasetError, match=r"person_keypoints_val\.json is missing"):
        read_split(root, "val", 32)
    (root / "test" / "000000000003.png").unlink()
    with pytest.raises(DatasetError, match=r"000000000003\.png is missing"):
        read_split(root, "test", 32).hold()
    (root / "test" / "000000000003.png").write_bytes(b"not a png")
    with pytest.raises(DatasetError, match=r"000000000003\.png cannot be read"):
        read_split(root, "test", 32).hold()
    path = annotation_file(root, "train")
    path.write_text(path.read_text()[:-10])
    with pytest.raises(DatasetError, match=r"person_keypoints_train\.json is not valid JSON"):
        read_split(root, "train", 32)
    spec = json.loads(annotation_file(pose_root, "train").read_text())
    spec["annotations"][0]["keypoints"] = spec["annotations"][0]["keypoints"][:-3]
    path.write_text(json.dumps(spec))
    with pytest.raises(DatasetError, match=r"annotation 1 has 36 keypoint values, expected 3 x 13"):
        read_split(root, "train", 32)


def test_unknown_task_lists_the_tasks():
    with pytest.raises(KeyError, match=re.escape(f"unknown task 'nope'; tasks: {sorted(TASKS)}")):
        get_task("nope")
    with pytest.raises(ConfigError, match=r"unknown task 'nope'; tasks: \['pose', 'crowdpose', 'depth', 'tracking', "):
        DownstreamConfig(task="nope", arch="vit_micro_32").validate()


def test_config_knows_every_task():
    assert set(DOWNSTREAM_TASKS) == set(TASKS)


def test_every_task_module_has_the_one_interface():
    interface = ("load", "objective", "evaluate", "trivial", "examples", "METRICS", "PRIMARY", "HIGHER_IS_BETTER",
                 "TRIVIAL")  # the targets travel in the split's items
    for task in TASKS.values():
        assert all(hasattr(task.module, name) for name in interface), task.module.__name__
        assert task.primary in task.metrics and callable(task.generate)


def test_config_needs_an_arch_for_random_weights_and_reads_its_pretraining():
    with pytest.raises(ConfigError, match="needs arch"):
        DownstreamConfig(init_from="random").validate()
    assert DownstreamConfig(init_from="random", arch="vit_micro_32").required_runs() == []
    assert DownstreamConfig(init_from="vit_sup").required_runs() == ["vit_sup"]
    config = DownstreamConfig(init_from="vit_sup", block_order="sample:3:1")
    assert config.block_order_spec() == (3, 1)
    assert block_indices(config.block_order_spec(), 8) == sample_block_order(8, 3, 1)
    assert block_indices(DownstreamConfig(init_from="vit_sup", block_order="2,0").block_order_spec(), 8) == [2, 0]
    assert DownstreamConfig(init_from="vit_sup").block_order_spec() == []
    with pytest.raises(ConfigError, match="outside"):
        block_indices(DownstreamConfig(init_from="vit_sup", block_order="9").block_order_spec(), 8)
    for bad in ("sample:0:1", "sample:3", "2,x", "-1"):
        with pytest.raises(ConfigError, match="block_order"):
            DownstreamConfig(init_from="vit_sup", block_order=bad).validate()


def test_heatmaps_decode_to_their_keypoints_within_a_quarter_pixel():
    keypoints = torch.tensor([[[3.2, 4.9], [10.5, 20.5], [27.8, 1.3]]])
    xy, peak = decode_heatmaps(gaussian_heatmaps(keypoints, 32))
    assert (xy - keypoints).abs().max() <= 0.25 + 1e-6 and (peak > 0.6).all()
    head = DeconvHead(64, 13, stride=8)
    assert head(torch.zeros(2, 64, 4, 4)).shape == (2, 13, 32, 32)
    with pytest.raises(ValueError, match="power of 2"):
        DeconvHead(64, 13, stride=3)


def test_flip_and_affine_move_images_and_keypoints_together():
    pairs = list(puppets.FLIP_PAIRS)
    keypoints = torch.rand(2, 13, 3) * 20 + 6
    assert torch.allclose(flip_keypoints(flip_keypoints(keypoints, pairs, 32), pairs, 32), keypoints)
    torch.manual_seed(0)
    images = gaussian_heatmaps(keypoints[:, :1], 32)  # a blob at joint 0 (the nose, which no flip swaps)
    warped, moved = random_affine(images, keypoints, pairs, rotation=30, scale=0.25)
    xy, _ = decode_heatmaps(warped)
    assert (xy[:, 0] - moved[:, 0, :2]).abs().max() < 1.0
    assert torch.equal(moved[..., 2].sort(-1).values, keypoints[..., 2].sort(-1).values)  # swapped, not changed


def test_keeping_blocks_equals_the_first_blocks_of_the_full_model():
    torch.manual_seed(0)
    full = create_backbone("vit_micro_32").eval()
    x = torch.randn(2, 1, 32, 32)
    expected = full.forward_intermediates(x, indices=[1], norm=True, intermediates_only=True)[0]
    cut = keep_first_blocks(create_backbone("vit_micro_32").eval(), 2)
    cut.load_state_dict(full.state_dict(), strict=False)
    assert len(cut.blocks) == 2 and torch.allclose(features(cut, x), expected, atol=1e-6)
    swin = keep_first_blocks(create_backbone("swinv2_micro_32").eval(), 11)
    assert [len(stage.blocks) for stage in swin.layers] == [10, 1]
    assert features(swin, x).shape[-1] == 8  # stride 4 after two stages
    with pytest.raises(ValueError, match=r"keep_blocks must lie in \[1, 4\]"):
        keep_first_blocks(create_backbone("vit_micro_32"), 5)


def test_loaded_block_order_puts_the_named_blocks_first():
    torch.manual_seed(0)
    source = create_backbone("vit_micro_32")
    originals = [{k: v.clone() for k, v in b.state_dict().items()} for b in source.blocks]
    ordered = load_blocks_in_order(source, [3, 0])
    assert len(ordered.blocks) == 2
    for position, index in enumerate([3, 0]):
        for key, value in ordered.blocks[position].state_dict().items():
            assert torch.equal(value, originals[index][key])
    order = sample_block_order(8, 4, seed=3)
    assert order == sample_block_order(8, 4, seed=3) and len(set(order)) == 4 and all(0 <= i < 8 for i in order)
    assert order != sample_block_order(8, 4, seed=4)
    swin = create_backbone("swinv2_micro_32")
    with pytest.raises(ValueError, match="does not fit position 0"):
        load_blocks_in_order(swin, [12])
    backbone, config = build_backbone("vit_micro_32", None, keep_blocks=3)
    assert len(flat_blocks(backbone)) == 3 and config == {}


@requires_real_data
def test_a_tiny_run_writes_metrics_examples_and_resumes(tmp_path):
    from mimstudy.downstream.transfer import run_downstream, seed_checkpoint

    config = DownstreamConfig(preset="t", run_id="tiny", runs_dir=str(tmp_path), init_from="random",
                              arch="vit_micro_32", train_size=32, test_size=16, epochs=2, batch_size=16,
                              warmup_epochs=0.5, transfer_seeds="0,1", num_examples=3)
    ds = run_downstream(config, progress=False)
    assert list(ds.seed.values) == [0, 1] and ds.ap.dims == ("seed",) and ds.train_loss.shape == (2, 2)
    assert ds.example_image.shape == (3, 32, 32) and ds.example_predicted_keypoints.shape == (3, 13, 2)
    assert 0 <= float(ds.trivial_ap) <= 1 and ds.attrs["primary_metric"] == "ap"
    assert seed_checkpoint(config, 1).is_file()
    again = run_downstream(config, progress=False)  # both seeds resume from finished checkpoints
    np.testing.assert_array_equal(again.ap.values, ds.ap.values)
    np.testing.assert_array_equal(again.train_loss.values, ds.train_loss.values)


@requires_real_data
def test_throughput_benchmark_runs_and_saves_a_dataset(tmp_path):
    import importlib.util
    from pathlib import Path

    from mimstudy.results import load_dataset

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "downstream_throughput.py"
    spec = importlib.util.spec_from_file_location("downstream_throughput", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(["--tasks", "pose,detection,segmentation", "--archs", "vit_micro_32", "--steps", "1", "--repeats", "1",
                 "--batch-size", "4", "--out", str(tmp_path / "b.nc")], log=lambda line: None)
    ds = load_dataset(tmp_path / "b.nc")
    assert ds.ratio.dims == ("task", "arch") and list(ds.task.values) == ["pose", "detection", "segmentation"]
    assert (ds.ours_images_per_s > 0).all() and (ds.bare_images_per_s > 0).all() and np.isfinite(ds.ratio).all()
    assert (ds.draw_ms_per_item > 0).all() and (ds.read_ms_per_item > 0).all()


def test_depth_metrics_match_hand_computed_cases():
    from mimstudy.downstream.nyu_depth import depth_metrics

    gt = np.array([[[1.0, 2.0], [4.0, 0.0]]])  # the 0 is no measurement
    same = depth_metrics(gt, gt)
    assert same["rmse"][0] == 0 and same["abs_rel"][0] == 0 and same["delta1"][0] == 1
    scaled = depth_metrics(gt * 1.1, gt)
    assert np.isclose(scaled["abs_rel"][0], 0.1) and scaled["delta1"][0] == 1
    assert np.isclose(scaled["rmse"][0], 0.1 * np.sqrt((1 + 4 + 16) / 3))
    assert depth_metrics(gt * 1.3, gt)["delta1"][0] == 0
    two = depth_metrics(np.stack([gt[0], gt[0] * 1.1]), np.stack([gt[0], gt[0]]))  # per image, then averaged
    assert np.allclose(two["abs_rel"], [0.0, 0.1])


def test_silog_is_scale_invariant_up_to_its_lambda():
    from mimstudy.downstream.depth import silog_loss

    gt = torch.rand(2, 1, 8, 8) * 9 + 1
    assert silog_loss(gt, gt) < 1e-5
    assert torch.isclose(silog_loss(gt * 2, gt), torch.tensor(np.log(2) * np.sqrt(0.5), dtype=torch.float32), atol=1e-4)


@requires_real_data
def test_depth_scenes_are_deterministic_and_round_trip_through_the_nyu_layout(tmp_path):
    from mimstudy.downstream.nyu_depth import list_file, read_split

    a, b = garment_world.draw_scene("train", 3), garment_world.draw_scene("train", 3)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.depth, b.depth)
    assert not np.array_equal(a.depth, garment_world.draw_scene("train", 3, seed=1).depth)
    assert 0 < a.depth.min() and a.depth.max() <= garment_world.MAX_DEPTH
    root = garment_world.generated_dataset(tmp_path, train_size=6, test_size=4, img_size=32, seed=0)
    test = read_split(root, "test", 32).hold()
    for i in range(4):
        drawn = garment_world.draw_scene("test", i)
        np.testing.assert_allclose(test.targets[i, 0].numpy(), drawn.depth, atol=5e-4)  # metres
        np.testing.assert_allclose(test.images[i, 0].numpy(), drawn.image, atol=1 / 255)
    (root / "test" / "sync_depth_00002.png").unlink()
    with pytest.raises(DatasetError, match=r"depth map .*sync_depth_00002\.png is missing"):
        read_split(root, "test", 32).hold()
    list_file(root, "train").write_text("/train/rgb_00000.png\n")
    with pytest.raises(DatasetError, match=r"train_list\.txt, line 1: expected '<image path> <depth path>'"):
        read_split(root, "train", 32)
    with pytest.raises(DatasetError, match=r"val_list\.txt is missing"):
        read_split(root, "val", 32)


@requires_real_data
def test_a_run_from_a_checkpoint_starts_over_when_its_pretraining_is_remade(tmp_path):
    import os

    from mimstudy.downstream.transfer import pretrained_weights, run_downstream, seed_checkpoint
    from mimstudy.models.checkpoints.state import load_checkpoint

    config = DownstreamConfig(preset="t", run_id="from_src", runs_dir=str(tmp_path), results_dir=str(tmp_path),
                              init_from="src", train_size=16, test_size=8, epochs=1, batch_size=16, warmup_epochs=0.0,
                              num_examples=0)
    source = pretrained_weights(config)
    assert source == tmp_path / "t" / "weights" / "src.safetensors"
    torch.manual_seed(0)
    parameters = {"arch": "vit_micro_32", "img_size": 32, "objective": "simmim", "run_id": "src"}
    write_source(config, create_backbone("vit_micro_32").state_dict(), parameters)
    ds = run_downstream(config, progress=False)
    assert ds.objective.item() == "simmim" and ds.arch.item() == "vit_micro_32" and ds.blocks.item() == 4
    assert ds.input_dataset.item() == "fashion_mnist"  # a config stored without 'dataset': its default
    first = load_checkpoint(seed_checkpoint(config, 0))["source"]
    os.utime(source, ns=(1, 1))  # the same weights, a fresh clone's file: the same source
    run_downstream(config, progress=False)
    assert load_checkpoint(seed_checkpoint(config, 0))["source"] == first
    torch.manual_seed(1)
    write_source(config, create_backbone("vit_micro_32").state_dict(), parameters)  # the pre-training is re-made
    run_downstream(config, progress=False)
    assert load_checkpoint(seed_checkpoint(config, 0))["source"] not in (first, None)


def write_source(config, backbone_state, parameters):
    """The committed final weights of ``config``'s pre-training run ``init_from``."""
    from mimstudy.downstream.transfer import pretrained_weights
    from mimstudy.models.checkpoints.weights import save_weights

    return save_weights(backbone_state, pretrained_weights(config),
                        {"arch": parameters["arch"], "img_size": 32, "num_classes": 10, "run_id": config.init_from,
                         "parameters": parameters})


COCO_NAMES = ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder", "left_elbow",
              "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee",
              "left_ankle", "right_ankle")


def test_a_coco_17_keypoint_file_reads_with_cocos_sigmas_and_flip_pairs(tmp_path):
    from mimstudy.downstream.coco_keypoints import COCO_SIGMAS, oks_ap, write_split
    from mimstudy.downstream.pose import sigmas_for

    rng = np.random.default_rng(0)
    images = [rng.random((48, 64)) for _ in range(3)]  # COCO images are larger than a crop and not square
    keypoints = []
    for _ in range(3):
        kp = np.concatenate([rng.uniform(10, 40, size=(17, 2)), np.full((17, 1), 2.0)], axis=1)
        kp[3] = 0  # an unlabelled ear
        keypoints.append(kp)
    boxes = [(8.0, 6.0, 36.0, 38.0)] * 3
    write_split(tmp_path, "val2017", images, keypoints, boxes, [36.0 * 38.0] * 3, COCO_NAMES, ((15, 13), (13, 11)))
    crops = read_split(tmp_path, "val2017", img_size=32)
    assert len(crops.flip_pairs) == 8 and (1, 2) in crops.flip_pairs and sigmas_for(crops.keypoint_names) == COCO_SIGMAS
    assert crops.keypoints[0, 3].tolist() == [0.0, 0.0, 0.0]
    back = crops.to_image_coords(crops.keypoints[..., :2].numpy())
    np.testing.assert_allclose(back[0][crops.keypoints[0, :, 2].numpy() > 0], keypoints[0][np.arange(17) != 3, :2], atol=2e-3)
    assert oks_ap(crops.annotation_path, crops.image_ids, back, np.ones(3), COCO_SIGMAS)["ap"] == 1.0


@requires_real_data
def test_a_run_reads_a_dataset_folder_by_path(pose_root, tmp_path):
    from mimstudy.downstream.transfer import run_downstream

    config = DownstreamConfig(preset="t", run_id="by_path", runs_dir=str(tmp_path), init_from="random",
                              arch="vit_micro_32", data_dir=str(pose_root), train_size=16, test_size=8, epochs=1,
                              batch_size=16, warmup_epochs=0.0, num_examples=0)
    ds = run_downstream(config, progress=False)
    assert not (tmp_path / "data").exists() and np.isfinite(ds.ap.values).all()
    with pytest.raises(DatasetError, match="person_keypoints_nope.json is missing"):
        run_downstream(DownstreamConfig(**{**config.to_dict(), "test_split": "nope"}), progress=False)


def test_inputs_are_standardised_with_the_pretraining_datasets_statistics(tmp_path, monkeypatch):
    """Every task's objective standardises with the checkpoint's dataset (random weights: a parameter)."""
    from mimstudy.data.fashion_mnist import PIXEL_MEAN, PIXEL_STD
    from mimstudy.downstream import tracking
    from mimstudy.downstream.transfer import transfer_seed
    from mimstudy.downstream.got10k import Sequence
    from mimstudy.downstream.inputs import RANDOM_INIT_DATASET, Standardise, check_stats, dataset_stats, pretraining_dataset

    monkeypatch.setattr("mimstudy.data.photo_composites.pixel_stats", lambda folder=None: (0.6, 0.2))
    assert RANDOM_INIT_DATASET == "fashion_mnist_photos"
    assert pretraining_dataset({}) == "fashion_mnist_photos" and pretraining_dataset({}, "fashion_mnist") == "fashion_mnist"
    assert pretraining_dataset({"arch": "vit_micro_32"}) == "fashion_mnist"  # stored before the field existed
    assert pretraining_dataset({"dataset": "fashion_mnist_photos"}) == "fashion_mnist_photos"
    assert dataset_stats("fashion_mnist") == ((PIXEL_MEAN,), (PIXEL_STD,))
    assert dataset_stats("fashion_mnist_photos") == ((0.6,), (0.2,))
    assert dataset_stats("image_folder") == ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))  # ImageNet's, per channel
    with pytest.raises(ValueError, match="no pixel statistics for pre-training dataset 'mnist'"):
        dataset_stats("mnist")
    with pytest.raises(ValueError, match="backbone takes 1 channel.*'image_folder' has statistics for 3"):
        check_stats(dataset_stats("image_folder"), 1, "image_folder")
    grey = Standardise(0.6, 0.2)(torch.tensor([0.6, 0.8]).view(1, 1, 1, 2))
    assert torch.allclose(grey, torch.tensor([0.0, 1.0]).view(1, 1, 1, 2))
    rgb = Standardise((0.5, 0.25, 0.0), (0.5, 0.25, 1.0))(torch.full((1, 3, 1, 1), 0.5))
    assert rgb.flatten().tolist() == [0.0, 1.0, 0.5] and not Standardise(0.5, 0.5).state_dict()
    with pytest.raises(ValueError, match="images have 1 channel.*the statistics 3"):
        Standardise((0.5,) * 3, (0.5,) * 3)(torch.zeros(1, 1, 2, 2))
    for task in TASKS.values():  # every task's objective takes the statistics
        backbone, _ = build_backbone("vit_micro_32", None)
        train = type("Train", (), {"keypoints": torch.zeros(1, 13, 3), "flip_pairs": list(puppets.FLIP_PAIRS),
                                   "classes": ["a", "b", "c"]})()  # what pose and the classification tasks read
        train.categories, train.num_classes = ("a", "b"), 3  # what detection and segmentation read
        objective = task.objective(backbone, train, DownstreamConfig(arch="vit_micro_32"), ((0.6,), (0.2,)))
        if task.name == "detection":  # torchvision's detector standardises in its own transform
            transform = objective.detector.transform
            assert (transform.image_mean, transform.image_std) == ([0.6], [0.2])
            continue
        assert stats_of(objective) == pytest.approx((0.6, 0.2)), task.name  # float32 buffers

    boxes = np.array([[28.0, 28.0, 8.0, 8.0]] * 3)
    sequence = Sequence("s", np.random.default_rng(0).random((3, 64, 64), np.float32), boxes)
    pairs = tracking.make_pairs([sequence], 8, 32).hold()
    assert pairs.images.shape == (8, 2, 32, 32) and pairs.targets.shape == (8, 4)
    test = tracking.TrackingSequences([Sequence("s", np.zeros((3, 64, 64), np.float32), boxes)], 32)
    config = DownstreamConfig(task="tracking", preset="t", runs_dir=str(tmp_path), results_dir=str(tmp_path),
                              init_from="src", train_size=8, test_size=1, epochs=1, batch_size=8, warmup_epochs=0.0,
                              resume=False)
    state = {"config": {"arch": "vit_micro_32", "img_size": 32, "objective": "simmim", "run_id": "src",
                        "dataset": "fashion_mnist"}, "backbone": create_backbone("vit_micro_32").state_dict()}
    write_source(config, state["backbone"], state["config"])
    task, device = get_task("tracking"), torch.device("cpu")
    run = transfer_seed(config, task, pairs, test, 0, [], device, progress=False)
    assert stats_of(run.objective) == pytest.approx((PIXEL_MEAN, PIXEL_STD))
    state["config"]["dataset"] = "fashion_mnist_photos"
    write_source(config, state["backbone"], state["config"])
    run = transfer_seed(config, task, pairs, test, 0, [], device, progress=False)
    assert stats_of(run.objective) == pytest.approx((0.6, 0.2))
    random = DownstreamConfig(**{**config.to_dict(), "init_from": "random", "arch": "vit_micro_32"})
    run = transfer_seed(random, task, pairs, test, 0, [], device, progress=False)
    assert stats_of(run.objective)[0] == pytest.approx(0.6)
    run = transfer_seed(random, task, pairs, test, 0, [], device, progress=False, random_dataset="fashion_mnist")
    assert stats_of(run.objective)[0] == pytest.approx(PIXEL_MEAN)
    with pytest.raises(ValueError, match="backbone takes 1 channel"):  # an RGB dataset's statistics, a grey backbone
        transfer_seed(random, task, pairs, test, 0, [], device, progress=False, random_dataset="image_folder")


def stats_of(objective) -> tuple[float, float]:
    """The one-channel mean and std an objective standardises with."""
    return float(objective.standardise.mean.item()), float(objective.standardise.std.item())


@requires_real_data
def test_coco_area_is_the_visible_silhouettes_pixel_count(pose_root):
    layer = np.zeros((8, 8), dtype=np.int32)
    layer[:2, :] = puppets.PARTS.index("torso") + 1  # 16 supersampled pixels of figure 0
    layer[2, :2] = 16 + 1  # figure 1
    layer[3, :2] = puppets.CLUTTER_ID
    assert puppets.silhouette_area(layer, 0, 2) == 4.0 and puppets.silhouette_area(layer, 1, 2) == 0.5
    for task in ("pose", "crowdpose"):
        for i in range(6):
            p = puppets.draw_puppet(task, "test", i)
            assert 0 < p.area < p.bbox[2] * p.bbox[3]  # limbs leave most of the box empty
    spec = json.loads(annotation_file(pose_root, "test").read_text())
    areas = [a["area"] for a in spec["annotations"]]
    assert areas == [puppets.draw_puppet("pose", "test", i).area for i in range(len(areas))]
