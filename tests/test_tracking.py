"""Tracking (Table 2's GOT-10k columns): the GOT-10k layout, its metrics, GarmentTrack and a fine-tuning that learns."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from mimstudy.config import DownstreamConfig
from mimstudy.data.fashion_mnist import DatasetError
from mimstudy.downstream import garment_track, got10k, tracking
from mimstudy.downstream.transfer import transfer_seed
from mimstudy.downstream.got10k import Sequence, read_split, score
from mimstudy.downstream.tasks import get_task

from .conftest import requires_real_data


def _sequence(truth, cover=None, size=64) -> Sequence:
    truth = np.asarray(truth, dtype=np.float64)
    return Sequence("s", np.zeros((len(truth), size, size), np.float32), truth, cover)


def test_metrics_on_hand_made_boxes():
    box = [0, 0, 10, 10]
    same = _sequence([box] * 4)
    perfect = score([np.array([[40, 40, 5, 5]] + [box] * 3)], [same])  # the first frame is not scored
    assert perfect["ao"] == pytest.approx(1.0) and perfect["sr50"] == 1.0 and perfect["sr75"] == 1.0
    assert perfect["auc"] == pytest.approx(100 / 101)  # IoU 1 exceeds every threshold but 1.0
    disjoint = score([np.array([box] + [[20, 20, 10, 10]] * 3)], [same])
    assert disjoint == {"ao": 0.0, "sr50": 0.0, "sr75": 0.0, "auc": 0.0}
    # IoUs 1, 1/3 (half a box shifted: 50 / 150) and 0 over frames 1-3
    mixed = score([np.array([box, box, [5, 0, 10, 10], [30, 30, 10, 10]])], [same])
    assert mixed["ao"] == pytest.approx(4 / 9)
    assert mixed["sr50"] == pytest.approx(1 / 3) and mixed["sr75"] == pytest.approx(1 / 3)
    assert mixed["auc"] == pytest.approx((34 * 2 / 3 + 66 * 1 / 3) / 101)  # thresholds 0-0.33: 2 of 3 frames
    # boxes are clipped to the frame (64 px) before the IoU, and covered frames are skipped
    assert got10k.rect_iou([[60, 0, 10, 10]], [[60, 0, 4, 10]], bound=(64, 64))[0] == pytest.approx(1.0)
    covered = score([np.array([box, box, [30, 30, 10, 10], box])], [_sequence([box] * 4, cover=np.array([8, 8, 0, 8]))])
    assert covered["ao"] == pytest.approx(1.0)
    # frames are pooled over sequences (the toolkit's overall AO), not averaged per sequence
    two = score([np.array([box, box]), np.array([box, [30, 30, 10, 10], [30, 30, 10, 10], [30, 30, 10, 10]])],
                [_sequence([box] * 2), same])
    assert two["ao"] == pytest.approx(1 / 4)


@pytest.fixture(scope="module")
def track_root(tmp_path_factory):
    return garment_track.generated_dataset(tmp_path_factory.mktemp("cache"), 2, 2, seed=0, length=6)


@requires_real_data
def test_generator_is_deterministic_per_item_and_boxes_follow_the_target():
    a, b = garment_track.draw_sequence("train", 3, 8), garment_track.draw_sequence("train", 3, 8)
    assert np.array_equal(a.frames, b.frames) and np.array_equal(a.boxes, b.boxes)
    assert not np.array_equal(a.frames, garment_track.draw_sequence("train", 4, 8).frames)
    assert not np.array_equal(a.frames, garment_track.draw_sequence("train", 3, 8, seed=1).frames)
    assert a.frames.shape == (8, 64, 64) and 0 <= a.frames.min() and a.frames.max() <= 1
    assert np.all(a.boxes[:, 2:] >= 4) and np.all(a.boxes[:, :2] >= 0) and np.all(a.boxes[:, :2] + a.boxes[:, 2:] <= 64)
    assert a.cover.shape == (8,) and set(a.cover) <= set(range(9))


@requires_real_data
def test_the_got10k_layout_reads_back_what_was_drawn(track_root):
    assert (track_root / "train" / "list.txt").read_text().split() == ["GarmentTrack_train_000000",
                                                                       "GarmentTrack_train_000001"]
    folder = track_root / "test" / "GarmentTrack_test_000001"
    assert sorted(p.name for p in folder.iterdir()) == [f"{t:08d}.jpg" for t in range(1, 7)] + ["cover.label",
                                                                                                 "groundtruth.txt"]
    assert folder.joinpath("groundtruth.txt").read_text().splitlines()[0].count(",") == 3
    back = read_split(track_root, "test")
    for seq in back:
        drawn = garment_track.draw_sequence("test", int(seq.name[-6:]), 6)
        assert seq.name == drawn.name and np.array_equal(seq.cover, drawn.cover)
        np.testing.assert_allclose(seq.boxes, drawn.boxes, atol=1e-4)
        assert np.abs(seq.frames - drawn.frames).mean() < 0.02  # JPEG, quality 95
    assert len(read_split(track_root, "test", limit=1)) == 1


@requires_real_data
def test_bad_groundtruth_and_missing_frames_are_named(track_root, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(track_root, root)
    folder = root / "train" / "GarmentTrack_train_000001"
    gt = folder / "groundtruth.txt"
    good = gt.read_text()
    with pytest.raises(DatasetError, match=r"val/list\.txt is missing"):
        read_split(root, "val")
    gt.write_text(good.replace("\n", ",1\n", 1))
    with pytest.raises(DatasetError, match=r"GarmentTrack_train_000001/groundtruth\.txt, line 1: expected four numbers"):
        read_split(root, "train")
    gt.write_text("a,b,c,d\n" + good.split("\n", 1)[1])
    with pytest.raises(DatasetError, match=r"groundtruth\.txt, line 1: expected four numbers 'x,y,w,h', got 'a,b,c,d'"):
        read_split(root, "train")
    gt.write_text("".join(good.splitlines(keepends=True)[:4]))
    with pytest.raises(DatasetError, match=r"groundtruth\.txt has 4 box line\(s\) for 6 frames"):
        read_split(root, "train")
    gt.write_text(good)
    (folder / "00000003.jpg").unlink()
    with pytest.raises(DatasetError, match=r"frame .*GarmentTrack_train_000001/00000003\.jpg is missing"):
        read_split(root, "train")
    shutil.copy(folder / "00000002.jpg", folder / "00000003.jpg")
    (folder / "00000006.jpg").unlink()  # the last frame: only the box line says it exists
    with pytest.raises(DatasetError, match=r"00000006\.jpg is missing"):
        read_split(root, "train")
    (folder / "00000006.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DatasetError, match=r"00000006\.jpg cannot be read"):
        read_split(root, "train")
    shutil.rmtree(folder)
    with pytest.raises(DatasetError, match=r"sequence folder .*GarmentTrack_train_000001 is missing"):
        read_split(root, "train")


@requires_real_data
def test_pairs_put_the_target_where_their_boxes_say(track_root):
    seqs = read_split(track_root, "train")
    pairs = tracking.make_pairs(seqs, 8, 32, seed=0).hold()
    boxes = pairs.targets
    assert pairs.images.shape == (8, 2, 32, 32) and boxes.shape == (8, 4)
    centres = boxes[:, :2] + boxes[:, 2:] / 2
    assert torch.all((centres > 4) & (centres < 28))  # shifted by at most a quarter of the crop from its middle
    assert torch.all((boxes[:, 2:] > 2) & (boxes[:, 2:] < 24))
    again = tracking.make_pairs(seqs, 8, 32, seed=0).hold()
    assert torch.equal(pairs.images, again.images)
    streamed = read_split(track_root, "train", stream=True)  # frames read from disk when a pair needs them
    assert streamed[0].frames is None and streamed[0].frame_size == seqs[0].frame_size == (64, 64)
    lazy = tracking.make_pairs(streamed, 8, 32, seed=0)
    assert all(torch.equal(lazy[i][0], pairs.images[i]) and torch.equal(lazy[i][1], boxes[i]) for i in range(8))
    rgb = read_split(track_root, "train", limit=1, channels=3, stream=True)[0].frames_at([0, 1])
    assert rgb.shape == (2, 3, 64, 64) and torch.equal(rgb[:, 0], rgb[:, 1])  # grey JPEGs read as RGB
    box = np.array([[10.0, 20.0, 8.0, 6.0]])
    c, s = np.array([[14.0, 22.0]]), np.array([40.0])
    np.testing.assert_allclose(tracking.to_frame(tracking.to_crop(box, c, s, 32), c, s, 32), box)


@requires_real_data
def test_shuffled_predictions_score_near_zero():
    seqs = [garment_track.draw_sequence("test", i, 20) for i in range(8)]
    assert score([s.boxes for s in seqs], seqs)["ao"] == pytest.approx(1.0)
    shuffled = [np.concatenate([s.boxes[:1], seqs[(i + 1) % 8].boxes[1:][::-1]]) for i, s in enumerate(seqs)]
    assert score(shuffled, seqs)["ao"] < 0.1


@pytest.mark.slow
@requires_real_data
def test_tracking_fine_tuning_beats_the_first_box(tmp_path):
    """A random vit_micro_32 + correlation head, 512 pairs x 6 epochs through the shared loop (~35 s, 1 thread)."""
    root = garment_track.generated_dataset(tmp_path, 16, 8, seed=0, length=20)
    train, test = tracking.load(root, DownstreamConfig(img_size=32, train_size=512, test_size=8))
    config = DownstreamConfig(task="tracking", init_from="random", arch="vit_micro_32", runs_dir=str(tmp_path),
                              train_size=512, test_size=8, epochs=6, batch_size=32, lr=1e-3, warmup_epochs=0.5,
                              drop_path=0.0, layer_decay=1.0, resume=False)
    task = get_task("tracking")
    run = transfer_seed(config, task, train, test, 0, [], torch.device("cpu"), progress=False)
    stay = task.trivial(train, test)
    assert run.history[-1]["train_loss"] < run.history[0]["train_loss"]
    assert run.metrics["ao"] > stay["ao"] + 0.08, (run.metrics, stay)
    assert run.predictions.shape == (8, 20, 4)
    examples, coords = task.examples(test, run.predictions, 2)
    assert examples["example_image"][1].shape == (2, 32, 32) and coords == {"box": ["x", "y", "w", "h"]}
