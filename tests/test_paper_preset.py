"""The paper preset: every run validates, and each objective takes one step at paper architecture.

The dry run uses the preset's own runs (ViT-B/16 at 224, SwinV2-B at 192) through the
``mimstudy.study.train`` command line, overriding only ``--data-dir`` (a tiny image folder written here),
``--batch-size 2``, ``--max-steps 1`` and the sizes of the data; one step at full size takes seconds.
"""

import math

import numpy as np
import pytest
import torch
from PIL import Image

from mimstudy.study import train
from mimstudy.models.checkpoints.state import load_checkpoint
from mimstudy.training.pretrain import checkpoint_path
from mimstudy.study.runner import plan

PAPER_RUNS = ["vit_sup", "vit_moco", "vit_simmim", "swin_simmim", "swin_simmim_ft"]


def test_every_paper_run_validates():
    steps = plan("paper")
    assert {s.config.run_id for s in steps} >= set(PAPER_RUNS) | {"swin_sup"}
    pretraining = [s.config for s in steps if s.notebook == "pretrain"]
    assert pretraining and all(c.dataset == "image_folder" and c.bf16 for c in pretraining)


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("imagenet")
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for cls in ("n01", "n02"):
            (root / split / cls).mkdir(parents=True)
            for i in range(2):
                pixels = rng.integers(0, 256, (rng.integers(180, 260), rng.integers(180, 260), 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / cls / f"{i}.{'jpg' if i else 'png'}")
    return root


@pytest.mark.slow
@pytest.mark.parametrize("run_id", PAPER_RUNS)  # in order: the fine-tuning reads swin_simmim's checkpoint
def test_one_step_of_each_paper_run(run_id, tiny_folder, tmp_path_factory):
    runs = tmp_path_factory.getbasetemp() / "paper_runs"
    args = ["--preset", "paper", "--run-id", run_id, "--data-dir", str(tiny_folder), "--runs-dir", str(runs),
            "--results-dir", str(runs / "results"), "--batch-size", "2", "--train-size", "4", "--val-size", "2",
            "--max-steps", "1", "--num-workers", "0", "--no-bf16", "--device", "cpu", "--no-results"]
    torch.set_num_threads(1)
    assert train.main(args) == 0
    given = vars(train.build_parser().parse_args(args))
    config, from_preset = train.config_from_args({k: v for k, v in given.items()
                                                  if k not in ("force", "stop_after_epoch", "no_results")})
    state = load_checkpoint(checkpoint_path(config))
    assert from_preset and state["num_classes"] == 2 and state["config"]["arch"] == config.arch
    (record,) = state["history"]
    assert math.isfinite(record["train_loss"]) and math.isfinite(record["lr"])
