"""The paper preset's Section 4: every run validates, each benchmark layout reads as the real one is laid
out, and (slow) each run takes one step and scores its test split.

The tiny folders below are written in the exact layouts of the real benchmarks: RGB JPEGs of varied
sizes, COCO 2017's ``annotations/*.json`` + ``<split>2017/`` with non-contiguous category ids and
polygon masks, CrowdPose's 14 keypoints, ADEChallengeData2016 with ``objectInfo150.txt`` and labels
0..150, ImageFolder class folders, GOT-10k sequences and NYUv2's list files with depth PNGs in mm.
The dry runs go through ``python -m mimstudy.study.transfer`` with the preset's run, overriding only
the data folder, the sizes, the batch, ``--max-steps 1`` and the device (as ``tests/test_paper_preset.py``
does for pre-training, whose one step of ``swin_simmim`` gives the weights they start from).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import xarray as xr
from PIL import Image

from mimstudy.config import DownstreamConfig
from mimstudy.data.fashion_mnist import DatasetError
from mimstudy.downstream import ade20k, coco_instances, coco_keypoints, got10k, imagefolder, nyu_depth
from mimstudy.downstream.tasks import get_task
from mimstudy.study import train, transfer
from mimstudy.study.runner import plan

COCO_KEYPOINTS = ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
                  "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
                  "right_knee", "left_ankle", "right_ankle")
CROWDPOSE_KEYPOINTS = ("left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
                       "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle", "head", "neck")
CATEGORY_IDS = (1, 18, 90)  # COCO's person, dog and toothbrush: ids with gaps, as COCO's 80 of 1..90


def rgb_jpeg(path, rng, height, width):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path, format="JPEG")


def write_image_folder(root, rng, splits=("train", "val", "test"), classes=("n01", "n02", "n03"), per_class=2):
    for split in splits:
        for name in classes:
            for i in range(per_class):
                rgb_jpeg(root / split / name / f"{i}.JPEG", rng, int(rng.integers(60, 90)), int(rng.integers(60, 90)))
    return root


def person(ann_id, image_id, names, rng, width, height, crowd=0):
    x, y, w, h = 5.0, 4.0, width - 15.0, height - 10.0
    kp = []
    for k in range(len(names)):
        v = 0 if k == 1 else 2
        kp += [round(x + rng.uniform(0, w), 2), round(y + rng.uniform(0, h), 2), v] if v else [0, 0, 0]
    return {"id": ann_id, "image_id": image_id, "category_id": 1, "iscrowd": crowd, "keypoints": kp,
            "num_keypoints": len(names) - 1, "bbox": [x, y, w, h], "area": w * h * 0.5}


def write_coco(root, rng, splits=("train2017", "val2017"), names=COCO_KEYPOINTS, keypoint_file="person_keypoints"):
    """COCO 2017's release layout: annotations/{person_keypoints,instances}_<split>.json and <split>/*.jpg."""
    for split in splits:
        images, people, instances = [], [], []
        for i in range(1, 4):
            width, height = 100 + 10 * i, 80
            images.append({"id": 1000 + i, "file_name": f"{1000 + i:012d}.jpg", "width": width, "height": height})
            rgb_jpeg(root / split / images[-1]["file_name"], rng, height, width)
            people.append(person(len(people) + 1, 1000 + i, names, rng, width, height))
            people.append(person(len(people) + 1, 1000 + i, names, rng, width, height, crowd=1))  # left out
            for j, category in enumerate(CATEGORY_IDS[: 1 + i % 3]):
                x0, y0 = 10.0 + 20 * j, 10.0 + 5 * j
                polygon = [x0, y0, x0 + 30, y0, x0 + 30, y0 + 40, x0, y0 + 40]
                instances.append({"id": len(instances) + 1, "image_id": 1000 + i, "category_id": category,
                                  "segmentation": [polygon], "bbox": [x0, y0, 30.0, 40.0], "area": 1200.0,
                                  "iscrowd": 0})
        skeleton = [[1, 2], [2, 3]]
        (root / "annotations").mkdir(parents=True, exist_ok=True)
        (root / "annotations" / f"{keypoint_file}_{split}.json").write_text(json.dumps(
            {"images": images, "annotations": people,
             "categories": [{"id": 1, "name": "person", "supercategory": "person", "keypoints": list(names),
                             "skeleton": skeleton}]}))
        (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(
            {"images": images, "annotations": instances,
             "categories": [{"id": c, "name": f"category{c}", "supercategory": "thing"} for c in CATEGORY_IDS]}))
    return root


def write_ade20k(root, rng, splits=("training", "validation")):
    """ADEChallengeData2016: images/<split>/ADE_*.jpg, annotations/<split>/ADE_*.png (0..150), objectInfo150.txt."""
    (root / "objectInfo150.txt").parent.mkdir(parents=True, exist_ok=True)
    (root / "objectInfo150.txt").write_text("Idx\tRatio\tTrain\tVal\tName\n" + "".join(
        f"{k}\t0.001\t100\t10\tclass{k}\n" for k in range(1, 151)))
    for split in splits:
        for i in range(3):
            height, width = 70 + 5 * i, 90
            rgb_jpeg(root / "images" / split / f"ADE_{split}_{i:08d}.jpg", rng, height, width)
            labels = rng.integers(0, 151, (height, width), dtype=np.uint8)
            (root / "annotations" / split).mkdir(parents=True, exist_ok=True)
            Image.fromarray(labels).save(root / "annotations" / split / f"ADE_{split}_{i:08d}.png")
    return root


def write_got10k(root, rng, splits=("train", "val"), frames=6):
    """GOT-10k: <split>/list.txt, <split>/GOT-10k_*/0000000k.jpg, groundtruth.txt, cover.label."""
    for split in splits:
        names = [f"GOT-10k_{split.capitalize()}_{i:06d}" for i in range(1, 3)]
        for name in names:
            folder = root / split / name
            boxes = [[20 + t, 15 + t, 30, 25] for t in range(frames)]
            for t in range(frames):
                rgb_jpeg(folder / f"{t + 1:08d}.jpg", rng, 72, 96)
            (folder / "groundtruth.txt").write_text("".join(",".join(f"{v:.4f}" for v in b) + "\n" for b in boxes))
            (folder / "cover.label").write_text("8\n" * frames)
        (root / split / "list.txt").write_text("\n".join(names) + "\n")
    return root


def write_nyu(root, rng, splits=("train", "test")):
    """NYUv2 as BTS / GLPDepth: <split>_list.txt of 'rgb depth focal' lines, depth PNGs uint16 in millimetres."""
    for split in splits:
        lines = []
        for i in range(3):
            rgb, depth = f"/kitchen_{i:04d}/rgb_{i:05d}.jpg", f"/kitchen_{i:04d}/sync_depth_{i:05d}.png"
            rgb_jpeg(root / rgb[1:], rng, 60, 80)
            Image.fromarray(rng.integers(500, 9000, (60, 80)).astype(np.uint16)).save(root / depth[1:])
            lines.append(f"{rgb} {depth} 518.8579")
        (root / f"{split}_list.txt").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture(scope="module")
def layouts(tmp_path_factory):
    rng = np.random.default_rng(0)
    root = tmp_path_factory.mktemp("benchmarks")
    return {"imagenet": write_image_folder(root / "imagenet", rng, splits=("train", "val"), classes=("n01", "n02")),
            "folder": write_image_folder(root / "k12", rng),
            "coco": write_coco(root / "coco", rng),
            "crowdpose": write_coco(root / "crowdpose", rng, splits=("trainval", "test"), names=CROWDPOSE_KEYPOINTS),
            "ade20k": write_ade20k(root / "ADEChallengeData2016", rng),
            "got10k": write_got10k(root / "got10k", rng),
            "nyu": write_nyu(root / "nyu", rng)}


@pytest.fixture(scope="module")
def paper_runs() -> dict[str, DownstreamConfig]:
    """The paper preset's downstream runs (planned once: planning validates every run of the preset)."""
    return {s.config.run_id: s.config for s in plan("paper") if s.notebook == "downstream"}


def test_every_section4_run_validates_and_reads_rgb_from_disk(paper_runs):
    runs = list(paper_runs.values())
    tasks = {c.task for c in runs}
    assert tasks >= {"cog_l1", "cog_l5", "k12_garments", "k12_fine", "inat_lite", "pose", "crowdpose", "depth",
                     "tracking", "detection", "segmentation"}
    assert all(c.stream and c.data_dir and c.img_size == 192 and c.init_from in ("swin_sup", "swin_simmim")
               for c in runs)
    pairs = {c.run_id for c in runs}
    assert all(run.replace("_sup", "_mim") in pairs for run in pairs if run.endswith("_sup"))  # SUP and MIM
    pose, track = paper_runs["pose_coco_mim"], paper_runs["track_got10k_mim"]
    assert (pose.lr, pose.layer_decay, pose.drop_path, pose.epochs) == (5e-4, 0.9, 0.3, 150)  # App. E, l. 333-335
    assert (track.lr * track.head_lr_scale, track.lr) == pytest.approx((5e-4, 5e-5))  # head 5e-4, backbone 5e-5 (l. 966-967)




@pytest.mark.parametrize("run_id, layout, sizes", [
    ("cifar10_mim", "folder", dict(train_size=6, test_size=6)),
    ("pose_coco_mim", "coco", dict(train_size=3, test_size=3)),
    ("crowdpose_mim", "crowdpose", dict(train_size=3, test_size=3)),
    ("det_coco_mim", "coco", dict(train_size=3, test_size=3)),
    ("seg_ade_mim", "ade20k", dict(train_size=3, test_size=3)),
    ("depth_nyu_mim", "nyu", dict(train_size=3, test_size=3)),
    ("track_got10k_mim", "got10k", dict(train_size=4, test_size=2)),
])
def test_each_benchmark_layout_streams_rgb_items_with_its_label_map(run_id, layout, sizes, layouts, paper_runs):
    config = DownstreamConfig(**{**paper_runs[run_id].to_dict(), "data_dir": str(layouts[layout]), "num_workers": 0,
                                 **sizes})
    train, test = get_task(config.task).load(config, 3)
    image, target = train[0]
    assert image.shape[0] in (3, 6) and image.shape[-2:] == (192, 192)  # RGB (a tracking pair: two crops)
    assert not train.in_memory and len(train) == sizes["train_size"]
    if config.task == "k12_garments":
        assert train.classes == ("n01", "n02", "n03") and train.labels.tolist() == [0, 1, 2, 0, 1, 2]
    if config.task == "pose":  # the crowd annotations are left out; COCO's sigmas for its 17 joints
        assert target.shape == (17, 3) and len(train) == 3 and train.keypoint_names == COCO_KEYPOINTS
    if config.task == "crowdpose":
        assert target.shape == (14, 3) and train.flip_pairs[0] == (0, 1)
    if config.task == "detection":  # ids 1, 18, 90 -> labels 1, 2, 3; polygons decoded, boxes scaled to 192
        assert train.category_ids == CATEGORY_IDS and train.instance_labels().tolist() == [1, 2, 1, 2, 3, 1]
        rows = target[target[:, 0] > 0]
        assert rows[:, 0].tolist() == [1, 2] and rows[0, 1:5].tolist() == pytest.approx(
            [10 * 192 / 110, 10 * 192 / 80, 40 * 192 / 110, 50 * 192 / 80])
        assert rows[0, 5:].reshape(192, 192).sum() > 0
    if config.task == "segmentation":  # 0 -> 255 ignored, k -> k - 1 (mmseg's reduce_zero_label)
        assert train.num_classes == 150 and target.max() == 255 and target[target != 255].max() <= 149
        raw = np.asarray(Image.open(train.annotation(0)))
        assert (target == 255).float().mean() == pytest.approx((raw == 0).mean(), abs=0.02)
    if config.task == "depth":
        assert target.shape == (1, 192, 192) and 0.5 <= target.min() and target.max() < 9.0  # metres
    if config.task == "tracking":
        assert test.sequences[0].frames is None and test.sequences[0].frame_size == (72, 96)
    held = get_task(config.task).load(DownstreamConfig(**{**config.to_dict(), "stream": False}), 3)[0]
    assert torch.equal(held.images[0], image) and torch.equal(held.targets[0], target)


def test_a_wrong_layout_names_the_file_and_what_was_expected(layouts, tmp_path):
    with pytest.raises(DatasetError, match=r"image .*val2017/000000001001\.jpg is missing \(named in "
                                           r".*person_keypoints_val2017\.json\)"):
        _broken_coco(layouts["coco"], tmp_path)
    spec = json.loads((layouts["coco"] / "annotations" / "person_keypoints_val2017.json").read_text())
    spec["categories"].append({"id": 2, "name": "robot", "keypoints": ["a"]})
    path = tmp_path / "two" / "annotations" / "person_keypoints_val2017.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(spec))
    with pytest.raises(DatasetError, match=r"person_keypoints_val2017\.json: expected exactly one category with a "
                                           r"'keypoints' list"):
        coco_keypoints.read_split(tmp_path / "two", "val2017", 32)
    content = json.loads((layouts["coco"] / "annotations" / "instances_val2017.json").read_text())
    del content["images"][0]["height"]
    (tmp_path / "two" / "annotations" / "instances_val2017.json").write_text(json.dumps(content))
    with pytest.raises(DatasetError, match=r"instances_val2017\.json has a malformed entry .*'height'.*COCO images "
                                           r"need id, file_name, height, width"):
        coco_instances.read_split(tmp_path / "two", "val2017", 32)
    ade = tmp_path / "ade"
    write_ade20k(ade, np.random.default_rng(1), splits=("validation",))
    Image.fromarray(np.full((70, 90), 151, np.uint8)).save(ade / "annotations" / "validation" / "ADE_validation_00000000.png")
    with pytest.raises(DatasetError, match=r"ADE_validation_00000000\.png holds class indices \[151\] outside 0-150 "
                                           r"\(and 255: ignored; classes from .*objectInfo150\.txt\)"):
        ade20k.read_split(ade, "validation", 32, channels=3)[0]
    (ade / "objectInfo150.txt").unlink()
    with pytest.raises(DatasetError, match=r"ade has neither objectInfo150\.txt .* nor classes\.txt"):
        ade20k.read_split(ade, "validation", 32)
    nyu = write_nyu(tmp_path / "nyu", np.random.default_rng(2), splits=("test",))
    (nyu / "test_list.txt").write_text("/kitchen_0000/rgb_00000.jpg\n")
    with pytest.raises(DatasetError, match=r"test_list\.txt, line 1: expected '<image path> <depth path>'"):
        nyu_depth.read_split(nyu, "test", 32)
    got = write_got10k(tmp_path / "got", np.random.default_rng(3), splits=("val",))
    (got / "val" / "GOT-10k_Val_000001" / "groundtruth.txt").unlink()
    with pytest.raises(DatasetError, match=r"GOT-10k_Val_000001/groundtruth\.txt is missing: each GOT-10k sequence "
                                           r"folder needs groundtruth\.txt"):
        got10k.read_split(got, "val", stream=True)
    with pytest.raises(DatasetError, match=r"k12/nope is missing: an ImageFolder dataset needs "
                                           r"<root>/<split>/<class>/<image> folders"):
        imagefolder.read_split(layouts["folder"], "nope", 32)


def _broken_coco(coco, tmp_path):
    """A copy of the COCO folder without one of its val2017 images, read (the message names the file)."""
    import shutil

    copy = tmp_path / "broken"
    shutil.copytree(coco, copy)
    (copy / "val2017" / "000000001001.jpg").unlink()
    return coco_keypoints.read_split(copy, "val2017", 32, channels=3)[0]


@pytest.fixture(scope="module")
def swin_simmim(layouts, tmp_path_factory):
    """One pre-training step of the paper's swin_simmim (tests/test_paper_preset.py's dry run): its weights."""
    runs = tmp_path_factory.getbasetemp() / "paper_downstream_runs"
    torch.set_num_threads(1)
    assert train.main(["--preset", "paper", "--run-id", "swin_simmim", "--data-dir", str(layouts["imagenet"]),
                       "--runs-dir", str(runs), "--results-dir", str(runs / "results"), "--batch-size", "2",
                       "--train-size", "4", "--val-size", "2", "--max-steps", "1", "--num-workers", "0", "--no-bf16",
                       "--device", "cpu", "--no-results"]) == 0
    return runs


@pytest.mark.slow
@pytest.mark.paper_dry_run  # minutes each at SwinV2-B size on a CPU: `make test-paper`, not `make test` (yet)
@pytest.mark.parametrize("run_id, layout, sizes", [
    ("cog1_mim", "folder", ["--train-size", "3", "--test-size", "3"]),
    ("aircraft_mim", "folder", ["--train-size", "3", "--test-size", "3", "--lr-grid", "1e-4,1e-3"]),
    ("pose_coco_mim", "coco", ["--train-size", "2", "--test-size", "2"]),
    ("crowdpose_mim", "crowdpose", ["--train-size", "2", "--test-size", "2"]),
    ("depth_nyu_mim", "nyu", ["--train-size", "2", "--test-size", "2"]),
    ("track_got10k_mim", "got10k", ["--train-size", "2", "--test-size", "1"]),
    ("det_coco_mim", "coco", ["--train-size", "2", "--test-size", "2"]),
    ("seg_ade_mim", "ade20k", ["--train-size", "2", "--test-size", "2"]),
])
def test_one_step_of_each_section4_run(run_id, layout, sizes, layouts, swin_simmim):
    """The preset's run through ``python -m mimstudy.study.transfer``: one step a seed, then the test split scored."""
    args = ["--preset", "paper", "--run-id", run_id, "--data-dir", str(layouts[layout]), "--runs-dir", str(swin_simmim),
            "--results-dir", str(swin_simmim / "results"), "--batch-size", "2", "--max-steps", "1", "--num-examples",
            "1", "--num-workers", "0", "--no-bf16", "--device", "cpu", *sizes]
    assert transfer.main(args) == 0
    ds = xr.load_dataset(swin_simmim / "results" / "paper" / "downstream" / f"{run_id}.nc")
    assert str(ds.input_dataset.values) == "image_folder" and str(ds.arch.values) == "swinv2_base_window12_192"
    assert math.isfinite(float(ds.train_loss[0, 0])) and np.isfinite(ds[ds.attrs["primary_metric"]].values).all()
    assert ds.example_image.dims == ("example", "y", "x", "channel") and ds.example_image.shape[-1] == 3
